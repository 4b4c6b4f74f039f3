import NIOCore
import Synchronization
import TriggerModel
import WireCodecs

/// The consumer's end of one streamed `POST {base}/run`: what the http transport's `runStreaming` pulls from.
///
/// The call starts on the first `next()`, under ``withSafeRetries(_:maxTries:deadline:_:)``: a start that reached
/// no runner (its connect failed, or its pooled connection had closed before the request was written) is tried
/// again on another connection or endpoint; a stream that fails after its request was written is not (the runner
/// may have run it). Each `next()` takes one event, reading the backend socket only when nothing decoded is
/// waiting. Events are interpreted here, off the event loop. After the final event (`.end`
/// or `.error`) the connection goes back to the pool when the response is complete, and is closed otherwise.
/// Cancelling the consuming task, or dropping the stream before its end (`deinit`), closes the connection,
/// which is how the backend learns the client is gone.
final class HTTPBackendStreamConsumer: Sendable {
    private enum State {
        case idle
        case running(HTTPBackendConnection)
        case done
    }

    private let request: TriggerRequest
    /// The endpoint of the call, set when it starts (picked by the balancer, and again when a try reached no
    /// runner). Before that it holds the endpoint the transport named, unused.
    private let chosen: Mutex<HTTPBackendTransport.EndpointState>
    private let transport: HTTPBackendTransport
    private let state = Mutex(State.idle)

    private var endpoint: HTTPBackendTransport.EndpointState { chosen.withLock { $0 } }

    /// The runner's keep-alives (SSE comments) between events, as the connection's reader records them.
    private let progress = StreamProgress()

    init(request: TriggerRequest, endpoint: HTTPBackendTransport.EndpointState, transport: HTTPBackendTransport) {
        self.request = request
        self.chosen = Mutex(endpoint)
        self.transport = transport
    }

    deinit {
        if case .running(let connection) = state.withLock({ $0 }) {
            endpoint.health.outstanding.subtract(1, ordering: .relaxed)
            connection.close()
        }
    }

    /// The next event, nil after the final one; throws the call's error once.
    func next() async throws -> TriggerEvent? {
        let connection: HTTPBackendConnection
        switch state.withLock({ $0 }) {
        case .done:
            return nil
        case .running(let running):
            connection = running
        case .idle:
            do {
                connection = try await start()
            } catch {
                state.withLock { $0 = .done }
                throw error
            }
        }
        let item: HTTPBackendStreamItem?
        do {
            item = try await withTaskCancellationHandler {
                try await connection.pull().get()
            } onCancel: {
                connection.close()
            }
        } catch {
            finish(connection, reuse: false)
            if Task.isCancelled { throw CancellationError() }
            let translated = transport.streamFailure(error, endpoint: endpoint)
            transport.recordStreamFailure(translated, endpoint: endpoint)
            throw translated
        }
        let event: TriggerEvent
        do {
            // Closed by our own cancellation (the client left, review 10 #7): not the endpoint's failure.
            if item == nil, Task.isCancelled { throw CancellationError() }
            event = try transport.streamEvent(item, endpoint: endpoint)
        } catch {
            finish(connection, reuse: false)
            transport.recordStreamFailure(error, endpoint: endpoint)
            throw error
        }
        switch event {
        case .end, .error:
            transport.balancer.recordSuccess(endpoint.index)
            // Nothing follows the final event; the connection is reusable only if the response is complete.
            let reusable = (try? await connection.finishStreaming().get()) ?? false
            finish(connection, reuse: reusable)
        case .status, .output:
            break
        }
        return event
    }

