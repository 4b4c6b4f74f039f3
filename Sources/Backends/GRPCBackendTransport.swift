import HTTP2Engine
package import NIOCore
package import Observability
import ProtoCodec
import Synchronization
package import TriggerModel
import WireCodecs

/// The `grpc` transport: h2c (prior knowledge), or HTTP/2 over TLS with ALPN `h2` when the pool has
/// ``BackendPoolConfiguration/tls``, to runners serving `trigger.runner.v1.Runner` (API.md §5), over the HTTP/2
/// engine's client role.
///
/// Owns, per endpoint, a small set of multiplexed connections: calls share a connection until it has
/// ``GRPCBackendConnectionLoad/maxStreams`` streams, then another one is opened; a connection that received
/// GOAWAY or closed is dropped and replaced on the next call. Endpoints are picked by the pool's
/// ``EndpointBalancer`` like the http transport's; a call that never reached a backend (connect failed, stream
/// refused) goes to another endpoint, and transport failures eject an endpoint.
///
/// Metadata (runner.proto's header): `grpc-timeout` from the request's deadline, `request-id`,
/// `traceparent`/`tracestate`, `x-trigger-principal`, `idempotency-key`, `instill-requester-uid`. Cancelling the
/// calling task resets that call's stream (RST_STREAM CANCEL) and nothing else.
package final class GRPCBackendTransport: TriggerRunner {
    static let runPath = "/trigger.runner.v1.Runner/Run"
    static let runStreamPath = "/trigger.runner.v1.Runner/RunStream"

    let configuration: BackendPoolConfiguration
    let group: any EventLoopGroup
    let endpoints: [GRPCBackendEndpoint]
    package let balancer: EndpointBalancer
    /// The active health check's loop, when the pool has one; cancelled by ``retire()`` and ``close()``.
    private let healthChecker = Mutex<Task<Void, Never>?>(nil)

    /// `metrics`: the pool's instruments (ejections, retries, backend latency per endpoint); nil records nothing.
    /// `healthCheckClock`: what the active health check waits its interval on (tests count or step rounds).
    package init(
        configuration: BackendPoolConfiguration,
        group: any EventLoopGroup,
        metrics: PoolMetrics? = nil,
        healthCheckClock: any Clock<Duration> = ContinuousClock(),
        connectionBudget: BackendConnectionBudget = .shared
    ) {
        precondition(!configuration.endpoints.isEmpty, "config validation guarantees endpoints")
        self.configuration = configuration
        self.group = group
        let balancer = EndpointBalancer(pool: configuration, metrics: metrics)
        self.balancer = balancer
        self.endpoints = configuration.endpoints.enumerated().map { index, endpoint in
            GRPCBackendEndpoint(
                endpoint,
                peer: GRPCBackendPeer(pool: configuration.name, endpoint: endpoint.description),
                index: index,
                health: balancer.health[index],
                group: group,
                tls: configuration.tls,
                idleTimeout: configuration.idleTimeout,
                connectionBudget: connectionBudget
            )
        }
        let checker = ActiveHealthChecker.start(for: configuration, of: self, clock: healthCheckClock) {
            await $0.probe($0.endpoints[$1], $2)
        }
        healthChecker.withLock { $0 = checker }
    }

    static let healthCheckPath = "/grpc.health.v1.Health/Check"

    /// One active health check: `grpc.health.v1.Health/Check` for the whole server (an empty request) on the
    /// endpoint's shared connections; SERVING within the timeout passes. A connection the gateway refused itself
    /// (the backend connection budget, out of descriptors) skips the probe (``HealthProbeResult/skipped``).
    private func probe(_ endpoint: GRPCBackendEndpoint, _ check: HealthCheckConfiguration) async -> HealthProbeResult {
        do {
            let answer = try await controlCall(
                Self.healthCheckPath,
                ByteBuffer(),
                on: endpoint,
                connectTimeout: min(configuration.connectTimeout, check.timeout),
                timeout: check.timeout,
                maxMessageBytes: 64 << 10
            )
            return InstillCodec.decodeGRPCHealthServing(answer) ? .passed : .failed
        } catch {
            return BackendErrors.isConnectionRefusedLocally(error) ? .skipped : .failed
        }
    }

    /// A unary control-plane call (`Health/Check`, `Runner/Describe`) of `path` with `message` on `endpoint`'s
    /// shared connections: `timeout` goes to the runner as `grpc-timeout` and bounds the stream locally, and
    /// cancelling the calling task resets the stream. Throws what connecting or the call failed with.
    func controlCall(
        _ path: String,
        _ message: ByteBuffer,
        on endpoint: GRPCBackendEndpoint,
        connectTimeout: TimeAmount,
        timeout: TimeAmount,
        maxMessageBytes: Int
    ) async throws -> ByteBuffer {
        let connection = try await endpoint.acquire(group: group, connectTimeout: connectTimeout)
        let promise = connection.eventLoop.makePromise(of: ByteBuffer.self)
        let call = NIOLoopBoundBox.makeBoxSendingValue(
            GRPCBackendCall(raw: promise, peer: endpoint.peer, maxMessageBytes: maxMessageBytes),
            eventLoop: connection.eventLoop
        )
        var headers = callHeaders(path: path, endpoint: endpoint)
        headers.add(lowercasedName: "grpc-timeout", value: GRPCTimeout.encode(timeout))
        let framed = BufferPieces(GRPCMessageFramer.frame(message))
        return try await withTaskCancellationHandler {
            connection.start(call, headers: headers, message: framed, deadline: .now() + timeout)
            return try await promise.futureResult.get()
        } onCancel: {
            call.eventLoop.execute { call.value.cancel(GatewayError(.cancelled, "the \(path) call was cancelled")) }
        }
    }

    /// Live connections across all endpoints (for tests and metrics).
    package var connectionCount: Int {
        endpoints.reduce(0) { $0 + $1.connectionCount }
    }

    /// Closes every connection; calls in flight fail with `.backendFailed`.
    package func close() {
        healthChecker.withLock { $0?.cancel() }
        for endpoint in endpoints { endpoint.closeAll() }
    }
}

