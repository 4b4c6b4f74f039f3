import HTTP2Engine
import NIOCore
import ProtoCodec
import Synchronization
import TriggerModel
import WireCodecs

/// The consumer's end of one `RunStream` call: what `runStreaming`'s stream pulls from.
///
/// The call starts on the first `next()` (so an unused stream costs nothing) and each `next()` fetches one
/// event, which is when that event's bytes are given back to the backend's flow-control window. Cancelling
/// the consuming task, or dropping the stream before its end (this object's `deinit`), resets the stream.
///
/// The endpoint is picked when the call starts; one whose connect fails is replaced by another (nothing reached
/// a backend yet), within the pool's tries, the deadline and the retry budget.
final class GRPCBackendStreamConsumer: Sendable {
    private enum State {
        case idle
        case running(NIOLoopBoundBox<GRPCBackendCall>, GRPCBackendEndpoint)
        case done
    }

    private let request: TriggerRequest
    private let endpoints: [GRPCBackendEndpoint]
    private let group: any EventLoopGroup
    private let configuration: BackendPoolConfiguration
    private let makeHeaders: @Sendable (GRPCBackendEndpoint) throws -> HTTP2Headers
    private let balancer: EndpointBalancer
    private let state = Mutex(State.idle)

    init(
        request: TriggerRequest,
        endpoints: [GRPCBackendEndpoint],
        group: any EventLoopGroup,
        configuration: BackendPoolConfiguration,
        balancer: EndpointBalancer,
        makeHeaders: @escaping @Sendable (GRPCBackendEndpoint) throws -> HTTP2Headers
    ) {
        self.balancer = balancer
        self.request = request
        self.endpoints = endpoints
        self.group = group
        self.configuration = configuration
        self.makeHeaders = makeHeaders
    }

    deinit {
        if case .running(let call, let endpoint) = state.withLock({ $0 }) {
            endpoint.health.outstanding.subtract(1, ordering: .relaxed)
            let error = cancelledError(endpoint.peer)
            call.eventLoop.execute { call.value.cancel(error) }
        }
    }

    /// The call is over: it no longer counts as in flight on its endpoint. Idempotent.
    private func markDone() {
        let endpoint: GRPCBackendEndpoint? = state.withLock { state in
            defer { state = .done }
            if case .running(_, let endpoint) = state { return endpoint }
            return nil
        }
        endpoint?.health.outstanding.subtract(1, ordering: .relaxed)
    }

    /// The next event, nil after a clean end; throws the call's error once.
    func next() async throws -> TriggerEvent? {
        let call: NIOLoopBoundBox<GRPCBackendCall>
        let endpoint: GRPCBackendEndpoint
        switch state.withLock({ $0 }) {
        case .done:
            return nil
        case .running(let running, let runningOn):
            call = running
            endpoint = runningOn
        case .idle:
            do {
                (call, endpoint) = try await withSafeRetries(
                    balancer,
                    maxTries: configuration.maxTries,
                    deadline: request.deadline
                ) { index in
                    try await start(on: endpoints[index])
                }
            } catch {
                state.withLock { $0 = .done }
                throw error
            }
        }
        let peer = endpoint.peer
        do {
            let event = try await withTaskCancellationHandler {
                try await call.eventLoop.flatSubmit { call.value.pull(eventLoop: call.eventLoop) }.get()
            } onCancel: {
                call.eventLoop.execute { call.value.cancel(cancelledError(peer)) }
            }
            switch event {
            case nil: markDone()
            case .end?, .error?: balancer.recordSuccess(endpoint.index)
            case .status?, .output?: break
            }
            return event
        } catch {
            markDone()
            if error is GRPCBackendCall.Refused { throw refusedError(peer) }
            if (error as? GatewayError)?.code == .backendFailed { balancer.recordFailure(endpoint.index) }
            balancer.streamFailed(endpoint.index, error)
            throw error
        }
    }

    /// Starts the call on `endpoint`; ``NotSent`` when connecting failed. A started call counts as in flight on
    /// its endpoint (for picking) until it ends or is dropped.
    private func start(
        on endpoint: GRPCBackendEndpoint
    ) async throws -> (NIOLoopBoundBox<GRPCBackendCall>, GRPCBackendEndpoint) {
        let headers = try makeHeaders(endpoint)
        let message = GRPCMessageFramer.frame(pieces: RunnerCodec.encodeRunRequestPieces(request, headroom: 5))
        let connection: GRPCBackendConnection
        endpoint.health.outstanding.add(1, ordering: .relaxed)
        do {
            connection = try await endpoint.acquire(group: group, connectTimeout: configuration.connectTimeout)
        } catch {
            endpoint.health.outstanding.subtract(1, ordering: .relaxed)
            // The gateway's own refusal (no descriptor for a connection): final, not the endpoint's.
            if BackendErrors.isConnectionRefusedLocally(error) { throw error }
            balancer.recordFailure(endpoint.index)
            throw NotSent(error: error)
        }
        let call = NIOLoopBoundBox.makeBoxSendingValue(
            GRPCBackendCall(streamingPeer: endpoint.peer, maxMessageBytes: configuration.maxResponseBytes),
            eventLoop: connection.eventLoop
        )
        state.withLock { $0 = .running(call, endpoint) }
        connection.start(call, headers: headers, message: message, deadline: request.deadline)
        return (call, endpoint)
    }
}