    private func start() async throws -> HTTPBackendConnection {
        let (endpoint, connection) = try await withSafeRetries(
            transport.balancer,
            maxTries: transport.maxTries,
            deadline: request.deadline
        ) { index in
            let endpoint = transport.endpoint(at: index)
            endpoint.health.outstanding.add(1, ordering: .relaxed)
            let connection: HTTPBackendConnection
            do {
                connection = try await transport.acquire(endpoint, deadline: request.deadline)
            } catch {
                endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                // The gateway's own refusal (no descriptor for a connection): final, not the endpoint's.
                if BackendErrors.isConnectionRefusedLocally(error) { throw error }
                transport.balancer.recordFailure(endpoint.index)
                throw NotSent(error: error)
            }
            // Written within the try: a pooled connection that closed before the request went out is a try that
            // reached no runner, retried as the unary path's is (`tryFailure`). Once written, a failure is the
            // stream's (`next()`) and never retried: the runner may have run the call.
            let (head, body) = transport.requestParts(request, endpoint: endpoint, accept: SSEEncoder.contentType)
            do {
                try await connection.startStreaming(
                    head: head,
                    body: body,
                    maxResponseBytes: transport.maxResponseBytes,
                    maxEventBytes: transport.maxResponseBytes,
                    progress: progress
                ).get()
            } catch {
                endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                connection.close()
                throw HTTPBackendTransport.tryFailure(
                    error, pool: transport.poolName, endpoint: endpoint.endpoint.description)
            }
            return (endpoint, connection)
        }
        chosen.withLock { $0 = endpoint }
        state.withLock { $0 = .running(connection) }
        return connection
    }

    private func finish(_ connection: HTTPBackendConnection, reuse: Bool) {
        let wasRunning = state.withLock { state -> Bool in
            guard case .running = state else { return false }
            state = .done
            return true
        }
        guard wasRunning else { return }
        endpoint.health.outstanding.subtract(1, ordering: .relaxed)
        if reuse {
            transport.release(connection, to: endpoint)
        } else {
            connection.close()
        }
    }
}

extension HTTPBackendTransport {
    /// What one piece of a streamed answer from `endpoint` means (for ``HTTPBackendStreamConsumer`` and
    /// ``HTTPBackendStreamSource`` alike): an SSE event decoded (API.md §5), or a whole non-SSE answer as its
    /// final event. Throws for an answer that ended before its final event (`item` nil), a non-2xx answer and one
    /// that cannot be read, each as the endpoint's failure (`.backendFailed`) or the pipeline's error.
    func streamEvent(_ item: HTTPBackendStreamItem?, endpoint: EndpointState) throws -> TriggerEvent {
        switch item {
        case nil:
            throw BackendErrors.endpointFailure(
                pool: poolName, endpoint: endpoint.endpoint.description,
                "an endpoint ended the stream before its final event"
            )
        case .event(let name, let data)?:
            return try SSEDecoder.triggerEvent(event: name, data: data, limits: limits)
        case .response(let response)?:
            guard (200..<300).contains(response.status) else {
                throw BackendErrors.errorAnswer(
                    pool: poolName, endpoint: endpoint.endpoint.description, status: response.status,
                    body: response.body)
            }
            do {
                return .end(try BackendHTTPBody.decodeResult(response.body, limits: limits))
            } catch let error as GatewayError {
                throw BackendErrors.unreadableResult(
                    pool: poolName, endpoint: endpoint.endpoint.description, status: response.status,
                    body: response.body, problem: error.message)
            }
        }
    }

    /// Tells the balancer that a running stream from `endpoint` failed with `error` (what the client is told).
    func recordStreamFailure(_ error: any Error, endpoint: EndpointState) {
        if (error as? GatewayError)?.code == .backendFailed { balancer.recordFailure(endpoint.index) }
        balancer.streamFailed(endpoint.index, error)
    }

    /// What a failed read of a running stream from `endpoint` tells the client.
    func streamFailure(_ error: any Error, endpoint: EndpointState) -> any Error {
        switch error {
        // (`closedBeforeSend` ends the stream's start: a running stream never sees it.)
        case HTTPBackendClientHandler.Failure.closedBeforeResponse, ChannelError.ioOnClosedChannel,
            ChannelError.alreadyClosed, ChannelError.eof:
            return BackendErrors.endpointFailure(
                pool: poolName, endpoint: endpoint.endpoint.description,
                "an endpoint closed the connection mid-stream"
            )
        case HTTPBackendClientHandler.Failure.responseTooLarge(let limit):
            return BackendErrors.badResponse(
                pool: poolName, endpoint: endpoint.endpoint.description,
                reason: "response larger than \(limit) bytes")
        case let error as GatewayError:
            var named = GatewayError(error.code, "backend pool \"\(poolName)\": \(error.message)")
            named.notSent = error.notSent
            return named
        default:
            return BackendErrors.exchangeFailed(pool: poolName, endpoint: endpoint.endpoint.description, error)
        }
    }
}
