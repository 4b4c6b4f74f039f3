import AsyncDispatch
import Clocks
import GatewayTestSupport
import Synchronization
import Testing

@Suite("WakeSignal: the claim loop's wait, on an injected clock")
struct WakeSignalTests {
    /// Whether `wait` has returned, set by the waiting task.
    final class Returned: Sendable {
        private let flag = Atomic<Bool>(false)
        var value: Bool { flag.load(ordering: .sequentiallyConsistent) }
        func set() { flag.store(true, ordering: .sequentiallyConsistent) }
    }

    @Test(
        """
        a wait until a deadline ends at that instant, however late it begins: time that passed between fixing the \
        deadline and the wait does not push it later (the claim loop once woke an hour late that way)
        """, .timeLimit(.minutes(1)))
    func deadlineFixedWhenMade() async {
        let clock = TestClock()
        let signal = WakeSignal()
        let deadline = clock.deadline(after: .seconds(3600))
        // The clock moves before the wait begins, as a test's step or a late-scheduled task can make it.
        await clock.advance(by: .seconds(3599))
        #expect(deadline.remaining() == .seconds(1))
        let returned = Returned()
        let waiter = Task {
            await signal.wait(until: deadline)
            returned.set()
        }
        // Not before the deadline: the wait is asleep on the clock, not returned. (Polled until the sleep is on the
        // clock rather than a fixed real-time pause: on a loaded machine the task can start after the clock moved.)
        #expect(
            await eventually(within: .seconds(10), interval: .milliseconds(1)) { await Self.asleep(on: clock) },
            "the wait never went to sleep on the clock")
        #expect(!returned.value)
        await clock.advance(by: .seconds(1))
        #expect(
            await eventually(within: .seconds(10), interval: .milliseconds(1)) { returned.value },
            "the wait did not end at the deadline")
        waiter.cancel()  // ends a wait that missed its deadline, so a failure does not hang the run
        await waiter.value
    }

    @Test(
        """
        a wait that begins at the very instant of its deadline returns at once, without the clock moving again (a \
        task scheduled late can begin its wait exactly then)
        """, .timeLimit(.minutes(1)))
    func waitBeginningAtItsDeadline() async {
        let clock = TestClock()
        let signal = WakeSignal()
        let deadline = clock.deadline(after: .seconds(60))
        await clock.advance(by: .seconds(60))
        #expect(deadline.remaining() == .zero)
        let returned = Returned()
        let waiter = Task {
            await signal.wait(until: deadline)
            returned.set()
        }
        #expect(
            await eventually(within: .seconds(10), interval: .milliseconds(1)) { returned.value },
            "the wait did not end: it sleeps until the clock next moves")
        waiter.cancel()  // ends a wait that missed its deadline, so a failure does not hang the run
        await waiter.value
    }

    /// Whether a sleep is suspended on `clock`: `checkSuspension` throws exactly then.
    static func asleep(on clock: TestClock<Duration>) async -> Bool {
        do {
            try await clock.checkSuspension()
            return false
        } catch {
            return true
        }
    }
}