extension GRPCBackendTransport: RetirableTransport {
    /// Calls in flight finish; each connection closes after its last stream.
    package func retire() {
        healthChecker.withLock { $0?.cancel() }
        for endpoint in endpoints { endpoint.retireAll() }
    }
}

extension GRPCBackendTransport: LoopCallingTransport {
    /// A unary `Run`, its outcome reported once to `completion` on `eventLoop` (no promise of its own: the
    /// pool's is the call's only one). The deadline goes to the backend as `grpc-timeout`. `pinned`: on
    /// `eventLoop`'s own connections, with the deadline enforced by the caller (``BackendPool`` does, with one
    /// timer per call on this loop), so the call sets no timer of its own; otherwise on the shared connections,
    /// with the call's own deadline timer (`async` callers). A try that reached no backend (connect failed,
    /// stream refused twice) goes to another endpoint under ``SafeRetries`` (their rules: ``withSafeRetries(_:maxTries:deadline:_:)``).
    func call(
        _ request: consuming TriggerRequest,
        on eventLoop: any EventLoop,
        pinned: Bool,
        cancellation: TriggerCancellation,
        completion: @escaping @Sendable (Result<TriggerResult, any Error>) -> Void
    ) {
        // Framed in pieces: a large blob goes out as the buffer it arrived in, not copied (issue 12).
        let message = GRPCMessageFramer.frame(pieces: RunnerCodec.encodeRunRequestPieces(request, headroom: 5))
        let deadline = request.deadline
        let run = UnaryRun(
            transport: self, request: request, message: message, eventLoop: eventLoop, pinned: pinned,
            cancellation: cancellation, completion: completion)
        SafeRetries(
            balancer: balancer, maxTries: configuration.maxTries, deadline: deadline, eventLoop: eventLoop, call: run
        ).start(cancellation: cancellation)
    }

