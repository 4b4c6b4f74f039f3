@testable import Backends
import NIOCore
import GatewayTestSupport
import NIOEmbedded
import Observability
import Testing
import TriggerModel

/// A sync call's deadline on the event loop's own clock (issue 19, item 5): the frontend's deadline
/// (`timeouts.request`, `grpc-timeout`, the pool's `request_timeout` folded in at the frontend) and, for a
/// caller without one, the pool's `request_timeout` from the slot. NIO's testing loop moves its clock only
/// when told (`advanceTime`), so the tests put the clock one nanosecond before the deadline and then on it,
/// with hour-long timeouts and a one-minute test limit: no real time decides anything.
@Suite("BackendPool deadlines on the event loop's clock")
struct PoolDeadlineTests {
    static func pool(_ runner: TestRunner, requestTimeout: TimeAmount) -> BackendPool {
        BackendPool(
            configuration: BackendPoolConfiguration(name: "p", transport: .inProcess, requestTimeout: requestTimeout),
            transport: runner)
    }

    /// A run of `slow` that lasts a day unless cancelled.
    static let slow = makeRequest("slow", ["ms": .number(86_400_000)])

    /// Starts the call on `loop`, moves the loop's clock to one nanosecond before `timeout`, then onto it: the
    /// call must be running at the first and cut (DEADLINE_EXCEEDED, the run cancelled) at the second.
    static func expectCut(
        after timeout: TimeAmount,
        runner: TestRunner,
        loop: NIOAsyncTestingEventLoop,
        message: String,
        call: (TriggerCancellation) -> EventLoopFuture<TriggerResult>
    ) async throws {
        let cancellation = TriggerCancellation()
        let future = call(cancellation)
        await loop.run()
        #expect(await runner.probe.wait(for: "slow.started"))

        await loop.advanceTime(by: timeout - .nanoseconds(1))
        #expect(!cancellation.isCancelled, "cut before the deadline")
        #expect(runner.probe.count("slow.cancelled") == 0)

        await loop.advanceTime(by: .nanoseconds(1))
        #expect(cancellation.isCancelled, "not cut at the deadline")
        let error = await #expect(throws: GatewayError.self) { try await future.get() }
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
        #expect(await runner.probe.wait(for: "slow.cancelled"))
    }

    /// The cut call's slot comes back once its run has ended on the loop (bounded in real time).
    static func slotReturned(_ pool: BackendPool, loop: NIOAsyncTestingEventLoop) async -> Bool {
        await eventually(within: .seconds(20)) {
            await loop.run()
            return pool.slotsInUse == 0
        }
    }

