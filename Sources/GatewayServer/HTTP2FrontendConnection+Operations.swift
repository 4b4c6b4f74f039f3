import AsyncDispatch
import HTTP2Engine
import NIOCore
import Observability
import OperationStore
import ProtoCodec
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The async methods of `PipelinePublicService` (API.md §3): `TriggerAsyncNamespacePipeline[Release]`
/// answers `operations/<id>` once the operation is committed; `GetOperation` answers its state, with the
/// outputs as an `Any` holding a `TriggerNamespacePipelineResponse` once it succeeded, or a google.rpc
/// status once it failed.
extension HTTP2FrontendConnection {
    func grpcTriggerAsync(_ message: ByteBuffer, release: Bool, call: GRPCCall, stream: HTTP2StreamID) {
        guard let operations = services.operations else {
            grpcFinish(
                stream, error: GatewayError(.unimplemented, "async operations are not available on this gateway"))
            return
        }
        guard services.health.status(.async) == .serving else {
            grpcFinish(stream, error: HealthRegistry.asyncUnavailable)
            return
        }
        let request: TriggerRequest
        var context = call.context
        do {
            let decoded = try InstillCodec.decodeTriggerRequest(
                message, release: release, maxBatch: services.limits.maxBatch)
            request = context.makeRequest(ref: decoded.ref, mode: .async, inputs: decoded.inputs)
            if let state = streams[stream] {
                state.open?.record.name(request.ref, mode: .async, route: services.dispatcher.route(for: request.ref))
                state.open?.record.traceID = context.trace?.traceID
            }
            _ = try services.dispatcher.pool(for: request.ref)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let requestID = call.context.requestID
        startTask(stream: stream) {
            do {
                return Result<Operation, GatewayError>.success(try await operations.submit(request))
            } catch {
                return .failure(gatewayError(from: error, requestID: requestID))
            }
        } deliver: { connection, outcome in
            switch outcome {
            case .success(let operation):
                connection.grpcRespond(
                    stream, message: InstillCodec.encodeAsyncTriggerResponse(operation: .init(operation)))
            case .failure(let error):
                connection.grpcFinish(stream, error: error)
            }
        }
    }

    func grpcGetOperation(_ message: ByteBuffer, call: GRPCCall, stream: HTTP2StreamID) {
        guard let operations = services.operations else {
            grpcFinish(
                stream, error: GatewayError(.unimplemented, "async operations are not available on this gateway"))
            return
        }
        let id: String
        do {
            id = try InstillCodec.decodeGetOperationRequest(message)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let principal = call.context.principal
        let requestID = call.context.requestID
        startTask(stream: stream) {
            do {
                let operation = try await operations.get(id: id)
                try RESTOperations.checkVisible(operation, to: principal)
                return Result<Operation, GatewayError>.success(operation)
            } catch {
                return .failure(gatewayError(from: error, requestID: requestID))
            }
        } deliver: { connection, outcome in
            switch outcome {
            case .success(let operation):
                connection.grpcRespond(
                    stream, message: InstillCodec.encodeGetOperationResponse(operation: .init(operation)))
            case .failure(let error):
                connection.grpcFinish(stream, error: error)
            }
        }
    }
}

extension OperationSnapshot {
    /// The wire view of a stored operation (the same metadata REST shows).
    init(_ operation: Operation) {
        self.init(
            name: operation.name,
            done: operation.state.isFinished,
            error: OperationView.error(operation),
            result: operation.state == .succeeded ? operation.result : nil,
            metadata: OperationView.metadata(operation)
        )
    }
}