    /// One unary `Run`, from its first try to its last: what ``attempt(_:)``, ``start(_:on:)`` and
    /// ``finishAttempt(_:_:)`` carry, and the current try's state. Tries are sequential (``SafeRetries`` starts
    /// the next once the last has reported), so one object serves them all; it is the retries' call itself
    /// (``SafeRetriedCall``: no closure between the two, issue 11).
    ///
    /// Issue 11: one object per call, which every closure of the call captures alone (a closure that captures
    /// one object needs no context of its own), in place of a struct copied into a context per closure (the
    /// retries' body, the call's completion, the cancellation handler) and a box for the backend call.
    ///
    /// `@unchecked Sendable`: its state is only touched on `eventLoop` (the retries run there, the completion and
    /// the cancellation handler hop there first).
    private final class UnaryRun: SafeRetriedCall, @unchecked Sendable {
        let transport: GRPCBackendTransport
        let request: TriggerRequest
        let message: BufferPieces
        /// Where the tries run and report to ``retries``.
        let eventLoop: any EventLoop
        /// The request's deadline bounds the stream locally unless `pinned` (the caller enforces it then).
        let pinned: Bool
        let cancellation: TriggerCancellation
        /// Where the chain's outcome goes (the pool's call).
        let completion: @Sendable (Result<TriggerResult, any Error>) -> Void

        // The current try.
        var endpoint: GRPCBackendEndpoint! = nil
        var headers = HTTP2Headers()
        /// This is the retry after a refused stream: a second refusal is final for this endpoint.
        var refusedBefore = false
        /// The retries this try reports to, once (``GRPCBackendTransport/report(_:_:)`` takes them).
        var retries: SafeRetries<UnaryRun>?
        /// The try's backend call once started, for the cancellation handler.
        var started: Started = .none

        enum Started {
            case none
            /// On a connection of `eventLoop` itself.
            case onLoop(GRPCBackendCall)
            /// On another loop's connection (the shared connections of an `async` caller).
            case elsewhere(NIOLoopBoundBox<GRPCBackendCall>)
        }

        init(
            transport: GRPCBackendTransport, request: TriggerRequest, message: BufferPieces, eventLoop: any EventLoop,
            pinned: Bool, cancellation: TriggerCancellation,
            completion: @escaping @Sendable (Result<TriggerResult, any Error>) -> Void
        ) {
            self.transport = transport
            self.request = request
            self.message = message
            self.eventLoop = eventLoop
            self.pinned = pinned
            self.cancellation = cancellation
            self.completion = completion
        }

        /// A try on the endpoint at `index`, on `eventLoop`.
        func startTry(endpoint index: Int, retries: SafeRetries<UnaryRun>) {
            let endpoint = transport.endpoints[index]
            do {
                headers = try transport.requestHeaders(
                    path: GRPCBackendTransport.runPath, endpoint: endpoint,
                    request: request)
            } catch {
                retries.tryEnded(.failure(error))
                return
            }
            self.endpoint = endpoint
            self.retries = retries
            refusedBefore = false
            started = .none
            endpoint.health.outstanding.add(1, ordering: .relaxed)
            transport.attempt(self)
        }

        func retriesEnded(_ result: Result<TriggerResult, any Error>) { completion(result) }

        /// The backend call's outcome, on the connection's loop.
        func callEnded(_ result: Result<TriggerResult, any Error>) {
            guard eventLoop.inEventLoop else {
                eventLoop.execute { self.transport.finishAttempt(result, self) }
                return
            }
            transport.finishAttempt(result, self)
        }

        /// The cancellation handler, on any thread.
        func cancel() {
            eventLoop.execute {
                let error = cancelledError(self.endpoint.peer)
                switch self.started {
                case .none: break
                case .onLoop(let call): call.cancel(error)
                case .elsewhere(let call): call.eventLoop.execute { call.value.cancel(error) }
                }
            }
        }
    }

