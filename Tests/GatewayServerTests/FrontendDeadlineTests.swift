import Backends
import GatewayConfig
@testable import GatewayServer
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Observability
import Routing
import Synchronization
import Testing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// A sync trigger's deadline through the HTTP/1.1 frontend (issue 19, item 5): `timeouts.request` from the
/// head's arrival, or the route's pool `request_timeout` when that is shorter (folded in at the frontend,
/// `RequestContext`). The connection runs on NIO's testing loop, whose clock moves only when told, and the
/// frontend's clock is that loop's (`FrontendServices.clock`): the tests stand one nanosecond before the
/// deadline and then on it, with hour-long timeouts and a one-minute limit, so no real time decides anything;
/// the idle timeout of a connection with nothing to do likewise.
@Suite("Sync trigger deadlines through the HTTP/1.1 frontend, on the event loop's clock")
struct FrontendDeadlineTests {
    /// Runs every pipeline until cancelled, counting runs started and cancelled.
    final class Hanging: TriggerRunner {
        let started = Atomic<Int>(0)
        let cancelled = Atomic<Int>(0)

        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            started.add(1, ordering: .sequentiallyConsistent)
            do {
                // A run that hangs until cancelled: the behaviour under test, not a wait.
                while true { try await Task.sleep(for: .seconds(3600)) }
            } catch {
                cancelled.add(1, ordering: .sequentiallyConsistent)
                throw error
            }
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "no streams here")) }
        }
    }

    /// A connection of the gateway's frontend (HTTP/1.1, or `wire`) on a testing loop, routing `demo/*` to a pool
    /// of `runner` with `poolTimeout`, under `requestTimeout`.
    static func connection(
        requestTimeout: TimeAmount,
        poolTimeout: TimeAmount,
        runner: Hanging,
        idleTimeout: TimeAmount = .hours(24),
        bodyProgress: TimeAmount? = nil,
        wire: ProtocolSniffer.WireProtocol = .http1,
        observers: [any RequestObserver] = []
    ) async throws -> (NIOAsyncTestingEventLoop, NIOAsyncTestingChannel) {
        let loop = NIOAsyncTestingEventLoop()
        let pool = BackendPool(
            configuration: BackendPoolConfiguration(name: "p", transport: .inProcess, requestTimeout: poolTimeout),
            transport: runner)
        let routes = RouteTable(routes: [RouteConfiguration(namespace: "demo", pool: "p")])
        var services = FrontendServices(
            dispatcher: TriggerDispatcher(routes: routes, pools: ["p": pool]),
            authenticator: TokenAuthenticator(tokens: [], authRequired: false),
            limits: .defaults,
            maxHeaderBytes: 16_384,
            maxConcurrentStreams: 8,
            requestTimeout: requestTimeout,
            idleTimeout: idleTimeout,
            logger: Logger(label: "deadline-test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        services.clock = { loop.now }
        services.requestObservers = RequestObservers(others: observers)
        if let bodyProgress { services.slowClients.bodyProgressTimeout = bodyProgress }
        let current = CurrentFrontendServices(services)
        let channel = NIOAsyncTestingChannel(loop: loop)
        try await loop.executeInContext { try GatewayServer.configure(channel, for: wire, services: current) }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        return (loop, channel)
    }

    /// What the gateway wrote so far.
    static func written(_ channel: NIOAsyncTestingChannel) async throws -> String {
        var text = ""
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    /// Sends a whole sync trigger of `demo/wait` on `channel` and waits until `runner` has started it.
    static func startTrigger(_ channel: NIOAsyncTestingChannel, loop: NIOAsyncTestingEventLoop, runner: Hanging)
        async throws
    {
        let body = #"{"data":[{"variable":{"x":1}}]}"#
        try await channel.writeInbound(
            ByteBuffer(
                string: "POST /v1beta/namespaces/demo/pipelines/wait/trigger HTTP/1.1\r\nhost: gw\r\n"
                    + "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"))
        await loop.run()
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
    }

    /// Sends a sync trigger, moves the loop's clock to one nanosecond before `deadline` (nothing answered, the
    /// run going on), then onto it: 504 naming `message`, and the run cancelled.
    static func expectCut(
        at deadline: TimeAmount,
        requestTimeout: TimeAmount,
        poolTimeout: TimeAmount,
        message: String
    ) async throws {
        let runner = Hanging()
        let (loop, channel) = try await connection(
            requestTimeout: requestTimeout, poolTimeout: poolTimeout, runner: runner)
        try await Self.startTrigger(channel, loop: loop, runner: runner)

        await loop.advanceTime(by: deadline - .nanoseconds(1))
        #expect(try await written(channel).isEmpty, "answered before the deadline")
        #expect(runner.cancelled.load(ordering: .sequentiallyConsistent) == 0)

        await loop.advanceTime(by: .nanoseconds(1))
        let answer = try await written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 504 "), "\(answer)")
        #expect(answer.contains(message), "\(answer)")
        #expect(
            await eventually(within: .seconds(20)) { runner.cancelled.load(ordering: .sequentiallyConsistent) == 1 })
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    @Test(
        "timeouts.request ends a sync trigger exactly at the head's arrival plus the timeout", .timeLimit(.minutes(1)))
    func requestTimeout() async throws {
        try await Self.expectCut(at: .hours(1), requestTimeout: .hours(1), poolTimeout: .hours(2), message: "3600s")
    }

    @Test(
        "a route's pool request_timeout shorter than timeouts.request ends the call at its own edge",
        .timeLimit(.minutes(1)))
    func poolTimeout() async throws {
        try await Self.expectCut(
            at: .minutes(30), requestTimeout: .hours(1), poolTimeout: .minutes(30), message: "1800s")
    }

    @Test(
        "an HTTP/1.1 connection with nothing to do is closed at timeouts.idle, not a nanosecond before",
        .timeLimit(.minutes(1)))
    func idleConnection() async throws {
        let (loop, channel) = try await Self.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(1), runner: Hanging(), idleTimeout: .hours(2))
        await loop.advanceTime(by: .hours(2) - .nanoseconds(1))
        #expect(channel.isActive, "closed before the idle timeout")
        await loop.advanceTime(by: .nanoseconds(1))
        #expect(await eventually(within: .seconds(20)) { !channel.isActive }, "still open after the idle timeout")
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    /// The idle timeout counts from the last answer's end when that is later than the last read (the helper review
    /// of the fifty-third session: an answer 2.9 s after its request, under a 3 s idle timeout, had the connection
    /// closed 90 ms after it, under the client's next request).
    @Test(
        "a kept-alive HTTP/1.1 connection is closed timeouts.idle after its last answer ended, not after its last read",
        .timeLimit(.minutes(1)))
    func idleCountsFromTheAnswer() async throws {
        let runner = Hanging()
        let (loop, channel) = try await Self.connection(
            requestTimeout: .hours(3), poolTimeout: .minutes(90), runner: runner, idleTimeout: .hours(2))
        try await Self.startTrigger(channel, loop: loop, runner: runner)
        // The pool's deadline answers at 1.5 h, and the connection stays open for the next request.
        await loop.advanceTime(by: .minutes(90))
        let answer = try await Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 504 "), "\(answer)")
        #expect(!answer.lowercased().contains("connection: close"), "\(answer)")
        // 2 h after the read, 0.5 h after the answer: open (it was closed here).
        await loop.advanceTime(by: .minutes(30))
        #expect(channel.isActive, "closed 30 minutes after its answer, under an idle timeout of 2 hours")
        // The idle timeout after the answer's end, at its edge.
        await loop.advanceTime(by: .minutes(90) - .nanoseconds(1))
        #expect(channel.isActive, "closed before the idle timeout counted from the answer")
        await loop.advanceTime(by: .nanoseconds(1))
        #expect(await eventually(within: .seconds(20)) { !channel.isActive }, "still open after the idle timeout")
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    /// A sync trigger whose body arrives in two halves `gap` apart (a slow upload, each half within the body
    /// progress timeout): what the gateway wrote, on the loop's clock, `after` the body's end.
    static func slowUpload(
        gap: TimeAmount, requestTimeout: TimeAmount, poolTimeout: TimeAmount, runner: Hanging
    ) async throws -> (NIOAsyncTestingEventLoop, NIOAsyncTestingChannel) {
        let (loop, channel) = try await connection(
            requestTimeout: requestTimeout, poolTimeout: poolTimeout, runner: runner, bodyProgress: .hours(24))
        let body = #"{"data":[{"variable":{"x":1}}]}"#
        let half = body.utf8.count / 2
        try await channel.writeInbound(
            ByteBuffer(
                string: "POST /v1beta/namespaces/demo/pipelines/wait/trigger HTTP/1.1\r\nhost: gw\r\n"
                    + "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n"
                    + String(body.utf8.prefix(half))!))
        await loop.advanceTime(by: gap)
        #expect(try await written(channel).isEmpty, "answered before the body's end")
        try await channel.writeInbound(ByteBuffer(string: String(body.utf8.dropFirst(half))!))
        await loop.run()
        return (loop, channel)
    }

    @Test(
        "a slow upload is not the pool's time: request_timeout counts from the body's end (review 18, F1)",
        .timeLimit(.minutes(1)))
    func poolTimeoutFromBodyEnd() async throws {
        let runner = Hanging()
        // 50 minutes of upload against a pool of 30: the call still gets its whole 30 minutes.
        let (loop, channel) = try await Self.slowUpload(
            gap: .minutes(50), requestTimeout: .hours(3), poolTimeout: .minutes(30), runner: runner)
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
        await loop.advanceTime(by: .minutes(30) - .nanoseconds(1))
        #expect(try await Self.written(channel).isEmpty, "answered before the pool's timeout")
        await loop.advanceTime(by: .nanoseconds(1))
        let answer = try await Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 504 "), "\(answer)")
        #expect(answer.contains(#"backend pool \"p\" did not answer within 1800s"#), "\(answer)")
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    /// `timeouts.request` (from the head's arrival) before the pool's `request_timeout` (from the body's end): the
    /// 504 names `timeouts.request`, and after a slow upload the time that was left of it, not a bare "within
    /// 3000s" that no setting says (a 2 s `timeouts.request` read "did not answer within 1.999s"). With the two
    /// timeouts equal (the defaults' shape) and a 1 ms upload, `timeouts.request` is the earlier by that moment, and
    /// all of it is named.
    @Test(
        "timeouts.request before the pool's timeout: the 504 names timeouts.request, and what was left of it",
        .timeLimit(.minutes(1)),
        arguments: [
            (TimeAmount.minutes(10), TimeAmount.hours(2), "within the 3000s left of timeouts.request (3600s, "),
            (TimeAmount.milliseconds(1), TimeAmount.hours(1), "within 3600s (timeouts.request, "),
        ])
    func requestTimeoutNamed(gap: TimeAmount, poolTimeout: TimeAmount, expected: String) async throws {
        let runner = Hanging()
        let (loop, channel) = try await Self.slowUpload(
            gap: gap, requestTimeout: .hours(1), poolTimeout: poolTimeout, runner: runner)
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
        await loop.advanceTime(by: .hours(1) - gap - .nanoseconds(1))
        #expect(try await Self.written(channel).isEmpty, "answered before timeouts.request")
        await loop.advanceTime(by: .nanoseconds(1))
        let answer = try await Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 504 "), "\(answer)")
        #expect(
            answer.contains(#"backend pool \"p\" did not answer "# + expected + "counted from the request's arrival)"),
            "\(answer)")
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    @Test(
        "timeouts.request passing during a progressing upload: 408 at the deadline, nothing sent to the runner",
        .timeLimit(.minutes(1)))
    func requestTimeoutDuringUpload() async throws {
        let runner = Hanging()
        let (loop, channel) = try await Self.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(2), runner: runner, bodyProgress: .minutes(45))
        let body = #"{"data":[{"variable":{"x":1}}]}"#
        try await channel.writeInbound(
            ByteBuffer(
                string: "POST /v1beta/namespaces/demo/pipelines/wait/trigger HTTP/1.1\r\nhost: gw\r\n"
                    + "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n"
                    + String(body.utf8.prefix(1))!))
        // A piece every 40 minutes, inside body_progress (45): only the request deadline can end it.
        await loop.advanceTime(by: .minutes(40))
        try await channel.writeInbound(ByteBuffer(string: String(body.utf8.dropFirst(1).prefix(1))!))
        await loop.advanceTime(by: .minutes(20) - .nanoseconds(1))
        #expect(try await Self.written(channel).isEmpty, "answered before the request deadline")
        await loop.advanceTime(by: .nanoseconds(1))
        let answer = try await Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 408 "), "\(answer)")
        #expect(answer.lowercased().contains("connection: close"), "\(answer)")
        #expect(answer.contains("the request was not received in time"), "\(answer)")
        #expect(runner.started.load(ordering: .sequentiallyConsistent) == 0, "the runner was called")
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }
}
