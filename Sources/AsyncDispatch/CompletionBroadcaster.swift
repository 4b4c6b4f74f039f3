import Synchronization

/// In-process "operation X finished" notices, so a long-poll on this instance answers as soon as the local
/// dispatcher stores a result instead of at its next poll.
///
/// Notices are not durable and not shared between instances: a waiter also re-reads the store every poll
/// interval, which is how a result stored by another instance is seen.
package final class CompletionBroadcaster: Sendable {
    private struct State {
        var nextToken: UInt64 = 0
        var waiters: [String: [UInt64: CheckedContinuation<Void, Never>]] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    package init() {}

    package func notify(_ id: String) {
        let waiters = state.withLock { $0.waiters.removeValue(forKey: id) } ?? [:]
        for waiter in waiters.values { waiter.resume() }
    }

    /// Returns when `id` is notified, `timeout` (measured on `clock`) passes, or the task is cancelled.
    package func wait<C: Clock<Duration>>(for id: String, timeout: Duration, on clock: C) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForNotice(id) }
            group.addTask { try? await clock.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Wakes every waiter, and makes every later `wait` return at once: the gateway is draining, and a long-poll
    /// is only a wait, so it is answered now with the operation as it is (review 8: held for the whole grace,
    /// then 503, it turned a harmless wait into an error and made every stop last `shutdown_grace`).
    package func close() {
        let waiters = state.withLock { state in
            state.closed = true
            defer { state.waiters = [:] }
            return state.waiters.values.flatMap(\.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// True once ``close()`` was called.
    package var isClosed: Bool { state.withLock { $0.closed } }

    package var waiterCount: Int { state.withLock { $0.waiters.values.reduce(0) { $0 + $1.count } } }

    private func waitForNotice(_ id: String) async {
        let token = state.withLock { state in
            state.nextToken += 1
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let cancelled = state.withLock { state in
                    if Task.isCancelled || state.closed { return true }
                    state.waiters[id, default: [:]][token] = continuation
                    return false
                }
                if cancelled { continuation.resume() }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
                let waiter = state.waiters[id]?.removeValue(forKey: token)
                if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
                return waiter
            }
            waiter?.resume()
        }
    }
}