    /// One try on the run's current endpoint, reported once (``report(_:_:)``) on its loop; ``NotSent`` when
    /// nothing reached the backend. A refused stream never reached the backend (GOAWAY race, connection
    /// closing): one retry on a fresh connection is safe even for non-idempotent runs; after that, another
    /// endpoint is.
    ///
    /// Issue 11: no promise and no future when the connection is ready (the call reports to one closure, which
    /// runs ``finishAttempt(_:_:)`` on the try's loop, directly on the pinned path whose connection is that
    /// loop's own).
    private func attempt(_ unary: UnaryRun) {
        let (connection, ready) = unary.endpoint.reserve(
            on: unary.eventLoop, pinned: unary.pinned, connectTimeout: configuration.connectTimeout)
        guard ready else {
            unary.endpoint.whenReady(connection, on: unary.eventLoop).whenComplete { acquired in
                switch acquired {
                case .failure(let error) where BackendErrors.isConnectionRefusedLocally(error):
                    // The gateway's own refusal (no descriptor for a connection): final, not the endpoint's.
                    self.report(.failure(error), unary)
                case .failure(let error):
                    self.balancer.recordFailure(unary.endpoint.index)
                    self.report(.failure(NotSent(error: error)), unary)
                case .success(let connection):
                    self.start(unary, on: connection)
                }
            }
            return
        }
        start(unary, on: connection)
    }

    /// Starts the run's current try on `connection` (a stream reserved on it, connected), on the run's loop.
    private func start(_ unary: UnaryRun, on connection: GRPCBackendConnection) {
        let call = GRPCBackendCall(
            unary: { [unary] in unary.callEnded($0) }, peer: unary.endpoint.peer,
            maxMessageBytes: configuration.maxResponseBytes, statusSink: unary.cancellation)
        let deadline = unary.pinned ? nil : unary.request.deadline
        if connection.eventLoop === unary.eventLoop {
            unary.started = .onLoop(call)
            unary.cancellation.whenCancelled { [unary] in unary.cancel() }
            connection.startOnLoop(call, headers: unary.headers, message: unary.message, deadline: deadline)
        } else {
            let box = NIOLoopBoundBox.makeBoxSendingValue(call, eventLoop: connection.eventLoop)
            unary.started = .elsewhere(box)
            unary.cancellation.whenCancelled { [unary] in unary.cancel() }
            connection.start(box, headers: unary.headers, message: unary.message, deadline: deadline)
        }
    }

    /// A try's outcome, on its loop: reported, or, for a refused stream, tried once more on a fresh connection.
    private func finishAttempt(_ result: Result<TriggerResult, any Error>, _ unary: UnaryRun) {
        guard case .failure(let error) = result, error is GRPCBackendCall.Refused else {
            report(result, unary)
            return
        }
        if unary.cancellation.isCancelled {
            report(.failure(cancelledError(unary.endpoint.peer)), unary)
        } else if unary.refusedBefore {
            // Refused again on a fresh connection: the endpoint takes no work (it is draining), which
            // counts against it like a refused connect.
            balancer.recordFailure(unary.endpoint.index)
            report(.failure(NotSent(error: refusedError(unary.endpoint.peer))), unary)
        } else {
            unary.refusedBefore = true
            unary.started = .none
            attempt(unary)
        }
    }