    @Test("the frontend's deadline ends the call exactly when it passes on the loop's clock", .timeLimit(.minutes(1)))
    func frontendDeadline() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = TestRunner()
        // The pool's own timeout is longer: the deadline the frontend computed is what must end the call.
        let pool = Self.pool(runner, requestTimeout: .hours(2))
        var request = Self.slow
        request.deadline = loop.now + .hours(1)
        try await Self.expectCut(after: .hours(1), runner: runner, loop: loop, message: "3600s") {
            pool.run(request, on: loop, cancellation: $0)
        }
        #expect(await Self.slotReturned(pool, loop: loop))
        await loop.shutdownGracefully()
    }

    /// Review 12, finding 3: five calls with a 300 ms grpc-timeout against a healthy runner were counted as the
    /// endpoint's failures (`UT`) and warned as `trigger failed`.
    @Test(
        "the client's own shorter deadline: cut when it passes, named as the client's, not counted against the pool",
        .timeLimit(.minutes(1)), arguments: [true, false])
    func clientsDeadline(clients: Bool) async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = TestRunner()
        let metrics = GatewayMetrics()
        let pool = BackendPool(
            configuration: BackendPoolConfiguration(name: "p", transport: .inProcess, requestTimeout: .hours(2)),
            transport: runner, metrics: metrics.pool("p", endpoints: []))
        var request = Self.slow
        request.deadline = loop.now + .hours(1)
        request.deadlineIsClients = clients
        let message =
            clients
            ? "the client's deadline passed before backend pool \"p\" answered, 3600s after the call reached it"
            : "did not answer within 3600s"
        try await Self.expectCut(after: .hours(1), runner: runner, loop: loop, message: message) {
            pool.run(request, on: loop, cancellation: $0)
        }
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        let timeouts = scrape.samples[#"trigger_gateway_backend_failures_total{pool="p",endpoint="",reason="UT"}"#]
        #expect(timeouts == (clients ? 0 : 1), "\(scrape.samples.filter { $0.key.contains("failures") })")
        #expect(await Self.slotReturned(pool, loop: loop))
        await loop.shutdownGracefully()
    }

    @Test(
        "a deadline of request_timeout from arrival, a moment before the slot: the message names request_timeout (1s, not 999ms)",
        .timeLimit(.minutes(1)))
    func deadlineNamesTheConfiguredTimeout() async throws {
        for (spent, says) in [(TimeAmount.microseconds(300), "within 1s"), (.milliseconds(400), "within 600ms")] {
            let loop = NIOAsyncTestingEventLoop()
            let runner = TestRunner()
            let pool = Self.pool(runner, requestTimeout: .seconds(1))
            var request = Self.slow
            // The frontend folded the pool's timeout into the deadline at arrival, `spent` before the pool's slot.
            request.deadline = loop.now + .seconds(1) - spent
            try await Self.expectCut(after: .seconds(1) - spent, runner: runner, loop: loop, message: says) {
                pool.run(request, on: loop, cancellation: $0)
            }
            #expect(await Self.slotReturned(pool, loop: loop))
            await loop.shutdownGracefully()
        }
    }

    @Test(
        "without a deadline from the caller, the pool's request_timeout counts from the slot on the loop's clock",
        .timeLimit(.minutes(1)))
    func poolTimeoutFromTheSlot() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = TestRunner()
        let pool = Self.pool(runner, requestTimeout: .hours(1))
        try await Self.expectCut(after: .hours(1), runner: runner, loop: loop, message: "3600s") {
            pool.run(Self.slow, on: loop, cancellation: $0)
        }
        #expect(await Self.slotReturned(pool, loop: loop))
        await loop.shutdownGracefully()
    }

    // MARK: A call that ends just before its deadline, and one just after

    /// A pool over a ``LoopTimedRunner`` whose `async` calls run on `loop`.
    static func timedPool(
        _ runner: LoopTimedRunner, on loop: NIOAsyncTestingEventLoop, requestTimeout: TimeAmount,
        maxConcurrency: Int = 8, metrics: PoolMetrics? = nil
    ) -> BackendPool {
        BackendPool(
            configuration: BackendPoolConfiguration(
                name: "p", transport: .inProcess, requestTimeout: requestTimeout, maxConcurrency: maxConcurrency),
            transport: runner, metrics: metrics, eventLoopGroup: loop)
    }

    /// A pool of one slot (`requestTimeout`, metrics on) on a testing loop, whose slot a call holds for two hours
    /// from now: the setting of the queued-call tests.
    struct HeldPool {
        let loop = NIOAsyncTestingEventLoop()
        let runner = LoopTimedRunner()
        let metrics = GatewayMetrics()
        let pool: BackendPool
        let holder: EventLoopFuture<TriggerResult>

        init(requestTimeout: TimeAmount) async {
            pool = PoolDeadlineTests.timedPool(
                runner, on: loop, requestTimeout: requestTimeout, maxConcurrency: 1,
                metrics: metrics.pool("p", endpoints: [LoopTimedRunner.endpoint]))
            holder = pool.run(
                LoopTimedRunner.request(lasting: .hours(2)), on: loop, cancellation: TriggerCancellation())
            await loop.run()
        }
    }

    /// `trigger_gateway_backend_failures_total{pool="p",endpoint="",reason="UT"}`: the pool's own timeouts.
    static func poolTimeouts(_ metrics: GatewayMetrics) -> Double? {
        Exposition(String(decoding: metrics.scrape(), as: UTF8.self)).samples[
            #"trigger_gateway_backend_failures_total{pool="p",endpoint="",reason="UT"}"#]
    }

    @Test(
        "a frontend's call whose run ends one nanosecond before its deadline is answered; one nanosecond after, cut",
        .timeLimit(.minutes(1)), arguments: [Int64(-1), 1])
    func frontendCallAtTheEdge(offset: Int64) async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = LoopTimedRunner()
        let pool = Self.timedPool(runner, on: loop, requestTimeout: .hours(2))
        var request = LoopTimedRunner.request(lasting: .hours(1) + .nanoseconds(offset))
        request.deadline = loop.now + .hours(1)
        let cancellation = TriggerCancellation()
        let future = pool.run(request, on: loop, cancellation: cancellation)
        await loop.run()
        #expect(runner.probe.count("started") == 1)
        await loop.advanceTime(by: .hours(1) + .nanoseconds(max(offset, 0)))
        if offset < 0 {
            let result = try await future.get()
            #expect(result.outputs.first?["ns"] != nil)
            #expect(!cancellation.isCancelled)
        } else {
            let error = await #expect(throws: GatewayError.self) { try await future.get() }
            #expect(error?.code == .deadlineExceeded)
            #expect(error?.message.contains("3600s") == true, "\(String(describing: error))")
            #expect(cancellation.isCancelled, "the run is cancelled at the deadline")
            #expect(runner.probe.count("cancelled") == 1)
        }
        #expect(pool.slotsInUse == 0)
        await loop.shutdownGracefully()
    }

    /// Calls of one loop share its ``LoopDeadlineQueue`` (one NIO timer for the pool's calls on the loop): a call
    /// answered in time leaves the queue's timer armed for its deadline, which fires for nothing; the next call is
    /// still cut at its own deadline, not one nanosecond before. A call whose deadline is earlier than the one before
    /// it (a client's shorter `grpc-timeout`) cannot go at the end of the queue and gets a timer of its own.
    @Test(
        "calls on one loop: the second is cut at its own deadline after the first was answered; a shorter one behind a longer one too",
        .timeLimit(.minutes(1)))
    func callsSharingTheLoopsQueue() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = LoopTimedRunner()
        let pool = Self.timedPool(runner, on: loop, requestTimeout: .hours(2))
        let start = loop.now
        // First: deadline in one hour, answered after ten minutes.
        var first = LoopTimedRunner.request(lasting: .minutes(10))
        first.deadline = start + .hours(1)
        let firstCall = pool.run(first, on: loop, cancellation: TriggerCancellation())
        await loop.run()
        // Second, a minute later: deadline an hour after it, runs for a day.
        await loop.advanceTime(by: .minutes(1))
        var second = LoopTimedRunner.request(lasting: .hours(24))
        second.deadline = loop.now + .hours(1)
        let secondCancellation = TriggerCancellation()
        let secondCall = pool.run(second, on: loop, cancellation: secondCancellation)
        // Third, at the same moment: the client's 30-minute deadline, earlier than the second's.
        var third = LoopTimedRunner.request(lasting: .hours(24))
        third.deadline = loop.now + .minutes(30)
        third.deadlineIsClients = true
        let thirdCancellation = TriggerCancellation()
        let thirdCall = pool.run(third, on: loop, cancellation: thirdCancellation)
        await loop.run()
        #expect(runner.probe.count("started") == 3)

        await loop.advanceTime(to: start + .minutes(10))
        #expect(try await firstCall.get().outputs.first?["ns"] != nil)

        await loop.advanceTime(to: start + .minutes(31) - .nanoseconds(1))
        #expect(!thirdCancellation.isCancelled, "the shorter deadline cut before it passed")
        await loop.advanceTime(by: .nanoseconds(1))
        #expect(thirdCancellation.isCancelled, "the shorter deadline not cut when it passed")
        let thirdError = await #expect(throws: GatewayError.self) { try await thirdCall.get() }
        #expect(thirdError?.code == .deadlineExceeded)
        #expect(thirdError?.message.contains("client's deadline") == true, "\(String(describing: thirdError))")

        // The first call's deadline passes: the queue's timer fires for nothing.
        await loop.advanceTime(to: start + .hours(1))
        #expect(!secondCancellation.isCancelled)
        await loop.advanceTime(to: start + .minutes(61) - .nanoseconds(1))
        #expect(!secondCancellation.isCancelled, "cut before its deadline")
        await loop.advanceTime(by: .nanoseconds(1))
        #expect(secondCancellation.isCancelled, "not cut at its deadline")
        let secondError = await #expect(throws: GatewayError.self) { try await secondCall.get() }
        #expect(secondError?.code == .deadlineExceeded)
        #expect(
            secondError?.message.contains("did not answer within 3600s") == true, "\(String(describing: secondError))")
        #expect(runner.probe.count("cancelled") == 2)
        #expect(pool.slotsInUse == 0)
        await loop.shutdownGracefully()
    }

    /// Review 10, finding 6: the runner's DEADLINE_EXCEEDED (from the grpc-timeout we sent) and the pool's timer
    /// race; within the slack of the deadline the client reads the gateway's words whichever comes first, while
    /// a runner's own deadline well before ours passes through as the runner said it.
    @Test(
        "a runner's DEADLINE_EXCEEDED 5 ms before the deadline reads as the gateway's; one a minute before, as the runner's",
        .timeLimit(.minutes(1)), arguments: [(TimeAmount.milliseconds(5), true), (.minutes(1), false)])
    func runnerDeadlineRace(early: TimeAmount, gatewayWords: Bool) async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = LoopTimedRunner()
        let pool = Self.timedPool(runner, on: loop, requestTimeout: .hours(1))
        let lasting = TimeAmount.hours(1) - early
        var request = makeRequest(
            "timed", ["ns": .number(Double(lasting.nanoseconds)), "deadline_exceeded": .bool(true)])
        request.deadline = loop.now + .hours(1)
        let cancellation = TriggerCancellation()
        let future = pool.run(request, on: loop, cancellation: cancellation)
        await loop.run()
        await loop.advanceTime(by: .hours(1) - early)
        let error = await #expect(throws: GatewayError.self) { try await future.get() }
        #expect(error?.code == .deadlineExceeded)
        let expected =
            gatewayWords
            ? #"backend pool "p" did not answer within 3600s"# : "the run did not finish within its grpc-timeout"
        #expect(error?.message == expected, "\(String(describing: error))")
        #expect(pool.slotsInUse == 0)
        await loop.shutdownGracefully()
    }

    /// The `async` form (the async dispatcher's runs): the same timer on one of the pool's loops, the pool's
    /// request timeout counted from the call (no task group and no sleeping task per call, issue 11).
    @Test(
        "an async caller's run that ends one nanosecond before the pool's timeout is answered; one after, cut",
        .timeLimit(.minutes(1)), arguments: [Int64(-1), 1])
    func asyncCallAtTheEdge(offset: Int64) async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = LoopTimedRunner()
        let pool = Self.timedPool(runner, on: loop, requestTimeout: .hours(1))
        let request = LoopTimedRunner.request(lasting: .hours(1) + .nanoseconds(offset))
        let call = Task { try await pool.run(request) }
        #expect(await eventually(within: .seconds(20)) { runner.probe.count("started") == 1 })
        await loop.advanceTime(by: .hours(1) - .nanoseconds(1))
        #expect(runner.probe.count("cancelled") == 0, "cut before the pool's timeout")
        await loop.advanceTime(by: .nanoseconds(2))
        if offset < 0 {
            #expect(try await call.value.outputs.first?["ns"] != nil)
        } else {
            let error = await #expect(throws: GatewayError.self) { try await call.value }
            #expect(error?.code == .deadlineExceeded)
            #expect(error?.message.contains("3600s") == true, "\(String(describing: error))")
            #expect(runner.probe.count("cancelled") == 1)
        }
        #expect(pool.slotsInUse == 0)
        await loop.shutdownGracefully()
    }

    @Test(
        "background work waits for a slot without being refused; its request timeout counts from the slot, not the call",
        .timeLimit(.minutes(1)))
    func backgroundTimeoutFromTheSlot() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = LoopTimedRunner()
        let pool = Self.timedPool(runner, on: loop, requestTimeout: .hours(1), maxConcurrency: 1)
        // A frontend's call holds the only slot for half an hour.
        let holder = pool.run(
            LoopTimedRunner.request(lasting: .minutes(30)), on: loop, cancellation: TriggerCancellation())
        await loop.run()
        var background = LoopTimedRunner.request(lasting: .hours(2))
        background.waitsForCapacity = true
        let call = Task { try await pool.run(background) }
        #expect(await eventually(within: .seconds(20)) { pool.callsQueued == 1 })

        await loop.advanceTime(by: .minutes(30))
        _ = try await holder.get()
        #expect(runner.probe.count("started") == 2, "the slot is handed to the background run")
        // An hour from the call would be now + 30 minutes: not cut then.
        await loop.advanceTime(by: .hours(1) - .nanoseconds(1))
        #expect(runner.probe.count("cancelled") == 0, "cut before an hour from its slot")
        await loop.advanceTime(by: .nanoseconds(1))
        let error = await #expect(throws: GatewayError.self) { try await call.value }
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.message.contains("3600s") == true, "\(String(describing: error))")
        #expect(runner.probe.count("cancelled") == 1)
        #expect(pool.slotsInUse == 0)
        await loop.shutdownGracefully()
    }

    /// Review 18, F1's remainder: a call queued behind a full pool waited for a slot however long, past its
    /// deadline, and was answered only when a slot came.
    @Test(
        "a frontend's call queued for a slot is answered at its deadline, not a nanosecond before, and leaves the queue; one whose slot comes first runs",
        .timeLimit(.minutes(1)))
    func queuedCallDeadline() async throws {
        // A call holds the only slot for two hours.
        let held = await HeldPool(requestTimeout: .hours(3))
        let (loop, runner, metrics, pool, holder) = (held.loop, held.runner, held.metrics, held.pool, held.holder)
        var late = LoopTimedRunner.request(lasting: .minutes(1))
        late.deadline = loop.now + .hours(1)
        let lateCall = pool.run(late, on: loop, cancellation: TriggerCancellation())
        // This one's deadline is after the holder's end: it gets the slot then, and runs.
        var patient = LoopTimedRunner.request(lasting: .minutes(1))
        patient.deadline = loop.now + .hours(2) + .minutes(30)
        let patientCall = pool.run(patient, on: loop, cancellation: TriggerCancellation())
        await loop.run()
        #expect(pool.callsQueued == 2)

        await loop.advanceTime(by: .hours(1) - .nanoseconds(1))
        #expect(pool.callsQueued == 2, "answered before its deadline")
        await loop.advanceTime(by: .nanoseconds(1))
        // Required before waiting for the answer: without one, `get()` would wait for ever.
        try #require(pool.callsQueued == 1, "the late call did not leave the queue at its deadline")
        let error = await #expect(throws: GatewayError.self) { try await lateCall.get() }
        #expect(error?.code == .deadlineExceeded)
        // The pool's own timeout (review 21, M1): flagged and counted, with no endpoint, and not the caller's.
        #expect(error?.callerDeadline == false && error?.upstreamFailure == .requestTimeout && error?.notSent == true)
        #expect(Self.poolTimeouts(metrics) == 1)
        #expect(
            error?.message
                == #"the request's deadline passed before its call to backend pool "p" could start (it waited 3600s for a slot)"#,
            "\(String(describing: error))")
        #expect(runner.probe.count("started") == 1, "nothing sent for the late call")

        await loop.advanceTime(by: .hours(1))
        _ = try await holder.get()
        #expect(runner.probe.count("started") == 2, "the slot goes to the patient call, not to the late one")
        await loop.advanceTime(by: .minutes(1))
        #expect(try await patientCall.get().outputs.first?["ns"] != nil)
        #expect(pool.slotsInUse == 0 && pool.callsQueued == 0)
        await loop.shutdownGracefully()
    }

    /// Review 21, M2: a queued call whose slot came with 74 ms (once 1 ms) of a 3 s timeout left was sent, and read
    /// "did not answer within 74ms", counted against the runner.
    @Test(
        "a queued call whose slot comes with less than the minimum left is answered as the queue's deadline, not sent; with the minimum left it is sent",
        .timeLimit(.minutes(1)), arguments: [Int64(-1), 0])
    func queuedCallMinimumTimeToSend(offset: Int64) async throws {
        let timeout = TimeAmount.hours(3)
        let minimum = BackendPool.minimumTimeToSend(timeout: timeout)
        #expect(minimum == .nanoseconds(timeout.nanoseconds / 100))
        #expect(BackendPool.minimumTimeToSend(timeout: .milliseconds(500)) == .milliseconds(10))
        let held = await HeldPool(requestTimeout: timeout)
        let (loop, runner, metrics, pool, holder) = (held.loop, held.runner, held.metrics, held.pool, held.holder)
        // Its slot comes when the holder ends, two hours from now, with `minimum + offset` of its deadline left.
        var queued = LoopTimedRunner.request(lasting: .nanoseconds(1))
        queued.deadline = loop.now + .hours(2) + minimum + .nanoseconds(offset)
        let call = pool.run(queued, on: loop, cancellation: TriggerCancellation())
        await loop.run()
        try #require(pool.callsQueued == 1)
        await loop.advanceTime(by: .hours(2))
        _ = try await holder.get()
        await loop.run()
        if offset < 0 {
            // Required before waiting for the answer: a call sent would wait for its run's end for ever.
            try #require(runner.probe.count("started") == 1, "nothing sent")
            let error = await #expect(throws: GatewayError.self) { try await call.get() }
            #expect(
                error?.message.hasSuffix("could start (it waited 7200s for a slot)") == true,
                "\(String(describing: error))")
            #expect(error?.upstreamFailure == .requestTimeout && error?.callerDeadline == false)
            #expect(Self.poolTimeouts(metrics) == 1)
        } else {
            #expect(runner.probe.count("started") == 2, "sent with the minimum left")
            await loop.advanceTime(by: .nanoseconds(1))
            #expect(try await call.get().outputs.first?["ns"] != nil)
            #expect(Self.poolTimeouts(metrics) == 0)
        }
        #expect(pool.slotsInUse == 0 && pool.callsQueued == 0)
        await loop.shutdownGracefully()
    }

    /// Review 26 I3: such a call was counted under `endpoint=""` while its access line and warning named the
    /// endpoint it ran on; it is counted under that endpoint now (the pool's sizing is in its message).
    @Test(
        "a queued call that then times out says how long it waited for its slot and how much was left, and is a UT of the endpoint it ran on",
        .timeLimit(.minutes(1)))
    func queuedCallTimesOutAfterItsSlot() async throws {
        let held = await HeldPool(requestTimeout: .hours(3))
        let (loop, runner, metrics, pool, holder) = (held.loop, held.runner, held.metrics, held.pool, held.holder)
        var queued = LoopTimedRunner.request(lasting: .hours(2), on: LoopTimedRunner.endpoint)
        queued.deadline = loop.now + .hours(3)
        let call = pool.run(queued, on: loop, cancellation: TriggerCancellation())
        await loop.run()
        await loop.advanceTime(by: .hours(2))
        _ = try await holder.get()
        #expect(runner.probe.count("started") == 2)
        await loop.advanceTime(by: .hours(1))
        let error = await #expect(throws: GatewayError.self) { try await call.get() }
        #expect(
            error?.message == #"backend pool "p" did not answer within the 3600s left after 7200s waiting for a slot"#,
            "\(String(describing: error))")
        #expect(error?.upstreamFailure == .requestTimeout)
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(
            scrape.samples[#"trigger_gateway_backend_failures_total{pool="p",endpoint="r:1",reason="UT"}"#] == 1,
            "counted under the endpoint it ran on")
        #expect(Self.poolTimeouts(metrics) == 0, "not under endpoint=\"\"")
        await loop.shutdownGracefully()
    }

    @Test("cancelling an async caller's task cancels its run at once and gives the slot back", .timeLimit(.minutes(1)))
    func asyncCancellation() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let runner = LoopTimedRunner()
        let pool = Self.timedPool(runner, on: loop, requestTimeout: .hours(1))
        let call = Task { try await pool.run(LoopTimedRunner.request(lasting: .minutes(5))) }
        #expect(await eventually(within: .seconds(20)) { runner.probe.count("started") == 1 })
        call.cancel()
        #expect(await eventually(within: .seconds(20)) { runner.probe.count("cancelled") == 1 })
        await #expect(throws: (any Error).self) { try await call.value }
        #expect(
            await eventually(within: .seconds(20)) {
                await loop.run()
                return pool.slotsInUse == 0
            })
        await loop.shutdownGracefully()
    }
}

