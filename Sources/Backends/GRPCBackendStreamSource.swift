import HTTP2Engine
import NIOCore
import ProtoCodec
import Synchronization
import TriggerModel
import WireCodecs

/// One `RunStream` call read on a frontend's event loop: the loop-native form of
/// ``GRPCBackendStreamConsumer``, over a connection of that loop, so each event goes from the backend's
/// DATA to the client's write with no task and no hop.
///
/// The call starts on the first `next()`; each `next()` pulls one event, which is when its bytes are given
/// back to the backend's flow-control window. The endpoint is picked when the call starts; one whose connect
/// fails is replaced by another within the pool's tries, the deadline and the retry budget. Cancelling, or
/// dropping the source before the end, resets the stream.
///
/// `@unchecked Sendable`: touched only on `eventLoop` (every continuation hops there), except `deinit`.
final class GRPCBackendStreamSource: TriggerEventSource, TriggerEventReceiver, @unchecked Sendable {
    private enum State {
        case idle
        case starting
        case running(NIOLoopBoundBox<GRPCBackendCall>, GRPCBackendEndpoint)
        case done
    }

    private let request: TriggerRequest
    private let transport: GRPCBackendTransport
    private let eventLoop: any EventLoop
    private let cancellation = TriggerCancellation()
    private var state = State.idle
    /// The pending `next(to:)`: whom the call's next event goes to, and the endpoint it is judged for.
    private var pulling: (receiver: any TriggerEventReceiver, endpoint: GRPCBackendEndpoint)?

    init(request: TriggerRequest, transport: GRPCBackendTransport, eventLoop: any EventLoop) {
        self.request = request
        self.transport = transport
        self.eventLoop = eventLoop
    }

    deinit {
        if case .running(let call, let endpoint) = state {
            endpoint.health.outstanding.subtract(1, ordering: .relaxed)
            let error = cancelledError(endpoint.peer)
            call.eventLoop.execute { call.value.cancel(error) }
        }
        cancellation.cancel()
    }

    var endpoint: String? { cancellation.endpoint }

    func next() -> EventLoopFuture<TriggerEvent?> {
        switch state {
        case .done:
            return eventLoop.makeSucceededFuture(nil)
        case .starting:
            preconditionFailure("one next() at a time")
        case .running(let call, let endpoint):
            return pull(call, endpoint)
        case .idle:
            state = .starting
            let configuration = transport.configuration
            return withSafeRetries(
                transport.balancer,
                maxTries: configuration.maxTries,
                deadline: request.deadline,
                on: eventLoop,
                cancellation: cancellation
            ) { [self] index in
                start(on: transport.endpoints[index])
            }.flatMap { [self] (call, endpoint) in
                pull(call, endpoint)
            }.flatMapErrorThrowing { [self] error in
                if case .starting = state { state = .done }
                throw error
            }
        }
    }

    func cancel() {
        cancellation.cancel()
        if case .running(let call, let endpoint) = state {
            let error = cancelledError(endpoint.peer)
            if call.eventLoop.inEventLoop {
                call.value.cancel(error)
            } else {
                call.eventLoop.execute { call.value.cancel(error) }
            }
        }
        markDone()
    }

    /// The call is over: it no longer counts as in flight on its endpoint. Idempotent.
    private func markDone() {
        if case .running(_, let endpoint) = state {
            endpoint.health.outstanding.subtract(1, ordering: .relaxed)
        }
        state = .done
    }

    /// Starts the call on `endpoint`; ``NotSent`` when connecting failed. A started call counts as in flight on
    /// its endpoint (for picking) until it ends or is dropped.
    private func start(on endpoint: GRPCBackendEndpoint)
        -> EventLoopFuture<(NIOLoopBoundBox<GRPCBackendCall>, GRPCBackendEndpoint)>
    {
        let headers: HTTP2Headers
        do {
            headers = try transport.requestHeaders(
                path: GRPCBackendTransport.runStreamPath, endpoint: endpoint, request: request)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let message = GRPCMessageFramer.frame(pieces: RunnerCodec.encodeRunRequestPieces(request, headroom: 5))
        let configuration = transport.configuration
        let balancer = transport.balancer
        let eventLoop = self.eventLoop
        endpoint.health.outstanding.add(1, ordering: .relaxed)
        return endpoint.acquire(on: eventLoop, pinned: true, connectTimeout: configuration.connectTimeout)
            .flatMapError { error in
                endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                // The gateway's own refusal (no descriptor for a connection): final, not the endpoint's.
                if BackendErrors.isConnectionRefusedLocally(error) { return eventLoop.makeFailedFuture(error) }
                balancer.recordFailure(endpoint.index)
                return eventLoop.makeFailedFuture(NotSent(error: error))
            }
            .flatMapThrowing { [self] connection in
                let call = NIOLoopBoundBox.makeBoxSendingValue(
                    GRPCBackendCall(streamingPeer: endpoint.peer, maxMessageBytes: configuration.maxResponseBytes),
                    eventLoop: connection.eventLoop
                )
                guard case .starting = state, !cancellation.isCancelled else {
                    // Cancelled while connecting: the stream never starts.
                    endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                    connection.load.release()
                    throw cancelledError(endpoint.peer)
                }
                state = .running(call, endpoint)
                connection.start(call, headers: headers, message: message, deadline: request.deadline)
                return (call, endpoint)
            }
    }

    /// The running call's next event with no future when the call's connection is on this source's loop
    /// (a loop-native pool); otherwise through `next()`.
    func next(to receiver: any TriggerEventReceiver) {
        guard case .running(let call, let endpoint) = state, call.eventLoop.inEventLoop else {
            return next().assumeIsolatedUnsafeUnchecked().whenComplete { receiver.receive($0) }
        }
        pulling = (receiver, endpoint)
        call.value.pull(to: self)
    }

    /// The call's answer to `next(to:)`'s pull.
    func receive(_ result: Result<TriggerEvent?, any Error>) {
        guard let (receiver, endpoint) = pulling.take() else { return }
        receiver.receive(outcome(of: result, endpoint))
    }

    private func pull(_ call: NIOLoopBoundBox<GRPCBackendCall>, _ endpoint: GRPCBackendEndpoint)
        -> EventLoopFuture<TriggerEvent?>
    {
        let pulled: EventLoopFuture<TriggerEvent?> =
            call.eventLoop.inEventLoop
            ? call.value.pull(eventLoop: call.eventLoop)
            : call.eventLoop.flatSubmit { call.value.pull(eventLoop: call.eventLoop) }
        let promise = eventLoop.makePromise(of: TriggerEvent?.self)
        pulled.hop(to: eventLoop).whenComplete { [self] result in promise.completeWith(outcome(of: result, endpoint)) }
        return promise.futureResult
    }

    /// What a pulled event means for the call (done, a success or failure for the balancer), and the error the
    /// consumer gets for a refused stream.
    private func outcome(of pulled: Result<TriggerEvent?, any Error>, _ endpoint: GRPCBackendEndpoint)
        -> Result<TriggerEvent?, any Error>
    {
        switch pulled {
        case .failure(let error):
            markDone()
            if error is GRPCBackendCall.Refused { return .failure(refusedError(endpoint.peer)) }
            if (error as? GatewayError)?.code == .backendFailed { transport.balancer.recordFailure(endpoint.index) }
            transport.balancer.streamFailed(endpoint.index, error)
            return .failure(error)
        case .success(let event):
            switch event {
            case nil: markDone()
            case .end?, .error?: transport.balancer.recordSuccess(endpoint.index)
            case .status?, .output?: break
            }
            return .success(event)
        }
    }
}
