import Synchronization

/// Caps how many calls a backend pool runs at once, with a bounded queue of waiters behind the cap.
///
/// Overload is answered at once (`.overloaded`, which renders as 503 / RESOURCE_EXHAUSTED) instead of
/// letting an unbounded queue grow: a gateway that queues forever turns a backend slowdown into memory
/// growth and client timeouts everywhere (DESIGN.md "Backends").
package final class ConcurrencyLimiter: Sendable {
    private struct State {
        var running = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    package let maxConcurrency: Int
    package let maxQueue: Int
    private let name: String

    package init(name: String, maxConcurrency: Int, maxQueue: Int) {
        precondition(maxConcurrency > 0 && maxQueue >= 0)
        self.name = name
        self.maxConcurrency = maxConcurrency
        self.maxQueue = maxQueue
    }

    /// Runs `body` once a slot is free; throws `.overloaded` when the queue is full, and
    /// `CancellationError` when the task is cancelled while it waits.
    package func withSlot<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async throws {
        enum Decision { case go, wait(UInt64), reject }
        let decision: Decision = state.withLock { s in
            if s.running < maxConcurrency {
                s.running += 1
                return .go
            }
            if s.waiters.count >= maxQueue { return .reject }
            s.nextID += 1
            return .wait(s.nextID)
        }
        switch decision {
        case .go:
            return
        case .reject:
            throw BackendErrors.overloaded(pool: name, limit: maxConcurrency, queue: maxQueue)
        case .wait(let id):
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let cancelled: Bool = state.withLock { s in
                        if Task.isCancelled { return true }
                        s.waiters.append((id, continuation))
                        return false
                    }
                    if cancelled { continuation.resume(throwing: CancellationError()) }
                }
            } onCancel: {
                let continuation: CheckedContinuation<Void, any Error>? = state.withLock { s in
                    guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return s.waiters.remove(at: i).continuation
                }
                continuation?.resume(throwing: CancellationError())
            }
        }
    }

    private func release() {
        // Hand the slot straight to the oldest waiter, so `running` never dips and lets a newcomer jump the
        // queue.
        let next: CheckedContinuation<Void, any Error>? = state.withLock { s in
            if s.waiters.isEmpty {
                s.running -= 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
