import Synchronization

/// A one-slot wake-up: `signal()` wakes the current waiter, or the next one if nobody is waiting.
///
/// The dispatcher's claim loop sleeps on one between polls (a local enqueue or a finished worker wakes it
/// at once).
package final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    package init() {}

    package func signal() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns when signalled (now, if a signal is pending), when `timeout` passes on `clock`, or when
    /// cancelled. Only one task may wait at a time.
    package func wait(timeout: Duration, clock: any Clock<Duration> = ContinuousClock()) async {
        await wait(until: clock.deadline(after: timeout))
    }

    /// Returns when signalled (now, if a signal is pending), when `deadline` is reached, or when cancelled. Only one
    /// task may wait at a time.
    package func wait(until deadline: ClockDeadline) async {
        if state.withLock({ state in
            defer { state.pending = false }; return state.pending
        }) {
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await deadline.sleep() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }; return state.waiter
            }
            waiter?.resume()
        }
    }
}
