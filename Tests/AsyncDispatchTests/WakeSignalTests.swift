import AsyncDispatch
import Clocks
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

    /// Yields until `condition` holds or 10 s of real time passed (the waiting task runs on the global executor).
    func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<10_000 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return condition()
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
        // Not before the deadline: the wait is asleep on the clock, not returned.
        try? await Task.sleep(for: .milliseconds(50))
        #expect(!returned.value)
        await clock.advance(by: .seconds(1))
        #expect(await eventually { returned.value }, "the wait did not end at the deadline")
        waiter.cancel()  // ends a wait that missed its deadline, so a failure does not hang the run
        await waiter.value
    }

    @Test("a signal ends the wait before its deadline; a signal sent while nobody waits ends the next wait at once")
    func signalEndsWait() async {
        let clock = TestClock()
        let signal = WakeSignal()
        let returned = Returned()
        let waiter = Task {
            await signal.wait(until: clock.deadline(after: .seconds(3600)))
            returned.set()
        }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(!returned.value)
        signal.signal()
        #expect(await eventually { returned.value })
        waiter.cancel()
        await waiter.value

        signal.signal()
        await signal.wait(until: clock.deadline(after: .seconds(3600)))  // pending: returns without the clock moving
    }
}
