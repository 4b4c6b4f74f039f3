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

    /// `GET /v1beta/{ns-kind}/{ns}/pipelines`: `ListNamespacePipelines` over REST, `{"pipelines": [...],
    /// "nextPageToken": "", "totalSize": n}` (each pipeline as `GetNamespacePipeline` renders it, without
    /// schemas; the page fields always present). Query: the releases list's, and `visibility` and `order_by` /
    /// `orderBy`, which change nothing (``PipelineListQuery``). The same refusals as the releases list;
    /// NOT_FOUND for a namespace the gateway does not know.
    func pipelinesStart(_ namespace: String, services: FrontendServices, requestID: String) -> RESTStart {
        do {
            _ = try services.authenticator.authenticate(authorization: first("authorization"))
            let query = try RESTQuery(target: target)
            let pageSize = try Self.pageQuery(query, list: "pipelines", parameters: Self.pipelineListParameters)
            let page = try InstillPipelineMetadata.pipelines(
                PipelineListQuery(
                    namespace: namespace, pageSize: pageSize,
                    pageToken: query["page_token"] ?? query["pageToken"] ?? "", filter: query["filter"] ?? ""),
                services: services)
            var body = ByteBufferAllocator().buffer(capacity: 128 + 200 * page.pipelines.count)
            JSONValueCodec.write(
                ValueObject([
                    ("pipelines", .list(page.pipelines.map { .object(Self.json($0, isRelease: false)) })),
                    ("nextPageToken", .string(page.nextPageToken)),
                    ("totalSize", .number(Double(page.totalSize))),
                ]), into: &body)
            return .respond(.json(status: 200, body: body, requestID: requestID), closeConnection: false)
        } catch {
            return .respond(.error(gatewayError(from: error), requestID: requestID), closeConnection: false)
        }
    }

    /// The query parameters of the releases list, each in both its spellings (grpc-gateway takes either).
    static let releaseListParameters: [[String]] = [
        ["page_size", "pageSize"], ["page_token", "pageToken"], ["filter"], ["view"], ["show_deleted", "showDeleted"],
    ]

    /// The pipelines list's: the releases list's, `visibility` and `order_by`.
    static let pipelineListParameters: [[String]] = releaseListParameters + [["visibility"], ["order_by", "orderBy"]]

    static func releaseQuery(_ ref: PipelineRef, _ query: RESTQuery) throws(GatewayError) -> PipelineReleaseQuery {
        let pageSize = try pageQuery(query, list: "releases", parameters: releaseListParameters)
        return try PipelineReleaseQuery(
            ref: ref, pageSize: pageSize, pageToken: query["page_token"] ?? query["pageToken"] ?? "",
            filter: query["filter"] ?? "")
    }

    /// The checks a list's query gets: INVALID_ARGUMENT for a parameter not in `parameters`, one given twice (in
    /// either spelling), a `page_size` that is not an int32 or a `show_deleted` that is not a boolean. Returns the
    /// page size (0 when absent).
    static func pageQuery(_ query: RESTQuery, list: String, parameters: [[String]]) throws(GatewayError) -> Int {
        let known = parameters.flatMap { $0 }
        if let unknown = query.names.first(where: { !known.contains($0) }) {
            let names = parameters.map(\.[0])
            throw GatewayError(
                .invalidArgument,
                "unknown query parameter \"\(unknown)\" on the \(list) list: it takes "
                    + names.dropLast().joined(separator: ", ") + " and " + names.last!)
        }
        for spellings in parameters where query.names.filter(spellings.contains).count > 1 {
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
        // Read and checked only: deleted resources are never listed (there are none to show).
        for name in ["show_deleted", "showDeleted"] { _ = try query.boolean(name) }
        return pageSize
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
