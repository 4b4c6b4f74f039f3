package import FoundationEssentials
package import Logging
import NIOCore
package import OperationStore
import SQLiteNIO
import Synchronization
package import TriggerModel

/// The embedded operation store: one SQLite file, `<dataDir>/operations.sqlite`, for a single gateway instance.
///
/// Durability: WAL journal with `synchronous=FULL`, so every commit is on disk before the call returns, and
/// every method is one autocommit statement (or an explicit transaction). Blobs over the inline limit are
/// files under `<dataDir>/blobs/<op-id>/`, fsynced before the row that names them commits.
///
/// Concurrency: one connection, whose calls run on a thread of the store's own (never on an event loop, nor on
/// a pool another connection to the same file could fill while it waits for this one's lock); a FIFO
/// `SerialGate` orders statements so no commit waits behind another statement still stepping.
///
/// Group commit (issue 12): the writes that arrive while a commit is on its way to the disk (enqueues, the
/// dispatcher's claims and its runs' completions) are made together in the next transaction, so they share
/// one fsync instead of queueing for one each, and each call still returns only once its own write is
/// durable. Accepts therefore do not wait behind a claim's or a completion's fsync of their own.
package final class SQLiteOperationStore: OperationStore {
    package struct Configuration: Sendable {
        /// Created when missing.
        package var dataDirectory: String
        package var inlineBlobLimit: Int
        /// How long a statement waits for a lock another process holds before failing as unavailable.
        package var busyTimeout: Duration
        /// The wall clock that stamps what the store times itself: an enqueue's `created_at`/`not_before` and a
        /// cancel's `finished_at` (every other time is the caller's `now`). Tests move it with their virtual
        /// clock, so no real time leaks into the times they check.
        package var now: @Sendable () -> Date

        package init(
            dataDirectory: String,
            inlineBlobLimit: Int = OperationPayloadCodec.defaultInlineBlobLimit,
            busyTimeout: Duration = .seconds(5),
            now: @escaping @Sendable () -> Date = { Date() }
        ) {
            self.dataDirectory = dataDirectory
            self.inlineBlobLimit = inlineBlobLimit
            self.busyTimeout = busyTimeout
            self.now = now
        }

        package var databasePath: String { "\(dataDirectory)/operations.sqlite" }
        package var blobDirectory: String { "\(dataDirectory)/blobs" }
    }

    static let schemaVersion = 1

    /// The connection and its prepared statements; used only on `threadPool` (see `query`).
    private let handle: SQLiteHandle
    let gate = SerialGate()
    /// Group commit of enqueues (see `EnqueueBatcher`), under `gate`, in the transaction `commitPending` runs.
    private let batcher = EnqueueBatcher()
    /// Transactions that inserted enqueues: fewer than the enqueues when commits were shared (for tests).
    package var enqueueTransactionCount: Int { batcher.transactions }
    /// Group commit of completions (see `CompletionBatcher`), likewise: runs finishing together share one fsync.
    private let completions = CompletionBatcher()
    /// Transactions that stored completions: fewer than the completions when commits were shared (for tests).
    package var completionTransactionCount: Int { completions.transactions }
    /// Claims, likewise: a claim joins the next group commit rather than costing an fsync of its own.
    private let claims = GroupCommit<PendingClaim, [Operation]>()
    /// Transactions that made claims (for tests).
    package var claimTransactionCount: Int { claims.transactions }
    /// Readiness probes' heartbeats, likewise (see `probe`).
    private let heartbeats = GroupCommit<Heartbeat, Void>()
    /// Transactions that wrote heartbeats (for tests).
    package var heartbeatTransactionCount: Int { heartbeats.transactions }
    /// Resumed after the next group commit that reaches `COMMIT` (see `probe`).
    private let commitWaiters = Mutex<[@Sendable () -> Void]>([])
    private let blobs: BlobDirectory
    private let codec: OperationPayloadCodec
    private let threadPool: NIOThreadPool
    private let logger: Logger
    /// `Configuration.now`.
    private let now: @Sendable () -> Date

    private init(
        handle: SQLiteHandle,
        blobs: BlobDirectory,
        codec: OperationPayloadCodec,
        threadPool: NIOThreadPool,
        logger: Logger,
        now: @escaping @Sendable () -> Date
    ) {
        self.handle = handle
        self.blobs = blobs
        self.codec = codec
        self.threadPool = threadPool
        self.logger = logger
        self.now = now
    }

    /// Opens (creating when missing) the database, applies the schema, and removes blob directories left by
    /// a crash between writing blob files and committing their row.
    package static func open(
        _ configuration: Configuration,
        logger: Logger = Logger(label: "trigger-gateway.store.sqlite")
    ) async throws -> SQLiteOperationStore {
        // A thread of its own: a transaction spans several jobs (BEGIN … COMMIT), and on a shared pool the
        // jobs of another connection to the same file (a second handle in this process) could take every
        // thread busy-waiting for this connection's write lock, which it then could not release until
        // `busy_timeout`. One thread also keeps the statements of one connection in order without hand-offs.
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let blobs = BlobDirectory(root: configuration.blobDirectory)
        do {
            return try await open(configuration, threadPool: threadPool, blobs: blobs, logger: logger)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    /// Creates the data directory `path` when missing (`mkdir -p`) and checks it is a writable directory, as
    /// `open` does. `serve` calls it before it locks the directory (`DataDirectoryLock`), for either store.
    ///
    /// - Throws: `GatewayError(.unavailable)` naming the path (and the missing component) and the system's reason.
    package static func prepareDataDirectory(_ path: String) throws(GatewayError) {
        try BlobDirectory.makeWritableDirectory(path, what: "data directory")
    }

    /// What `check-config` can tell of the data directory `path` without making it: nil when it is a writable
    /// directory, or when its first existing ancestor is a directory the gateway's user may create it in; else
    /// why `serve` would fail ("/srv is not writable: Permission denied"). A relative `path` is not checked:
    /// it is relative to `serve`'s working directory, which `check-config`'s need not be (review 9, finding 10).
    package static func dataDirectoryProblem(_ path: String) -> String? {
        BlobDirectory.creationProblem(path)
    }

    /// A warning for the operator when the data directory `path` is open to other users (a group or other
    /// permission bit: one made 0755 by an older version, or by hand), naming it and its mode; nil when it is
    /// private (0700, as the gateway creates it). The store in it holds the inputs and results of async runs;
    /// the files themselves are created 0600 either way, so this warns rather than refusing to start.
    package static func dataDirectoryExposure(_ path: String) -> String? {
        guard let mode = BlobDirectory.exposure(of: path) else { return nil }
        return "the data directory \(path) is open to other users (mode 0\(String(mode, radix: 8))); "
            + "it holds the inputs and results of async runs: chmod 700 it"
    }

    private static func open(
        _ configuration: Configuration,
        threadPool: NIOThreadPool,
        blobs: BlobDirectory,
        logger: Logger
    ) async throws -> SQLiteOperationStore {
        // Errors here name the path and the OS reason: they reach the operator at start-up, never a client.
        try await threadPool.runIfActive {
            try BlobDirectory.makeWritableDirectory(configuration.dataDirectory, what: "data directory")
            try BlobDirectory.makeWritableDirectory(configuration.blobDirectory, what: "blob directory")
            try BlobDirectory.checkWritableIfPresent(configuration.databasePath, what: "database")
            // Left by a run as another user (root, once): SQLite says only "unable to open database file" (14) of
            // the database itself, which this user may own (operator review 58, F5).
            try BlobDirectory.checkWritableIfPresent(
                configuration.databasePath + "-wal", what: "database's write-ahead log")
            try BlobDirectory.checkWritableIfPresent(
                configuration.databasePath + "-shm", what: "database's shared-memory index")
            try BlobDirectory.createPrivateFileIfMissing(configuration.databasePath, what: "database")
        }
        let handle: SQLiteHandle
        do {
            handle = try await threadPool.runIfActive {
                let handle = try SQLiteHandle(path: configuration.databasePath)
                do {
                    // busy_timeout first, for this connection's whole life (`prepare` relies on it). `sqlite3_open`
                    // reads nothing: the header is read here, so that a file that is not a database
                    // (SQLITE_NOTADB) is refused with the path and SQLite's reason, not later by a store call as the
                    // clients' "unavailable; retry later", wrong advice for a file that will never open.
                    _ = try handle.run("PRAGMA busy_timeout = \(configuration.busyTimeout.milliseconds)", [])
                    _ = try handle.run("SELECT count(*) FROM sqlite_master", [])
                } catch {
                    handle.close()
                    throw error
                }
                return handle
            }
        } catch {
            throw GatewayError(.unavailable, "cannot open the database \(configuration.databasePath): \(error)")
        }
        let store = SQLiteOperationStore(
            handle: handle,
            blobs: blobs,
            codec: OperationPayloadCodec(inlineBlobLimit: configuration.inlineBlobLimit),
            threadPool: threadPool,
            logger: logger,
            now: configuration.now
        )
        do {
            try await store.prepare()
        } catch {
            try? await threadPool.runIfActive { handle.close() }
            throw error
        }
        return store
    }

    // MARK: OperationStore

    package func enqueue(
        _ request: TriggerRequest,
        idempotencyKey: String?
    ) async throws -> (operation: Operation, created: Bool) {
        let ticket = batcher.add(
            NewOperation(request: request, idempotencyKey: idempotencyKey, codec: codec, now: now()))
        return try await serialized {
            try await batcher.drain(until: ticket) { await commitPending() }
        }
    }

    // MARK: Group commit

    /// A claim waiting for its group commit: its statement, made by `claim`.
    struct PendingClaim: Sendable {
        var sql: String
        var binds: [SQLiteData]
    }

    /// A readiness probe's heartbeat waiting for its group commit.
    struct Heartbeat: Sendable {
        var instance: String
        /// Milliseconds since the epoch.
        var beatAt: Int64
    }

    /// What one group commit carries: the tickets taken from each kind's `GroupCommit`.
    private struct Batches {
        var completions: [CompletionBatcher.Ticket] = []
        var enqueues: [EnqueueBatcher.Ticket] = []
        var claims: [GroupCommit<PendingClaim, [Operation]>.Ticket] = []
        var heartbeats: [GroupCommit<Heartbeat, Void>.Ticket] = []

        /// Kinds of write present.
        var kinds: Int {
            [!completions.isEmpty, !enqueues.isEmpty, !claims.isEmpty, !heartbeats.isEmpty].filter { $0 }.count
        }

        /// Each kind alone, for retrying a failed group commit kind by kind.
        var split: [Batches] {
            [
                Batches(completions: completions), Batches(enqueues: enqueues), Batches(claims: claims),
                Batches(heartbeats: heartbeats),
            ].filter { $0.kinds > 0 }
        }

        /// The store calls this transaction carries, for `store.operation` on its failure ("enqueue", "complete+claim").
        var calls: String {
            [
                (!completions.isEmpty, "complete"), (!enqueues.isEmpty, "enqueue"), (!claims.isEmpty, "claim"),
                (!heartbeats.isEmpty, "probe"),
            ].filter(\.0).map(\.1).joined(separator: "+")
        }

        func fail(_ error: any Error) {
            for ticket in completions { ticket.outcome = .failure(error) }
            for ticket in enqueues { ticket.outcome = .failure(error) }
            for ticket in claims { ticket.outcome = .failure(error) }
            for ticket in heartbeats { ticket.outcome = .failure(error) }
        }
    }

    /// The answers of one group commit, given to their tickets only once the transaction is committed (a
    /// caller must never see a write that a failed `COMMIT` undid), with what to remove when it is not.
    private struct Answers {
        var enqueues: [(EnqueueBatcher.Ticket, EnqueueBatcher.Outcome)] = []
        var completions: [(CompletionBatcher.Ticket, CompletionBatcher.Outcome)] = []
        var claims: [(GroupCommit<PendingClaim, [Operation]>.Ticket, GroupCommit<PendingClaim, [Operation]>.Outcome)] =
            []
        /// Blob files written for this transaction: removed when it does not commit.
        var written: [(operationID: String, blobs: [SpilledBlob], wholeDirectory: Bool)] = []
        /// Blob files of writes the transaction did not make (a completion without the lease, an enqueue an
        /// idempotency key answered): removed once it committed.
        var unused: [(operationID: String, blobs: [SpilledBlob], wholeDirectory: Bool)] = []
    }

    /// Commits what is waiting (completions, enqueues, claims, heartbeats: at most `maxBatch` of each) in one
    /// transaction, one fsync, and answers each ticket; false when nothing was waiting. Call only holding `gate`.
    ///
    /// Completions go first, claims after enqueues, so a claim can take what the same transaction enqueued.
    /// When the transaction fails and it carried more than one kind of write, each kind is tried again in a
    /// transaction of its own, so a failure of one kind does not fail the others.
    private func commitPending() async -> Bool {
        let batches = Batches(
            completions: completions.takeBatch(), enqueues: batcher.takeBatch(), claims: claims.takeBatch(),
            heartbeats: heartbeats.takeBatch())
        switch batches.kinds {
        case 0:
            return false
        case 1:
            await commitTransaction(batches)
        default:
            do {
                try await runTransaction(batches)
            } catch {
                logger.debug(
                    "group commit failed; committing each kind of write alone", metadata: ["error": "\(error)"])
                for kind in batches.split { await commitTransaction(kind) }
            }
        }
        return true
    }

    /// One transaction for `batches`; every ticket is answered, with the failure when it fails.
    private func commitTransaction(_ batches: Batches) async {
        do {
            try await runTransaction(batches)
        } catch {
            batches.fail(error)
        }
    }

    /// `BEGIN IMMEDIATE`, the statements of each batch, `COMMIT`; then answers the tickets and wakes whoever
    /// waits for a commit (`probe`). On failure it rolls back, removes the blob files it wrote and throws, with
    /// no ticket answered.
    private func runTransaction(_ batches: Batches) async throws {
        try await StoreCall.$name.withValue(batches.calls) { try await runTransactionNamed(batches) }
    }

    private func runTransactionNamed(_ batches: Batches) async throws {
        var answers = Answers()
        do {
            // IMMEDIATE: the write lock from the start, so no other writer (another process on the file) can
            // make this transaction fail half-way with SQLITE_BUSY on its first write.
            try await query("BEGIN IMMEDIATE")
            do {
                try await storeResults(batches.completions, into: &answers)
                try await insertOperations(batches.enqueues, into: &answers)
                for ticket in batches.claims {
                    answers.claims.append((ticket, .success(try await runClaim(ticket.item))))
                }
                try await writeHeartbeats(batches.heartbeats)
                try await query("COMMIT")
            } catch {
                // Not through `query`: after SQLITE_FULL (and other errors) SQLite has rolled back already, and
                // this ROLLBACK's own "no transaction is active" is no second store failure to log (review 9 #7).
                _ = try? await threadPool.runIfActive { [handle] in try handle.run("ROLLBACK", []) }
                throw error
            }
        } catch {
            for file in answers.written {
                await removeBlobs(file.blobs, operationID: file.operationID, wholeDirectory: file.wholeDirectory)
            }
            throw error
        }
        for file in answers.unused {
            await removeBlobs(file.blobs, operationID: file.operationID, wholeDirectory: file.wholeDirectory)
        }
        for (ticket, outcome) in answers.completions { ticket.outcome = outcome }
        for (ticket, outcome) in answers.enqueues { ticket.outcome = outcome }
        for (ticket, outcome) in answers.claims { ticket.outcome = outcome }
        for ticket in batches.heartbeats { ticket.outcome = .success(()) }
        let waiting = commitWaiters.withLock { waiters in
            defer { waiters.removeAll() }
            return waiters
        }
        for wake in waiting { wake() }
    }

    /// The latest heartbeat of each instance in `batch`, inside the caller's transaction.
    private func writeHeartbeats(_ batch: [GroupCommit<Heartbeat, Void>.Ticket]) async throws {
        var latest: [String: Int64] = [:]
        for ticket in batch {
            latest[ticket.item.instance] = max(latest[ticket.item.instance] ?? 0, ticket.item.beatAt)
        }
        for (instance, beatAt) in latest.sorted(by: { $0.key < $1.key }) {
            try await query(
                """
                INSERT INTO heartbeats (instance, beat_at) VALUES (?, ?) \
                ON CONFLICT (instance) DO UPDATE SET beat_at = excluded.beat_at
                """,
                [.text(instance), .integer(Int(beatAt))]
            )
        }
    }

    /// The enqueues of `batch` with one multi-row `INSERT`, inside the caller's transaction. Idempotency keys
    /// are looked up before (a key found answers without inserting) and after (a key another writer or an
    /// earlier row of this batch inserted meanwhile: `ON CONFLICT DO NOTHING` skips the row). An enqueue that
    /// fails on its own (a conflict, a blob write) fails alone; a failed statement throws.
    private func insertOperations(_ batch: [EnqueueBatcher.Ticket], into answers: inout Answers) async throws {
        var pending: [EnqueueBatcher.Ticket] = []
        pending.reserveCapacity(batch.count)
        for ticket in batch {
            do {
                if let answer = try await existingAnswer(for: ticket) {
                    answers.enqueues.append((ticket, .success(answer)))
                    continue
                }
            } catch let error as GatewayError where error.code == .conflict {
                answers.enqueues.append((ticket, .failure(error)))
                continue
            }
            let spilled = ticket.item.encodedRequest.blobs
            if !spilled.isEmpty {
                let id = ticket.item.operation.id
                do {
                    try await onThreadPool { [blobs] in try blobs.write(operationID: id, blobs: spilled) }
                } catch {
                    await removeBlobs(spilled, operationID: id, wholeDirectory: true)
                    answers.enqueues.append((ticket, .failure(error)))
                    continue
                }
                answers.written.append((id, spilled, true))
            }
            pending.append(ticket)
        }
        guard !pending.isEmpty else { return }
        var binds: [SQLiteData] = []
        binds.reserveCapacity(pending.count * 10)
        for ticket in pending {
            // Each field read in place and appended alone: `let new = ticket.item` copied the whole `NewOperation`
            // (and `new.operation` its `Operation`) per row, and `binds += [...]` allocated an array per row.
            binds.append(.text(ticket.item.operation.id))
            binds.append(.text(ticket.item.pipelineKey))
            binds.append(.blob(ticket.item.encodedRequest.bytes))
            binds.append(.integer(Int(ticket.item.operation.createdAt.storeMilliseconds)))
            binds.append(.integer(Int(ticket.item.operation.notBefore.storeMilliseconds)))
            binds.append(ticket.item.idempotencyScope.sqlite)
            binds.append(ticket.item.operation.idempotencyKey.sqlite)
            binds.append(.text(ticket.item.operation.requestDigest))
            binds.append(.integer(ticket.item.encodedRequest.blobs.isEmpty ? 0 : 1))
            binds.append(ticket.item.deployment.sqlite)
        }
        // DO NOTHING: another process (a second gateway on the same file), or an earlier row of this batch, may
        // hold the key; the row is skipped and the existing one answers below. No `RETURNING id` (SQLite gathers
        // it in an ephemeral B-tree per run, issue 12): the count of rows inserted tells whether any was skipped,
        // and only then are the keyed rows looked up (a keyless row never conflicts: its key is NULL).
        let inserted = try await write(Self.enqueueStatement(rows: pending.count), binds, width: binds.count)[0]
        for ticket in pending {
            guard inserted < pending.count, let key = ticket.item.operation.idempotencyKey,
                let scope = ticket.item.idempotencyScope
            else {
                answers.enqueues.append((ticket, .success((ticket.item.operation, true))))
                continue
            }
            let new = ticket.item
            let existing = try await existingOperation(scope: scope, key: key)
            // The row its key names is this enqueue's own: inserted by this statement.
            if existing?.id == new.operation.id {
                answers.enqueues.append((ticket, .success((new.operation, true))))
                continue
            }
            if !new.encodedRequest.blobs.isEmpty {
                answers.unused.append((new.operation.id, new.encodedRequest.blobs, true))
            }
            do {
                if let answer = try new.idempotentAnswer(existing: existing)?.get() {
                    answers.enqueues.append((ticket, .success(answer)))
                } else {
                    let message = "operation store unavailable: idempotent insert found no row"
                    answers.enqueues.append((ticket, .failure(GatewayError(.unavailable, message))))
                }
            } catch let error as GatewayError where error.code == .conflict {
                answers.enqueues.append((ticket, .failure(error)))
            }
        }
    }

    /// The enqueue `INSERT` of `rows` operations (`insertOperations`): ten values a row, in the order it binds them.
    /// `DO NOTHING` skips a row whose idempotency key is taken; no `RETURNING` (see `insertOperations`).
    ///
    /// Built once per batch size for the texts `SQLiteHandle` keeps prepared (`keptTextLimit`), whose cache holds
    /// the same strings as keys: built at each batch it cost ~27 k instructions (`joined` over a `Repeated<String>`
    /// ran unspecialised), ~3.6 k per accepted-and-run operation (bench/README.md, branch asynccost3).
    static func enqueueStatement(rows: Int) -> String {
        if let text = enqueueStatements.withLock({ $0.indices.contains(rows) ? $0[rows] : nil }) { return text }
        let row = "(?, ?, 'queued', ?, ?, 0, ?, ?, ?, ?, ?, ?)"
        var text = """
            INSERT INTO operations (id, pipeline_key, state, request, created_at, attempts, not_before, \
            idempotency_scope, idempotency_key, request_digest, has_blobs, deployment) VALUES
            """
        let tail = " ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING"
        text.reserveCapacity(text.utf8.count + rows * (row.utf8.count + 2) + tail.utf8.count)
        for index in 0..<max(rows, 0) {
            text += index == 0 ? " " : ", "
            text += row
        }
        text += tail
        if text.utf8.count <= SQLiteHandle.keptTextLimit {
            enqueueStatements.withLock { texts in
                if texts.count <= rows { texts += repeatElement(nil, count: rows + 1 - texts.count) }
                texts[rows] = text
            }
        }
        return text
    }

    /// `enqueueStatement(rows:)`'s kept texts, indexed by row count (nil: not built yet).
    private static let enqueueStatements = Mutex<[String?]>([])

    /// The stored operation the idempotency key of `ticket`'s enqueue already names (created: false), nil when
    /// there is none. Takes the ticket, whose item it reads in place: a `NewOperation` argument was a copy of it.
    ///
    /// - Throws: `OperationStoreErrors.idempotencyConflict` when that operation was made from another request.
    private func existingAnswer(
        for ticket: EnqueueBatcher.Ticket
    ) async throws -> (operation: Operation, created: Bool)? {
        guard let key = ticket.item.operation.idempotencyKey, let scope = ticket.item.idempotencyScope else {
            return nil
        }
        return try ticket.item.idempotentAnswer(existing: try await existingOperation(scope: scope, key: key))?.get()
    }

    package func get(id: String) async throws -> Operation? {
        try await serialized {
            let rows = try await query("SELECT \(Self.selectColumns) FROM operations WHERE id = ?", [.text(id)])
            return try await makeOperations(rows).first
        }
    }

    package func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?) {
        let pageSize = OperationPaging.effectivePageSize(pageSize)
        var binds: [SQLiteData] = []
        let sql = try OperationPaging.listQuery(
            select: Self.selectColumns, from: "operations", filter: filter, pageSize: pageSize, pageToken: pageToken
        ) { value in
            switch value {
            case .text(let text): binds.append(.text(text))
            case .integer(let integer): binds.append(.integer(Int(integer)))
            }
            return "?"
        }
        let statementBinds = binds
        return try await serialized {
            let page = try OperationPaging.page(
                try await query(sql, statementBinds), pageSize: pageSize, filter: filter
            ) {
                try Self.operationRow($0).row.id
            }
            if page.rows.isEmpty, let cursor = OperationPaging.cursorID(pageToken),
                try await query("SELECT 1 FROM operations WHERE id = ?", [.text(cursor)]).isEmpty
            {
                throw OperationPaging.cursorGone()
            }
            return (try await makeOperations(page.rows), page.nextPageToken)
        }
    }

    package func cancel(id: String, webhookOwner: String?) async throws -> Operation {
        let now = self.now().storeMilliseconds
        // The pending webhook (`webhookOwner`) with the state change, in one statement.
        let webhook = webhookOwner == nil ? "" : ", webhook_due = ?1, webhook_attempts = 0, webhook_owner = ?3"
        var binds: [SQLiteData] = [.integer(Int(now)), .text(id)]
        if let webhookOwner { binds.append(.text(webhookOwner)) }
        let cancelBinds = binds
        return try await serialized {
            let rows = try await query(
                """
                UPDATE operations SET state = 'cancelled', finished_at = ?1, lease_expires_at = NULL\(webhook) \
                WHERE id = ?2 AND state IN ('queued', 'running') RETURNING \(Self.selectColumns)
                """,
                cancelBinds
            )
            if let cancelled = try await makeOperations(rows).first { return cancelled }
            let states = try await query("SELECT state FROM operations WHERE id = ?", [.text(id)])
            throw OperationStoreErrors.notCancellable(id, state: states.first?.column("state")?.string)
        }
    }

    package func claim(
        owner: String,
        leaseDuration: Duration,
        limit: Int,
        now: Date,
        scope: ClaimScope,
        takeover: LeaseTakeover
    ) async throws -> [Operation] {
        // `takeover` is not needed here: one process holds a SQLite store (its lock file refuses a second), so every
        // lease in it is this instance's own (its runs', which adopt their claims, or its previous process's), and
        // one clock, the process's, writes and compares them all.
        guard limit > 0,
            let statement = Self.claimStatement(
                owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: scope)
        else { return [] }
        let ticket = claims.add(statement)
        return try await serialized {
            try await claims.drain(until: ticket) { await commitPending() }
        }
    }

    /// The claim's statement: up to `limit` claimable operations (queued and due, or running with an expired
    /// lease) of `scope`, oldest first, leased to `owner`; nil when the scope names no pipeline.
    static func claimStatement(
        owner: String,
        leaseDuration: Duration,
        limit: Int,
        now: Date,
        scope: ClaimScope
    ) -> PendingClaim? {
        let nowMS = now.storeMilliseconds
        var binds: [SQLiteData] = [
            .text(owner), .integer(Int(nowMS + leaseDuration.milliseconds)), .integer(Int(nowMS)),
        ]
        let keyClause: String
        switch scope {
        case .all:
            keyClause = ""
        case .only(let keys):
            guard !keys.isEmpty else { return nil }
            keyClause = " AND pipeline_key IN (\(Self.placeholders(keys, after: &binds)))"
        case .excluding(let keys):
            keyClause = keys.isEmpty ? "" : " AND pipeline_key NOT IN (\(Self.placeholders(keys, after: &binds)))"
        }
        // One statement under SQLite's write lock (in the group commit's transaction), so no other writer (or
        // process) claims the same rows.
        //
        // The two kinds of claimable rows are two index walks, named (`INDEXED BY`) rather than left to the
        // planner: queued rows in `seq` order (`operations_by_state`, so `LIMIT` stops the walk early) and
        // expired leases (`operations_claim_leases`, which holds only running rows: at most the runs in
        // progress), merged by `seq`. Written as one `OR` with a
        // pipeline `IN (…)`, SQLite chose `operations_by_pipeline` and walked every row the pipeline ever had,
        // finished ones included, on each claim: 40 ms per claim with 30 000 finished rows (issue 12), so the
        // cost of a claim grew with the table. Now it grows with the queued rows the walk passes over.
        //
        // The limit is written into the statement, not bound: SQLite's compiler (`sqlite3ExprIsInteger`) marks a
        // bound `LIMIT` so that binding a value expires the statement, which `sqlite3_step` then compiles a second
        // time (`sqlite3Reprepare`): ~34 k instructions per accepted-and-run operation (bench/README.md, branch
        // asynccost). sqlite-nio prepares every statement anew, so distinct limits cost no cache.
        //
        // The expired leases are a MATERIALIZED CTE, read once before any row changes, so `RETURNING` can name each
        // taken-over row's previous owner (`previous_lease_owner`; `RETURNING` sees only the updated row): computed
        // once into a table both uses read, not evaluated again after the update (when those rows no longer match).
        let sql = """
            WITH expired AS MATERIALIZED (\
            SELECT seq, lease_owner FROM operations INDEXED BY operations_claim_leases \
            WHERE state = 'running' AND lease_expires_at <= ?3\(keyClause)) \
            UPDATE operations SET state = 'running', lease_owner = ?1, lease_expires_at = ?2, \
            attempts = attempts + 1, started_at = COALESCE(started_at, ?3) \
            WHERE seq IN (\
            SELECT seq FROM operations INDEXED BY operations_by_state \
            WHERE state = 'queued' AND not_before <= ?3\(keyClause) \
            UNION ALL \
            SELECT seq FROM expired \
            ORDER BY seq LIMIT \(max(limit, 0))) \
            RETURNING \(Self.selectColumns), \
            (SELECT lease_owner FROM expired WHERE expired.seq = operations.seq) AS previous_lease_owner
            """
        return PendingClaim(sql: sql, binds: binds)
    }

    /// One claim's statement, inside the group commit's transaction: the operations it took, oldest first.
    private func runClaim(_ claim: PendingClaim) async throws -> [Operation] {
        let rows = try await query(claim.sql, claim.binds)
        // RETURNING order is unspecified; hand them out oldest first (sorted once decoded: by name, each
        // comparison would hash the column name twice).
        let decoded = try rows.map { row in
            // `previous_lease_owner` follows `selectColumns`.
            (entry: try Self.operationRow(row), previousOwner: row.values.last?.string)
        }.sorted { $0.entry.row.sequence < $1.entry.row.sequence }
        var operations = try await makeOperations(decoded: decoded.map(\.entry))
        for index in operations.indices { operations[index].takenOverFrom = decoded[index].previousOwner }
        return operations
    }

    /// `?5, ?6, …`: numbered placeholders for `keys`, appended to `binds` (numbered because the claim statement
    /// refers to its first parameters by number).
    private static func placeholders(_ keys: Set<String>, after binds: inout [SQLiteData]) -> String {
        var marks: [String] = []
        for key in keys.sorted() {
            binds.append(.text(key))
            marks.append("?\(binds.count)")
        }
        return marks.joined(separator: ", ")
    }

    package func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool {
        let expires = now.storeMilliseconds + leaseDuration.milliseconds
        return try await serialized {
            try await !query(
                """
                UPDATE operations SET lease_expires_at = ? \
                WHERE id = ? AND state = 'running' AND lease_owner = ? RETURNING seq
                """,
                [.integer(Int(expires)), .text(id), .text(owner)]
            ).isEmpty
        }
    }

    package func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int {
        guard !ownerPrefix.isEmpty else { return 0 }
        let spared: SQLiteData = sparing.map { .text($0) } ?? .null
        return try await serialized {
            let ended = try await query(
                """
                UPDATE operations SET lease_expires_at = ?1 \
                WHERE state = 'running' AND substr(lease_owner, 1, length(?2)) = ?2 \
                AND (?3 IS NULL OR substr(lease_owner, 1, length(?3)) <> ?3) RETURNING seq
                """,
                [.integer(Int(now.storeMilliseconds)), .text(ownerPrefix), spared]
            ).count
            // Deliveries the earlier run held: claimable when due (`claimWebhooks`).
            try await query(
                """
                UPDATE operations SET webhook_owner = NULL \
                WHERE webhook_due IS NOT NULL AND substr(webhook_owner, 1, length(?1)) = ?1 \
                AND (?2 IS NULL OR substr(webhook_owner, 1, length(?2)) <> ?2)
                """,
                [.text(ownerPrefix), spared])
            return ended
        }
    }

    package func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]
    {
        guard limit > 0 else { return [] }
        let nowMS = now.storeMilliseconds
        return try await serialized {
            // On `operations_webhooks_due`, which holds the pending deliveries only (none for a route without a
            // webhook), so a claim that finds none reads nothing. The limit is written in (see `claimStatement`).
            let rows = try await query(
                """
                UPDATE operations SET webhook_owner = ?1, webhook_due = ?2 \
                WHERE seq IN (SELECT seq FROM operations INDEXED BY operations_webhooks_due \
                WHERE webhook_due IS NOT NULL AND webhook_due <= ?2 \
                AND (webhook_owner IS NULL OR webhook_due <= ?3) ORDER BY webhook_due LIMIT \(limit)) \
                RETURNING \(Self.selectColumns), webhook_attempts
                """,
                [.text(owner), .integer(Int(nowMS)), .integer(Int(nowMS - leaseDuration.milliseconds))])
            let decoded = try rows.map { row in
                (entry: try Self.operationRow(row), attempts: row.values.last?.integer ?? 0)
            }
            // One lost result file drops its own delivery (`lostResult`), not the batch (review 27 H1's kind).
            let attempts = decoded.map(\.attempts)
            return try await make(decoded.map(\.entry)) { index, row, resolveBlob in
                try row.makePendingWebhook(attempts: attempts[index], resolveBlob: resolveBlob)
            }
        }
    }

    package func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws
        -> Bool
    {
        // Cleared: the reservation goes with the due time.
        let binds: [SQLiteData] = [
            .integer(attempts), nextAttemptAt.map { .integer(Int($0.storeMilliseconds)) } ?? .null,
            nextAttemptAt == nil ? .null : .text(owner), .text(id), .text(owner),
        ]
        return try await serialized {
            try await !query(
                """
                UPDATE operations SET webhook_attempts = ?1, webhook_due = ?2, webhook_owner = ?3 \
                WHERE id = ?4 AND webhook_due IS NOT NULL AND webhook_owner = ?5 RETURNING seq
                """,
                binds
            ).isEmpty
        }
    }

    package func queuedCount() async throws -> Int {
        try await serialized {
            let rows = try await query(
                "SELECT count(*) AS n FROM operations INDEXED BY operations_by_state WHERE state = 'queued'")
            return rows.first?.column("n")?.integer ?? 0
        }
    }

    package func queuedByPipeline() async throws -> [PipelineQueue] {
        try await serialized {
            // The queued rows through `operations_by_state`, as `queuedCount()`, each row read for its key and
            // times; grouped with a temporary B-tree of one entry per pipeline. No index of its own: every index
            // costs B-tree updates per operation (issue 12), and this runs every few seconds, not per operation.
            let rows = try await query(
                """
                SELECT pipeline_key, count(*) AS n, \
                min(CASE WHEN attempts = 0 THEN created_at ELSE not_before END) AS since \
                FROM operations INDEXED BY operations_by_state WHERE state = 'queued' GROUP BY pipeline_key
                """)
            return rows.compactMap { row in
                guard let key = row.column("pipeline_key")?.string, let count = row.column("n")?.integer,
                    let since = row.column("since")?.integer
                else { return nil }
                return PipelineQueue(key: key, count: count, oldestSince: Date(storeMilliseconds: Int64(since)))
            }
        }
    }

    package func queuedCount(pipelineKey: String) async throws -> Int {
        try await serialized {
            // The pipeline's rows through `operations_by_pipeline` (its history since the last purge), the state
            // checked on each: rare (a warning's count), so no index of its own.
            let rows = try await query(
                """
                SELECT count(*) AS n FROM operations INDEXED BY operations_by_pipeline \
                WHERE pipeline_key = ? AND state = 'queued'
                """, [.text(pipelineKey)])
            return rows.first?.column("n")?.integer ?? 0
        }
    }

    package func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws
        -> Bool
    {
        let encoded = codec.encode(result, blobPrefix: ResultBlobPrefix.make())
        let ticket = completions.add(
            PendingCompletion(
                id: id, owner: owner, encoded: encoded, finishedAt: now.storeMilliseconds, webhook: webhook))
        return try await serialized {
            try await completions.drain(until: ticket) { await commitPending() }
        }
    }

    /// The results of `batch`, inside the caller's transaction: one kept `UPDATE` of the row by its `id` per
    /// completion, in the batch's order; each answer is true when the run still held its lease (the `UPDATE` changed
    /// its row). Result blob files are written (and fsynced) first; a completion whose files fail fails alone. A
    /// lease owner's second completion of one run in the same batch finds the row finished by the first and answers
    /// false, as the second of two calls one after the other would.
    ///
    /// One statement per row, not one `UPDATE … FROM (VALUES …) RETURNING` for the batch: SQLite materialised the
    /// `VALUES` list and gathered the `RETURNING` rows in two ephemeral B-trees, opened and freed at every batch,
    /// and compiled a text per batch size (issue 12; bench/README.md, branch asynccost2).
    private func storeResults(_ batch: [CompletionBatcher.Ticket], into answers: inout Answers) async throws {
        var pending: [CompletionBatcher.Ticket] = []
        pending.reserveCapacity(batch.count)
        for ticket in batch {
            let item = ticket.item
            let spilled = item.encoded.blobs
            if !spilled.isEmpty {
                do {
                    let id = item.id
                    try await onThreadPool { [blobs] in try blobs.write(operationID: id, blobs: spilled) }
                } catch {
                    await removeBlobs(spilled, operationID: item.id, wholeDirectory: false)
                    answers.completions.append((ticket, .failure(error)))
                    continue
                }
                answers.written.append((item.id, spilled, false))
            }
            pending.append(ticket)
        }
        guard !pending.isEmpty else { return }
        // Completions whose route has a webhook have a statement of their own (it records the delivery as
        // pending), so the others' is unchanged.
        var plain: [CompletionBatcher.Ticket] = []
        var webhooks: [CompletionBatcher.Ticket] = []
        for ticket in pending {
            if ticket.item.webhook { webhooks.append(ticket) } else { plain.append(ticket) }
        }
        try await storeResults(plain, statement: Self.completionStatement, into: &answers)
        try await storeResults(webhooks, statement: Self.completionWithWebhookStatement, into: &answers)
    }

    /// One `statement` (5 parameters, see `completionStatement`) per ticket of `pending`, their answers into
    /// `answers`.
    private func storeResults(
        _ pending: [CompletionBatcher.Ticket], statement: String, into answers: inout Answers
    ) async throws {
        guard !pending.isEmpty else { return }
        var binds: [SQLiteData] = []
        binds.reserveCapacity(pending.count * 5)
        for ticket in pending {
            let item = ticket.item
            binds += [
                .text(item.id), .text(item.owner), .blob(item.encoded.bytes), .integer(Int(item.finishedAt)),
                .integer(item.encoded.blobs.isEmpty ? 0 : 1),
            ]
        }
        let changed = try await write(statement, binds, width: 5)
        for (ticket, count) in zip(pending, changed) {
            let item = ticket.item
            let done = count > 0
            if !done, !item.encoded.blobs.isEmpty { answers.unused.append((item.id, item.encoded.blobs, false)) }
            answers.completions.append((ticket, .success(done)))
        }
    }

    /// A completion's `UPDATE` (`storeResults`): `?1` id, `?2` lease owner, `?3` result, `?4` finished-at milliseconds,
    /// `?5` whether the result has blob files. Only a row still `running` under that owner is written.
    static let completionStatement = """
        UPDATE operations SET state = 'succeeded', result = ?3, error = NULL, finished_at = ?4, \
        lease_expires_at = NULL, has_blobs = MAX(has_blobs, ?5) \
        WHERE id = ?1 AND state = 'running' AND lease_owner = ?2
        """

    /// `completionStatement` that also records the completion webhook as pending: due at the finish, no attempt
    /// made, reserved for the completing lease owner (who sends it at once).
    static let completionWithWebhookStatement = """
        UPDATE operations SET state = 'succeeded', result = ?3, error = NULL, finished_at = ?4, \
        lease_expires_at = NULL, has_blobs = MAX(has_blobs, ?5), \
        webhook_due = ?4, webhook_attempts = 0, webhook_owner = ?2 \
        WHERE id = ?1 AND state = 'running' AND lease_owner = ?2
        """

    package func fail(
        id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool
    ) async throws -> Bool {
        let encodedError = OperationPayloadCodec.encode(error)
        let sql: String
        var binds: [SQLiteData] = [.blob(encodedError)]
        if let retryAt {
            sql = """
                UPDATE operations SET state = 'queued', error = ?, not_before = ?, lease_owner = NULL, \
                lease_expires_at = NULL WHERE id = ? AND state = 'running' AND lease_owner = ? RETURNING seq
                """
            binds.append(.integer(Int(retryAt.storeMilliseconds)))
        } else {
            // With a webhook, its delivery is pending from the finish (`?2`), reserved for the owner (`?4`).
            let pending = webhook ? ", webhook_due = ?2, webhook_attempts = 0, webhook_owner = ?4" : ""
            sql = """
                UPDATE operations SET state = 'failed', error = ?1, finished_at = ?2, lease_expires_at = NULL\(pending) \
                WHERE id = ?3 AND state = 'running' AND lease_owner = ?4 RETURNING seq
                """
            binds.append(.integer(Int(now.storeMilliseconds)))
        }
        binds += [.text(id), .text(owner)]
        let finalBinds = binds
        return try await serialized {
            try await !query(sql, finalBinds).isEmpty
        }
    }

    package func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool {
        // A claim whose call reached no runner takes its start back too when no earlier run reached one
        // (`attempts` was this claim's 1): `started_at` says when a runner was first reached (M1, review 23).
        let counts =
            callMade
            ? "cut_runs = cut_runs + 1"
            : "attempts = MAX(attempts - 1, 0), started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END"
        return try await serialized {
            try await !query(
                """
                UPDATE operations SET state = 'queued', \(counts), not_before = ?, \
                lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND state = 'running' AND lease_owner = ? \
                RETURNING seq
                """,
                [.integer(Int(notBefore.storeMilliseconds)), .text(id), .text(owner)]
            ).isEmpty
        }
    }

    package func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool {
        // Already at `target`: a repeat whose first call committed (its reply lost) answers true, changing nothing.
        let target = max(attempts - count, 0)
        return try await serialized {
            try await !query(
                """
                UPDATE operations SET attempts = ? \
                WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts IN (?, ?) RETURNING seq
                """,
                [.integer(target), .text(id), .text(owner), .integer(attempts), .integer(target)]
            ).isEmpty
        }
    }

    package func purge(finishedBefore: Date) async throws -> Int {
        try await serialized {
            let rows = try await query(
                """
                DELETE FROM operations WHERE finished_at IS NOT NULL AND finished_at < ? AND webhook_due IS NULL \
                RETURNING id, has_blobs
                """,
                [.integer(Int(finishedBefore.storeMilliseconds))]
            )
            return try await removeBlobs(ofDeleted: rows)
        }
    }

    package func delete(id: String) async throws -> Bool {
        try await serialized {
            let rows = try await query(
                """
                DELETE FROM operations WHERE id = ? AND finished_at IS NOT NULL AND webhook_due IS NULL \
                RETURNING id, has_blobs
                """,
                [.text(id)]
            )
            return try await removeBlobs(ofDeleted: rows) == 1
        }
    }

    /// The blob files of the operations a `DELETE … RETURNING id, has_blobs` removed; returns how many rows it
    /// removed. Inside `serialized`.
    private func removeBlobs(ofDeleted rows: [SQLiteResultRow]) async throws -> Int {
        // Rows first, files second: a crash in between leaves orphan files (swept at open), never a row
        // whose blobs are gone.
        let withBlobs = rows.compactMap { row -> String? in
            row.column("has_blobs")?.integer == 1 ? row.column("id")?.string : nil
        }
        if !withBlobs.isEmpty {
            try await onThreadPool { [blobs] in
                for id in withBlobs { blobs.remove(operationID: id) }
            }
        }
        return rows.count
    }

    /// False: one process uses the file (the data directory's lock keeps a second gateway out of it).
    package func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool { false }

    /// Readiness (`StoreHealthService`): the store can commit. The heartbeat joins the next group commit rather
    /// than queueing for the gate behind every accept, claim and completion waiting there, and the probe is
    /// answered as soon as any group commit reaches `COMMIT` after it began (its own or one already under way):
    /// a store busy committing is healthy. Before, the probe was a statement of its own at the back of the
    /// gate's queue, and on a loaded machine it could wait out the probe's 2 s timeout behind group commits
    /// that all succeeded, which marked async NOT_SERVING (503s) while the store was fine.
    ///
    /// - Throws: the failure of the transaction that carried the heartbeat, when no commit succeeded first.

    package func probe(instance: String, now: Date) async throws {
        let ticket = heartbeats.add(Heartbeat(instance: instance, beatAt: now.storeMilliseconds))
        let outcome = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Void, any Error>, Never>) in
            let once = ResumeOnce(continuation)
            commitWaiters.withLock { $0.append { once.resume(.success(())) } }
            Task {
                do {
                    try await self.serialized {
                        try await self.heartbeats.drain(until: ticket) { await self.commitPending() }
                    }
                    once.resume(.success(()))
                } catch {
                    once.resume(.failure(error))
                }
            }
        }
        try outcome.get()
    }

    package func close() async throws {
        try await serialized {
            guard !handle.isClosed else { return }
            try await threadPool.runIfActive { [handle] in handle.close() }
            // Later calls fail as unavailable (the pool refuses work), as they did on the closed connection.
            try await threadPool.shutdownGracefully()
        }
    }

    deinit {
        // A store dropped without `close()` (a failed start, a test) must not leave its thread running; a pool
        // already shut down ignores this. The handle is closed on that thread first (review 16, F9): closing the
        // last connection checkpoints the WAL with an fsync, which must not run on whatever thread dropped the store
        // (an event loop's). Work queued before the shutdown still runs (its state then `.cancelled`).
        threadPool.submit { [handle] _ in handle.close() }
        threadPool.shutdownGracefully { _ in }
    }

    /// Statements compiled since open (tests: a statement text run again is not compiled again, issue 12).
    package func compiledStatementCount() async throws -> Int {
        try await threadPool.runIfActive { [handle] in handle.compiled }
    }

    /// Names of the blob files kept for an operation (diagnostics and tests).
    package func storedBlobNames(operationID: String) async throws -> [String] {
        try await onThreadPool { [blobs] in
            let names = try? FileManager.default.contentsOfDirectory(atPath: blobs.directory(for: operationID))
            return (names ?? []).sorted()
        }
    }

    // MARK: Internals

    /// `OperationRow.columns` plus whether blob files exist (so rows without them decode without a thread hop).
    static let selectColumns = "\(OperationRow.columns), has_blobs"

    /// WAL, `synchronous`, the schema and the orphan sweep. `busy_timeout` is already set: `open` sets it on the
    /// connection before its first read of the file (switching to WAL waits for another process's lock on the
    /// file, as every later statement does; sqlite-nio's connection waited without bound before it was set).
    private func prepare() async throws {
        try await serialized {
            // journal_mode=WAL persists in the file; synchronous and busy_timeout are per connection.
            let mode = try await query("PRAGMA journal_mode = WAL").first?.column("journal_mode")?.string
            if mode?.lowercased() != "wal" {
                // Some filesystems (network mounts) cannot do WAL; rollback journaling is still durable.
                logger.warning("SQLite did not switch to WAL", metadata: ["sqlite.journal_mode": "\(mode ?? "?")"])
            }
            try await query("PRAGMA synchronous = FULL")
            try await query("BEGIN IMMEDIATE")
            do {
                try await createSchema()
                try await query("COMMIT")
            } catch {
                _ = try? await threadPool.runIfActive { [handle] in try handle.run("ROLLBACK", []) }
                throw error
            }
            try await sweepOrphanBlobs()
        }
    }

    private func createSchema() async throws {
        try await query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        let version = try await query("SELECT version FROM schema_version").first?.column("version")?.integer
        switch version {
        case nil:
            for statement in Self.schema { try await query(statement) }
            try await query("INSERT INTO schema_version (version) VALUES (?)", [.integer(Self.schemaVersion)])
        case Self.schemaVersion?:
            break
        case let other?:
            throw GatewayError(
                .unavailable,
                "operation store schema version \(other) is not supported (this gateway knows \(Self.schemaVersion))"
            )
        }
        // Readiness probes write here (one row per gateway instance). Not versioned: it holds nothing durable,
        // and a store created before it existed gains it on the next start.
        try await query(
            "CREATE TABLE IF NOT EXISTS heartbeats (instance TEXT PRIMARY KEY, beat_at INTEGER NOT NULL)"
        )
        // Schedule state (SQLiteOperationStore+Schedules.swift); not versioned, added the same way.
        try await query(Self.schedulesTable)
        try await addColumns()
        try await migrateIndexes()
    }

    /// Adds the columns of `OperationRow.addedColumns` a store made by an earlier gateway lacks (additive: an
    /// earlier gateway opening the file again ignores them), and the index of `OperationFilter.deployment`.
    private func addColumns() async throws {
        let present = Set(
            try await query("PRAGMA table_info(operations)").compactMap { $0.column("name")?.string })
        for (name, definition) in OperationRow.addedColumns where !present.contains(name) {
            try await query("ALTER TABLE operations ADD COLUMN \(name) \(definition)")
        }
        // Partial: operations of no deployment (most) are not in it.
        try await query(
            """
            CREATE INDEX IF NOT EXISTS operations_by_deployment ON operations (deployment, seq) \
            WHERE deployment IS NOT NULL
            """)
        // The pending webhook deliveries (`claimWebhooks`); partial, so a route without a webhook adds nothing.
        try await query(
            """
            CREATE INDEX IF NOT EXISTS operations_webhooks_due ON operations (webhook_due) \
            WHERE webhook_due IS NOT NULL
            """)
    }

    private static let schema = [
        """
        CREATE TABLE operations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            pipeline_key TEXT NOT NULL,
            state TEXT NOT NULL,
            request BLOB NOT NULL,
            result BLOB,
            error BLOB,
            created_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at INTEGER,
            not_before INTEGER NOT NULL,
            idempotency_scope TEXT,
            idempotency_key TEXT,
            request_digest TEXT NOT NULL,
            has_blobs INTEGER NOT NULL DEFAULT 0,
            UNIQUE (idempotency_scope, idempotency_key)
        )
        """,
        "CREATE INDEX operations_by_pipeline ON operations (pipeline_key, seq)",
        "CREATE INDEX operations_by_state ON operations (state, seq)",
        "CREATE INDEX operations_finished ON operations (finished_at) WHERE finished_at IS NOT NULL",
    ]

    /// Index changes since schema version 1, made at every open (each is a no-op once made), so a store created by
    /// an earlier gateway gets them too; the rows are untouched.
    ///
    /// Every index is maintained on every write of a row that changes its key, and an operation's row is written
    /// three times (enqueue, claim, completion), so an index no statement reads costs three B-tree updates per
    /// operation for nothing (issue 12: CPU per accepted operation):
    /// - `operations_claim_queued (state, not_before, seq)`: no statement has used it since claims walk
    ///   `operations_by_state` (see `claimStatement`); dropped.
    /// - `operations_claim_leases` was `(state, lease_expires_at)` over every row, finished ones included, moved on
    ///   each state change; the claim only ever reads its `state = 'running'` part. It is now
    ///   `(lease_expires_at) WHERE state = 'running'`: a row enters it when claimed and leaves it when finished or
    ///   queued again, and an enqueue does not touch it. The name stays, so an earlier gateway started again on the
    ///   same file (a rollback) still finds the index its claim names (`INDEXED BY`), and can use it.
    private func migrateIndexes() async throws {
        let leases = try await query(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'operations_claim_leases'"
        ).first?.column("sql")?.string
        if leases != Self.claimLeasesIndex {
            if leases != nil { try await query("DROP INDEX operations_claim_leases") }
            try await query(Self.claimLeasesIndex)
        }
        try await query("DROP INDEX IF EXISTS operations_claim_queued")
    }

    /// As `sqlite_master` keeps it (the statement's text), which is how `migrateIndexes` tells it from the earlier
    /// index of that name.
    static let claimLeasesIndex =
        "CREATE INDEX operations_claim_leases ON operations (lease_expires_at) WHERE state = 'running'"

    private func sweepOrphanBlobs() async throws {
        let ids = try await onThreadPool { [blobs] in blobs.operationIDs() }
        for id in ids {
            let rows = try await query("SELECT seq FROM operations WHERE id = ?", [.text(id)])
            if rows.isEmpty {
                logger.info("removing orphan blob directory", metadata: ["operation.id": "\(id)"])
                try await onThreadPool { [blobs] in blobs.remove(operationID: id) }
            }
        }
    }

    func serialized<T>(_ body: () async throws -> T) async throws -> T {
        try await gate.holding(body)
    }

    /// The store call a failing statement belongs to, for the warning's `store.operation` (``StoreCall``; a
    /// transaction's writes: ``Batches/calls``); "sqlite" outside any (the store used bare, in tests).
    static var call: String { StoreCall.name ?? "sqlite" }

    @discardableResult
    func query(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteResultRow] {
        do {
            return try await threadPool.runIfActive { [handle] in try handle.run(sql, binds) }
        } catch {
            throw storeFailure(error)
        }
    }

    /// `SQLiteHandle.changes` on the store's thread: `sql` (a write without `RETURNING`) run once per `width` values
    /// of `binds`, and the rows each run changed. Failures as `query`'s.
    func write(_ sql: String, _ binds: [SQLiteData], width: Int) async throws -> [Int] {
        do {
            return try await threadPool.runIfActive { [handle] in try handle.changes(sql, binds, width: width) }
        } catch {
            throw storeFailure(error)
        }
    }

    /// A failed statement as the store's callers see it: `.unavailable`, logged under `store.operation`.
    private func storeFailure(_ error: any Error) -> any Error {
        if let failure = error as? SQLiteHandle.Failure, failure.isFull {
            // The operator's words for SQLITE_FULL (review 9 #7): the fix is disk space, not the store.
            return OperationStoreErrors.unavailable(
                Self.call, failure, described: "the disk holding \(dataDirectory) is full (SQLITE_FULL)",
                diskFull: true, logger: logger
            )
        }
        return OperationStoreErrors.unavailable(Self.call, error, logger: logger)
    }

    /// The data directory (the blob directory's parent), as the log names it.
    private var dataDirectory: String {
        blobs.root.hasSuffix("/blobs") ? String(blobs.root.dropLast(6)) : blobs.root
    }

    private func onThreadPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await threadPool.runIfActive(body)
        } catch let full as BlobDirectory.SpaceExhausted {
            // As SQLITE_FULL: the same disk (review 21, M3: a blob file's ENOSPC read "unavailable; retry later").
            throw OperationStoreErrors.unavailable(
                StoreCall.name ?? "blob_files", full, described: "the disk holding \(dataDirectory) is full (\(full))",
                diskFull: true, logger: logger)
        } catch {
            throw OperationStoreErrors.unavailable(StoreCall.name ?? "blob_files", error, logger: logger)
        }
    }

    private func makeOperations(_ rows: [SQLiteResultRow]) async throws -> [Operation] {
        try await makeOperations(decoded: rows.map(Self.operationRow))
    }

    private func makeOperations(decoded: [(row: OperationRow, hasBlobs: Bool)]) async throws -> [Operation] {
        try await make(decoded) { _, row, resolveBlob in try row.makeOperation(resolveBlob: resolveBlob) }
    }

    /// `make(index, row, resolveBlob)` of each row, where `resolveBlob` reads the row's blob files: on the thread
    /// pool when some row has blob files (the reads block), else here with a resolver that throws.
    private func make<Made: Sendable>(
        _ decoded: [(row: OperationRow, hasBlobs: Bool)],
        _ make: @escaping @Sendable (Int, OperationRow, @escaping (String) throws -> ByteBuffer) throws -> Made
    ) async throws -> [Made] {
        let blobs = self.blobs
        guard decoded.contains(where: \.hasBlobs) else {
            return try decoded.enumerated().map { try make($0, $1.row, Self.noBlobs) }
        }
        return try await threadPool.runIfActive {
            try decoded.enumerated().map { index, entry in
                try make(index, entry.row) { try blobs.read(operationID: entry.row.id, name: $0) }
            }
        }
    }

    private func existingOperation(scope: String, key: String) async throws -> Operation? {
        let rows = try await query(
            "SELECT \(Self.selectColumns) FROM operations WHERE idempotency_scope = ? AND idempotency_key = ?",
            [.text(scope), .text(key)]
        )
        return try await makeOperations(rows).first
    }

    /// Removes blob files no committed row names: a request's whole directory (`wholeDirectory`), or only a
    /// result's files (the request's stay).
    private func removeBlobs(_ spilled: [SpilledBlob], operationID: String, wholeDirectory: Bool) async {
        guard !spilled.isEmpty else { return }
        let names = spilled.map(\.name)
        _ = try? await onThreadPool { [blobs] in
            if wholeDirectory {
                blobs.remove(operationID: operationID)
            } else {
                blobs.remove(operationID: operationID, names: names)
            }
        }
    }

    private static func noBlobs(_ name: String) throws -> ByteBuffer {
        throw GatewayError(.internalError, "stored operation names blob \(name) but has no blob files")
    }

    /// The columns `operationRow` reads, in the order `selectColumns` lists them (a test holds `names` equal to
    /// that list): a row with exactly these names is read by position (`rawValue`), any other by name.
    enum SelectColumn: Int, CaseIterable {
        case seq, id, state, request, result, error, createdAt, startedAt, finishedAt, attempts, leaseOwner
        case leaseExpiresAt, notBefore, idempotencyKey, requestDigest, cutRuns, hasBlobs

        /// The column's name in the table.
        var name: String {
            switch self {
            case .seq: "seq"
            case .id: "id"
            case .state: "state"
            case .request: "request"
            case .result: "result"
            case .error: "error"
            case .createdAt: "created_at"
            case .startedAt: "started_at"
            case .finishedAt: "finished_at"
            case .attempts: "attempts"
            case .leaseOwner: "lease_owner"
            case .leaseExpiresAt: "lease_expires_at"
            case .notBefore: "not_before"
            case .idempotencyKey: "idempotency_key"
            case .requestDigest: "request_digest"
            case .cutRuns: "cut_runs"
            case .hasBlobs: "has_blobs"
            }
        }

        /// Every case's `name`, in position order.
        static let names = allCases.map(\.name)
        /// The columns of a claim's rows (`claimStatement`): these, then `previous_lease_owner`.
        static let claimNames = names + ["previous_lease_owner"]
    }

    private static func operationRow(_ row: SQLiteResultRow) throws -> (row: OperationRow, hasBlobs: Bool) {
        // A row of `SELECT selectColumns` (or `RETURNING` them) has its columns in that order: read by position,
        // a constant each (finding each column's position by name compared ~150 short strings per row, ~8 k
        // instructions per accepted-and-run operation; bench/README.md, branch asynccost3). Any other layout is
        // read by name.
        // A claim's rows have `previous_lease_owner` after them.
        let positional = row.names == SelectColumn.names || row.names == SelectColumn.claimNames
        func field(_ column: SelectColumn) -> SQLiteData? {
            positional ? row.values[column.rawValue] : row.column(column.name)
        }
        func damaged(_ column: SelectColumn) -> GatewayError {
            GatewayError(.internalError, "operation row is damaged (\(column.name))")
        }
        func int(_ column: SelectColumn) throws -> Int64 {
            guard let value = field(column)?.integer else { throw damaged(column) }
            return Int64(value)
        }
        func optionalInt(_ column: SelectColumn) -> Int64? {
            field(column)?.integer.map(Int64.init)
        }
        func text(_ column: SelectColumn) throws -> String {
            guard let value = field(column)?.string else { throw damaged(column) }
            return value
        }
        func optionalBlob(_ column: SelectColumn) -> ByteBuffer? {
            field(column)?.blob
        }
        guard let request = optionalBlob(.request) else { throw damaged(.request) }
        let operationRow = OperationRow(
            sequence: try int(.seq),
            id: try text(.id),
            state: try text(.state),
            request: request,
            result: optionalBlob(.result),
            error: optionalBlob(.error),
            createdAt: try int(.createdAt),
            startedAt: optionalInt(.startedAt),
            finishedAt: optionalInt(.finishedAt),
            attempts: Int(try int(.attempts)),
            leaseOwner: field(.leaseOwner)?.string,
            leaseExpiresAt: optionalInt(.leaseExpiresAt),
            notBefore: try int(.notBefore),
            idempotencyKey: field(.idempotencyKey)?.string,
            requestDigest: try text(.requestDigest),
            cutRuns: Int(optionalInt(.cutRuns) ?? 0)
        )
        return (operationRow, optionalInt(.hasBlobs) == 1)
    }
}

extension Optional where Wrapped == String {
    fileprivate var sqlite: SQLiteData { map { .text($0) } ?? .null }
}

/// A continuation resumed by whichever of its callers comes first; later calls do nothing.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ value: T) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
