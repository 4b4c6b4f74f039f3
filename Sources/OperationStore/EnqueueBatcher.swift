import Synchronization

/// Group commit for `OperationStore.enqueue` (issue 12): the enqueues that arrive while a commit is on its way
/// to the disk are inserted together in the next transaction, so concurrent accepts share one fsync instead of
/// queueing for one each, and each caller still returns only once its own row is durable.
///
/// "Commit what queued while the previous commit ran", with no timed batching window: a lone enqueue is
/// committed at once, and under load a batch is whatever arrived during one fsync (bounded by `maxBatch`, so
/// the first of a batch never waits behind an unbounded queue).
///
/// Use: `add` a ticket, then, holding the store's write lock (whatever serialises its transactions), `drain`
/// until that ticket has its outcome. The holder commits every waiting ticket, its own and others', through
/// the store's `commit`, which must set each ticket's outcome; later holders find theirs already answered.
package final class EnqueueBatcher: Sendable {
    package typealias Outcome = Result<(operation: Operation, created: Bool), any Error>

    /// One enqueue waiting for a group commit. Its outcome is written by the lock holder that committed it and
    /// read by its owner after taking the lock, so the store's lock orders both; the mutex makes it visible.
    package final class Ticket: Sendable {
        package let new: NewOperation
        private let state = Mutex<Outcome?>(nil)

        init(_ new: NewOperation) {
            self.new = new
        }

        package var outcome: Outcome? {
            get { state.withLock { $0 } }
            set { state.withLock { $0 = newValue } }
        }
    }

    /// Enqueues per transaction at most.
    package let maxBatch: Int
    private let pending = Mutex<[Ticket]>([])
    private let transactionCount = Atomic<Int>(0)

    package init(maxBatch: Int = 256) {
        precondition(maxBatch > 0)
        self.maxBatch = maxBatch
    }

    /// Queues `new` for the next group commit.
    package func add(_ new: NewOperation) -> Ticket {
        let ticket = Ticket(new)
        pending.withLock { $0.append(ticket) }
        return ticket
    }

    /// Commits batches (oldest first) until `ticket` has its outcome, and returns it. Call only while holding
    /// the store's write lock. A caller cancelled while it waited for the lock withdraws its ticket here if no
    /// batch has taken it yet, so nothing is stored for an enqueue that was answered with an error.
    package func drain(
        until ticket: Ticket,
        commit: ([Ticket]) async -> Void
    ) async throws -> (operation: Operation, created: Bool) {
        if Task.isCancelled, withdraw(ticket) { throw CancellationError() }
        while ticket.outcome == nil {
            let batch = pending.withLock { pending in
                let batch = Array(pending.prefix(maxBatch))
                pending.removeFirst(batch.count)
                return batch
            }
            guard !batch.isEmpty else { break }
            await commit(batch)
            transactionCount.add(1, ordering: .relaxed)
        }
        guard let outcome = ticket.outcome else {
            // Unreachable when `commit` answers every ticket it is given; fail rather than hang.
            throw CancellationError()
        }
        return try outcome.get()
    }

    /// Transactions run so far: fewer than the enqueues when commits were shared (for tests).
    package var transactions: Int { transactionCount.load(ordering: .relaxed) }

    private func withdraw(_ ticket: Ticket) -> Bool {
        pending.withLock { pending in
            guard let index = pending.firstIndex(where: { $0 === ticket }) else { return false }
            pending.remove(at: index)
            return true
        }
    }
}