/// A loop-native runner whose run lasts `ns` nanoseconds (the request's input) on the calling loop's clock,
/// then echoes its inputs: on a testing loop a run ends at an instant the test chooses, with no real time.
/// Cancelling ends the run at once (its scheduled end is cancelled: `EventLoopError.cancelled`).
struct LoopTimedRunner: TriggerRunner {
    let probe = Probe()

    /// The endpoint a request made `on:` one says its run went to (``TriggerCancellation/endpoint``, as a balanced
    /// transport's pick sets it).
    static let endpoint = "r:1"

    static func request(lasting duration: TimeAmount, on endpoint: String? = nil) -> TriggerRequest {
        var variables: ValueObject = ["ns": .number(Double(duration.nanoseconds))]
        if let endpoint { variables["endpoint"] = .string(endpoint) }
        return makeRequest("timed", variables)
    }

    func run(_ request: TriggerRequest) async throws -> TriggerResult {
        throw GatewayError(.unimplemented, "LoopTimedRunner runs on a loop only")
    }

    func run(
        _ request: TriggerRequest, on eventLoop: any EventLoop, cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        probe.bump("started")
        if let endpoint = request.inputs.first?.variables["endpoint"]?.stringValue { cancellation.endpoint = endpoint }
        let nanoseconds = Int64(request.inputs.first?.variables["ns"]?.numberValue ?? 0)
        let outputs = request.inputs.map(\.variables)
        // `deadline_exceeded`: the run ends with a runner's own DEADLINE_EXCEEDED (its grpc-timeout) instead.
        let failsDeadline = request.inputs.first?.variables["deadline_exceeded"] != nil
        let end = eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { () throws -> TriggerResult in
            if failsDeadline {
                throw GatewayError(.deadlineExceeded, "the run did not finish within its grpc-timeout")
            }
            return TriggerResult(outputs: outputs)
        }
        let probe = self.probe
        cancellation.whenCancelled {
            probe.bump("cancelled")
            end.cancel()
        }
        return end.futureResult
    }

    func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "no streams here")) }
    }
}
