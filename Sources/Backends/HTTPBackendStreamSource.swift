import NIOCore
import Synchronization
import TriggerModel
import WireCodecs

/// One streamed `POST {base}/run` read on a frontend's event loop: the loop-native form of
/// ``HTTPBackendStreamConsumer`` (as ``GRPCBackendStreamSource`` is of the gRPC consumer), over a connection of
/// that loop's idle list, so each event goes from the backend's read to the client's write with no task and no
/// executor hop. Issue 11: through the consumer each SSE event was a Swift task, two executor hops and a
/// semaphore wake of a dispatch thread (the SSE row of bench/run: ~48 µs of gateway CPU per relayed event against
/// nginx's ~13; bench/README.md, "Thirty-ninth session").
///
/// The same rules as the consumer's: the call starts on the first `next()`, under the pool's safe retries (a start
/// that reached no runner, its connect failed or its pooled connection had closed before the request was
/// written, goes to another connection or endpoint); a stream that fails after its request was written is not
/// retried. Each `next()` takes one event, reading the backend socket only when nothing decoded is waiting, so a
/// slow client is a slow backend. After the final event (`.end` or `.error`) the connection goes back to its
/// loop's idle list when the response is complete, and is closed otherwise. Cancelling, or dropping the source
/// before its end, closes the connection, which is how the backend learns the client is gone (cancelled while the
/// call is starting, once its connect or request write has completed).
///
/// `@unchecked Sendable`: touched only on `eventLoop` (every continuation is there: the connection is one of its
/// own), except `deinit`.
final class HTTPBackendStreamSource: TriggerEventSource, HTTPBackendStreamReceiver, @unchecked Sendable {
    private enum State {
        case idle
        case starting
        case running(HTTPBackendConnection, HTTPBackendTransport.EndpointState)
        case done
    }

    private let request: TriggerRequest
    private let transport: HTTPBackendTransport
    private let eventLoop: any EventLoop
    private let cancellation = TriggerCancellation()
    private let progress = StreamProgress()
    private var state = State.idle
    /// The pull in flight (`pull`): its connection and endpoint, and who gets its event.
    private var pulling: (HTTPBackendConnection, HTTPBackendTransport.EndpointState, any TriggerEventReceiver)?

    init(request: TriggerRequest, transport: HTTPBackendTransport, eventLoop: any EventLoop) {
        self.request = request
        self.transport = transport
        self.eventLoop = eventLoop
    }

    deinit {
        if case .running(let connection, let endpoint) = state {
            endpoint.health.outstanding.subtract(1, ordering: .relaxed)
            connection.close()
        }
        cancellation.cancel()
    }

    var endpoint: String? { cancellation.endpoint }
    var lastProgress: NIODeadline? { progress.last }

    func next() -> EventLoopFuture<TriggerEvent?> {
        let promise = eventLoop.makePromise(of: TriggerEvent?.self)
        next(to: PromiseEventReceiver(promise))
        return promise.futureResult
    }

    func next(to receiver: any TriggerEventReceiver) {
        eventLoop.assertInEventLoop()
        switch state {
        case .done:
            receiver.receive(.success(nil))
        case .starting:
            preconditionFailure("one next() at a time")
        case .running(let connection, let endpoint):
            // An event already decoded is handed over inside this call; the relay bounds how deep that nests
            // (`EventRelay.maxNestedPulls`).
            pull(connection, endpoint, to: receiver)
        case .idle:
            state = .starting
            withSafeRetries(
                transport.balancer,
                maxTries: transport.maxTries,
                deadline: request.deadline,
                on: eventLoop,
                cancellation: cancellation
            ) { [self] index in
                start(on: transport.endpoint(at: index))
            }.assumeIsolatedUnsafeUnchecked().whenComplete { [self] started in
                switch started {
                case .success((let connection, let endpoint)):
                    pull(connection, endpoint, to: receiver)
                case .failure(let error):
                    if case .starting = state { state = .done }
                    receiver.receive(.failure(error))
                }
            }
        }
    }

