package import Observability
import Synchronization
import TriggerModel

/// Caps how many calls a backend pool runs at once, with a bounded queue of waiters behind the cap.
///
/// Overload is answered at once (`.overloaded`, which renders as 503 / RESOURCE_EXHAUSTED) instead of
/// letting an unbounded queue grow: a gateway that queues forever turns a backend slowdown into memory
/// growth and client timeouts everywhere (DESIGN.md "Backends").
///
/// Background work (the async dispatcher's runs) is never refused: it waits in a second queue, served only
/// when no caller waits, so a bounce off the gateway's own limit neither fails an operation nor uses up an
/// attempt. That queue is bounded by the dispatcher's worker count, not here.
package final class ConcurrencyLimiter: Sendable {
    /// A queued caller: resumed with success when a slot is handed to it, or with `CancellationError` when
    /// an `async` waiter's task is cancelled.
    private typealias Waiter = (id: UInt64, resume: @Sendable (Result<Void, any Error>) -> Void)
    private struct State {
        var running = 0
        var waiters: [Waiter] = []
        var background: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    package let maxConcurrency: Int
    package let maxQueue: Int
    private let name: String
    /// Counts refusals on `trigger_gateway_pool_rejected_total`; nil records nothing.
    private let metrics: PoolMetrics?

    package init(name: String, maxConcurrency: Int, maxQueue: Int, metrics: PoolMetrics? = nil) {
        precondition(maxConcurrency > 0 && maxQueue >= 0)
        self.name = name
        self.metrics = metrics
        self.maxConcurrency = maxConcurrency
        self.maxQueue = maxQueue
    }

    /// Runs `body` once a slot is free; throws `.overloaded` when the queue is full, and
    /// `CancellationError` when the task is cancelled while it waits.
    package func withSlot<T: Sendable>(background: Bool = false, _ body: () async throws -> T) async throws -> T {
        try await acquire(background: background)
        defer { release() }
        return try await body()
    }

    /// What a stream that wants a slot may expect, decided at once so a refusal is answered before the first
    /// byte: a slot taken now (`.granted`, release it with ``release()``), room in the queue (`.queued`: call
    /// ``acquire(background:)`` when the stream starts), or neither (`.overloaded` error thrown).
    package enum Admission: Sendable { case granted, queued }

    package func admit() throws -> Admission {
        let admission: Admission? = state.withLock { s in
            if s.running < maxConcurrency {
                s.running += 1
                return .granted
            }
            return s.waiters.count < maxQueue ? .queued : nil
        }
        guard let admission else {
            throw overloaded()
        }
        return admission
    }

    /// How a loop-native caller got in: a slot now, or a place in the queue (`id` for ``withdraw(_:)``).
    package enum Ticket: Sendable {
        case granted
        case queued(id: UInt64)
    }

    /// The event-loop form of ``acquire(background:)``, for callers that must not suspend: takes a slot now
    /// (`.granted`), or queues `onSlot`, which is called (on the releasing thread) once a slot is handed over,
    /// or throws `.overloaded` when the queue is full. A queued caller that gives up calls ``withdraw(_:)``;
    /// when that returns false the slot was already handed over and `onSlot` runs (or ran), so the caller must
    /// release it.
    package func acquire(onSlot: @escaping @Sendable () -> Void) throws -> Ticket {
        let ticket: Ticket? = state.withLock { s in
            if s.running < maxConcurrency {
                s.running += 1
                return .granted
            }
            guard s.waiters.count < maxQueue else { return nil }
            s.nextID += 1
            s.waiters.append((s.nextID, { _ in onSlot() }))
            return .queued(id: s.nextID)
        }
        guard let ticket else {
            throw overloaded()
        }
        return ticket
    }

    /// Takes a slot if one is free now; false otherwise (nothing queued).
    package func tryAcquire() -> Bool {
        state.withLock { s in
            guard s.running < maxConcurrency else { return false }
            s.running += 1
            return true
        }
    }

    /// Takes a queued caller out of the queue; false when it is no longer there (its slot was handed over).
    package func withdraw(_ id: UInt64) -> Bool {
        state.withLock { s in
            guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return false }
            s.waiters.remove(at: i)
            return true
        }
    }

    /// Slots taken now (for tests and metrics).
    package var running: Int { state.withLock { $0.running } }

    /// Callers waiting for a slot now (the frontends' queue and the async runs' queue together).
    package var queued: Int { state.withLock { $0.waiters.count + $0.background.count } }

    /// The refusal, counted.
    private func overloaded() -> GatewayError {
        metrics?.recordRejected()
        return BackendErrors.overloaded(pool: name, limit: maxConcurrency, queue: maxQueue)
    }

    package func acquire(background: Bool = false) async throws {
        enum Decision { case go, wait(UInt64), reject }
        let decision: Decision = state.withLock { s in
            if s.running < maxConcurrency {
                s.running += 1
                return .go
            }
            if !background, s.waiters.count >= maxQueue { return .reject }
            s.nextID += 1
            return .wait(s.nextID)
        }
        switch decision {
        case .go:
            return
        case .reject:
            throw overloaded()
        case .wait(let id):
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let cancelled: Bool = state.withLock { s in
                        if Task.isCancelled { return true }
                        let resume: @Sendable (Result<Void, any Error>) -> Void = { continuation.resume(with: $0) }
                        if background {
                            s.background.append((id, resume))
                        } else {
                            s.waiters.append((id, resume))
                        }
                        return false
                    }
                    if cancelled { continuation.resume(throwing: CancellationError()) }
                }
            } onCancel: {
                let resume: (@Sendable (Result<Void, any Error>) -> Void)? = state.withLock { s in
                    if let i = s.waiters.firstIndex(where: { $0.id == id }) {
                        return s.waiters.remove(at: i).resume
                    }
                    if let i = s.background.firstIndex(where: { $0.id == id }) {
                        return s.background.remove(at: i).resume
                    }
                    return nil
                }
                resume?(.failure(CancellationError()))
            }
        }
    }

    package func release() {
        // Hand the slot straight to the oldest waiter (callers before background work), so `running` never
        // dips and lets a newcomer jump the queue.
        let next: (@Sendable (Result<Void, any Error>) -> Void)? = state.withLock { s in
            if !s.waiters.isEmpty { return s.waiters.removeFirst().resume }
            if !s.background.isEmpty { return s.background.removeFirst().resume }
            s.running -= 1
            return nil
        }
        next?(.success(()))
    }
}
