@testable import Backends
import NIOCore
import GatewayTestSupport
import NIOEmbedded
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
}
