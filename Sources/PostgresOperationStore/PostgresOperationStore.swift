package import FoundationEssentials
package import Logging
import NIOCore
package import OperationStore
import NIOSSL
import PostgresNIO
import Synchronization
package import TriggerModel

/// The shared operation store: several gateway instances use one PostgreSQL database; any of them answers
/// for any operation, and their dispatchers split the work with `FOR UPDATE SKIP LOCKED` claims and leases.
///
/// Blobs over the inline limit go to a `bytea` side table (`<prefix>operation_blobs`), not to local files:
/// every instance must be able to read every operation's blobs, and the side table needs no shared
/// filesystem. A blob row is inserted in the same transaction as the operation row that names it, and is
/// deleted with it (`ON DELETE CASCADE`).
///
/// The store owns its `PostgresClient` and runs the client's `run()` in a task it starts in `open` and
/// cancels in `close()`, so callers only open and close it.
package final class PostgresOperationStore: OperationStore {
    package typealias Configuration = PostgresOperationStoreConfiguration

    static let schemaVersion = 1

    let client: PostgresClient
    /// Group commit of enqueues (see `EnqueueBatcher`), in `enqueueLaneCount` lanes taken in turn: the holder of a
    /// lane's gate commits the lane's batch. One lane kept one batch in flight, so an accept waited for the batch
    /// ahead of it (its statement, WAL flush and confirmation, ~10 ms under load) and then for its own, while the
    /// disk was idle between them. With several lanes, batches on separate connections overlap, and PostgreSQL
    /// flushes the WAL of commits that wait together once (bench/README.md, branch pgstore).
    private let enqueueLanes = (0..<PostgresOperationStore.enqueueLaneCount).map { _ in
        EnqueueLane(batcher: EnqueueBatcher(), gate: SerialGate())
    }
    private let nextEnqueueLane = Atomic<Int>(0)
    /// Enqueue batches in flight at most: each holds one pool connection while it commits.
    static let enqueueLaneCount = 3
    /// Group commit of completions (see `CompletionBatcher`), with a gate of its own: a completion batch and an
    /// enqueue batch are separate transactions on separate connections and need not wait for each other
    /// (PostgreSQL flushes the WAL of concurrent commits together). One gate and one transaction for both,
    /// with the claims, as in the SQLite store, measured slower here (bench/README.md, issue 12).
    private let completions = CompletionBatcher()
    private let completionGate = SerialGate()
    /// Transactions `enqueue` has run: fewer than the enqueues when commits were shared (for tests).
    package var enqueueTransactionCount: Int { enqueueLanes.reduce(0) { $0 + $1.batcher.transactions } }
    /// Transactions `complete` has run: fewer than the completions when commits were shared (for tests).
    package var completionTransactionCount: Int { completions.transactions }
    private let runTask: Task<Void, Never>
    private let codec: OperationPayloadCodec
    private let timeout: Duration
    let logger: Logger
    /// How to reach the server: ``connectionLost()`` opens its own session with it.
    private let configuration: Configuration
    let operations: String
    let blobTable: String
    private let versionTable: String
    private let heartbeatTable: String
    /// This store's heartbeat nonce (`probe`): random per store, so per process and per reconnect.
    private let bootNonce = Operation.makeID()
    /// Whether `probe` has written a heartbeat yet (its first beat may replace a crashed run's).
    private let hasBeaten = Atomic<Bool>(false)
    /// The newest heartbeat of another boot that a `probe` replaced (`beat_at`, the writer's milliseconds; 0: none):
    /// `instanceInUseElsewhere` reads it when this store's own beat has overwritten the row meanwhile.
    private let foreignBeatReplaced = Atomic<Int64>(0)
    /// Schedule state (PostgresOperationStore+Schedules.swift).
    let scheduleTable: String
    /// `Configuration.now`.
    private let now: @Sendable () -> Date
    /// How far the database server's clock is ahead of `now` (negative: behind), in milliseconds, as last measured
    /// (`measureServerClock`): what `leaseMilliseconds` adds.
    private let serverClockSkew = Atomic<Int64>(0)
    /// Why the pool cannot open connections (``ConnectionRefusalDiagnosis``).
    private let connectDiagnosis: ConnectionRefusalDiagnosis
    /// `sentTexts`' value, made at its first use.
    private let sentTextsMade = Mutex<SentTexts?>(nil)

    private init(
        client: PostgresClient, runTask: Task<Void, Never>, configuration: Configuration, logger: Logger,
        connectDiagnosis: ConnectionRefusalDiagnosis
    ) {
        self.connectDiagnosis = connectDiagnosis
        self.configuration = configuration
        self.client = client
        self.runTask = runTask
        self.codec = OperationPayloadCodec(inlineBlobLimit: configuration.inlineBlobLimit)
        self.timeout = configuration.operationTimeout
        self.logger = logger
        self.operations = "\(configuration.tablePrefix)operations"
        self.blobTable = "\(configuration.tablePrefix)operation_blobs"
        self.versionTable = "\(configuration.tablePrefix)schema_version"
        self.heartbeatTable = "\(configuration.tablePrefix)heartbeats"
        self.scheduleTable = "\(configuration.tablePrefix)schedules"
        self.now = configuration.now
    }

    /// Starts the client and creates the schema when missing. Throws `.unavailable` when the server cannot
    /// be reached within `operationTimeout`.
    package static func open(
        _ configuration: Configuration,
        logger: Logger = Logger(label: "trigger-gateway.store.postgres")
    ) async throws -> PostgresOperationStore {
        guard configuration.validTablePrefix else {
            throw GatewayError(.invalidArgument, "invalid PostgreSQL table prefix \"\(configuration.tablePrefix)\"")
        }
        let connectDiagnosis = ConnectionRefusalDiagnosis(
            poolSize: max(1, configuration.maximumConnections), logger: logger
        ) { try await probeConnection(configuration, logger: logger) }
        var poolLogger = logger
        poolLogger.handler = PoolEventsLogHandler(base: logger.handler) { connectDiagnosis.run() }
        let client = PostgresClient(configuration: clientConfiguration(configuration), backgroundLogger: poolLogger)
        let runTask = Task { await client.run() }
        let store = PostgresOperationStore(
            client: client,
            runTask: runTask,
            configuration: configuration,
            logger: logger,
            connectDiagnosis: connectDiagnosis
        )
        do {
            // Within the operation timeout, like every call (a connect attempt alone may take longer).
            try await store.bounded("connect", forOperator: true) {
                try await probeConnection(configuration, logger: logger)
            }
            try await store.createSchema(role: configuration.username)
            try await store.bounded("connect", forOperator: true) { try await store.measureServerClock() }
        } catch {
            try? await store.close()
            throw error
        }
        return store
    }

    /// The pool's configuration for `configuration`.
    ///
    /// No keep-alive queries (PostgresNIO's default: `SELECT 1` on a connection idle for 30 s). With no minimum of
    /// connections, the pool closes a connection idle for `connectionIdleTimeout` (60 s), so a ping reached only
    /// the connections idle between 30 and 60 s; yet the pool armed the keep-alive timer each time it parked a
    /// connection and cancelled it at the next lease, a statement each: a task in the pool's group, a task group
    /// with two child tasks (a `Task.sleep` and a cancellation continuation) and the sleep's timer, ~3 of the ~12
    /// tasks and ~16 of the ~90 locks made per accepted-and-run operation (bench/README.md, branch asynccost3). A
    /// session the server ends (restart, failover, `pg_terminate_backend`) closes its socket, which the pool sees
    /// without a ping; `connectionLost` watches for that too. The idle-timeout timer is still armed at each park
    /// (a minimum of connections would spare it, but then keep-alive queries are what find a dead idle one).
    static func clientConfiguration(_ configuration: Configuration) -> PostgresClient.Configuration {
        var clientConfiguration = PostgresClient.Configuration(
            host: configuration.host,
            port: configuration.port,
            username: configuration.username,
            password: configuration.password,
            database: configuration.database,
            tls: configuration.tls.clientTLS
        )
        clientConfiguration.options.connectTimeout = configuration.connectTimeout
        if let name = configuration.applicationName {
            clientConfiguration.options.additionalStartupParameters = [("application_name", name)]
        }
        clientConfiguration.options.maximumConnections = max(1, configuration.maximumConnections)
        clientConfiguration.options.keepAliveBehavior = nil
        return clientConfiguration
    }

    /// One connection made and closed before the pool starts, so that `open` fails with the reason a
    /// connection cannot be made (refused, TLS refused by the server, a certificate not trusted or not naming the
    /// host, authentication): the pool retries a failing connection in the background, and a call waiting on it
    /// only learns that it timed out.
    ///
    /// - Throws: `GatewayError(.unavailable)` with `PostgresErrorDescription`'s words.
    private static func probeConnection(_ configuration: Configuration, logger: Logger) async throws {
        let probe = try sessionConfiguration(configuration)
        do {
            let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
            try? await connection.close()
        } catch {
            throw GatewayError(
                .unavailable,
                PostgresErrorDescription.describe(error, sslMode: configuration.tls.mode.rawValue))
        }
    }

    /// A connection of its own (not the pool's) to the server of `configuration`, as the pool's are made.
    private static func sessionConfiguration(_ configuration: Configuration) throws -> PostgresConnection.Configuration
    {
        var tls = PostgresConnection.Configuration.TLS.disable
        if let tlsConfiguration = configuration.tls.clientConfiguration {
            let context: NIOSSLContext
            do {
                context = try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw GatewayError(.unavailable, "cannot set up TLS to PostgreSQL: \(error)")
            }
            tls = configuration.tls.mode == .prefer ? .prefer(context) : .require(context)
        }
        var probe = PostgresConnection.Configuration(
            host: configuration.host,
            port: configuration.port,
            username: configuration.username,
            password: configuration.password,
            database: configuration.database,
            tls: tls
        )
        probe.options.connectTimeout = .nanoseconds(
            configuration.connectTimeout.components.seconds * 1_000_000_000
                + configuration.connectTimeout.components.attoseconds / 1_000_000_000)
        if let name = configuration.applicationName {
            probe.options.additionalStartupParameters = [("application_name", name)]
        }
        return probe
    }

    // MARK: OperationStore

    package func enqueue(
        _ request: TriggerRequest,
        idempotencyKey: String?
    ) async throws -> (operation: Operation, created: Bool) {
        let lane = enqueueLanes[nextEnqueueLane.add(1, ordering: .relaxed).oldValue % enqueueLanes.count]
        let ticket = lane.batcher.add(
            NewOperation(request: request, idempotencyKey: idempotencyKey, codec: codec, now: now()))
        return try await bounded("enqueue") { [self] in
            try await lane.gate.holding { try await lane.batcher.drain(until: ticket) { await commitEnqueues($0) } }
        }
    }

    /// Commits `batch` (group commit, see `EnqueueBatcher`) with `commitEnqueueBatch`, and answers each ticket.
    /// When the batch's statement fails (nothing of it is committed), each enqueue is tried again on its own, so
    /// one bad enqueue fails alone.
    private func commitEnqueues(_ batch: [EnqueueBatcher.Ticket]) async {
        if batch.count > 1 {
            do {
                try await commitEnqueueBatch(batch)
                return
            } catch {
                logger.debug("group commit failed; committing its enqueues one by one", metadata: ["error": "\(error)"])
            }
        }
        for ticket in batch {
            do {
                try await commitEnqueueBatch([ticket])
            } catch {
                ticket.outcome = .failure(error)
            }
        }
    }

    /// Inserts the operations of `batch` and answers every ticket; throws only when nothing of `batch` was
    /// committed (the caller may then try again).
    ///
    /// One round trip for a batch without spilled blobs: the `CALL` of a procedure that runs the batch's
    /// `INSERT … ON CONFLICT DO NOTHING` and commits it (`committedBatch`); its commit is durable
    /// (`synchronous_commit=on`) before it is answered. A batch with blobs adds their `INSERT` in one transaction
    /// (a blob row is committed with the row that names it).
    ///
    /// Idempotency, as one enqueue at a time would answer: `ON CONFLICT DO NOTHING` skips a row whose key is
    /// already stored, or an earlier row of the same `INSERT` took (duplicates inside one batch share the first
    /// one's row), or another instance committed meanwhile (PostgreSQL waits for that transaction and then
    /// skips). The skipped rows, all committed by then, are answered by one lookup after the commit: with their
    /// operation (created: false) when the request digest matches, else with `idempotencyConflict`. No lookup
    /// runs before the insert (it found nothing the skipped-row lookup does not). When that lookup fails, only
    /// the skipped enqueues fail (`.unavailable`); the inserted ones are committed and answered.
    private func commitEnqueueBatch(_ batch: [EnqueueBatcher.Ticket]) async throws {
        let news = batch.map(\.item)
        let inserted: Set<String>
        if news.contains(where: { !$0.encodedRequest.blobs.isEmpty }) {
            inserted = try await transaction { [self] connection in try await insertOperations(news, on: connection) }
        } else {
            inserted = try await insertOperations(news, on: nil)
        }
        var skipped: [EnqueueBatcher.Ticket] = []
        for ticket in batch {
            if inserted.contains(ticket.item.operation.id) {
                ticket.outcome = .success((ticket.item.operation, true))
            } else {
                skipped.append(ticket)
            }
        }
        guard !skipped.isEmpty else { return }
        do {
            let stored = try await storedOperations(keyedBy: skipped.map(\.item))
            for ticket in skipped {
                ticket.outcome =
                    Self.idempotentAnswer(ticket.item, stored: stored)
                    ?? .failure(
                        GatewayError(.unavailable, "operation store unavailable: idempotent insert found no row"))
            }
        } catch {
            for ticket in skipped { ticket.outcome = .failure(error) }
        }
    }

    /// Inserts `news` with `ON CONFLICT … DO NOTHING` on the keyed rows (`enqueueInsert`; arrival order: `seq`
    /// follows the order of the arrays, so a batch keeps its order in listings), then the spilled blobs of the rows
    /// it inserted. On `connection` (inside the caller's transaction, which commits it) when given: the
    /// `enqueueInsert` statement. Else (then `news` must have no blobs) one `CALL` of its procedure, which runs the
    /// same `INSERT` and commits it before it returns (`committedBatch`): one round trip whose answer proves the
    /// commit durable. Returns the ids it inserted.
    ///
    /// - Throws: the driver's error when a statement fails.
    private func insertOperations(_ news: [NewOperation], on connection: PostgresConnection?) async throws
        -> Set<String>
    {
        // One fixed statement text whatever the batch's size (arrays, not a VALUES row per operation): PL/pgSQL
        // keeps the procedure's plan per connection, and the statement parses the same short text every time.
        var ids: [String] = [], pipelineKeys: [String] = [], requests: [ByteBuffer] = []
        var createdAt: [Int64] = [], notBefore: [Int64] = [], keyed: [Bool] = [], scopes: [String] = []
        var keys: [String] = [], digests: [String] = [], hasBlobs: [Bool] = [], deployed: [Bool] = []
        var deployments: [String] = []
        ids.reserveCapacity(news.count)
        for new in news {
            let operation = new.operation
            ids.append(operation.id)
            pipelineKeys.append(new.pipelineKey)
            requests.append(new.encodedRequest.bytes)
            createdAt.append(operation.createdAt.storeMilliseconds)
            notBefore.append(operation.notBefore.storeMilliseconds)
            // Scope and key are NULL together (no idempotency key); PostgresNIO's arrays have no NULL elements,
            // so `keyed` says which rows have them.
            keyed.append(operation.idempotencyKey != nil)
            scopes.append(new.idempotencyScope ?? "")
            keys.append(operation.idempotencyKey ?? "")
            digests.append(operation.requestDigest)
            hasBlobs.append(!new.encodedRequest.blobs.isEmpty)
            // The same for the deployment (NULL: no deployment label), kept apart from an empty label's "".
            deployed.append(new.deployment != nil)
            deployments.append(new.deployment ?? "")
        }
        var binds = PostgresBindings(capacity: 12)
        binds.append(PostgresBinaryArray(ids))
        binds.append(PostgresBinaryArray(pipelineKeys))
        binds.append(PostgresBinaryArray(requests))
        binds.append(PostgresBinaryArray(createdAt))
        binds.append(PostgresBinaryArray(notBefore))
        binds.append(PostgresBinaryArray(keyed))
        binds.append(PostgresBinaryArray(scopes))
        binds.append(PostgresBinaryArray(keys))
        binds.append(PostgresBinaryArray(digests))
        binds.append(PostgresBinaryArray(hasBlobs))
        binds.append(PostgresBinaryArray(deployed))
        binds.append(PostgresBinaryArray(deployments))
        let inserted = Set(
            try await committedBatch(
                sentTexts.enqueue, binds: binds, on: connection, as: String.self))
        let blobs = news.filter { inserted.contains($0.operation.id) }.flatMap { new in
            new.encodedRequest.blobs.map { (operationID: new.operation.id, blob: $0) }
        }
        if !blobs.isEmpty {
            guard let connection else { preconditionFailure("blobs are inserted inside a transaction") }
            try await insertBlobs(blobs, on: connection)
        }
        return inserted
    }

    package func get(id: String) async throws -> Operation? {
        try await bounded("get") { [self] in
            let rows = try await client.query(
                "SELECT \(unescaped: Self.selectRecord) FROM \(unescaped: operations) WHERE id = \(id)",
                logger: logger
            ).collect()
            return try await makeOperations(rows).first
        }
    }

    package func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?) {
        let pageSize = OperationPaging.effectivePageSize(pageSize)
        var binds = PostgresBindings()
        let sql = try OperationPaging.listQuery(
            select: Self.selectRecord, from: operations, filter: filter, pageSize: pageSize, pageToken: pageToken
        ) { value in
            switch value {
            case .text(let text): binds.append(text)
            case .integer(let integer): binds.append(integer)
            }
            return "$\(binds.count)"
        }
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        return try await bounded("list") { [self] in
            let rows = try await client.query(query, logger: logger).collect()
            let page = try OperationPaging.page(rows, pageSize: pageSize, filter: filter) {
                try Self.operationRow($0).row.id
            }
            if page.rows.isEmpty, let cursor = OperationPaging.cursorID(pageToken),
                try await client.query(
                    "SELECT 1 FROM \(unescaped: operations) WHERE id = \(cursor)", logger: logger
                ).collect().isEmpty
            {
                throw OperationPaging.cursorGone()
            }
            return (try await makeOperations(page.rows), page.nextPageToken)
        }
    }

    package func cancel(id: String, webhookOwner: String?) async throws -> Operation {
        let now = self.now().storeMilliseconds
        // The pending webhook (`webhookOwner`) with the state change, in one statement.
        let query: PostgresQuery =
            if let webhookOwner {
                """
                UPDATE \(unescaped: operations) SET state = 'cancelled', finished_at = \(now), \
                lease_expires_at = NULL, webhook_due = \(now), webhook_attempts = 0, webhook_owner = \(webhookOwner) \
                WHERE id = \(id) AND state IN ('queued', 'running') RETURNING \(unescaped: Self.selectRecord)
                """
            } else {
                """
                UPDATE \(unescaped: operations) SET state = 'cancelled', finished_at = \(now), \
                lease_expires_at = NULL WHERE id = \(id) AND state IN ('queued', 'running') \
                RETURNING \(unescaped: Self.selectRecord)
                """
            }
        return try await bounded("cancel") { [self] in
            let rows = try await client.query(query, logger: logger).collect()
            if let cancelled = try await makeOperations(rows).first { return cancelled }
            let states = try await client.query(
                "SELECT state FROM \(unescaped: operations) WHERE id = \(id)",
                logger: logger
            ).collect()
            throw OperationStoreErrors.notCancellable(id, state: try states.first?.decode(String.self))
        }
    }

    /// The `OperationStore` claim, committed durably (the session's `synchronous_commit`, on): its answer waits for
    /// the claim's WAL flush, so a run starts only on a claim a server crash keeps. Claims committed with
    /// `synchronous_commit = off` (`_claim3`, bench/README.md branch pgstore: one flush fewer per claim round) were
    /// lost in a crash within the WAL writer's delay after them: the rows went back to queued with `attempts` 0, and
    /// another instance ran them again as a first run while their owner, alive, ran them too (cluster review 59,
    /// H1; README promises no second run for an owner that is alive and reaches the store). A claim lost anyway (a
    /// failover to a standby that had not received it) leaves its rows as they were before it, where an expired
    /// lease of this claim would leave them: claimed again, and this owner's `complete`, `fail`, `renewLease` and
    /// `release` answer false (fenced by state and lease owner), so the run is repeated, never finished twice.
    package func claim(
        owner: String,
        leaseDuration: Duration,
        limit: Int,
        now: Date,
        scope: ClaimScope,
        takeover: LeaseTakeover
    ) async throws -> [Operation] {
        guard limit > 0,
            let query = claimQuery(
                owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: scope, takeover: takeover)
        else { return [] }
        return try await bounded("claim") { [self] in
            let rows = try await client.query(query, logger: logger).collect()
            let decoded = try rows.map(Self.claimedRow).sorted { $0.entry.row.sequence < $1.entry.row.sequence }
            var operations = try await makeOperations(decoded: decoded.map(\.entry))
            for index in operations.indices { operations[index].takenOverFrom = decoded[index].previousOwner }
            return operations
        }
    }

    /// The claim call of `claim` (nil: a scope that names no key, which claims nothing): the claim function
    /// (`claimFunction`) with `$1` owner, `$2` lease expiry on the lease clock (`leaseMilliseconds`), `$3` now
    /// (the caller's clock, for `not_before` and `started_at`), `$4` limit, `$5` the scope (0 all, 1 only the keys,
    /// 2 all but the keys), `$6` its keys, `$7` now on the lease clock, `$8` the prefix of the owners whose expired
    /// leases are taken at once (NULL: every owner's, `LeaseTakeover.any`) and `$9` whether other owners' are taken
    /// too once the server has been up for a lease. Milliseconds throughout. Its rows: one record each
    /// (`PostgresRecord`), `selectColumns` then `previous_lease_owner`.
    func claimQuery(
        owner: String, leaseDuration: Duration, limit: Int, now: Date, scope: ClaimScope, takeover: LeaseTakeover
    ) -> PostgresQuery? {
        let nowMS = now.storeMilliseconds
        let leaseNow = leaseMilliseconds(now)
        var binds = PostgresBindings(capacity: 9)
        binds.append(owner)
        binds.append(leaseNow + leaseDuration.milliseconds)
        binds.append(nowMS)
        binds.append(limit)
        switch scope {
        case .all:
            binds.append(0)
            binds.append(PostgresBinaryArray([String]()))
        case .only(let keys):
            guard !keys.isEmpty else { return nil }
            binds.append(1)
            binds.append(PostgresBinaryArray(keys.sorted()))
        case .excluding(let keys):
            binds.append(keys.isEmpty ? 0 : 2)
            binds.append(PostgresBinaryArray(keys.sorted()))
        }
        binds.append(leaseNow)
        switch takeover {
        case .any:
            binds.appendNull()
            binds.append(true)
        case .guarded(let ownPrefix, let others):
            binds.append(ownPrefix)
            binds.append(others)
        }
        return PostgresQuery(unsafeSQL: sentTexts.claim, binds: binds)
    }

    /// The claim function: the claim statement (`claimStatement`), committed asynchronously, planned with bitmap and
    /// sequential scans off.
    ///
    /// Why a function: its `SET` clauses apply while PostgreSQL plans its statements, which a statement sent on its
    /// own cannot ask for (the store cannot set them for its sessions: start-up parameters, which connection
    /// poolers such as PgBouncer refuse by default), and PL/pgSQL keeps the statement's plan per connection, where
    /// an unnamed statement was parsed and planned at every claim (11–14 % of PostgreSQL's CPU per accepted
    /// operation). Why no bitmap scans: every operation leaves a dead entry in `_queued` (its queued version) and one
    /// in `_leases` (its running version), which only VACUUM removes; a plain index scan marks each one it passes
    /// dead (LP_DEAD) and later scans skip it, while a bitmap scan visits the heap for every entry every time. The
    /// planner chose bitmap scans on any table whose statistics counted few queued or running rows, so each claim
    /// visited every operation since the last VACUUM: 22 206 `_queued` entries for 1 176 queued rows at 22 000
    /// rows; by hand, 1 028 buffers a claim of 16 against 447 (bench/README.md, branch pgaccept).
    ///
    /// It commits with the session's `synchronous_commit` (see `claim`): `_claim3`, its body otherwise the same, set
    /// it off for its transaction (`set_config(…, true)`), and lost claims in a server crash (cluster review 59, H1).
    ///
    /// Additive: an earlier instance sharing the database keeps sending its own statement. Created at every start
    /// when its stored body differs, like the batch procedures; a later version that changes what it does must give
    /// it a new name. `_claim2` (the twenty-first session) answers each claimed row with the owner of the expired
    /// lease it took over (`previous_lease_owner`, NULL for a queued row); `_claim` answered the rows alone. `_claim3`
    /// (the twenty-sixth session, review 25 H1 and M1) compares leases on the lease clock (`$7`, not `$3`) and takes
    /// over other owners' expired leases only as `LeaseTakeover` allows (`$8`, `$9`). `_claim` and `_claim2` are no
    /// longer made (an earlier instance of a rolling upgrade makes and calls its own; until it stops, it still takes
    /// over any expired lease on its own clock). `_claim4` (the fifty-ninth session) is `_claim3` committed durably;
    /// `_claim3` is no longer made.
    ///
    /// Its rows are `(claimed_operation <operations>, previous_lease_owner text)`: the table's row type whole, so the
    /// function does not restate the table's columns. PL/pgSQL makes those names variables inside the body, which
    /// therefore never uses them as column names.
    var claimFunction: (name: String, body: String, sql: String) {
        let name = "\(operations)_claim4"
        let body = """

            BEGIN
                RETURN QUERY \(claimStatement);
            END

            """
        return (
            name, body,
            """
            CREATE OR REPLACE FUNCTION \(name)(text, int8, int8, int8, int8, text[], int8, text, bool) \
            RETURNS TABLE (claimed_operation \(operations), previous_lease_owner text) \
            LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off AS $claim$\(body)$claim$
            """
        )
    }

    /// The claim statement (`claimFunction`'s parameters `$1…$6`, see `claimQuery`). SKIP LOCKED: rows another
    /// instance is claiming right now are left to it, not waited for; the re-check of the WHERE clause on locked
    /// rows (READ COMMITTED) drops rows claimed meanwhile.
    ///
    /// Queued and lease-expired rows are looked for separately, each through its partial index (`claimIndexes`) in
    /// index order, then the oldest of both are taken. One condition with an OR made PostgreSQL read every due row
    /// and sort them all for each claim (6 ms for 13 000 queued rows, bench/README.md, pgaccept). The scope's keys
    /// are a filter, never an index condition: `_by_pipeline` holds every operation of a pipeline ever stored, and
    /// reading it made each claim read the pipelines' whole history (4.9 ms against 0.6 ms for a claim of 16 on a
    /// never-analyzed table of 50 200 rows; bench/README.md, branch pgaccept).
    ///
    /// The previous owner of a taken-over lease comes from `expired`, read (and locked) before the update: the
    /// update's `RETURNING` sees only the new row.
    ///
    /// An expired lease is taken when its owner starts with `$8` (this instance's own), or when `$9` and the server
    /// has been up for a lease period (`$2 - $7`) by the lease clock: a server that started less than a lease ago
    /// may have ended an outage in which every living owner's lease expired unrenewed (review 25 H1). The server's
    /// start is `pg_postmaster_start_time()`, in the same milliseconds as the lease clock; a failover to a standby
    /// that was up all along is not seen here, and the caller's own gate (`LeaseTakeover.guarded`'s `others`) covers
    /// it.
    var claimStatement: String {
        // `pipeline_key || ''`: an expression no index serves, also in the custom plans PL/pgSQL makes for its first
        // calls, where `$5` is a constant and the OR folds away.
        let keys =
            "($5 = 0 OR ($5 = 1 AND (pipeline_key || '') = ANY($6)) OR ($5 = 2 AND NOT (pipeline_key = ANY($6))))"
        return """
            WITH due AS (SELECT seq FROM \(operations) WHERE state = 'queued' AND not_before <= $3 AND \(keys) \
            ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED), \
            expired AS (SELECT seq, lease_owner FROM \(operations) WHERE state = 'running' AND lease_expires_at <= $7 \
            AND \(keys) AND ($8 IS NULL OR starts_with(lease_owner, $8) OR ($9 AND \
            $7 - (extract(epoch FROM pg_postmaster_start_time()) * 1000)::int8 >= $2 - $7)) \
            ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED), \
            picked AS (SELECT seq FROM due UNION ALL SELECT seq FROM expired ORDER BY seq LIMIT $4), \
            updated AS (UPDATE \(operations) AS o SET state = 'running', lease_owner = $1, lease_expires_at = $2, \
            attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
            WHERE seq IN (SELECT seq FROM picked) RETURNING o AS claimed) \
            SELECT u.claimed, e.lease_owner FROM updated AS u LEFT JOIN expired AS e ON e.seq = (u.claimed).seq
            """
    }

    package func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool {
        let expires = leaseMilliseconds(now) + leaseDuration.milliseconds
        return try await bounded("renewLease") { [self] in
            try await !client.query(
                """
                UPDATE \(unescaped: operations) SET lease_expires_at = \(expires) \
                WHERE id = \(id) AND state = 'running' AND lease_owner = \(owner) RETURNING seq
                """,
                logger: logger
            ).collect().isEmpty
        }
    }

    package func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int {
        guard !ownerPrefix.isEmpty else { return 0 }
        let nowMS = leaseMilliseconds(now)
        return try await bounded("expireLeases") { [self] in
            let ended = try await client.query(
                """
                UPDATE \(unescaped: operations) SET lease_expires_at = \(nowMS) \
                WHERE state = 'running' AND starts_with(lease_owner, \(ownerPrefix)) \
                AND (\(sparing)::text IS NULL OR NOT starts_with(lease_owner, \(sparing))) RETURNING seq
                """,
                logger: logger
            ).collect().count
            // Deliveries the earlier run held: claimable when due (`claimWebhooks`).
            _ = try await client.query(
                """
                UPDATE \(unescaped: operations) SET webhook_owner = NULL \
                WHERE webhook_due IS NOT NULL AND starts_with(webhook_owner, \(ownerPrefix)) \
                AND (\(sparing)::text IS NULL OR NOT starts_with(webhook_owner, \(sparing)))
                """,
                logger: logger
            ).collect()
            return ended
        }
    }

    package func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]
    {
        guard limit > 0 else { return [] }
        let nowMS = now.storeMilliseconds
        let lapsed = nowMS - leaseDuration.milliseconds
        // On `_webhooks_due`, which holds the pending deliveries only; `SKIP LOCKED`: instances claiming at once
        // take different rows (and never the same one twice: the row lock holds until the update commits).
        let query: PostgresQuery = """
            UPDATE \(unescaped: operations) SET webhook_owner = \(owner), webhook_due = \(nowMS) \
            WHERE seq IN (SELECT seq FROM \(unescaped: operations) WHERE webhook_due IS NOT NULL \
            AND webhook_due <= \(nowMS) AND (webhook_owner IS NULL OR webhook_due <= \(lapsed)) \
            ORDER BY webhook_due LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED) \
            RETURNING ROW(\(unescaped: Self.selectColumns), webhook_attempts::int8)
            """
        return try await bounded("claimWebhooks") { [self] in
            let rows = try await client.query(query, logger: logger).collect()
            let decoded = try rows.map(Self.webhookRow)
            let operations = try await makeOperations(decoded: decoded.map(\.entry))
            return zip(operations, decoded).map { PendingWebhook(operation: $0, attempts: Int($1.attempts)) }
        }
    }

    package func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws
        -> Bool
    {
        let due = nextAttemptAt?.storeMilliseconds
        // Cleared: the reservation goes with the due time.
        let holder = nextAttemptAt == nil ? nil : owner
        let query: PostgresQuery = """
            UPDATE \(unescaped: operations) SET webhook_attempts = \(Int32(clamping: attempts)), webhook_due = \(due), \
            webhook_owner = \(holder) WHERE id = \(id) AND webhook_due IS NOT NULL AND webhook_owner = \(owner) \
            RETURNING seq
            """
        return try await bounded("recordWebhookAttempt") { [self] in
            try await !client.query(query, logger: logger).collect().isEmpty
        }
    }

    package func queuedCount() async throws -> Int {
        try await bounded("queuedCount") { [self] in
            // On the partial index `<prefix>operations_queued` (WHERE state = 'queued'): an index-only count.
            let rows = try await client.query(
                "SELECT count(*)::int8 FROM \(unescaped: operations) WHERE state = 'queued'", logger: logger
            ).collect()
            return Int(try rows.first?.decode(Int64.self) ?? 0)
        }
    }

    package func queuedByPipeline() async throws -> [PipelineQueue] {
        try await bounded("queuedByPipeline") { [self] in
            // On the partial index `_queued` (the queue only), each row read for its key and times, grouped by a
            // hash of one entry per pipeline: one walk of the queue every few seconds, no index of its own (every
            // index costs B-tree updates per operation, issue 12). EXPLAIN in bench/README.md (asyncobs).
            let rows = try await client.query(
                """
                SELECT pipeline_key, count(*)::int8, \
                min(CASE WHEN attempts = 0 THEN created_at ELSE not_before END)::int8 \
                FROM \(unescaped: operations) WHERE state = 'queued' GROUP BY pipeline_key
                """,
                logger: logger
            ).collect()
            return try rows.map { row in
                let (key, count, since) = try row.decode((String, Int64, Int64).self)
                return PipelineQueue(key: key, count: Int(count), oldestSince: Date(storeMilliseconds: since))
            }
        }
    }

    package func queuedCount(pipelineKey: String) async throws -> Int {
        try await bounded("queuedCount") { [self] in
            // On the partial index `_queued` (the queue, not the pipeline's history in `_by_pipeline`), the key
            // checked on each row: rare (a warning's count).
            let rows = try await client.query(
                """
                SELECT count(*)::int8 FROM \(unescaped: operations) WHERE state = 'queued' AND pipeline_key = \(pipelineKey)
                """,
                logger: logger
            ).collect()
            return Int(try rows.first?.decode(Int64.self) ?? 0)
        }
    }

    package func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws
        -> Bool
    {
        let encoded = codec.encode(result, blobPrefix: ResultBlobPrefix.make())
        let completion = PendingCompletion(id: id, owner: owner, encoded: encoded, finishedAt: now.storeMilliseconds)
        if webhook {
            // Not through the batch procedure (`_complete2`, whose name and body instances of earlier versions
            // share during a rolling upgrade): the result and the pending delivery in one transaction of its own.
            return try await bounded("complete") { [self] in
                try await transaction { [self] connection in
                    try await storeResultWithWebhook(completion, on: connection)
                }
            }
        }
        let ticket = completions.add(completion)
        return try await bounded("complete") { [self] in
            try await completionGate.holding {
                try await completions.drain(until: ticket) { await commitCompletions($0) }
            }
        }
    }

    /// Stores the results of `batch` (group commit, see `CompletionBatcher`) with `storeResults`, and answers each
    /// ticket; when that fails (nothing of it is committed), each completion is tried again on its own, so one bad
    /// completion fails alone.
    private func commitCompletions(_ batch: [CompletionBatcher.Ticket]) async {
        if batch.count > 1 {
            do {
                let answers = try await storeResults(batch.map(\.item))
                for (ticket, answer) in zip(batch, answers) { ticket.outcome = .success(answer) }
                return
            } catch {
                logger.debug(
                    "group commit failed; committing its completions one by one", metadata: ["error": "\(error)"])
            }
        }
        for ticket in batch {
            do {
                ticket.outcome = .success(try await storeResults([ticket.item])[0])
            } catch {
                ticket.outcome = .failure(error)
            }
        }
    }

    /// The results of `items`, committed: one `CALL` of the procedure that runs `completionUpdate` and commits
    /// (`committedBatch`) when no result has spilled blobs, else that `UPDATE` and the insert of their blobs in one
    /// transaction.
    private func storeResults(_ items: [PendingCompletion]) async throws -> [Bool] {
        if items.contains(where: { !$0.encoded.blobs.isEmpty }) {
            return try await transaction { [self] connection in try await storeResults(items, on: connection) }
        }
        return try await storeResults(items, on: nil)
    }

    /// The results of `items` with one `completionUpdate` and one insert of their result blobs, on `connection`
    /// (inside the caller's transaction; nil: the committing procedure, only for items without blobs).
    /// Returns, per item, whether it was stored: only a row still `running` under
    /// the item's lease owner is written, so a completion by a worker that lost its lease changes nothing.
    /// When one batch holds two completions of the same row by its owner, PostgreSQL writes the row from one
    /// of them (`UPDATE … FROM` updates a row once), and `RETURNING` names that one: it alone answers true, as
    /// the first of two calls one after the other would.
    private func storeResults(_ items: [PendingCompletion], on connection: PostgresConnection?) async throws -> [Bool] {
        var binds = PostgresBindings(capacity: 6)
        binds.append(PostgresBinaryArray(Array(0..<Int64(items.count))))
        binds.append(PostgresBinaryArray(items.map(\.id)))
        binds.append(PostgresBinaryArray(items.map(\.owner)))
        binds.append(PostgresBinaryArray(items.map(\.encoded.bytes)))
        binds.append(PostgresBinaryArray(items.map(\.finishedAt)))
        binds.append(PostgresBinaryArray(items.map { !$0.encoded.blobs.isEmpty }))
        let returned = try await committedBatch(
            sentTexts.completion, binds: binds, on: connection, as: Int64.self)
        var stored = Array(repeating: false, count: items.count)
        for n in returned { stored[Int(n)] = true }
        var blobs: [(operationID: String, blob: SpilledBlob)] = []
        for (item, done) in zip(items, stored) where done {
            blobs += item.encoded.blobs.map { (item.id, $0) }
        }
        if !blobs.isEmpty {
            guard let connection else { preconditionFailure("result blobs are inserted inside a transaction") }
            try await insertBlobs(blobs, on: connection)
        }
        return stored
    }

    /// `completionUpdate` of one result whose route has a webhook, on `connection` (in the caller's transaction),
    /// recording the delivery as pending: due at the finish, no attempt made, reserved for the completing lease
    /// owner (who sends it at once). Its result blobs with it; true when the run still held its lease.
    private func storeResultWithWebhook(_ item: PendingCompletion, on connection: PostgresConnection) async throws
        -> Bool
    {
        let hasBlobs = !item.encoded.blobs.isEmpty
        let stored = try await !connection.query(
            """
            UPDATE \(unescaped: operations) SET state = 'succeeded', result = \(item.encoded.bytes), error = NULL, \
            finished_at = \(item.finishedAt), lease_expires_at = NULL, has_blobs = has_blobs OR \(hasBlobs), \
            webhook_due = \(item.finishedAt), webhook_attempts = 0, webhook_owner = \(item.owner) \
            WHERE id = \(item.id) AND state = 'running' AND lease_owner = \(item.owner) RETURNING seq
            """,
            logger: logger
        ).collect().isEmpty
        if stored, hasBlobs { try await insertBlobs(item.encoded.blobs.map { (item.id, $0) }, on: connection) }
        return stored
    }

    package func fail(
        id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool
    ) async throws -> Bool {
        let encodedError = OperationPayloadCodec.encode(error)
        let query: PostgresQuery
        if let retryAt {
            query = """
                UPDATE \(unescaped: operations) SET state = 'queued', error = \(encodedError), \
                not_before = \(retryAt.storeMilliseconds), lease_owner = NULL, lease_expires_at = NULL \
                WHERE id = \(id) AND state = 'running' AND lease_owner = \(owner) RETURNING seq
                """
        } else if webhook {
            // The pending delivery with the failure (see `complete`).
            query = """
                UPDATE \(unescaped: operations) SET state = 'failed', error = \(encodedError), \
                finished_at = \(now.storeMilliseconds), lease_expires_at = NULL, \
                webhook_due = \(now.storeMilliseconds), webhook_attempts = 0, webhook_owner = \(owner) \
                WHERE id = \(id) AND state = 'running' AND lease_owner = \(owner) RETURNING seq
                """
        } else {
            query = """
                UPDATE \(unescaped: operations) SET state = 'failed', error = \(encodedError), \
                finished_at = \(now.storeMilliseconds), lease_expires_at = NULL \
                WHERE id = \(id) AND state = 'running' AND lease_owner = \(owner) RETURNING seq
                """
        }
        return try await bounded("fail") { [self] in
            try await !client.query(query, logger: logger).collect().isEmpty
        }
    }

    package func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool {
        // As SQLite's: the start goes with the only claim's attempt (a plain statement, no stored routine, so
        // versions sharing a database differ only in whether an early start is kept).
        let counts =
            callMade
            ? "cut_runs = cut_runs + 1"
            : "attempts = GREATEST(attempts - 1, 0), started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END"
        let query: PostgresQuery = """
            UPDATE \(unescaped: operations) SET state = 'queued', \(unescaped: counts), \
            not_before = \(notBefore.storeMilliseconds), lease_owner = NULL, lease_expires_at = NULL \
            WHERE id = \(id) AND state = 'running' AND lease_owner = \(owner) RETURNING seq
            """
        return try await bounded("release") { [self] in
            try await !client.query(query, logger: logger).collect().isEmpty
        }
    }

    package func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool {
        // Already at `target`: a repeat whose first call committed (its reply lost) answers true, changing nothing.
        let target = max(attempts - count, 0)
        let query: PostgresQuery = """
            UPDATE \(unescaped: operations) SET attempts = \(target) \
            WHERE id = \(id) AND state = 'running' AND lease_owner = \(owner) \
            AND attempts IN (\(attempts), \(target)) RETURNING seq
            """
        return try await bounded("uncountAdoptedClaims") { [self] in
            try await !client.query(query, logger: logger).collect().isEmpty
        }
    }

    package func purge(finishedBefore: Date) async throws -> Int {
        let before = finishedBefore.storeMilliseconds
        return try await bounded("purge") { [self] in
            // Blob rows go with their operation (ON DELETE CASCADE), in the same statement.
            try await client.query(
                """
                DELETE FROM \(unescaped: operations) WHERE finished_at IS NOT NULL AND finished_at < \(before) \
                AND webhook_due IS NULL RETURNING seq
                """,
                logger: logger
            ).collect().count
        }
    }

    package func delete(id: String) async throws -> Bool {
        try await bounded("delete") { [self] in
            // Blob rows go with their operation (ON DELETE CASCADE), in the same statement.
            try await client.query(
                """
                DELETE FROM \(unescaped: operations) WHERE id = \(id) AND finished_at IS NOT NULL \
                AND webhook_due IS NULL RETURNING seq
                """,
                logger: logger
            ).collect().count == 1
        }
    }

    /// Also watches for a second live gateway under the same instance id (a copied data dir, review 9 #2):
    /// each store writes its own random `boot` nonce with its heartbeat, and reads the one it replaces. Between
    /// two beats of this store only this store writes the row, unless another process uses the id: a foreign
    /// nonce found at any beat but the first is such a process, and is logged as an error at every beat while it
    /// lasts. The first beat is exempt: after a crash the dead run's fresh row is there once, and a reconnect
    /// (a new store) starts over. Warning only: the leases were already taken back at start (to refuse the start
    /// would mean waiting a beat before the takeover).
    package func probe(instance: String, now: Date) async throws {
        let nowMS = now.storeMilliseconds
        let nonce = bootNonce
        let rows = try await bounded("probe") { [self] in
            // Each beat measures the server's clock again: a step of this host's clock (or the server's) moves
            // lease instants for a probe interval at most.
            try await measureServerClock()
            return try await client.query(
                """
                WITH previous AS (SELECT boot, beat_at FROM \(unescaped: heartbeatTable) WHERE instance = \(instance)) \
                INSERT INTO \(unescaped: heartbeatTable) (instance, beat_at, boot) VALUES (\(instance), \(nowMS), \(nonce)) \
                ON CONFLICT (instance) DO UPDATE SET beat_at = EXCLUDED.beat_at, boot = EXCLUDED.boot \
                RETURNING (SELECT boot FROM previous), (SELECT beat_at FROM previous)
                """,
                logger: logger
            ).collect()
        }
        let beatenBefore = hasBeaten.exchange(true, ordering: .relaxed)
        guard let row = rows.first,
            let (previousBoot, previousBeat) = try? row.decode((String?, Int64?).self),
            let previousBoot, previousBoot != nonce
        else { return }
        if let previousBeat {
            foreignBeatReplaced.max(previousBeat, ordering: .relaxed)
        }
        guard beatenBefore else { return }
        let when = previousBeat.map { "\(Date(storeMilliseconds: $0))" } ?? "?"
        let message =
            "instance id \(instance) is in use by another live gateway too (it wrote the heartbeat at \(when), "
            + "after ours): a copied data dir? The two take each other's running operations back and run them "
            + "again; stop the copy, delete <data_dir>/instance-id on it and start it again"
        logger.error(
            "\(message)",
            metadata: ["instance": "\(instance)"]
        )
    }

    /// How recent another boot's heartbeat must be for `instanceInUseElsewhere` to wait for its next beat: older,
    /// its writer is not beating (a predecessor stopped or crashed a while ago). Generous, as the writer's clock
    /// (a copy on another host) may differ from this one's.
    static let recentForeignBeat = Duration.seconds(60)

    package func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool {
        let nonce = bootNonce
        // A row of a gateway from before the `boot` column has none: another boot.
        func heartbeat() async throws -> (boot: String, beatAt: Int64)? {
            try await bounded("probe") { [self] in
                try await client.query(
                    "SELECT boot, beat_at FROM \(unescaped: heartbeatTable) WHERE instance = \(instance)",
                    logger: logger
                ).collect().first.map { row in
                    let (boot, beatAt) = try row.decode((String?, Int64).self)
                    return (boot ?? "", beatAt)
                }
            }
        }
        // The newest beat of another boot known: the row's, or the one this store's own beat replaced.
        let read = try await heartbeat()
        let reference =
            read.flatMap { $0.boot != nonce ? $0.beatAt : nil } ?? foreignBeatReplaced.load(ordering: .relaxed)
        guard reference > 0, now().storeMilliseconds - reference <= Self.recentForeignBeat.milliseconds else {
            return false
        }
        // A crashed predecessor beat recently too: only a beat after that one tells a live writer. Looked for at
        // each interval of two: this store's own beat may have replaced the row meanwhile (`probe` keeps what it
        // replaced, but only once its statement has returned), so one read alone could miss the copy's beat.
        for _ in 0..<2 {
            try await Task.sleep(for: probeInterval)
            if let again = try await heartbeat(), again.boot != nonce, again.beatAt > reference { return true }
            if foreignBeatReplaced.load(ordering: .relaxed) > reference { return true }
        }
        return false
    }

    /// `now` (this store's clock, `Configuration.now`, which callers read theirs from) on the lease clock: the
    /// database server's, in milliseconds (review 25 M1). Lease expiries are written and compared on it, so every
    /// instance sharing the database judges a lease by one clock: an instance whose clock ran ahead took over live
    /// leases, and one whose clock ran behind kept dead ones. Read as `now` plus the server's measured skew
    /// (`measureServerClock`) rather than in each statement, so that instants the caller passes keep their exact
    /// order and distance (tests move `now` to expire leases; an instant read by the server at each statement would
    /// add each statement's latency).
    func leaseMilliseconds(_ now: Date) -> Int64 {
        now.storeMilliseconds + serverClockSkew.load(ordering: .relaxed)
    }

    /// Reads the server's clock (`clock_timestamp()`) between two readings of `now` and keeps how far it is ahead of
    /// the midpoint (`serverClockSkew`). A skew within half the round trip (plus the millisecond the server's reading
    /// is truncated to) cannot be told from none and is kept as 0: a server on a clock in step with this host's (the
    /// usual case, NTP on both) adds nothing, not a jitter of a few milliseconds at each probe.
    private func measureServerClock() async throws {
        let sent = now().storeMilliseconds
        let rows = try await client.query(
            "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8", logger: logger
        ).collect()
        let received = now().storeMilliseconds
        guard let server = try rows.first?.decode(Int64.self) else { return }
        serverClockSkew.store(Self.serverClockSkew(server, sent: sent, received: received), ordering: .relaxed)
    }

    /// `measureServerClock`'s arithmetic: the skew of a server that read `server` between `sent` and `received`
    /// (milliseconds each): its distance from the midpoint, or 0 within half the trip plus a millisecond.
    static func serverClockSkew(_ server: Int64, sent: Int64, received: Int64) -> Int64 {
        let halfTrip = (received - sent + 1) / 2 + 1
        let skew = server - (sent + received) / 2
        return abs(skew) <= halfTrip ? 0 : skew
    }

    /// Stops the connection pool: at most twice the store call timeout, then the pool is left to stop in the
    /// background with a warning. PostgresNIO's pool could go on retrying its connect after its `run()` was
    /// cancelled while the server was down (vapor/postgres-nio#599), which held a stopping gateway past any grace
    /// (review 26 H1).
    package func close() async throws {
        runTask.cancel()
        let runTask = self.runTask
        do {
            _ = try await Self.withTimeout(timeout, on: PostgresClient.defaultEventLoopGroup.any()) {
                await runTask.value
            }
        } catch {
            logger.warning(
                "PostgreSQL connection pool did not stop; left to stop in the background",
                metadata: ["error": "\(error)"])
        }
    }

    /// Names of the blobs kept for an operation (diagnostics and tests).
    package func storedBlobNames(operationID: String) async throws -> [String] {
        try await bounded("storedBlobNames") { [self] in
            let rows = try await client.query(
                "SELECT name FROM \(unescaped: blobTable) WHERE operation_id = \(operationID) ORDER BY name",
                logger: logger
            ).collect()
            return try rows.map { try $0.decode(String.self) }
        }
    }

    // MARK: Internals

    /// One lane of enqueue group commits (see `enqueueLanes`).
    private struct EnqueueLane: Sendable {
        let batcher: EnqueueBatcher
        let gate: SerialGate
    }

    static let selectColumns = "\(OperationRow.columns), has_blobs"

    /// `selectColumns` as one composite value (`PostgresRecord`, read by `operationRow`): one cell per row.
    static let selectRecord = "ROW(\(selectColumns))"

    /// Brings the database to this version's schema, running only the DDL that is missing: a schema that is
    /// already current runs none (no `CREATE … IF NOT EXISTS`, which checks the CREATE privilege on the schema
    /// before it looks for the object, and no `CREATE OR REPLACE PROCEDURE` of a body already stored, which
    /// needs the procedure's ownership), so a role with only DML and EXECUTE privileges can run the gateway once
    /// a more privileged role has made or upgraded the schema (review 9 #3; README "PostgreSQL roles").
    ///
    /// - Throws: `GatewayError(.unavailable)`; a missing privilege (SQLSTATE 42501) is named with the GRANT that
    ///   gives it to `role` (`PostgresErrorDescription.privilegeAdvice`).
    private func createSchema(role: String) async throws {
        // Only `open` runs this, and only the operator sees what it throws (a log line, a start-up message):
        // it keeps the driver's reason.
        do {
            try await bounded("create schema", forOperator: true) { [self] in
                try await transaction { [self] connection in try await setUpSchema(on: connection) }
            }
        } catch let error as PostgresErrorDescription.Privilege {
            throw GatewayError(.unavailable, error.advice(role: role))
        }
    }

    private func setUpSchema(on connection: PostgresConnection) async throws {
        // Instances starting together would otherwise race on CREATE TABLE IF NOT EXISTS (it is not
        // atomic against a concurrent creator); the lock is per database and released at commit.
        try await connection.query("SELECT pg_advisory_xact_lock(\(Self.schemaLockKey))", logger: logger)
        let tables = try await existingTables(on: connection)
        if !tables.contains(versionTable) {
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS \(unescaped: versionTable) (version INT NOT NULL)",
                logger: logger
            )
        }
        let rows = try await connection.query(
            "SELECT version FROM \(unescaped: versionTable)",
            logger: logger
        ).collect()
        switch try rows.first?.decode(Int.self) {
        case nil:
            for statement in schemaStatements() {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            try await connection.query(
                "INSERT INTO \(unescaped: versionTable) (version) VALUES (\(Self.schemaVersion))",
                logger: logger
            )
        case Self.schemaVersion?:
            break
        case let other?:
            throw GatewayError(
                .unavailable,
                "operation store schema version \(other) is not supported "
                    + "(this gateway knows \(Self.schemaVersion))"
            )
        }
        // Readiness probes write here, one row per instance. Not versioned: it holds nothing durable,
        // and a database created before it existed gains it on the next start.
        if !tables.contains(heartbeatTable) {
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS \(unescaped: heartbeatTable) \
                (instance TEXT PRIMARY KEY, beat_at BIGINT NOT NULL, boot TEXT)
                """,
                logger: logger
            )
        } else if try await !hasColumn(heartbeatTable, "boot", on: connection) {
            // `probe`'s nonce, added (expand only: an earlier instance's upsert leaves it alone).
            try await connection.query(
                "ALTER TABLE \(unescaped: heartbeatTable) ADD COLUMN IF NOT EXISTS boot TEXT", logger: logger)
        }
        // Schedule state, added the same unversioned way.
        if !tables.contains(scheduleTable) {
            try await connection.query(PostgresQuery(unsafeSQL: schedulesTableSQL), logger: logger)
        }
        // The claim indexes, the same unversioned way: a database made by an earlier gateway trades its
        // (state, not_before, seq) and (state, lease_expires_at) indexes for these at the next start.
        for statement in try await missingSchemaStatements(on: connection) {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        // The batch procedures and the functions (`routines`), the same unversioned way: only this and later
        // gateways call them, and an earlier one sharing the database (a rolling upgrade) keeps its own. After the
        // added columns, which the enqueue procedure writes (a database made before them gains them first).
        for statement in try await missingRoutineStatements(on: connection) {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
    }

    /// The DDL a start would run now (`missingSchemaStatements`, then `missingRoutineStatements`) on a database
    /// whose tables exist: none once the schema is this version's. For tests: a schema that is current must stay
    /// so at every start (a role with DML and EXECUTE only can start only then; review 16, F3 and F5).
    ///
    /// - Throws: the driver's error; `PostgresErrorDescription.Privilege` when a current routine is not executable.
    func pendingSchemaStatements() async throws -> [String] {
        try await client.withConnection { [self] connection in
            try await missingSchemaStatements(on: connection) + missingRoutineStatements(on: connection)
        }
    }

    /// PostgreSQL keeps the first 63 bytes of an identifier (NAMEDATALEN − 1) and drops the rest with a NOTICE,
    /// in the catalogs and in every statement that names it, so a name longer than that is found in the catalogs
    /// only by its first 63 bytes: a lookup by the whole name missed it and made every start run its DDL again
    /// (review 16, F3: `table_prefix` allows 40 bytes, and `<prefix>operations_failed_or_cancelled` is 70).
    /// Prefixes are `[a-z0-9_]`: one byte a character.
    static func storedName(_ name: String) -> String {
        String(decoding: name.utf8.prefix(63), as: UTF8.self)
    }

    /// A procedure or function this version creates (`routines`).
    struct Routine {
        /// Its name (the table prefix's), as written in statements.
        var name: String
        /// `FUNCTION` or `PROCEDURE`, as a GRANT names it.
        var kind: String
        /// Its body, what PostgreSQL stores as `pg_proc.prosrc`.
        var body: String
        /// Its `SET` clauses as PostgreSQL stores them (`pg_proc.proconfig` joined by `,`, e.g.
        /// `enable_bitmapscan=off,enable_seqscan=off`); nil for none.
        var settings: String?
        /// `CREATE OR REPLACE …`.
        var sql: String
    }

    /// The stored routines of this version, a function before the procedure whose body calls it. Each name's
    /// body and settings never change once released: an instance replaces a routine whose stored body or settings
    /// differ from its own, so two versions sharing a database during a rolling upgrade would replace each
    /// other's at every start, and a role without ownership could not start at all (review 16, F1). A version that
    /// changes what a routine does gives it a new name (`_complete2`); `PostgresRoutineNamesTests` holds the
    /// released bodies.
    var routines: [Routine] {
        var routines: [Routine] = []
        for (statement, returning) in [(enqueueInsert, "id"), (completionUpdate, "r.n")] {
            if let function = statement.function(returning: returning) {
                routines.append(
                    Routine(
                        name: function.name, kind: "FUNCTION", body: function.body,
                        settings: statement.storedSettings, sql: function.sql))
            }
            routines.append(
                Routine(
                    name: statement.procedure, kind: "PROCEDURE", body: statement.procedureBody(returning: returning),
                    settings: nil, sql: statement.procedureSQL(returning: returning)))
        }
        let claim = claimFunction
        routines.append(
            Routine(
                name: claim.name, kind: "FUNCTION", body: claim.body,
                settings: "enable_bitmapscan=off,enable_seqscan=off", sql: claim.sql))
        return routines
    }

    /// The `CREATE OR REPLACE` statements of the routines whose stored body or settings (`pg_proc.prosrc`,
    /// `proconfig`) are not this version's, in the first schema of `search_path` that holds them, in `routines`'
    /// order. A settings-only difference counts: a function that lost its settings (`ALTER FUNCTION … RESET ALL`)
    /// plans with the bitmap scans they exist to avoid (review 16, F5).
    ///
    /// - Throws: `PostgresErrorDescription.Privilege` when a routine that is current is not executable by this role
    ///   (PUBLIC's EXECUTE revoked, no grant to the role): otherwise the gateway would start ready, accept triggers
    ///   and fail every claim or completion (review 16, F4).
    private func missingRoutineStatements(on connection: PostgresConnection) async throws -> [String] {
        let routines = self.routines
        let rows = try await connection.query(
            """
            SELECT p.proname::text, p.prosrc, array_to_string(p.proconfig, ','),             has_function_privilege(p.oid, 'EXECUTE') FROM pg_proc p             WHERE p.proname = ANY(\(routines.map { Self.storedName($0.name) }))             AND p.pronamespace = to_regnamespace(current_schema())
            """,
            logger: logger
        ).collect()
        var stored: [String: (body: String, settings: String?, executable: Bool)] = [:]
        for row in rows {
            let (name, body, settings, executable) = try row.decode((String, String, String?, Bool).self)
            stored[name] = (body, settings, executable)
        }
        var statements: [String] = []
        for routine in routines {
            guard let found = stored[Self.storedName(routine.name)], found.body == routine.body,
                found.settings == routine.settings
            else {
                statements.append(routine.sql)
                continue
            }
            guard found.executable else {
                throw PostgresErrorDescription.Privilege(
                    message: "permission denied for \(routine.kind.lowercased()) \(Self.storedName(routine.name))")
            }
        }
        return statements
    }

    private func hasColumn(_ table: String, _ column: String, on connection: PostgresConnection) async throws
        -> Bool
    {
        let rows = try await connection.query(
            """
            SELECT count(*) FROM pg_attribute \
            WHERE attrelid = to_regclass(\(table)) AND attname = \(column) AND NOT attisdropped
            """,
            logger: logger
        ).collect()
        return try rows.first?.decode(Int.self) == 1
    }

    /// Which of the store's tables exist (as `search_path` resolves their names, like the statements do).
    private func existingTables(on connection: PostgresConnection) async throws -> Set<String> {
        let names = [versionTable, heartbeatTable, scheduleTable]
        var found = Set<String>()
        for name in names {
            let rows = try await connection.query(
                "SELECT to_regclass(\(name)) IS NOT NULL", logger: logger
            ).collect()
            if try rows.first?.decode(Bool.self) == true { found.insert(name) }
        }
        return found
    }

    /// "tgopstor" as a number: any constant works as long as it is the same in every instance.
    private static let schemaLockKey: Int64 = 0x7467_6f70_7374_6f72

    private func schemaStatements() -> [String] {
        [
            """
            CREATE TABLE \(operations) (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                pipeline_key TEXT NOT NULL,
                state TEXT NOT NULL,
                request BYTEA NOT NULL,
                result BYTEA,
                error BYTEA,
                created_at BIGINT NOT NULL,
                started_at BIGINT,
                finished_at BIGINT,
                attempts INT NOT NULL DEFAULT 0,
                lease_owner TEXT,
                lease_expires_at BIGINT,
                not_before BIGINT NOT NULL,
                idempotency_scope TEXT,
                idempotency_key TEXT,
                request_digest TEXT NOT NULL,
                has_blobs BOOLEAN NOT NULL DEFAULT FALSE,
                UNIQUE (idempotency_scope, idempotency_key)
            )
            """,
            """
            CREATE TABLE \(blobTable) (
                operation_id TEXT NOT NULL REFERENCES \(operations) (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                bytes BYTEA NOT NULL,
                PRIMARY KEY (operation_id, name)
            )
            """,
            "CREATE INDEX \(operations)_by_pipeline ON \(operations) (pipeline_key, seq)",
            "CREATE INDEX \(operations)_finished ON \(operations) (finished_at) WHERE finished_at IS NOT NULL",
        ]
    }

    /// What `claim` reads: the queued rows in `seq` order, so a claim takes its `limit` oldest from the front of
    /// the index instead of reading and sorting every due row (see `claim`), and the running rows by lease expiry,
    /// so expired leases are found without reading the live ones. Partial, so only rows in those states are in
    /// them: an operation adds an entry to each on its way through (and one per lease renewal), where the
    /// (state, …) indexes they replace took one per row version in every state. Idempotent: runs at every start.
    /// The claim indexes: an earlier gateway's two dropped, these two made.
    ///
    /// No `(state, seq)` index (`_by_state`, made with the table by earlier gateways, dropped here): every version
    /// of every row entered it (3 of the ~17 B-tree leaf insertions of an accepted-and-run operation), to serve
    /// only `list` by state, which reads other indexes now: `_queued` (queued), `_leases` and a sort (running), the
    /// primary key backwards (succeeded: most rows), `_failed_or_cancelled` (the only rows that enter it). An
    /// earlier gateway sharing the database needs it for none of its statements (its listings read the same
    /// indexes) and makes it only with a new table, which this one's next start drops again.
    private var claimIndexes: (dropped: [String], made: [(name: String, sql: String)]) {
        (
            dropped: ["\(operations)_claim_queued", "\(operations)_claim_leases", "\(operations)_by_state"],
            made: [
                (
                    "\(operations)_queued",
                    "CREATE INDEX IF NOT EXISTS \(operations)_queued ON \(operations) (seq) WHERE state = 'queued'"
                ),
                (
                    "\(operations)_leases",
                    "CREATE INDEX IF NOT EXISTS \(operations)_leases ON \(operations) (lease_expires_at) "
                        + "WHERE state = 'running'"
                ),
                (
                    "\(operations)_failed_or_cancelled",
                    "CREATE INDEX IF NOT EXISTS \(operations)_failed_or_cancelled ON \(operations) (seq) "
                        + "WHERE state IN ('failed', 'cancelled')"
                ),
                // The index of `OperationFilter.deployment` (partial: operations of no deployment, most, are not
                // in it).
                (
                    "\(operations)_by_deployment",
                    "CREATE INDEX IF NOT EXISTS \(operations)_by_deployment ON \(operations) (deployment, seq) "
                        + "WHERE deployment IS NOT NULL"
                ),
                // The pending webhook deliveries (`claimWebhooks`; partial: a route without a webhook adds none).
                (
                    "\(operations)_webhooks_due",
                    "CREATE INDEX IF NOT EXISTS \(operations)_webhooks_due ON \(operations) (webhook_due) "
                        + "WHERE webhook_due IS NOT NULL"
                ),
            ]
        )
    }

    /// The statements that bring a database made by an earlier gateway to this one's claim indexes and
    /// `OperationRow.addedColumns` (additive: an earlier gateway sharing the database neither names nor needs
    /// them; `ADD COLUMN` with a constant default rewrites no row), only those whose change is missing. Why not
    /// run them all, each being idempotent: `CREATE INDEX` takes a SHARE lock on the table and `ALTER TABLE` an
    /// ACCESS EXCLUSIVE one before either looks at `IF [NOT] EXISTS`, so at every start they would queue every
    /// instance's writes (the `ALTER`, its reads too) behind the longest transaction then running. Columns
    /// before indexes (the deployment index names a column); drops last: `DROP INDEX` takes an ACCESS EXCLUSIVE
    /// lock, which blocks every other instance's reads as well until the schema transaction commits, so it must
    /// not be taken before a `CREATE INDEX` that scans the whole table (that one's SHARE lock holds writes only).
    private func missingSchemaStatements(on connection: PostgresConnection) async throws -> [String] {
        let columns = Set(
            try await connection.query(
                """
                SELECT attname::text FROM pg_attribute \
                WHERE attrelid = to_regclass(\(operations)) AND attnum > 0 AND NOT attisdropped
                """,
                logger: logger
            ).collect().map { try $0.decode(String.self) })
        let indexes = Set(
            try await connection.query(
                """
                SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                WHERE i.indrelid = to_regclass(\(operations))
                """,
                logger: logger
            ).collect().map { try $0.decode(String.self) })
        let claim = claimIndexes
        return OperationRow.addedColumns.filter { !columns.contains($0.name) }.map {
            "ALTER TABLE \(operations) ADD COLUMN IF NOT EXISTS \($0.name) \($0.definition)"
        }
            + claim.made.filter { !indexes.contains(Self.storedName($0.name)) }.map(\.sql)
            + claim.dropped.filter { indexes.contains(Self.storedName($0)) }.map { "DROP INDEX IF EXISTS \($0)" }
    }

    /// The enqueue `INSERT` of `insertOperations`, one row per element of its twelve array parameters (ids,
    /// pipeline keys, requests, created-at and not-before milliseconds, whether the row has an idempotency key,
    /// scopes, keys, request digests, has-blobs, whether the row has a deployment, deployments), in the arrays'
    /// order. `ON CONFLICT … DO NOTHING` skips a row whose key is stored already or taken by an earlier row of the
    /// same statement. The conflict target names the keyed rows (`WHERE idempotency_key IS NOT NULL`; keyless
    /// rows, whose key is NULL, never conflict): PostgreSQL infers any unique index whose predicate that implies,
    /// so it works with today's `UNIQUE (idempotency_scope, idempotency_key)` and with a partial unique index of
    /// the keyed rows only, which a later release may put in its place (keyless rows would then enter no unique
    /// index) once no instance that runs the earlier target, which infers no partial index, can remain. Of
    /// `OperationRow.addedColumns` it writes `deployment` and leaves `cut_runs` to its default, so the procedure
    /// needs them to exist: the store's start adds them (`missingSchemaStatements`) before it
    /// creates the procedures.
    var enqueueInsert: BatchStatement {
        BatchStatement(
            procedure: "\(operations)_enqueue",
            parameterTypes: [
                "text[]", "text[]", "bytea[]", "int8[]", "int8[]", "bool[]", "text[]", "text[]", "text[]", "bool[]",
                "bool[]", "text[]",
            ],
            sql: """
                INSERT INTO \(operations) (id, pipeline_key, state, request, created_at, attempts, not_before, \
                idempotency_scope, idempotency_key, request_digest, has_blobs, deployment) \
                SELECT r.id, r.pipeline_key, 'queued', r.request, r.created_at, 0, r.not_before, \
                CASE WHEN r.keyed THEN r.scope END, CASE WHEN r.keyed THEN r.key END, r.digest, r.has_blobs, \
                CASE WHEN r.deployed THEN r.deployment END \
                FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int8[], $5::int8[], $6::bool[], $7::text[], \
                $8::text[], $9::text[], $10::bool[], $11::bool[], $12::text[]) \
                AS r (id, pipeline_key, request, created_at, not_before, keyed, scope, key, digest, has_blobs, \
                deployed, deployment) \
                ON CONFLICT (idempotency_scope, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                """,
            returnType: "text[]"
        )
    }

    /// The completion `UPDATE` of `storeResults`, one result per element of its six array parameters (batch
    /// positions, ids, lease owners, results, finished-at milliseconds, has-blobs). Only a row still `running`
    /// under the item's lease owner is written. `o.id = ANY($2)` lets the planner look the rows up by id.
    ///
    /// Planned with bitmap and sequential scans off (`BatchStatement.plannerSettings`), as the claim is
    /// (`claimFunction`), so the rows are found through the `id` key whatever the statistics say. On a table
    /// whose statistics count few running rows (a new deployment's, a benchmark's, until autovacuum analyzes it)
    /// the planner read the `_leases` index through a bitmap scan (ANDed with the `id` key's), which reads every
    /// entry of it at every completion, the dead ones each completed operation leaves there included: 30–66
    /// buffers per operation in pgaccept's runs, 20 in pgcomplete's against 19–20 now (bench/README.md).
    var completionUpdate: BatchStatement {
        BatchStatement(
            // `_complete2`: `_complete` (e030be6 and earlier) ran the statement itself; an instance of those
            // versions replaces any other body of that name at its start (review 16, F1).
            procedure: "\(operations)_complete2",
            parameterTypes: ["int8[]", "text[]", "text[]", "bytea[]", "int8[]", "bool[]"],
            sql: """
                UPDATE \(operations) AS o SET state = 'succeeded', result = r.result, error = NULL, \
                finished_at = r.finished_at, lease_expires_at = NULL, has_blobs = o.has_blobs OR r.has_blobs \
                FROM unnest($1::int8[], $2::text[], $3::text[], $4::bytea[], $5::int8[], $6::bool[]) \
                AS r (n, id, owner, result, finished_at, has_blobs) \
                WHERE o.id = ANY($2::text[]) AND o.id = r.id AND o.state = 'running' AND o.lease_owner = r.owner
                """,
            returnType: "int8[]",
            plannerSettings: ["enable_bitmapscan = off", "enable_seqscan = off"],
            // The name 4509262 gave it (its body unchanged since), as `_complete`'s body there called it.
            functionName: "\(operations)_complete_rows"
        )
    }

    /// The statement texts a claim and a batch write send, made once per store (`sentTexts`).
    final class SentTexts: Sendable {
        /// `claimQuery`'s statement: the claim function's rows, each one record of `selectColumns` then
        /// `previous_lease_owner`.
        let claim: String
        /// `enqueueInsert`, returning the ids it inserted.
        let enqueue: BatchCall
        /// `completionUpdate`, returning the batch positions it wrote (`r.n`).
        let completion: BatchCall

        init(claimFunction: String, enqueue: BatchStatement, completion: BatchStatement) {
            claim = """
                SELECT ROW(\(PostgresOperationStore.selectColumns), previous_lease_owner) FROM (SELECT \
                (c.claimed_operation).*, c.previous_lease_owner FROM \(claimFunction)($1, $2, $3, $4, $5, $6, $7, $8, $9) AS c) AS c
                """
            self.enqueue = BatchCall(enqueue, returning: "id")
            self.completion = BatchCall(completion, returning: "r.n")
        }
    }

    /// The texts of one batch write (`committedBatch`): the `CALL` of its procedure, which commits, and the
    /// statement run inside a caller's transaction (through its function when it has planner settings, else
    /// `sql` with `RETURNING <column>`).
    final class BatchCall: Sendable {
        let call: String
        let inTransaction: String

        init(_ statement: BatchStatement, returning column: String) {
            let arguments = statement.arguments
            call = "CALL \(statement.procedure)(\(arguments), NULL)"
            inTransaction =
                statement.function(returning: column).map { "SELECT unnest(\($0.name)(\(arguments)))" }
                ?? "\(statement.sql) RETURNING \(column)"
        }
    }

    /// The texts `claim` and `committedBatch` send, made at the first use and kept: they depend only on the
    /// table prefix. Made per call (`claimFunction`, `enqueueInsert`, `completionUpdate` and their `arguments`
    /// build their whole text, the procedure's and function's bodies included, with `joined` run unspecialised),
    /// they cost ~13 k instructions per accepted-and-run operation (bench/README.md, branch asynccost5).
    var sentTexts: SentTexts {
        sentTextsMade.withLock { made in
            if let made { return made }
            let texts = SentTexts(
                claimFunction: claimFunction.name, enqueue: enqueueInsert, completion: completionUpdate)
            made = texts
            return texts
        }
    }

    /// A batch write (an enqueue or a completion batch): its statement, and the procedure that runs it and
    /// commits (`committedBatch`).
    struct BatchStatement {
        /// The procedure's name (the table prefix's).
        var procedure: String
        /// The statement's `$1…$n` types, which the procedure takes in that order.
        var parameterTypes: [String]
        /// One statement without `RETURNING`, its parameters `$1…$n`.
        var sql: String
        /// The array type of the column `committedBatch` returns.
        var returnType: String
        /// Planner settings (`name = value`) for `sql`; none: the procedure runs `sql` itself. Else `sql` runs in
        /// a function of its own (`function`) carrying them as `SET` clauses, which the procedure calls and then
        /// commits: a procedure that commits cannot carry a `SET` clause, and a statement sent on its own cannot
        /// ask for them (start-up parameters, which poolers such as PgBouncer refuse by default). The function's
        /// settings apply while PostgreSQL plans its statement and end when it returns. A procedure that gains
        /// them changes its body, so it takes a new name (`Routine`).
        var plannerSettings: [String] = []
        /// The function's name (`function(returning:)`); nil: `<procedure>_rows`.
        var functionName: String? = nil

        /// `plannerSettings` as PostgreSQL stores them (`pg_proc.proconfig` joined by `,`); nil for none.
        var storedSettings: String? {
            plannerSettings.isEmpty
                ? nil
                : plannerSettings.map { String($0.filter { $0 != " " }) }
                    .joined(separator: ",")
        }

        /// The function that runs `sql` with `RETURNING <column>` under `plannerSettings` and returns that column
        /// as one array (NULL for no rows), `functionName`; nil without settings. Created before the procedure
        /// at every start when its stored body or settings differ, like the procedure.
        func function(returning column: String) -> (name: String, body: String, sql: String)? {
            guard !plannerSettings.isEmpty else { return nil }
            let name = functionName ?? "\(procedure)_rows"
            let body = """

                DECLARE
                    returned \(returnType);
                BEGIN
                    WITH written AS (\(sql) RETURNING \(column) AS value) SELECT array_agg(value) INTO returned FROM written;
                    RETURN returned;
                END

                """
            let settings = plannerSettings.map { "SET \($0)" }.joined(separator: " ")
            return (
                name, body,
                """
                CREATE OR REPLACE FUNCTION \(name)(\(parameterTypes.joined(separator: ", "))) RETURNS \(returnType) \
                LANGUAGE plpgsql \(settings) AS $function$\(body)$function$
                """
            )
        }

        /// `$1, …, $n`, one per parameter.
        var arguments: String { (1...parameterTypes.count).map { "$\($0)" }.joined(separator: ", ") }

        /// `CREATE OR REPLACE PROCEDURE <procedure>(<parameterTypes>, INOUT returned <returnType>)`: runs `sql`
        /// with `RETURNING <column>`, collects that column into one array and **commits** before it returns.
        /// Why a procedure: PostgresNIO answers a statement at its CommandComplete, and a statement outside a
        /// transaction block is committed only after that, at the Sync that follows; normally the server sends both together once the commit is done, but a commit
        /// whose WAL flush fails is a PANIC, whose error report first sends the queued CommandComplete. A
        /// `COMMIT` inside a procedure `CALL`ed outside a transaction block (PostgreSQL 11+) is a full commit,
        /// which with `synchronous_commit = on` returns only once its WAL is flushed (and PANICs, answering no
        /// CommandComplete, when that fails), and the `CALL` completes only after it: one round trip whose answer
        /// proves the batch durable, where the statement and a `SELECT 1` run after it to confirm its commit
        /// took two (bench/README.md, branch pgbatch). PL/pgSQL also keeps the statement's plan per connection.
        /// Created at a start that finds another body stored (`CREATE OR REPLACE`), so a later version that changes
        /// a procedure's body must give it a new name (`_complete2`): instances of two versions sharing one
        /// database during a rolling upgrade would otherwise replace each other's (`Routine`).
        func procedureSQL(returning column: String) -> String {
            """
            CREATE OR REPLACE PROCEDURE \(procedure)(\(parameterTypes.joined(separator: ", ")), \
            INOUT returned \(returnType)) LANGUAGE plpgsql AS $procedure$\(procedureBody(returning: column))$procedure$
            """
        }

        /// The procedure's body: what PostgreSQL stores as its `pg_proc.prosrc`, compared at start to skip an
        /// unchanged procedure.
        func procedureBody(returning column: String) -> String {
            if let function = function(returning: column) {
                return """

                    BEGIN
                        returned := \(function.name)(\(arguments));
                        COMMIT;
                    END

                    """
            }
            return """

                BEGIN
                    WITH written AS (\(sql) RETURNING \(column) AS value) SELECT array_agg(value) INTO returned FROM written;
                    COMMIT;
                END

                """
        }
    }

    /// The stored (committed) operations the idempotency keys of `news` name, by principal scope and key: one
    /// query per scope (a batch of accepts seldom spans many principals).
    private func storedOperations(keyedBy news: [NewOperation]) async throws -> [String: [String: Operation]] {
        var keysByScope: [String: Set<String>] = [:]
        for new in news {
            guard let scope = new.idempotencyScope, let key = new.operation.idempotencyKey else { continue }
            keysByScope[scope, default: []].insert(key)
        }
        var stored: [String: [String: Operation]] = [:]
        for (scope, keys) in keysByScope {
            let rows = try await client.query(
                """
                SELECT \(unescaped: Self.selectRecord) FROM \(unescaped: operations) \
                WHERE idempotency_scope = \(scope) AND idempotency_key = ANY(\(Array(keys)))
                """,
                logger: logger
            ).collect()
            for operation in try await makeOperations(rows) {
                if let key = operation.idempotencyKey { stored[scope, default: [:]][key] = operation }
            }
        }
        return stored
    }

    /// `new`'s answer from the operation its idempotency key names in `stored`; nil when it names none.
    private static func idempotentAnswer(
        _ new: NewOperation,
        stored: [String: [String: Operation]]
    ) -> Result<(operation: Operation, created: Bool), any Error>? {
        guard let scope = new.idempotencyScope, let key = new.operation.idempotencyKey else { return nil }
        return new.idempotentAnswer(existing: stored[scope]?[key])
    }

    /// Inserts spilled blobs (of requests or results) with one multi-row `INSERT` per at most 1 000 blobs.
    private func insertBlobs(_ blobs: [(operationID: String, blob: SpilledBlob)], on connection: PostgresConnection)
        async throws
    {
        // 3 binds a row; PostgreSQL takes at most 65 535 binds a statement.
        for start in stride(from: 0, to: blobs.count, by: 1000) {
            let chunk = blobs[start..<min(start + 1000, blobs.count)]
            var binds = PostgresBindings(capacity: chunk.count * 3)
            var rows: [String] = []
            for (operationID, blob) in chunk {
                let first = binds.count + 1
                binds.append(operationID)
                binds.append(blob.name)
                binds.append(blob.bytes)
                rows.append("($\(first), $\(first + 1), $\(first + 2))")
            }
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(blobTable) (operation_id, name, bytes) VALUES \(rows.joined(separator: ", "))
                        """,
                    binds: binds
                ),
                logger: logger
            )
        }
    }

    /// The `returning` column of the rows `statement` wrote with `binds`, once they are committed: on `connection`,
    /// inside the caller's transaction (which commits it), or else by one `CALL` of the statement's procedure,
    /// which commits before it answers (`BatchStatement.procedureSQL`). The one place a batch write chooses between
    /// them.
    ///
    /// - Throws: the driver's error when the statement fails (then nothing of it is committed), or when the
    ///   connection is lost before the answer (then it may or may not be committed, as when a `COMMIT` is lost).
    private func committedBatch<Value: PostgresArrayDecodable>(
        _ statement: BatchCall,
        binds: PostgresBindings,
        on connection: PostgresConnection?,
        as: Value.Type
    ) async throws -> [Value] where Value._DecodableType == Value {
        if let connection {
            let rows = try await connection.query(
                PostgresQuery(unsafeSQL: statement.inTransaction, binds: binds), logger: logger
            ).collect()
            return try rows.map { try $0.decode(Value.self) }
        }
        let rows = try await client.query(PostgresQuery(unsafeSQL: statement.call, binds: binds), logger: logger)
            .collect()
        // array_agg of no rows is NULL.
        return try rows.first?.decode([Value]?.self) ?? []
    }

    /// Runs `body` in a transaction; the error `body` threw is rethrown as is (PostgresNIO wraps it).
    private func transaction<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await body(connection)
            }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.beginError ?? error.commitError ?? error
        }
    }

    /// Bounds a store call by `operationTimeout` and maps every failure that is not already a
    /// `GatewayError` to `.unavailable`.
    func bounded<T: Sendable>(
        _ what: String,
        forOperator: Bool = false,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let timeout = self.timeout
        do {
            guard let value = try await Self.withTimeout(timeout, on: PostgresClient.defaultEventLoopGroup.any(), body)
            else {
                // Often a wait for a connection the pool could not open: ask the server why.
                connectDiagnosis.run()
                throw GatewayError(.unavailable, "operation store unavailable: \(what) timed out after \(timeout)")
            }
            return value
        } catch {
            if PostgresErrorDescription.isConnectionWait(error) { connectDiagnosis.run() }
            if forOperator {
                // A privilege found missing by the schema's own checks, or refused by the server.
                if let privilege = error as? PostgresErrorDescription.Privilege { throw privilege }
                if let privilege = PostgresErrorDescription.Privilege(error) { throw privilege }
                throw (error as? GatewayError)
                    ?? GatewayError(
                        .unavailable, "cannot reach PostgreSQL: \(PostgresErrorDescription.describe(error))")
            }
            throw OperationStoreErrors.unavailable(
                what, error, described: PostgresErrorDescription.describe(error),
                diskFull: PostgresErrorDescription.isDiskFull(error), logger: logger)
        }
    }

    /// The operations of `rows`, their blobs read through `connection` when given (inside a transaction, to
    /// see its own uncommitted rows), else through the pool.
    private func makeOperations(
        _ rows: [PostgresRow],
        sorted: Bool = false,
        on connection: PostgresConnection? = nil
    ) async throws -> [Operation] {
        var decoded = try rows.map(Self.operationRow)
        if sorted { decoded.sort { $0.row.sequence < $1.row.sequence } }
        return try await makeOperations(decoded: decoded, on: connection)
    }

    /// The operations of decoded rows, in their order; blobs as in `makeOperations(_:sorted:on:)`.
    ///
    /// The rows and their blobs are two reads. An operation deleted between them (`delete(id:)`, a user's
    /// `delete_pipeline_execution`, or `purge`) took its blob rows with it (ON DELETE CASCADE): it is left out, as
    /// a read a moment later would not find it (a `get` answers nil, a page lacks it), rather than failing the
    /// read. One still there whose blobs are missing is damage, and fails it (`.internalError`).
    func makeOperations(
        decoded: [(row: OperationRow, hasBlobs: Bool)],
        on connection: PostgresConnection? = nil
    ) async throws -> [Operation] {
        func run(_ query: PostgresQuery) async throws -> [PostgresRow] {
            if let connection {
                try await connection.query(query, logger: logger).collect()
            } else {
                try await client.query(query, logger: logger).collect()
            }
        }
        let ids = decoded.filter(\.hasBlobs).map(\.row.id)
        var blobs: [String: [String: ByteBuffer]] = [:]
        var gone: Set<String> = []
        if !ids.isEmpty {
            let blobRows = try await run(
                "SELECT operation_id, name, bytes FROM \(unescaped: blobTable) WHERE operation_id = ANY(\(ids))")
            for row in blobRows {
                let (operationID, name, bytes) = try row.decode((String, String, ByteBuffer).self)
                blobs[operationID, default: [:]][name] = bytes
            }
            let without = ids.filter { blobs[$0] == nil }
            if !without.isEmpty {
                let present = try await run(
                    "SELECT id FROM \(unescaped: operations) WHERE id = ANY(\(without))"
                ).map { try $0.decode(String.self) }
                gone = Set(without).subtracting(present)
            }
        }
        let found = blobs
        return try decoded.filter { !gone.contains($0.row.id) }.map { entry in
            try entry.row.makeOperation { name in
                guard let bytes = found[entry.row.id]?[name] else {
                    throw GatewayError(.internalError, "operation \(entry.row.id) names blob \(name), which is missing")
                }
                return bytes
            }
        }
    }

    /// A row of `selectRecord`.
    ///
    /// - Throws: `PostgresDecodingError` for a cell that is not a record in the binary format;
    ///   `GatewayError(.internalError)` for a field of another type, a NULL where none may be, a short record.
    static func operationRow(_ row: PostgresRow) throws -> (row: OperationRow, hasBlobs: Bool) {
        var record = try row.decode(PostgresRecord.self)
        return try operationRow(&record)
    }

    /// A row of `claimQuery`: `selectRecord` with `previous_lease_owner` as its last field.
    private static func claimedRow(_ row: PostgresRow) throws -> (
        entry: (row: OperationRow, hasBlobs: Bool), previousOwner: String?
    ) {
        var record = try row.decode(PostgresRecord.self)
        let entry = try operationRow(&record)
        return (entry, try record.stringOrNil())
    }

    /// A row of `claimWebhooks`: `selectRecord` with `webhook_attempts` as its last field.
    private static func webhookRow(_ row: PostgresRow) throws -> (
        entry: (row: OperationRow, hasBlobs: Bool), attempts: Int64
    ) {
        var record = try row.decode(PostgresRecord.self)
        let entry = try operationRow(&record)
        return (entry, try record.int64())
    }

    /// The `selectColumns` fields of a record, from its next field on.
    static func operationRow(_ record: inout PostgresRecord) throws -> (row: OperationRow, hasBlobs: Bool) {
        let seq = try record.int64(), id = try record.string(), state = try record.string()
        let request = try record.bytes(), result = try record.bytesOrNil(), error = try record.bytesOrNil()
        let created = try record.int64(), started = try record.int64OrNil(), finished = try record.int64OrNil()
        let attempts = try record.int64(), owner = try record.stringOrNil(), expires = try record.int64OrNil()
        let notBefore = try record.int64(), key = try record.stringOrNil(), digest = try record.string()
        let cutRuns = try record.int64(), hasBlobs = try record.bool()
        return (
            OperationRow(
                sequence: seq, id: id, state: state, request: request, result: result, error: error,
                createdAt: created, startedAt: started, finishedAt: finished, attempts: Int(attempts),
                leaseOwner: owner, leaseExpiresAt: expires, notBefore: notBefore, idempotencyKey: key,
                requestDigest: digest, cutRuns: Int(cutRuns)
            ),
            hasBlobs
        )
    }
}