    /// The try's end: the endpoint's count of calls in flight and its health (a transport failure counts
    /// against it; an answer, the pipeline's own error included, for it), then the run's retries.
    private func report(_ result: Result<TriggerResult, any Error>, _ unary: UnaryRun) {
        let index = unary.endpoint.index
        unary.endpoint.health.outstanding.subtract(1, ordering: .relaxed)
        switch result {
        case .success:
            balancer.recordSuccess(index)
        case .failure(let error as GatewayError):
            if error.code == .backendFailed {
                balancer.recordFailure(index)
            } else if error.code.isApplication {
                balancer.recordSuccess(index)
            }
        case .failure:
            break
        }
        // The run lets go of the try's call (which holds the run through its completion) and of its handler on
        // the caller's cancellation (which holds the run, and which the run holds) before reporting: left in
        // place, either cycle kept every call's run, request and cancellation alive (~2 KB a call, found at
        // the thirteenth session's start: RSS grew 19 MB per 10 000 gRPC calls).
        unary.started = .none
        unary.cancellation.clearHandler()
        unary.retries.take()?.tryEnded(result)
    }

    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let consumer = GRPCBackendStreamConsumer(
            request: request,
            endpoints: endpoints,
            group: group,
            configuration: configuration,
            balancer: balancer,
            makeHeaders: { try self.requestHeaders(path: Self.runStreamPath, endpoint: $0, request: request) }
        )
        // Pull-based: one event is fetched (and its bytes consumed) per `next()`, so the consumer's pace is the
        // backend's pace. Dropping or cancelling the consumer resets the stream.
        return AsyncThrowingStream(unfolding: { try await consumer.next() })
    }

    /// The loop-native stream: ``GRPCBackendStreamSource`` on `eventLoop`'s own connections.
    package func openStream(_ request: TriggerRequest, on eventLoop: any EventLoop) -> any TriggerEventSource {
        GRPCBackendStreamSource(request: request, transport: self, eventLoop: eventLoop)
    }

    // MARK: Request metadata

    /// `:scheme` of the requests: `https` over TLS (RFC 9113 §8.3.1).
    static func scheme(tls: BackendTLS?) -> String { tls == nil ? "http" : "https" }

    /// What every call of `path` to an endpoint (`authority`) sends first: a gRPC request over HTTP/2 (gRPC's
    /// PROTOCOL-HTTP2.md: POST, `content-type: application/grpc`, `te: trailers`), with room for `capacity` fields.
    static func callHeaders(path: String, scheme: String, authority: String, capacity: Int) -> HTTP2Headers {
        var headers = HTTP2Headers(capacity: capacity)
        headers.add(lowercasedName: ":method", value: "POST")
        headers.add(lowercasedName: ":scheme", value: scheme)
        headers.add(lowercasedName: ":path", value: path)
        headers.add(lowercasedName: ":authority", value: authority)
        headers.add(lowercasedName: "content-type", value: "application/grpc")
        headers.add(lowercasedName: "te", value: "trailers")
        return headers
    }

    /// ``callHeaders(path:scheme:authority:capacity:)`` for `endpoint`. A `Run` call's are the endpoint's block,
    /// built once (``GRPCBackendEndpoint/runCallHeaders``) with room for the rest: the call's first `add` copies
    /// its six fields into storage of that capacity (issue 11: six `add`s were ~650 instructions per call).
    func callHeaders(path: String, endpoint: GRPCBackendEndpoint) -> HTTP2Headers {
        // Room for the metadata ``requestHeaders(path:endpoint:request:)`` adds (up to 7 fields), so the
        // block is allocated once per call, not grown twice.
        if path == Self.runPath { return endpoint.runCallHeaders }
        return Self.callHeaders(
            path: path, scheme: Self.scheme(tls: configuration.tls), authority: endpoint.authority, capacity: 13)
    }

    func requestHeaders(path: String, endpoint: GRPCBackendEndpoint, request: TriggerRequest) throws -> HTTP2Headers {
        var headers = callHeaders(path: path, endpoint: endpoint)
        if let deadline = request.deadline {
            let remaining = deadline - .now()
            guard remaining > .zero else {
                throw GatewayError(
                    .deadlineExceeded,
                    "backend pool \"\(configuration.name)\": the deadline passed before the call started"
                )
            }
            // Three significant digits, rounded up: one value for the calls of a pool, which HPACK indexes
            // (GRPCTimeout.encodeIndexable); the exact deadline is this side's, enforced by the call's timer.
            headers.add(lowercasedName: "grpc-timeout", value: GRPCTimeout.encodeIndexable(remaining))
        }
        request.forEachForwardedField { headers.add(lowercasedName: $0, value: $1, neverIndexed: $2) }
        return headers
    }
}

func cancelledError(_ peer: GRPCBackendPeer) -> GatewayError {
    GatewayError(.cancelled, "the call to backend pool \"\(peer.pool)\" was cancelled")
}

func refusedError(_ peer: GRPCBackendPeer) -> GatewayError {
    BackendErrors.endpointFailure(pool: peer.pool, endpoint: peer.endpoint, "an endpoint refused the stream")
}

extension GRPCBackendTransport: BalancedTransport {
    package var endpointNames: [String] { endpoints.map(\.peer.endpoint) }
}
