import Backends
import Clocks
import GatewayTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import Observability
import Synchronization
import Testing
import WireCodecs

/// The http transport's active health probes over real sockets, rounds stepped on a manual clock: probes of
/// an endpoint share one keep-alive connection, opened again only when it cannot serve the next probe.
@Suite("http active health probes: one kept connection per endpoint")
struct HTTPHealthProbeTests {
    static let interval = Duration.seconds(3600)

    /// A transport with an active health check every `interval` (an hour: only the manual clock moves it) on
    /// one endpoint. The probe and connect timeouts run on the event loop's real clock: `probeTimeout` is an
    /// hour unless the test is about a probe that times out, so a probe answered late on a loaded machine is
    /// never taken for a failure.
    static func transport(
        port: Int, clock: TestClock<Duration>, probeTimeout: TimeAmount = .hours(1),
        metrics: PoolMetrics? = nil, connectionBudget: BackendConnectionBudget = .shared
    ) -> HTTPBackendTransport {
        let configuration = BackendPoolConfiguration(
            name: "probed",
            transport: .http,
            endpoints: [.init(host: "127.0.0.1", port: port)],
            connectTimeout: .seconds(60),
            healthCheck: HealthCheckConfiguration(
                interval: TimeAmount(interval), timeout: probeTimeout, healthyThreshold: 1, unhealthyThreshold: 1)
        )
        return HTTPBackendTransport(
            configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, codecLimits: .defaults,
            metrics: metrics, healthCheckClock: clock, connectionBudget: connectionBudget)
    }

    /// Moves the clock an interval at a time until the backend has seen `count` probes and the checker has
    /// recorded them (bounded in wall time).
    ///
    /// The clock moves only while the checker sleeps on it, and the count is read only then: a round in flight
    /// (request sent, answer not yet recorded) is never cut short or followed by an extra round. Reading the
    /// count first and advancing after let a round in flight finish and go to sleep in between, so the advance
    /// started one round too many under load (6 probes for 5, or the 200 of the next round hiding a 500).
    static func step(_ clock: TestClock<Duration>, until count: Int, _ backend: ProbeBackend) async throws -> Bool {
        await eventually(within: .seconds(120)) {
            // `checkSuspension` throws when something sleeps on the clock: here only the checker, between rounds.
            let checkerSleeps = (try? await clock.checkSuspension()) == nil
            guard checkerSleeps else { return false }
            if backend.requests >= count { return true }
            await clock.advance(by: interval)
            return false
        }
    }

    /// The backend connection budget at zero (the gateway out of descriptors): a probe whose connection the gateway
    /// refuses itself is skipped, not failed, so the endpoint keeps its health even at an unhealthy threshold of 1;
    /// each is counted. With room again (a limit of 1: the probe's one connection), the next probe is made.
    @Test(
        "a probe the backend connection budget refuses is skipped: no health change, counted; made again once there is room",
        .timeLimit(.minutes(5)))
    func refusedByBudgetIsSkipped() async throws {
        let backend = try await ProbeBackend.start()
        let clock = TestClock()
        let gateway = GatewayMetrics()
        let endpoint = "127.0.0.1:\(backend.port)"
        let budget = BackendConnectionBudget(limit: 0)
        let transport = Self.transport(
            port: backend.port, clock: clock, metrics: gateway.pool("probed", endpoints: [endpoint]),
            connectionBudget: budget)
        defer { transport.retire() }
        func skipped() -> Double? {
            Exposition(String(decoding: gateway.scrape(), as: UTF8.self)).samples[
                "trigger_gateway_pool_health_checks_skipped_total{pool=\"probed\",endpoint=\"\(endpoint)\"}"]
        }
        // Three rounds, each stepped once the checker sleeps again.
        let threeSkipped = await eventually(within: .seconds(120)) {
            guard (try? await clock.checkSuspension()) == nil else { return false }
            if skipped() == 3 { return true }
            await clock.advance(by: Self.interval)
            return false
        }
        #expect(threeSkipped, "skipped: \(String(describing: skipped()))")
        #expect(transport.balancer.isAvailable(0), "a refused probe says nothing about the endpoint")
        #expect(backend.accepted == 0 && backend.requests == 0)
        #expect(budget.refused == 3)
        #expect(try promtoolFindings(String(decoding: gateway.scrape(), as: UTF8.self)) == "")
        // At the edge: room for the probe's one connection.
        budget.limit = 1
        #expect(try await Self.step(clock, until: 1, backend))
        #expect(transport.balancer.isAvailable(0))
        #expect(skipped() == 3)
        transport.retire()
        await backend.stop()
    }

    @Test("five probes, one connection: each probe after the first reuses the kept one", .timeLimit(.minutes(5)))
    func oneConnection() async throws {
        let backend = try await ProbeBackend.start()
        let clock = TestClock()
        let transport = Self.transport(port: backend.port, clock: clock)
        defer { transport.retire() }
        #expect(try await Self.step(clock, until: 5, backend))
        #expect(backend.requests == 5)
        #expect(backend.accepted == 1, "\(backend.accepted) connections for 5 probes")
        #expect(backend.paths.allSatisfy { $0 == "/healthz" })
        #expect(transport.balancer.isAvailable(0))
        // Retiring the pool closes the kept connection.
        transport.retire()
        #expect(await backend.waitUntilClosed(1))
        await backend.stop()
    }

