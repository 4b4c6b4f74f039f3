public import Synchronization

/// Group commit (issue 12): the writes of one kind that arrive while a commit is on its way to the disk are
/// made together in the next transaction, so concurrent callers share one fsync instead of queueing for one
/// each, and each caller still returns only once its own write is durable. Used for `OperationStore.enqueue`
/// (`EnqueueBatcher`: concurrent accepts), `complete` (`CompletionBatcher`: concurrent runs finishing) and
/// `claim`. The SQLite store commits the waiting batches of all three in one transaction (`takeBatch` from
/// each), so an accept shares its fsync with the dispatcher's writes instead of queueing behind theirs; the
/// PostgreSQL store commits enqueues and completions separately (its WAL flushes concurrent commits together).
///
/// "Commit what queued while the previous commit ran", with no timed batching window: a lone write is
/// committed at once, and under load a batch is whatever arrived during one fsync (bounded by `maxBatch`, so
/// the first of a batch never waits behind an unbounded queue).
///
/// Use: `add` a ticket, then, holding the store's write lock (whatever serialises its transactions), `drain`
/// until that ticket has its outcome. The holder commits every waiting ticket, its own and others', through
/// the store's `commit`, which must set each ticket's outcome; later holders find theirs already answered.
///
/// Its methods are `@inlinable` so that each store's calls are specialised for its concrete `Item` and `Value`
/// (the stores are other modules): unspecialised, every ticket's allocation and every `outcome`, `add` and
/// `takeBatch` looked up the metadata of `Ticket`, `Mutex<Result<Value, any Error>?>` and `[Ticket]` at run time
/// (`swift_getGenericMetadata`, ~300 instructions each, dozens per accepted-and-run operation; issue 12).
///
/// `public`, not `package` (STYLE.md's rule for cross-module internals), for that reason alone: Swift 6.3.1 does
/// not serialise the bodies of `@inlinable` members of a `package` type into the module, so no other module can
/// specialise them, and the stores ran these methods unspecialised although they were marked `@inlinable` (~7 k
/// instructions of metadata lookups per ticket; bench/README.md, branch asynccost4, which shows the check:
/// `strings` of the `.swiftmodule` lists no SIL function of a `package` type). An `@inlinable` member of a
/// `public` type is serialised, and may use only `public` or `@usableFromInline` declarations, hence the `public`
/// members and `public import Synchronization`.
public final class GroupCommit<Item: Sendable, Value: Sendable>: Sendable {
    public typealias Outcome = Result<Value, any Error>

    /// One write waiting for a group commit. Its outcome is written by the lock holder that committed it and
    /// read by its owner after taking the lock, so the store's lock orders both; the mutex makes it visible.
    public final class Ticket: Sendable {
        /// Read in place (`ticket.item.operation.id` loads one field): a getter of another module returning it, as
        /// the enqueue tickets' `new` was, copied the whole item per use (~700 instructions for a `NewOperation`;
        /// bench/README.md, branch asynccost5).
        public let item: Item
        @usableFromInline let state: Mutex<Outcome?>

        /// `state` is set here, not by an initial value on its declaration: that value is a generic property
        /// initializer of its own, which the stores' specialised `add` called unspecialised, looking up the
        /// metadata of `Mutex<Result<Value, any Error>?>` and `Result` per ticket (~800 instructions; bench/README.md,
        /// branch asynccost5).
        @inlinable init(_ item: consuming Item) {
            self.item = item
            self.state = Mutex(nil)
        }

        /// Set (after `outcome`) once the ticket is answered. `drain` polls this rather than `outcome`: the
        /// unspecialised generic getter looks up the metadata of `Mutex<Result<Value, any Error>?>` on each call
        /// (~2 200 instructions, a few calls per operation; issue 12), this flag none.
        @usableFromInline let answered = Atomic<Bool>(false)

        @inlinable public var outcome: Outcome? {
            get { state.withLock { $0 } }
            set {
                state.withLock { $0 = newValue }
                answered.store(newValue != nil, ordering: .releasing)
            }
        }

        /// Whether `outcome` is set.
        @inlinable public var isAnswered: Bool { answered.load(ordering: .acquiring) }
    }

