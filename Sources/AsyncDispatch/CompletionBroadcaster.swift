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

    package var waiterCount: Int { state.withLock { $0.waiters.values.reduce(0) { $0 + $1.count } } }

    private func waitForNotice(_ id: String) async {
        let token = state.withLock { state in
            state.nextToken += 1
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let cancelled = state.withLock { state in
                    if Task.isCancelled { return true }
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
