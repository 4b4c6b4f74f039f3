import HTTP2Engine
import NIOCore
import ProtoCodec
import TriggerModel

/// `GetNamespacePipeline` / `GetNamespacePipelineRelease` (`pipeline.pipeline.v1beta` and
/// `vdp.pipeline.v1beta`): a routed pipeline's metadata (`InstillPipelineMetadata`), NOT_FOUND otherwise.
extension HTTP2FrontendConnection {
    func grpcGetPipeline(_ message: ByteBuffer, release: Bool, call: GRPCCall, stream: HTTP2StreamID) {
        let ref: PipelineRef
        do {
            ref = try InstillCodec.decodeGetPipelineRequest(message, release: release)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let services = self.services
        let requestID = call.requestID
        startTask(stream: stream) {
            do {
                return Result<PipelineResource, GatewayError>.success(
                    try await InstillPipelineMetadata.resource(ref, services: services))
            } catch {
                return .failure(gatewayError(from: error, requestID: requestID))
            }
        } deliver: { connection, outcome in
            switch outcome {
            case .success(let resource):
                connection.grpcRespond(
                    stream,
                    message: release
                        ? InstillCodec.encodeGetPipelineReleaseResponse(resource)
                        : InstillCodec.encodeGetPipelineResponse(resource))
            case .failure(let error):
                connection.grpcFinish(stream, error: error)
            }
        }
    }
}