extension PostgresOperationStore: ConnectionLossSignalling {
    /// Holds an idle session of its own and returns when it closed and a new one cannot be opened: PostgreSQL
    /// ends every session when it stops (fast or immediate shutdown), restarts or is failed over, and the pool,
    /// which reconnects behind its callers, does not say so. A session ended while the server still takes new
    /// ones (`idle_session_timeout`, `pg_terminate_backend`) is replaced and watched again. One connection per
    /// gateway; when none can be opened at first this waits until cancelled (the periodic probe decides).
    package func connectionLost() async -> String {
        guard let session = try? Self.sessionConfiguration(configuration) else { return await Self.waitForCancel() }
        var id = 1
        guard var connection = try? await PostgresConnection.connect(configuration: session, id: id, logger: logger)
        else { return await Self.waitForCancel() }
        while !Task.isCancelled {
            let watched = connection
            await withTaskCancellationHandler {
                try? await watched.closeFuture.get()
            } onCancel: {
                watched.close().whenComplete { _ in }
            }
            if Task.isCancelled { return "" }
            id += 1
            do {
                connection = try await PostgresConnection.connect(configuration: session, id: id, logger: logger)
            } catch {
                return "the server closed the gateway's session and a new one cannot be opened: "
                    + PostgresErrorDescription.describe(error, sslMode: configuration.tls.mode.rawValue)
            }
        }
        try? await connection.close()
        return ""
    }

    /// Until cancelled; then "" (nothing was lost).
    private static func waitForCancel() async -> String {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        return ""
    }
}
