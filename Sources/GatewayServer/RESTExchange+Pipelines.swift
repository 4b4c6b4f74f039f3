import NIOCore
import Routing
import TriggerModel
import WireCodecs

/// `GET /v1beta/{ns-kind}/{ns}/pipelines/{pipeline}[/releases/{release}]`: Instill's `GetNamespacePipeline`
/// and `GetNamespacePipelineRelease` over REST (their google.api.http bindings), answered as Instill's
/// gateway renders them: `{"pipeline": {...}}` / `{"release": {...}}` with lowerCamelCase fields
/// (`name`, `uid`, `id`, `ownerName`, `releases`, `dataSpecification: {input, output}`). Same token rule as a
/// trigger; NOT_FOUND for a pipeline no route (or no runner) has.
extension RESTRequestHead {
    func pipelineStart(_ ref: PipelineRef, services: FrontendServices, requestID: String) -> RESTStart {
        do {
            _ = try services.authenticator.authenticate(authorization: first("authorization"))
        } catch {
            return .respond(.error(gatewayError(from: error), requestID: requestID), closeConnection: false)
        }
        return .run(
            RESTWork(requestID: requestID) {
                do {
                    let resource = try await InstillPipelineMetadata.resource(ref, services: services)
                    var body = ByteBufferAllocator().buffer(capacity: 512)
                    let key = ref.release == nil ? "pipeline" : "release"
                    let object = Self.json(resource, isRelease: ref.release != nil)
                    JSONValueCodec.write(ValueObject([(key, .object(object))]), into: &body)
                    return .json(status: 200, body: body, requestID: requestID)
                } catch {
                    return .error(gatewayError(from: error, requestID: requestID), requestID: requestID)
                }
            })
    }

    /// `GET /v1beta/{ns-kind}/{ns}/pipelines/{pipeline}/releases`: `ListNamespacePipelineReleases` over REST,
    /// `{"releases": [...], "nextPageToken": "", "totalSize": n}` (each release as `GetNamespacePipelineRelease`
    /// renders it, without schemas; the page fields always present). Query: `page_size` / `pageSize`,
    /// `page_token` / `pageToken`, `filter`, and `view` and `show_deleted` / `showDeleted`, which change nothing
    /// (``PipelineReleaseQuery``). An unknown parameter, one given twice or a `page_size` that is not a number
    /// is INVALID_ARGUMENT, as are the query's own refusals; NOT_FOUND for a pipeline no route (or runner) has.
    func pipelineReleasesStart(_ ref: PipelineRef, services: FrontendServices, requestID: String) -> RESTStart {
        let query: PipelineReleaseQuery
        do {
            _ = try services.authenticator.authenticate(authorization: first("authorization"))
            query = try Self.releaseQuery(ref, RESTQuery(target: target))
        } catch {
            return .respond(.error(gatewayError(from: error), requestID: requestID), closeConnection: false)
        }
        return .run(
            RESTWork(requestID: requestID) {
                do {
                    let page = try await InstillPipelineMetadata.releases(query, services: services)
                    var body = ByteBufferAllocator().buffer(capacity: 128 + 160 * page.releases.count)
                    JSONValueCodec.write(
                        ValueObject([
                            ("releases", .list(page.releases.map { .object(Self.json($0, isRelease: true)) })),
                            ("nextPageToken", .string(page.nextPageToken)),
                            ("totalSize", .number(Double(page.totalSize))),
                        ]), into: &body)
                    return .json(status: 200, body: body, requestID: requestID)
                } catch {
                    return .error(gatewayError(from: error, requestID: requestID), requestID: requestID)
                }
            })
    }

    /// The query parameters of the releases list, each in both its spellings (grpc-gateway takes either).
    static let releaseListParameters: [[String]] = [
        ["page_size", "pageSize"], ["page_token", "pageToken"], ["filter"], ["view"], ["show_deleted", "showDeleted"],
    ]

    static func releaseQuery(_ ref: PipelineRef, _ query: RESTQuery) throws(GatewayError) -> PipelineReleaseQuery {
        let known = releaseListParameters.flatMap { $0 }
        if let unknown = query.names.first(where: { !known.contains($0) }) {
            throw GatewayError(
                .invalidArgument,
                "unknown query parameter \"\(unknown)\" on the releases list: it takes page_size, page_token, "
                    + "filter, view and show_deleted")
        }
        for spellings in releaseListParameters where query.names.filter(spellings.contains).count > 1 {
            throw GatewayError(.invalidArgument, "query parameter \"\(spellings[0])\" is given more than once")
        }
        var pageSize = 0
        if let text = query["page_size"] ?? query["pageSize"], !text.isEmpty {
            guard let parsed = Int32(text) else {
                throw GatewayError(
                    .invalidArgument, "invalid page_size \"\(text)\": expected a whole number (int32, as page_size is)")
            }
            pageSize = Int(parsed)
        }
        // Read and checked only: deleted releases are never listed (there are none to show).
        for name in ["show_deleted", "showDeleted"] { _ = try query.boolean(name) }
        return try PipelineReleaseQuery(
            ref: ref, pageSize: pageSize, pageToken: query["page_token"] ?? query["pageToken"] ?? "",
            filter: query["filter"] ?? "")
    }

    /// Instill's JSON rendering of a pipeline or release (protobuf JSON: lowerCamelCase, empty fields left out;
    /// `ownerName` is a `Pipeline` field only).
    static func json(_ resource: PipelineResource, isRelease: Bool) -> ValueObject {
        var object = ValueObject()
        object["name"] = .string(resource.name)
        object["uid"] = .string(resource.uid)
        object["id"] = .string(resource.id)
        if !isRelease { object["ownerName"] = .string(resource.ownerName) }
        if !resource.releases.isEmpty {
            object["releases"] = .list(resource.releases.map { .object(json($0, isRelease: true)) })
        }
        if !resource.inputSchema.isEmpty || !resource.outputSchema.isEmpty {
            object["dataSpecification"] = .object(
                ValueObject([("input", .object(resource.inputSchema)), ("output", .object(resource.outputSchema))]))
        }
        return object
    }
}