    func cancel() {
        eventLoop.assertInEventLoop()
        cancellation.cancel()
        if case .running(let connection, _) = state {
            // A pull in flight then fails, and is answered as the cancellation it is.
            connection.close()
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

    /// Writes the request on a connection of `endpoint` on this loop; ``NotSent`` when none could be had or it
    /// closed before the request went out. A started call counts as in flight on its endpoint until it ends.
    private func start(on endpoint: HTTPBackendTransport.EndpointState)
        -> EventLoopFuture<(HTTPBackendConnection, HTTPBackendTransport.EndpointState)>
    {
        let transport = self.transport
        let eventLoop = self.eventLoop
        endpoint.health.outstanding.add(1, ordering: .relaxed)
        return transport.acquire(endpoint, on: eventLoop, pinned: true, deadline: request.deadline)
            .flatMapError { error in
                endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                // The gateway's own refusal (no descriptor for a connection): final, not the endpoint's.
                if BackendErrors.isConnectionRefusedLocally(error) { return eventLoop.makeFailedFuture(error) }
                transport.balancer.recordFailure(endpoint.index)
                return eventLoop.makeFailedFuture(NotSent(error: error))
            }
            .flatMap { connection in
                // Tests only: the runner closes the connection here, between the pool's check and the write.
                guard let handedOut = transport.handedOut else { return eventLoop.makeSucceededFuture(connection) }
                let promise = eventLoop.makePromise(of: HTTPBackendConnection.self)
                promise.completeWithTask {
                    await handedOut(connection)
                    return connection
                }
                return promise.futureResult
            }
            .flatMap { [self] connection in
                guard case .starting = state, !cancellation.isCancelled else {
                    // Cancelled while connecting: the stream never starts.
                    endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                    connection.close()
                    return eventLoop.makeFailedFuture(CancellationError())
                }
                let (head, body) = transport.requestParts(request, endpoint: endpoint, accept: SSEEncoder.contentType)
                return connection.startStreaming(
                    head: head, body: body, maxResponseBytes: transport.maxResponseBytes,
                    maxEventBytes: transport.maxResponseBytes, progress: progress
                )
                .hop(to: eventLoop)
                .flatMapError { error in
                    endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                    connection.close()
                    return eventLoop.makeFailedFuture(
                        HTTPBackendTransport.tryFailure(
                            error, pool: transport.poolName, endpoint: endpoint.endpoint.description))
                }
                .flatMapThrowing { [self] in
                    guard case .starting = state else {
                        // Cancelled while the request was being written.
                        endpoint.health.outstanding.subtract(1, ordering: .relaxed)
                        connection.close()
                        throw CancellationError()
                    }
                    state = .running(connection, endpoint)
                    return (connection, endpoint)
                }
            }
    }

    /// The running call's next event to `receiver`: at once when one was decoded already and the connection is
    /// one of this loop's (always, unless the frontend's loop is not one of the transport's group).
    private func pull(
        _ connection: HTTPBackendConnection, _ endpoint: HTTPBackendTransport.EndpointState,
        to receiver: any TriggerEventReceiver
    ) {
        pulling = (connection, endpoint, receiver)
        if connection.channel.eventLoop.inEventLoop {
            connection.pullOnLoop(to: self)
        } else {
            connection.pull().hop(to: eventLoop).assumeIsolatedUnsafeUnchecked().whenComplete { [self] item in
                receive(item)
            }
        }
    }

    /// The connection's answer to `pull`: interpreted as the consumer does, handed to the waiting receiver.
    func receive(_ pulled: Result<HTTPBackendStreamItem?, any Error>) {
        guard let (connection, endpoint, receiver) = pulling else { return }
        pulling = nil
        let event: TriggerEvent
        do {
            event = try transport.streamEvent(pulled.get(), endpoint: endpoint)
        } catch {
            guard case .running = state, !cancellation.isCancelled else {
                // Closed by our own cancellation (the client left): not the endpoint's failure.
                return receiver.receive(.failure(CancellationError()))
            }
            markDone()
            connection.close()
            // A failed read is told as the connection's failure; an answer that was read, as itself.
            let failure: any Error
            if case .failure = pulled {
                failure = transport.streamFailure(error, endpoint: endpoint)
            } else {
                failure = error
            }
            transport.recordStreamFailure(failure, endpoint: endpoint)
            return receiver.receive(.failure(failure))
        }
        switch event {
        case .end, .error:
            transport.balancer.recordSuccess(endpoint.index)
            markDone()
            // Nothing follows the final event; the connection is reusable only if the response is complete.
            let transport = self.transport
            connection.finishStreaming().whenComplete { reusable in
                if (try? reusable.get()) == true {
                    transport.release(connection, to: endpoint)
                } else {
                    connection.close()
                }
            }
        case .status, .output:
            break
        }
        receiver.receive(.success(event))
    }
}