    @Test(
        "a Connection: close answer, or a kept connection the backend closed while idle, is opened again; no false failure",
        .timeLimit(.minutes(5)),
        arguments: [ProbeBackend.Close.announced, .silently]
    )
    func reopened(close: ProbeBackend.Close) async throws {
        // The second probe's connection ends after its answer: told (`Connection: close`) or not (the backend
        // closes it idle, as a keep-alive timeout does).
        let backend = try await ProbeBackend.start(closeAfter: 2, close: close)
        let clock = TestClock()
        let transport = Self.transport(port: backend.port, clock: clock)
        defer { transport.retire() }
        #expect(try await Self.step(clock, until: 2, backend))
        // The third probe finds the connection gone: it opens a new one (not counted against the endpoint).
        #expect(await backend.waitUntilClosed(1))
        #expect(try await Self.step(clock, until: 5, backend))
        #expect(backend.accepted == 2, "\(backend.accepted) connections for 5 probes")
        #expect(transport.balancer.isAvailable(0), "a probe that only found its kept connection closed failed")
        await backend.stop()
    }

    @Test("a probe answered 500 fails the endpoint and keeps the connection; one that times out opens a new one")
    func failures() async throws {
        let backend = try await ProbeBackend.start(status: { $0 == 2 ? .internalServerError : .ok }, silentAt: 4)
        let clock = TestClock()
        // The probe that is never answered must time out on the real clock: 10 s, far past a loaded machine's
        // answer to the others (2 s once was not), and the waits below are bounded well past it.
        let transport = Self.transport(port: backend.port, clock: clock, probeTimeout: .seconds(10))
        defer { transport.retire() }
        #expect(try await Self.step(clock, until: 2, backend))
        let failed = await eventually(within: .seconds(120)) { !transport.balancer.isAvailable(0) }
        #expect(failed, "a 500 did not fail the probe")
        #expect(try await Self.step(clock, until: 3, backend))
        #expect(await eventually(within: .seconds(120)) { transport.balancer.isAvailable(0) })
        #expect(backend.accepted == 1)
        // Probe 4 is never answered: its timeout (10 s) closes the connection; probe 5 connects again.
        #expect(try await Self.step(clock, until: 4, backend))
        let timedOut = await eventually(within: .seconds(120)) { !transport.balancer.isAvailable(0) }
        #expect(timedOut, "an unanswered probe passed")
        #expect(try await Self.step(clock, until: 5, backend))
        #expect(backend.accepted == 2)
        #expect(await eventually(within: .seconds(120)) { transport.balancer.isAvailable(0) })
        await backend.stop()
    }
}

/// An HTTP/1.1 backend on loopback that counts accepted connections and requests, answering each per the test.
final class ProbeBackend: Sendable {
    enum Close: Sendable { case announced, silently }

    let port: Int
    private let channel: any Channel
    private let state: State

    final class State: Sendable {
        let counts = Mutex<(accepted: Int, closed: Int, paths: [String])>((0, 0, []))
        let closeAfter: Int?
        let close: Close
        let status: @Sendable (Int) -> HTTPResponseStatus
        let silentAt: Int?
        init(
            closeAfter: Int?, close: Close, status: @escaping @Sendable (Int) -> HTTPResponseStatus, silentAt: Int?
        ) {
            self.closeAfter = closeAfter
            self.close = close
            self.status = status
            self.silentAt = silentAt
        }
    }

    var accepted: Int { state.counts.withLock { $0.accepted } }
    var requests: Int { state.counts.withLock { $0.paths.count } }
    var paths: [String] { state.counts.withLock { $0.paths } }

    private init(port: Int, channel: any Channel, state: State) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    /// `closeAfter`: the request after whose answer the connection ends (`close` says how); `status`: the answer
    /// to request n (1-based, over all connections); `silentAt`: a request left unanswered.
    static func start(
        closeAfter: Int? = nil,
        close: Close = .announced,
        status: @escaping @Sendable (Int) -> HTTPResponseStatus = { _ in .ok },
        silentAt: Int? = nil
    ) async throws -> ProbeBackend {
        let state = State(closeAfter: closeAfter, close: close, status: status, silentAt: silentAt)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                state.counts.withLock { $0.accepted += 1 }
                channel.closeFuture.whenComplete { _ in state.counts.withLock { $0.closed += 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return ProbeBackend(port: channel.localAddress!.port!, channel: channel, state: state)
    }

    /// Waits (up to 10 s) until `count` accepted connections have closed.
    func waitUntilClosed(_ count: Int) async -> Bool {
        await eventually(within: .seconds(120)) { state.counts.withLock { $0.closed } >= count }
    }

    func stop() async { try? await channel.close() }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let state: State
        init(state: State) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let n = state.counts.withLock { counts in
                counts.paths.append(head.uri)
                return counts.paths.count
            }
            if n == state.silentAt { return }
            let ends = n == state.closeAfter
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: "2")
            if ends && state.close == .announced { headers.add(name: "connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: state.status(n), headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "ok")))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if ends { channel.close(promise: nil) }
            }
        }
    }
}
