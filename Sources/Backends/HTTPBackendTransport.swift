import Synchronization
package import NIOCore
import NIOPosix
package import Observability
package import TriggerModel
package import WireCodecs

/// The `http` transport: `POST {base}/run` over keep-alive HTTP/1.1 (over TLS with ALPN `http/1.1` when the pool
/// has ``BackendPoolConfiguration/tls``), the model as JSON (API.md §5).
///
/// Connections are kept per endpoint in an idle list and reused; a connection that failed, timed out, or
/// was told `Connection: close` is dropped. Endpoints are picked by the pool's ``EndpointBalancer`` (power
/// of two choices on outstanding calls among endpoints not ejected); a call whose connect failed is tried
/// again on another endpoint (nothing reached the backend), and transport failures eject an endpoint.
package final class HTTPBackendTransport: TriggerRunner, LoopCallingTransport {
    let configuration: BackendPoolConfiguration
    let group: any EventLoopGroup
    private let endpoints: [EndpointState]
    package let balancer: EndpointBalancer
    private let codecLimits: CodecLimits
    /// What every new connection (calls' and health checks') is counted against.
    let connectionBudget: BackendConnectionBudget
    /// Set by ``retire()``: connections are closed when their call ends instead of being kept idle.
    private let retired = Atomic<Bool>(false)
    /// The active health check's loop, when the pool has one; cancelled by ``retire()``.
    private let healthChecker = Mutex<Task<Void, Never>?>(nil)
    /// Tests only (nil in production, where it costs one nil check per streamed call): awaited with each
    /// connection a streamed call took (``acquire(_:deadline:)`` for the async consumer, ``HTTPBackendStreamSource``
    /// on a loop), before its request is written. A test has the
    /// runner close it there, which makes the race of a pooled connection closing between the pool's check and
    /// the write deterministic. Set once at init: no lock on the call path.
    let handedOut: (@Sendable (HTTPBackendConnection) async -> Void)?

    /// One endpoint: its health, and its idle connections kept per event loop (as nghttpx's workers and
    /// Envoy's per-worker pools do), so a call made on a loop of the group reuses a connection of that loop
    /// and never leaves it. Each loop's list has its own lock, which other loops' calls never take.
    final class EndpointState: Sendable {
        let endpoint: BackendPoolConfiguration.Endpoint
        /// Its requests' `Host` (``BackendPoolConfiguration/Endpoint/authority(tls:)``).
        let authority: String
        /// Its `POST` target, `{base}/run` (made once, not per call).
        let runPath: String
        let index: Int
        let health: EndpointHealth
        /// Idle connections, in the list of the loop each lives on.
        let idle: PerLoopLists<HTTPBackendConnection>
        /// The active health check's own keep-alive connection, between probes (a probe takes it out while it
        /// runs; probes of one endpoint never overlap: a round waits for all of its probes).
        let probeConnection = Mutex<HTTPBackendConnection?>(nil)

        init(
            _ endpoint: BackendPoolConfiguration.Endpoint, index: Int, health: EndpointHealth,
            group: any EventLoopGroup,
            tls: BackendTLS?
        ) {
            self.endpoint = endpoint
            self.authority = endpoint.authority(tls: tls)
            self.runPath = endpoint.basePath + "/run"
            self.index = index
            self.health = health
            self.idle = PerLoopLists(group: group)
        }
    }

    /// `metrics`: the pool's instruments (ejections, retries, backend latency per endpoint); nil records nothing.
    /// `healthCheckClock`: what the active health check waits its interval on (tests step rounds with a manual
    /// clock).
    /// `connectionBudget`: the process-wide cap on backend connections (tests pass one of their own).
    package convenience init(
        configuration: BackendPoolConfiguration,
        group: any EventLoopGroup,
        codecLimits: CodecLimits,
        metrics: PoolMetrics? = nil,
        healthCheckClock: any Clock<Duration> = ContinuousClock(),
        connectionBudget: BackendConnectionBudget = .shared
    ) {
        self.init(
            configuration: configuration, group: group, codecLimits: codecLimits, metrics: metrics,
            healthCheckClock: healthCheckClock, handedOut: nil, connectionBudget: connectionBudget)
    }

    /// As above, with ``handedOut`` (tests only).
    init(
        configuration: BackendPoolConfiguration,
        group: any EventLoopGroup,
        codecLimits: CodecLimits,
        metrics: PoolMetrics?,
        healthCheckClock: any Clock<Duration>,
        handedOut: (@Sendable (HTTPBackendConnection) async -> Void)?,
        connectionBudget: BackendConnectionBudget = .shared
    ) {
        self.connectionBudget = connectionBudget
        precondition(!configuration.endpoints.isEmpty, "config validation guarantees endpoints")
        self.handedOut = handedOut
        self.configuration = configuration
        self.group = group
        let balancer = EndpointBalancer(pool: configuration, metrics: metrics)
        self.balancer = balancer
        self.endpoints = configuration.endpoints.enumerated().map {
            EndpointState(
                $0.element, index: $0.offset, health: balancer.health[$0.offset], group: group, tls: configuration.tls)
        }
        self.codecLimits = codecLimits
        let checker = ActiveHealthChecker.start(for: configuration, of: self, clock: healthCheckClock) {
            await $0.probe($0.endpoints[$1], $2)
        }
        healthChecker.withLock { $0 = checker }
    }

    /// One active health check: `GET {base}{path}`; a 2xx answer within the timeout passes. Probes of an endpoint
    /// share one keep-alive connection of their own (as Envoy's HTTP health checker keeps its connection between
    /// intervals), so a probe every interval costs no connect or TLS handshake; it is opened again after a
    /// failure, a timeout or a `Connection: close`. A kept connection the backend closed while idle (its
    /// keep-alive timeout) is not the endpoint's failure: the probe is then made once on a fresh connection.
    ///
    /// A connection the gateway refused itself (the backend connection budget, out of descriptors) skips the probe
    /// (``HealthProbeResult/skipped``): no health change.
    private func probe(_ endpoint: EndpointState, _ check: HealthCheckConfiguration) async -> HealthProbeResult {
        let kept = endpoint.probeConnection.withLock { kept in
            defer { kept = nil }
            return kept
        }
        // An evicted kept connection (the budget took its place while it was idle) is closing: open another.
        if let kept, kept.use.tryTake() {
            switch await probe(on: kept, endpoint, check) {
            case .answered(let passed): return passed ? .passed : .failed
            case .lost: break
            case .failed: return .failed
            }
        }
        let fresh: HTTPBackendConnection
        do {
            fresh = try await connect(endpoint, timeout: check.timeout)
        } catch {
            return BackendErrors.isConnectionRefusedLocally(error) ? .skipped : .failed
        }
        guard case .answered(let passed) = await probe(on: fresh, endpoint, check) else { return .failed }
        return passed ? .passed : .failed
    }

    private enum ProbeOutcome {
        case answered(passed: Bool)
        /// The connection closed before any answer (a kept connection the backend had closed while idle).
        case lost
        case failed
    }

    /// One probe on `connection`, which is kept for the next probe when it answered on a keep-alive connection
    /// and closed otherwise.
    private func probe(
        on connection: HTTPBackendConnection,
        _ endpoint: EndpointState,
        _ check: HealthCheckConfiguration
    ) async -> ProbeOutcome {
        guard connection.isActive else {
            connection.close()
            return .lost
        }
        var writer = HTTP1RequestHeadWriter(method: "GET", target: endpoint.endpoint.basePath + check.path)
        writer.add("host", endpoint.authority)
        writer.add("content-length", decimal: 0)
        let head = (consume writer).finish()
        let answer = connection.execute(head: head, body: StreamedJSONBody(ByteBuffer()), maxResponseBytes: 64 << 10)
        let timedOut = ProbeTimeout()
        let timer = connection.channel.eventLoop.scheduleTask(in: check.timeout) {
            timedOut.fired.store(true, ordering: .sequentiallyConsistent)
            connection.close()
        }
        defer { timer.cancel() }
        let response: HTTPBackendResponse
        do {
            response = try await answer.get()
        } catch {
            connection.close()
            // Our own close at the timeout is the endpoint's failure; the backend's close before answering is not.
            if case HTTPBackendClientHandler.Failure.closedBeforeResponse = error,
                !timedOut.fired.load(ordering: .sequentiallyConsistent)
            {
                return .lost
            }
            return .failed
        }
        if response.keepAlive && !retired.load(ordering: .sequentiallyConsistent) {
            connection.use.put()
            endpoint.probeConnection.withLock { $0 = connection }
            // Checked after the store (both sequentially consistent with `retire`), as `release` does.
            if retired.load(ordering: .sequentiallyConsistent) { closeProbeConnection(endpoint) }
        } else {
            connection.close()
        }
        return .answered(passed: (200..<300).contains(response.status))
    }

    /// Set when a probe's timeout closed its connection.
    private final class ProbeTimeout: Sendable {
        let fired = Atomic(false)
    }

    private func closeProbeConnection(_ endpoint: EndpointState) {
        endpoint.probeConnection.withLock { kept in
            defer { kept = nil }
            return kept
        }?.close()
    }

    /// A control-plane request (`POST /describe`; health probes keep a connection instead) of `path` under `endpoint`'s base
    /// path, on a connection of its own that is closed after the answer or once `timeout` (connect included)
    /// has passed; the connect alone is bounded by the pool's `connect_timeout` too. `body` is JSON; nil sends
    /// none. A failed connect throws its own error; `timeout` passing before the answer throws
    /// ``BackendErrors/deadline(pool:after:)`` (`.deadlineExceeded`, as a run's would); a connection lost before
    /// it, ``BackendErrors/connectionLost(pool:endpoint:)``.
    func controlRequest(
        _ method: StaticString,
        _ path: String,
        body: ByteBuffer?,
        to endpoint: EndpointState,
        timeout: TimeAmount,
        maxResponseBytes: Int
    ) async throws -> HTTPBackendResponse {
        let deadline = NIODeadline.now() + timeout
        let connection = try await connect(endpoint, timeout: min(configuration.connectTimeout, timeout))
        defer { connection.close() }
        var writer = HTTP1RequestHeadWriter(method: method, target: endpoint.endpoint.basePath + path)
        writer.add("host", endpoint.authority)
        if body != nil { writer.add("content-type", "application/json") }
        writer.add("content-length", decimal: body?.readableBytes ?? 0)
        writer.add("connection", "close")
        let head = (consume writer).finish()
        let timer = connection.channel.eventLoop.scheduleTask(deadline: deadline) { connection.close() }
        defer { timer.cancel() }
        do {
            return try await connection.execute(
                head: head, body: StreamedJSONBody(body ?? ByteBuffer()), maxResponseBytes: maxResponseBytes
            ).get()
        } catch {
            if NIODeadline.now() >= deadline {
                throw BackendErrors.deadline(pool: configuration.name, after: describe(timeout))
            }
            throw BackendErrors.connectionLost(pool: configuration.name, endpoint: endpoint.endpoint.description)
        }
    }

    /// `POST /run` on an idle connection (or a new one), its outcome reported once to `completion` on
    /// `eventLoop` (no promise of its own: the pool's is the call's only one). `pinned`: on `eventLoop`'s own
    /// connections (the frontends' path); otherwise on the shared ones, which `async` callers (not on a loop)
    /// use. A try whose connect failed reached no backend and goes to another endpoint under
    /// ``SafeRetries`` (their rules: ``withSafeRetries(_:maxTries:deadline:_:)``).
    func call(
        _ request: consuming TriggerRequest,
        on eventLoop: any EventLoop,
        pinned: Bool,
        cancellation: TriggerCancellation,
        completion: @escaping @Sendable (Result<TriggerResult, any Error>) -> Void
    ) {
        let deadline = request.deadline
        let run = UnaryRun(
            transport: self, request: request, eventLoop: eventLoop, pinned: pinned, cancellation: cancellation,
            completion: completion)
        SafeRetries(
            balancer: balancer, maxTries: configuration.maxTries, deadline: deadline, eventLoop: eventLoop, call: run
        ).start(cancellation: cancellation)
    }

    /// One `POST /run`, from its first try to its last, and the current try's state. Tries are sequential
    /// (``SafeRetries`` starts the next once the last has reported), so one object serves them all; it is the
    /// retries' call itself (``SafeRetriedCall``: no closure between the two).
    ///
    /// Issue 11 (as `GRPCBackendTransport`'s `UnaryRun`): every closure of the call (the retries' body, the
    /// connect's and the answer's completions, the cancellation handler) captures this object alone, so none
    /// needs a context of its own; they replaced a context per closure, each with its copy of the request.
    ///
    /// `@unchecked Sendable`: its state is only touched on `eventLoop` (the retries run there, the connect and
    /// the answer are hopped there, the cancellation handler hops there first).
    private final class UnaryRun: SafeRetriedCall, @unchecked Sendable {
        let transport: HTTPBackendTransport
        let request: TriggerRequest
        /// Where the tries run and report to ``retries``.
        let eventLoop: any EventLoop
        let pinned: Bool
        let cancellation: TriggerCancellation
        /// Where the chain's outcome goes (the pool's call).
        let completion: @Sendable (Result<TriggerResult, any Error>) -> Void

        // The current try.
        var endpoint: EndpointState! = nil
        /// The retries this try reports to, once (taken by the report).
        var retries: SafeRetries<UnaryRun>?
        /// The request's head and body while a new connection is being made. Two fields, not an Optional of the
        /// pair: that Optional (~70 bytes) and the pair itself were destroyed through the runtime's generic
        /// witnesses (`tuple_destroy`), ~450 instructions per REST call on top of the body's own destroy
        /// (bench/README.md, "Branch hotpath9").
        var pendingHead: ByteBuffer?
        var pendingBody: StreamedJSONBody?
        /// The connection the request went out on, until its answer: what the cancellation handler closes.
        var connection: HTTPBackendConnection?

        init(
            transport: HTTPBackendTransport, request: TriggerRequest, eventLoop: any EventLoop, pinned: Bool,
            cancellation: TriggerCancellation,
            completion: @escaping @Sendable (Result<TriggerResult, any Error>) -> Void
        ) {
            self.transport = transport
            self.request = request
            self.eventLoop = eventLoop
            self.completion = completion
            self.pinned = pinned
            self.cancellation = cancellation
        }

        /// A try on the endpoint at `index`, on `eventLoop`, on an idle connection when there is one (the common
        /// case: no future), or on a new one.
        func startTry(endpoint index: Int, retries: SafeRetries<UnaryRun>) {
            let endpoint = transport.endpoints[index]
            self.endpoint = endpoint
            self.retries = retries
            endpoint.health.outstanding.add(1, ordering: .relaxed)
            // Taken apart at once: each half is destroyed by its own type's code, not the pair's generic witness.
            let (head, body) = transport.requestParts(request, endpoint: endpoint, accept: "application/json")
            if let idle = transport.idleConnection(endpoint, on: eventLoop, pinned: pinned) {
                send(head, body, on: idle)
                return
            }
            pendingHead = head
            pendingBody = body
            transport.newConnection(endpoint, on: eventLoop, pinned: pinned, deadline: request.deadline)
                .whenComplete { [self] in connected($0) }
        }

        /// A new connection's outcome, on `eventLoop`. A failed connect is ``NotSent`` (nothing reached the
        /// backend).
        private func connected(_ result: Result<HTTPBackendConnection, any Error>) {
            let head = pendingHead.take()!
            let body = pendingBody.take()!
            switch result {
            case .failure(let error):
                // The gateway's own refusal (no descriptor for a connection) is final: not the endpoint's
                // failure, and another endpoint would need a connection too.
                if BackendErrors.isConnectionRefusedLocally(error) { return finish(.failure(error)) }
                // A connect cut short by the caller's own deadline says nothing about the endpoint.
                if request.deadline.map({ $0 > .now() }) ?? true { transport.balancer.recordFailure(endpoint.index) }
                finish(.failure(NotSent(error: error)))
            case .success(let connection):
                send(head, body, on: connection)
            }
        }

        private func send(_ head: ByteBuffer, _ body: StreamedJSONBody, on connection: HTTPBackendConnection) {
            self.connection = connection
            // The caller gave up (deadline or client gone): the response will never be read, so the connection
            // cannot be reused; closing it also tells the backend to stop.
            cancellation.whenCancelled { [self] in cancel() }
            // Reported on the connection's loop, which is `eventLoop` on the frontends' path (pinned); an `async`
            // caller's shared connection may be on another.
            connection.execute(head: head, body: body, maxResponseBytes: transport.maxResponseBytes) { [self] in
                answered($0)
            }
        }

        /// The cancellation handler, on any thread: closes the try's connection unless its answer came first
        /// (then the connection may already serve another call).
        private func cancel() {
            eventLoop.execute { self.connection?.close() }
        }

        /// The backend's answer, on the connection's loop; handled on `eventLoop`.
        private func answered(_ outcome: Result<HTTPBackendResponse, any Error>) {
            guard eventLoop.inEventLoop else {
                eventLoop.execute { self.answered(outcome) }
                return
            }
            guard let connection = self.connection.take() else { return }
            let pool = transport.poolName
            switch outcome {
            case .failure(let error):
                connection.close()
                // Our own close after the caller gave up (deadline, client gone) is not the endpoint's doing.
                if cancellation.isCancelled {
                    finish(.failure(CancellationError()))
                    return
                }
                finish(
                    .failure(
                        HTTPBackendTransport.tryFailure(error, pool: pool, endpoint: endpoint.endpoint.description)))
            case .success(let response):
                cancellation.answered(status: response.status, clearingHandler: true)
                if response.keepAlive {
                    transport.release(connection, to: endpoint)
                } else {
                    connection.close()
                }
                guard (200..<300).contains(response.status) else {
                    finish(
                        .failure(
                            BackendErrors.errorAnswer(
                                pool: pool, endpoint: endpoint.endpoint.description, status: response.status,
                                body: response.body)))
                    return
                }
                do {
                    finish(.success(try BackendHTTPBody.decodeResult(response.body, limits: transport.limits)))
                } catch let error as GatewayError {
                    finish(
                        .failure(
                            BackendErrors.unreadableResult(
                                pool: pool, endpoint: endpoint.endpoint.description, status: response.status,
                                body: response.body, problem: error.message)))
                } catch {
                    finish(.failure(error))
                }
            }
        }

        /// Ends the try: every transport failure counts against the endpoint, every answer (the pipeline's own
        /// error included) for it.
        private func finish(_ result: Result<TriggerResult, any Error>) {
            endpoint.health.outstanding.subtract(1, ordering: .relaxed)
            let balancer = transport.balancer
            switch result {
            case .success:
                balancer.recordSuccess(endpoint.index)
            case .failure(let error as GatewayError):
                if error.code == .backendFailed {
                    balancer.recordFailure(endpoint.index)
                } else if error.code.isApplication {
                    balancer.recordSuccess(endpoint.index)
                }
            case .failure:
                break
            }
            // The run's handler on the caller's cancellation holds the run, which holds the cancellation: left
            // in place (a failed try), the cycle would keep both and the request alive (the leak the gRPC
            // transport had, thirteenth session).
            cancellation.clearHandler()
            retries.take()?.tryEnded(result)
        }

        func retriesEnded(_ result: Result<TriggerResult, any Error>) { completion(result) }
    }

    /// What a try (unary, or a stream's start) that failed on its connection tells its retries (``SafeRetries``):
    /// ``transportError(_:pool:endpoint:)``, wrapped in ``NotSent`` when the connection had closed before the
    /// request was written (``HTTPBackendClientHandler/Failure/closedBeforeSend``, e.g. a pooled connection the
    /// runner closed at its keep-alive timeout): the runner saw nothing, so the call goes to another connection
    /// or endpoint as after a refused connect. Any other failure is final (the runner may have run the call).
    static func tryFailure(_ error: any Error, pool: String, endpoint: String) -> any Error {
        let failure = transportError(error, pool: pool, endpoint: endpoint)
        if case HTTPBackendClientHandler.Failure.closedBeforeSend = error { return NotSent(error: failure) }
        return failure
    }

    /// What a failed exchange with a backend (not the caller's own cancel) tells the client.
    static func transportError(_ error: any Error, pool: String, endpoint: String) -> GatewayError {
        switch error {
        case HTTPBackendClientHandler.Failure.closedBeforeResponse, HTTPBackendClientHandler.Failure.closedBeforeSend:
            BackendErrors.connectionLost(pool: pool, endpoint: endpoint)
        case let error where BackendErrors.tlsReason(error) != nil:
            BackendErrors.tlsFailure(pool: pool, endpoint: endpoint, error)!
        case HTTPBackendClientHandler.Failure.responseTooLarge(let limit):
            BackendErrors.badResponse(pool: pool, endpoint: endpoint, reason: "response larger than \(limit) bytes")
        default:
            BackendErrors.exchangeFailed(pool: pool, endpoint: endpoint, error)
        }
    }

    /// `POST {base}/run` with `Accept: text/event-stream`; each SSE event the backend sends becomes one
    /// `TriggerEvent`. Pull-based like the gRPC transport: the backend socket is read only while the consumer
    /// waits for an event, so a slow consumer is a slow backend, not a growing buffer.
    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let consumer = HTTPBackendStreamConsumer(
            request: request,
            endpoint: endpoints[balancer.pick()],
            transport: self
        )
        return AsyncThrowingStream(unfolding: { try await consumer.next() })
    }

    /// The loop-native stream: ``HTTPBackendStreamSource`` on `eventLoop`'s own connections.
    package func openStream(_ request: TriggerRequest, on eventLoop: any EventLoop) -> any TriggerEventSource {
        HTTPBackendStreamSource(request: request, transport: self, eventLoop: eventLoop)
    }

    var poolName: String { configuration.name }
    var maxTries: Int { configuration.maxTries }
    func endpoint(at index: Int) -> EndpointState { endpoints[index] }
    var maxResponseBytes: Int { configuration.maxResponseBytes }
    var limits: CodecLimits { codecLimits }

    /// The request head and JSON body of one `POST {base}/run`; the body's blobs are encoded only as it is
    /// sent (`StreamedJSONBody`). A body of at most ``inlineBodyBytes`` that is all text is returned inside the
    /// head's buffer, after the blank line, and `body` is then empty: `head` is the first bytes of the message,
    /// `body` the rest (its `Content-Length` counts both). A batch carried as the client's text
    /// (`TriggerBatch.httpRunData`, no blobs) of at most ``inlineBodyBytes`` is written after the head in its
    /// buffer directly, not rendered into a buffer of its own and copied (issue 11).
    func requestParts(
        _ request: TriggerRequest,
        endpoint: EndpointState,
        accept: String
    ) -> (head: ByteBuffer, body: StreamedJSONBody) {
        if request.relayedBody == nil, let data = request.batch.httpRunData,
            data.readableBytes <= Self.inlineBodyBytes
        {
            // The document around the data (names, request id) is small: room for it and the data at once.
            var writer = HTTP1RequestHeadWriter(
                method: "POST", target: endpoint.runPath, extraCapacity: data.readableBytes + 256)
            addFields(of: request, endpoint: endpoint, accept: accept, to: &writer) {
                $0.addContentLengthOfBody()
            }
            let message = (consume writer).finish { BackendHTTPBody.encode(request: request, into: &$0) }
            return (message, .empty)
        }
        // A body relayed from the client as it arrives (issue 12) was rendered by the frontend already.
        var body =
            request.relayedBody.map(StreamedJSONBody.init(relayed:)) ?? BackendHTTPBody.streamed(request: request)
        // A small body that is all text goes in the head's buffer: one channel write per request, not two (each
        // ~1.5 k instructions through the pipeline, and NIO's channel checks retain and release its state,
        // atomic operations; issue 11).
        let inline = body.count <= Self.inlineBodyBytes ? body.onlyText : nil
        var writer = HTTP1RequestHeadWriter(
            method: "POST", target: endpoint.runPath, extraCapacity: inline?.readableBytes ?? 0)
        let length = body.count
        addFields(of: request, endpoint: endpoint, accept: accept, to: &writer) {
            $0.add("content-length", decimal: length)
        }
        // `consume`: the writer's buffer moves into `head`; a `writer` kept to the end of the scope (its lexical
        // lifetime) shared it, and `finish()` copied the whole head to write its last line.
        var head = (consume writer).finish()
        if let inline {
            head.writeImmutableBuffer(inline)
            body = .empty  // nothing left to send after the head
        }
        return (head, body)
    }

    /// The `/run` head's fields, in their order; `contentLength` adds the `content-length` field.
    ///
    /// Written straight into the head's bytes (no `HTTPHeaders`, whose `add` checked every name again: ~700
    /// instructions a field, issue 11): these names are our constants, the values ours or checked by
    /// ``TriggerRequest/forEachForwardedField(_:)`` (the channel has no outbound header validator).
    @inline(__always)
    private func addFields(
        of request: TriggerRequest, endpoint: EndpointState, accept: String, to writer: inout HTTP1RequestHeadWriter,
        contentLength: (inout HTTP1RequestHeadWriter) -> Void
    ) {
        writer.add("host", endpoint.authority)
        writer.add("content-type", "application/json")
        contentLength(&writer)
        writer.add("accept", accept)
        request.forEachForwardedField { name, value, _ in writer.add(name, value) }  // HTTP/1.1: no HPACK
        if let deadline = request.deadline {
            writer.add("x-trigger-deadline-ms", decimal: Int(max((deadline - .now()).nanoseconds / 1_000_000, 1)))
        }
    }

    /// The largest body that ``requestParts(_:endpoint:accept:)`` copies into the head's buffer: a copy this size
    /// costs less than a second channel write; larger bodies (and any with a blob sent as it is encoded) go as
    /// their own buffers, never copied.
    static let inlineBodyBytes = 4096

    /// An idle connection of the shared list, or a new one, for the async consumer's streamed call (its only
    /// caller; ``HTTPBackendStreamSource`` takes one of its loop's); see ``handedOut``.
    func acquire(_ endpoint: EndpointState, deadline: NIODeadline?) async throws -> HTTPBackendConnection {
        let connection = try await acquire(endpoint, on: group.next(), pinned: false, deadline: deadline).get()
        if let handedOut { await handedOut(connection) }
        return connection
    }

    /// An idle connection, or a new one, completed on `eventLoop`. `pinned`: one of `eventLoop`'s own (the
    /// loop-native path); otherwise one of the shared list, on any loop.
    func acquire(_ endpoint: EndpointState, on eventLoop: any EventLoop, pinned: Bool, deadline: NIODeadline?)
        -> EventLoopFuture<HTTPBackendConnection>
    {
        if let idle = idleConnection(endpoint, on: eventLoop, pinned: pinned) {
            return eventLoop.makeSucceededFuture(idle)
        }
        return newConnection(endpoint, on: eventLoop, pinned: pinned, deadline: deadline)
    }

    /// An idle connection still open, taken off `eventLoop`'s list (`pinned`) or the shared one.
    func idleConnection(_ endpoint: EndpointState, on eventLoop: any EventLoop, pinned: Bool)
        -> HTTPBackendConnection?
    {
        let pinned = pinned && endpoint.idle.hasList(for: eventLoop)
        while let connection = pinned
            ? endpoint.idle.withList(on: eventLoop, { $0.popLast() })
            : endpoint.idle.withSharedList({ $0.popLast() })
        {
            // Evicted by the connection budget (for another pool's connect) or at the idle timeout since it
            // was listed: closing, never handed out.
            guard connection.use.tryTake() else { continue }
            if connection.isActive { return connection }
            connection.close()
        }
        return nil
    }

    /// A new connection for `endpoint`, completed on `eventLoop`; its connect timeout is cut to the deadline.
    func newConnection(
        _ endpoint: EndpointState, on eventLoop: any EventLoop, pinned: Bool, deadline: NIODeadline?
    ) -> EventLoopFuture<HTTPBackendConnection> {
        let pinned = pinned && endpoint.idle.hasList(for: eventLoop)
        var connectTimeout = configuration.connectTimeout
        if let deadline {
            connectTimeout = min(connectTimeout, max(deadline - .now(), .milliseconds(1)))
        }
        return connect(endpoint, on: pinned ? eventLoop : group.next(), pinned: pinned, timeout: connectTimeout)
            .hop(to: eventLoop)
    }

    /// A new connection to `endpoint`, not taken from (nor given to) the idle list.
    func connect(_ endpoint: EndpointState, timeout connectTimeout: TimeAmount) async throws -> HTTPBackendConnection {
        try await connect(endpoint, on: group.next(), pinned: false, timeout: connectTimeout).get()
    }

    private func connect(
        _ endpoint: EndpointState,
        on eventLoop: any EventLoop,
        pinned: Bool,
        timeout connectTimeout: TimeAmount
    ) -> EventLoopFuture<HTTPBackendConnection> {
        let pool = configuration.name
        let name = endpoint.endpoint.description
        let tls = configuration.tls
        let handshake = eventLoop.makePromise(of: Void.self)
        let bootstrap = tls.clientBootstrap(
            on: eventLoop, host: endpoint.endpoint.host, pool: pool, endpoint: name,
            connectTimeout: connectTimeout, handshake: handshake
        ) { channel in
            // Our own HTTP/1.1 client codec (`HTTPBackendClientHandler`): no outbound header validation, every
            // value that varies is checked as the head is built (`forEachForwardedField`).
            try channel.pipeline.syncOperations.addHandler(HTTPBackendClientHandler())
        }
        // Busy from the start: made for a call (or a probe).
        let use = BackendConnectionUse(users: 1)
        return connectionBudget.connect(
            bootstrap, on: eventLoop, host: endpoint.endpoint.host, port: endpoint.endpoint.port, pool: pool,
            use: use, idleTimeout: configuration.idleTimeout
        )
        .flatMapError { error in
            handshake.fail(error)
            return eventLoop.makeFailedFuture(error)
        }
        .flatMap { channel in handshake.futureResult.map { channel } }
        .flatMapThrowing { channel in
            HTTPBackendConnection(
                channel: channel,
                handler: try channel.pipeline.syncOperations.handler(type: HTTPBackendClientHandler.self),
                pinned: pinned,
                use: use
            )
        }
        .flatMapErrorThrowing { error in
            // The TLS handshake's own error names the certificate problem and was logged with the endpoint.
            if error is GatewayError { throw error }
            if case .connectTimeout = error as? ChannelError {
                throw BackendErrors.connectTimeout(pool: pool, endpoint: name, after: connectTimeout)
            }
            throw BackendErrors.connectFailed(pool: pool, endpoint: name, reason: BackendErrors.reason(error))
        }
    }

    func release(_ connection: HTTPBackendConnection, to endpoint: EndpointState) {
        guard connection.isActive else { return }
        // Idle from here: the budget may evict it (then the pool's `tryTake` fails and skips it).
        connection.use.put()
        if connection.pinned {
            endpoint.idle.withList(on: connection.channel.eventLoop) { $0.append(connection) }
        } else {
            endpoint.idle.withSharedList { $0.append(connection) }
        }
        // Checked after the append (both sequentially consistent with `retire`): a connection released
        // while the pool retires is closed by one of the two, never left idle.
        if retired.load(ordering: .sequentiallyConsistent) { closeIdle(endpoint) }
    }

    private func closeIdle(_ endpoint: EndpointState) {
        for connection in endpoint.idle.takeAll() { connection.close() }
    }
}

extension HTTPBackendTransport: RetirableTransport {
    /// Calls in flight finish on their connections, which then close; idle connections close now.
    package func retire() {
        healthChecker.withLock { $0?.cancel() }
        retired.store(true, ordering: .sequentiallyConsistent)
        for endpoint in endpoints {
            closeIdle(endpoint)
            closeProbeConnection(endpoint)
        }
    }
}

extension HTTPBackendTransport: BalancedTransport {
    package var endpointNames: [String] { endpoints.map(\.endpoint.description) }
}
