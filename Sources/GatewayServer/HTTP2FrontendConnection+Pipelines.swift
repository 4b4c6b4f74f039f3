import HTTP2Engine
import NIOCore
import Observability
import ProtoCodec
import TriggerDispatch
import TriggerModel

/// `GetNamespacePipeline` / `GetNamespacePipelineRelease` (`pipeline.pipeline.v1beta` and `vdp.pipeline.v1beta`),
/// `GetPipeline` / `GetPipelineRelease` (`pipeline.v1beta`, by resource name and with its own field numbers): a
/// routed pipeline's metadata (`InstillPipelineMetadata`), NOT_FOUND otherwise.
extension HTTP2FrontendConnection {
    func grpcGetPipeline(_ message: ByteBuffer, release: Bool, call: GRPCCall, stream: HTTP2StreamID) {
        let generation = call.generation
        let ref: PipelineRef
        do {
            ref =
                generation == .pipelineV1beta
                ? try InstillCodec.decodeNamedGetPipelineRequest(message, release: release)
                : try InstillCodec.decodeGetPipelineRequest(message, release: release)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let services = self.services
        streams[stream]?.updateRecord { $0.name(ref, mode: nil, route: services.dispatcher.route(for: ref)) }
        let requestID = call.context.requestID
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
                let message =
                    switch (generation, release) {
                    case (.pipelineV1beta, true): InstillCodec.encodeNamedGetPipelineReleaseResponse(resource)
                    case (.pipelineV1beta, false): InstillCodec.encodeNamedGetPipelineResponse(resource)
                    case (_, true): InstillCodec.encodeGetPipelineReleaseResponse(resource)
                    case (_, false): InstillCodec.encodeGetPipelineResponse(resource)
                    }
                connection.grpcRespond(stream, message: message)
            case .failure(let error):
                connection.grpcFinish(stream, error: error)
            }
        }
    }

    /// `ListNamespacePipelineReleases` (`pipeline.pipeline.v1beta`, `vdp.pipeline.v1beta`) /
    /// `ListPipelineReleases` (`pipeline.v1beta`): a page of a routed pipeline's releases
    /// (`InstillPipelineMetadata.releases`); INVALID_ARGUMENT for a bad page size, token or a filter, NOT_FOUND
    /// for a pipeline the gateway does not serve.
    func grpcListPipelineReleases(_ message: ByteBuffer, call: GRPCCall, stream: HTTP2StreamID) {
        let generation = call.generation
        let query: PipelineReleaseQuery
        do {
            query =
                generation == .pipelineV1beta
                ? try InstillCodec.decodeNamedListPipelineReleasesRequest(message)
                : try InstillCodec.decodeListPipelineReleasesRequest(message)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let services = self.services
        streams[stream]?.updateRecord {
            $0.name(query.ref, mode: nil, route: services.dispatcher.route(for: query.ref))
        }
        let requestID = call.context.requestID
        startTask(stream: stream) {
            do {
                return Result<PipelineReleasePage, GatewayError>.success(
                    try await InstillPipelineMetadata.releases(query, services: services))
            } catch {
                return .failure(gatewayError(from: error, requestID: requestID))
            }
        } deliver: { connection, outcome in
            switch outcome {
            case .success(let page):
                connection.grpcRespond(
                    stream,
                    message: generation == .pipelineV1beta
                        ? InstillCodec.encodeNamedListPipelineReleasesResponse(page)
                        : InstillCodec.encodeListPipelineReleasesResponse(page))
            case .failure(let error):
                connection.grpcFinish(stream, error: error)
            }
        }
    }

    /// `ListNamespacePipelines` (`pipeline.pipeline.v1beta`): a page of the pipelines routes serve in a namespace
    /// (`InstillPipelineMetadata.pipelines`); INVALID_ARGUMENT for a missing namespace, a bad page size, token or
    /// a filter, NOT_FOUND for a namespace the gateway does not know. Answered at once: routes alone, no runner.
    func grpcListPipelines(_ message: ByteBuffer, stream: HTTP2StreamID) {
        do {
            let query = try InstillCodec.decodeListPipelinesRequest(message)
            streams[stream]?.updateRecord { $0.namespace = query.namespace }
            let page = try InstillPipelineMetadata.pipelines(query, services: services)
            grpcRespond(stream, message: InstillCodec.encodeListPipelinesResponse(page))
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
        }
    }
}
