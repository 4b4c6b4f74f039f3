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