    /// Writes per transaction at most.
    public let maxBatch: Int
    @usableFromInline let pending = Mutex<[Ticket]>([])
    @usableFromInline let transactionCount = Atomic<Int>(0)

    @inlinable public init(maxBatch: Int = 256) {
        precondition(maxBatch > 0)
        self.maxBatch = maxBatch
    }

    /// Queues `item` for the next group commit. `consuming`: a store's `add(NewOperation(…))` moves the item into
    /// its ticket instead of copying it (~700 instructions for a `NewOperation`).
    @inlinable public func add(_ item: consuming Item) -> Ticket {
        let ticket = Ticket(item)
        pending.withLock { $0.append(ticket) }
        return ticket
    }

    /// Commits batches (oldest first) until `ticket` has its outcome, and returns it. Call only while holding
    /// the store's write lock. A caller cancelled while it waited for the lock withdraws its ticket here if no
    /// batch has taken it yet, so nothing is stored for an enqueue that was answered with an error.
    @inlinable public func drain(
        until ticket: Ticket,
        commit: ([Ticket]) async -> Void
    ) async throws -> Value {
        try await drain(until: ticket) { () async -> Bool in
            let batch = takeBatch()
            guard !batch.isEmpty else { return false }
            await commit(batch)
            return true
        }
    }

    /// Runs `commitPending` until `ticket` has its outcome, and returns it: for a store that commits the
    /// batches of several `GroupCommit`s in one transaction (`takeBatch` from each). `commitPending` answers
    /// false when nothing was pending (every ticket it took must have its outcome set). Call only while holding
    /// the store's write lock.
    @inlinable public func drain(until ticket: Ticket, commitPending: () async -> Bool) async throws -> Value {
        if Task.isCancelled, withdraw(ticket) { throw CancellationError() }
        while !ticket.isAnswered {
            guard await commitPending() else { break }
        }
        guard let outcome = ticket.outcome else {
            // Unreachable when every commit answers every ticket it is given; fail rather than hang.
            throw CancellationError()
        }
        return try outcome.get()
    }

    /// Takes the oldest waiting tickets (at most `maxBatch`) for the next transaction, which the caller runs
    /// and answers each of them. Only under the store's write lock.
    @inlinable public func takeBatch() -> [Ticket] {
        let batch = pending.withLock { pending in
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            return batch
        }
        if !batch.isEmpty { transactionCount.add(1, ordering: .relaxed) }
        return batch
    }

    /// Transactions that carried writes of this kind so far: fewer than the writes when commits were shared
    /// (for tests).
    @inlinable public var transactions: Int { transactionCount.load(ordering: .relaxed) }

    @inlinable func withdraw(_ ticket: Ticket) -> Bool {
        pending.withLock { pending in
            guard let index = pending.firstIndex(where: { $0 === ticket }) else { return false }
            pending.remove(at: index)
            return true
        }
    }
}

/// Group commit of `OperationStore.enqueue`: concurrent accepts share a transaction and its fsync.
package typealias EnqueueBatcher = GroupCommit<NewOperation, (operation: Operation, created: Bool)>

/// One `OperationStore.complete` waiting for its group commit.
package struct PendingCompletion: Sendable {
    package var id: String
    /// The lease owner completing: the row is written only while it still holds the lease.
    package var owner: String
    package var encoded: OperationPayloadCodec.Encoded
    /// Milliseconds since the epoch, as the stores keep times.
    package var finishedAt: Int64
    /// The operation's route has a completion webhook: its delivery is recorded as pending with the result
    /// (`OperationStore.complete(id:owner:result:now:webhook:)`).
    package var webhook: Bool

    package init(
        id: String, owner: String, encoded: OperationPayloadCodec.Encoded, finishedAt: Int64, webhook: Bool = false
    ) {
        self.id = id
        self.owner = owner
        self.encoded = encoded
        self.finishedAt = finishedAt
        self.webhook = webhook
    }
}

/// Group commit of `OperationStore.complete`: runs finishing together share a transaction and its fsync. The
/// value is `complete`'s answer: true when the run still held its lease and its result was stored.
package typealias CompletionBatcher = GroupCommit<PendingCompletion, Bool>
