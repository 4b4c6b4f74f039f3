package import Observability
import Synchronization
import TriggerModel

/// Caps how many calls a backend pool runs at once, with a bounded queue of waiters behind the cap.
///
/// Overload is answered at once (`.overloaded`, which renders as 503 / UNAVAILABLE) instead of
/// letting an unbounded queue grow: a gateway that queues forever turns a backend slowdown into memory
/// growth and client timeouts everywhere (DESIGN.md "Backends").
///
/// Background work (the async dispatcher's runs) is never refused: it waits in a second queue, served only
/// when no caller waits, so a bounce off the gateway's own limit neither fails an operation nor uses up an
/// attempt. That queue is bounded by the dispatcher's worker count, not here.
///
/// Every call takes and gives back a slot from whichever event loop it runs on, so the common case — a slot
/// free, nobody queued — is two atomic operations and no lock shared across loops (issue 11). The mutex is
/// taken only to queue, withdraw, or hand a slot to a queued caller. Queuing and releasing meet Dekker-style:
/// a caller increments `queued` and then reads `running`; a release decrements `running` and then reads
/// `queued` (both sequentially consistent), so at least one of them sees the other and hands the slot over
/// — a free slot and a waiting caller never both stay unnoticed. Newcomers take the fast path only while
/// nobody is queued, so queued callers keep their order.
package final class ConcurrencyLimiter: Sendable {
    /// A queued caller: resumed with success when a slot is handed to it, or with `CancellationError` when
    /// an `async` waiter's task is cancelled.
    private typealias Waiter = (id: UInt64, resume: @Sendable (Result<Void, any Error>) -> Void)
    private struct Queues {
        var waiters: [Waiter] = []
        var background: [Waiter] = []
        var nextID: UInt64 = 0
    }

    /// Slots taken: only ever raised by ``takeFreeSlot()`` (never past `maxConcurrency`), lowered by ``release()``.
    private let taken = Atomic<Int>(0)
    /// `queues.waiters.count + queues.background.count`, readable without the lock.
    private let queuedCount = Atomic<Int>(0)
    private let queues = Mutex(Queues())
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
        if tryAcquire() { return .granted }
        let roomInQueue = queues.withLock { q in q.waiters.count < maxQueue }
        guard roomInQueue else { throw overloaded() }
        return .queued
    }

    /// How a loop-native caller got in: a slot now, or a place in the queue (`id` for ``withdraw(_:)``).
    package enum Ticket: Sendable {
        case granted
        case queued(id: UInt64)
    }

    /// The event-loop form of ``acquire(background:)``, for callers that must not suspend: takes a slot now
    /// (`.granted`), or queues `onSlot`, which is called (on the releasing thread) once a slot is handed over,
    /// or throws `.overloaded` when the queue is full (never for `background` work, which waits in its own
    /// queue behind callers). A queued caller that gives up calls ``withdraw(_:)``; when that returns false the
    /// slot was already handed over and `onSlot` runs (or ran), so the caller must release it.
    package func acquire(background: Bool = false, onSlot: @escaping @Sendable () -> Void) throws -> Ticket {
        if tryAcquire() { return .granted }
        var handOver: [Waiter] = []
        let id: UInt64? = queues.withLock { q in
            if !background, q.waiters.count >= maxQueue { return nil }
            q.nextID += 1
            if background {
                q.background.append((q.nextID, { _ in onSlot() }))
            } else {
                q.waiters.append((q.nextID, { _ in onSlot() }))
            }
            queuedCount.add(1, ordering: .sequentiallyConsistent)
            handOver = takeSlotsForQueued(&q)
            return q.nextID
        }
        guard let id else { throw overloaded() }
        for waiter in handOver { waiter.resume(.success(())) }
        return .queued(id: id)
    }

    /// Takes a slot if one is free now and nobody is queued before us; false otherwise (nothing queued).
    package func tryAcquire() -> Bool {
        queuedCount.load(ordering: .sequentiallyConsistent) == 0 && takeFreeSlot()
    }

    /// Takes a queued caller out of the queue; false when it is no longer there (its slot was handed over).
    package func withdraw(_ id: UInt64) -> Bool {
        queues.withLock { q in remove(id, from: &q) != nil }
    }

    /// Slots taken now (for tests and metrics).
    package var running: Int { taken.load(ordering: .relaxed) }

    /// Callers waiting for a slot now (the frontends' queue and the async runs' queue together).
    package var queued: Int { queuedCount.load(ordering: .relaxed) }

    /// The refusal, counted.
    private func overloaded() -> GatewayError {
        metrics?.recordRejected()
        metrics?.recordFailure(endpoint: nil, reason: .overflow)
        return BackendErrors.overloaded(pool: name, limit: maxConcurrency, queue: maxQueue)
    }

    package func acquire(background: Bool = false) async throws {
        if tryAcquire() { return }
        let id: UInt64? = queues.withLock { q in
            if !background, q.waiters.count >= maxQueue { return nil }
            q.nextID += 1
            return q.nextID
        }
        guard let id else { throw overloaded() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                var handOver: [Waiter] = []
                let cancelled: Bool = queues.withLock { q in
                    if Task.isCancelled { return true }
                    let resume: @Sendable (Result<Void, any Error>) -> Void = { continuation.resume(with: $0) }
                    if background {
                        q.background.append((id, resume))
                    } else {
                        q.waiters.append((id, resume))
                    }
                    queuedCount.add(1, ordering: .sequentiallyConsistent)
                    handOver = takeSlotsForQueued(&q)
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
                for waiter in handOver { waiter.resume(.success(())) }
            }
        } onCancel: {
            let resume = queues.withLock { q in remove(id, from: &q) }
            resume?(.failure(CancellationError()))
        }
    }

    package func release() {
        taken.subtract(1, ordering: .sequentiallyConsistent)
        guard queuedCount.load(ordering: .sequentiallyConsistent) > 0 else { return }
        let handOver = queues.withLock { q in takeSlotsForQueued(&q) }
        for waiter in handOver { waiter.resume(.success(())) }
    }

    /// Raises `running` by one unless it is at the cap.
    private func takeFreeSlot() -> Bool {
        var current = taken.load(ordering: .relaxed)
        while current < maxConcurrency {
            let (exchanged, original) = taken.compareExchange(
                expected: current, desired: current + 1, ordering: .sequentiallyConsistent)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Under the lock: gives free slots to the oldest queued callers (callers before background work) and
    /// returns them, to be resumed after the lock is dropped.
    private func takeSlotsForQueued(_ q: inout Queues) -> [Waiter] {
        var handOver: [Waiter] = []
        while !(q.waiters.isEmpty && q.background.isEmpty), takeFreeSlot() {
            handOver.append(q.waiters.isEmpty ? q.background.removeFirst() : q.waiters.removeFirst())
            queuedCount.subtract(1, ordering: .sequentiallyConsistent)
        }
        return handOver
    }

    /// Under the lock: takes `id` out of whichever queue holds it.
    private func remove(_ id: UInt64, from q: inout Queues) -> (@Sendable (Result<Void, any Error>) -> Void)? {
        let waiter: Waiter?
        if let i = q.waiters.firstIndex(where: { $0.id == id }) {
            waiter = q.waiters.remove(at: i)
        } else if let i = q.background.firstIndex(where: { $0.id == id }) {
            waiter = q.background.remove(at: i)
        } else {
            waiter = nil
        }
        if waiter != nil { queuedCount.subtract(1, ordering: .sequentiallyConsistent) }
        return waiter?.resume
    }
}
