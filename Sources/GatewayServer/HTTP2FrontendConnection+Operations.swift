import AsyncDispatch
import HTTP2Engine
import NIOCore
import Observability
import OperationStore
import ProtoCodec
import Routing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The async methods of `PipelinePublicService` (API.md §3), in each Instill generation:
/// `TriggerAsyncNamespacePipeline[Release]` (`TriggerAsyncPipeline[Release]` in `pipeline.v1beta`)
/// answers `operations/<id>` once the operation is committed; `GetOperation` answers its state, with the
/// outputs as an `Any` holding the generation's trigger response once it succeeded, or a google.rpc
/// status once it failed.
extension HTTP2FrontendConnection {
    func grpcTriggerAsync(_ message: ByteBuffer, release: Bool, call: GRPCCall, stream: HTTP2StreamID) {
        guard let operations = services.operations else {
            grpcFinish(
                stream, error: GatewayError(.unimplemented, "async operations are not available on this gateway"))
            return
        }
        guard services.health.status(.async) == .serving else {
            grpcFinish(stream, error: services.health.asyncRefusal)
            return
        }
        let request: TriggerRequest
        var context = call.context
        do {
            let decoded = try InstillCodec.decodeTriggerRequest(
                message, generation: call.generation, release: release, maxBatch: services.limits.maxBatch,
                maxMembers: services.limits.maxJSONMembers)
            request = context.makeRequest(
                ref: decoded.ref, mode: .async, inputs: decoded.inputs, now: services.clock())
            if let state = streams[stream] {
                state.updateRecord {
                    $0.name(request.ref, mode: .async, route: services.dispatcher.route(for: request.ref))
                    $0.traceID = context.trace?.traceID
                }
            }
            _ = try services.dispatcher.pool(for: request.ref)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let dispatcher = services.dispatcher
        respondWithOperation(call: call, stream: stream) {
            // As REST's trigger-async: a pipeline the runner says it lacks is refused before anything is stored
            // (a keyed request asks only the route table: its retry gets the operation stored under the key).
            try await dispatcher.checkAsyncTarget(request.ref, askRunner: request.idempotencyKey == nil)
            return try await operations.submit(request)
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
        // The id asked for, on the access line whatever the answer (an unknown one's NOT_FOUND too).
        streams[stream]?.updateRecord { $0.operationID = id }
        respondWithOperation(call: call, stream: stream) {
            let operation = try await operations.get(id: id)
            try RESTOperations.checkVisible(operation, to: principal)
            return operation
        }
    }

    /// `ListPipelineRuns` (`pipeline.pipeline.v1beta`): a page of the pipeline's stored runs that the caller may
    /// see (``PipelineRuns``), read and encoded off the loop. INVALID_ARGUMENT for ``PipelineRunQuery``'s refusals,
    /// NOT_FOUND for a pipeline no route matches, UNIMPLEMENTED on a gateway without async operations,
    /// UNAVAILABLE when the store cannot answer.
    func grpcListPipelineRuns(_ message: ByteBuffer, call: GRPCCall, stream: HTTP2StreamID) {
        guard let operations = services.operations else {
            grpcFinish(
                stream, error: GatewayError(.unimplemented, "async operations are not available on this gateway"))
            return
        }
        let query: PipelineRunQuery
        do {
            query = try InstillCodec.decodeListPipelineRunsRequest(message)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let services = self.services
        let route = services.dispatcher.route(for: query.ref)
        streams[stream]?.updateRecord { $0.name(query.ref, mode: nil, route: route) }
        // Instill answers NOT_FOUND for the runs of a pipeline that does not exist; here, one no route matches
        // (what a trigger of it is answered).
        guard route != nil else {
            grpcFinish(stream, error: TriggerDispatcher.notFound(query.ref))
            return
        }
        let namespaces = services.namespaces
        let principal = call.context.principal
        let requestID = call.context.requestID
        startTask(stream: stream) {
            do {
                let page = try await operations.pipelineRuns(query, visibleTo: principal) {
                    namespaces.namespace(uid: $0)?.id
                }
                return Result<ByteBuffer, GatewayError>.success(InstillCodec.encodeListPipelineRunsResponse(page))
            } catch {
                return .failure(gatewayError(from: error, requestID: requestID))
            }
        } deliver: { connection, outcome in
            switch outcome {
            case .success(let message): connection.grpcRespond(stream, message: message)
            case .failure(let error): connection.grpcFinish(stream, error: error)
            }
        }
    }

    /// Runs `work` off the loop, then answers the stream with the operation it returned (every operation
    /// method answers `{operation = 1}`) or finishes it with the error it threw.
    private func respondWithOperation(
        call: GRPCCall,
        stream: HTTP2StreamID,
        _ work: @escaping @Sendable () async throws -> Operation
    ) {
        let requestID = call.context.requestID
        let generation = call.generation
        startTask(stream: stream) {
            do {
                return Result<Operation, GatewayError>.success(try await work())
            } catch {
                return .failure(gatewayError(from: error, requestID: requestID))
            }
        } deliver: { connection, outcome in
            switch outcome {
            case .success(let operation):
                // The operation created or read, for the access line (`operation.id`, review 26 H2).
                connection.streams[stream]?.updateRecord { $0.operationID = operation.id }
                connection.grpcRespond(
                    stream,
                    message: InstillCodec.encodeOperationResponse(
                        operation: .init(operation), generation: generation))
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
