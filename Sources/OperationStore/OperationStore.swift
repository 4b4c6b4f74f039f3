package import FoundationEssentials
package import Logging
package import TriggerModel

/// The durable home of async operations: one protocol, two stores (SQLite for one instance, PostgreSQL for
/// several sharing work).
///
/// Contract every implementation keeps (the shared suite in `Tests/OperationStoreTests` checks it):
/// - what a method returns is committed (durable) before it returns, a claim included (a run starts only on a
///   claim a crash of the store keeps: one lost made another instance run the operation again while its owner
///   ran it too, cluster review 59 H1); a store it cannot reach answers `GatewayError(.unavailable)`, never an id
///   that was not stored. A claim lost anyway (a failover to a standby that had not received it) leaves its
///   operations as they were before it, which is where its leases would have expired to: they are claimed again,
///   and the lost claim's owner is fenced (`complete`, `fail`, `renewLease`, `release` answer false);
/// - a claim hands an operation to one owner at a time, and only the current owner of a running operation
///   may finish it, so no operation ends with two results;
/// - blobs above the store's inline limit live outside the operation rows (files or a side table), written
///   before the row that refers to them is committed.
///
/// Lease owners must be unique per claiming worker (e.g. instance id + worker index): fencing compares the
/// owner only.
package protocol OperationStore: Sendable {
    /// Stores a new queued operation for `request`, or returns the one already stored under the same
    /// idempotency key (scoped by `request.principal`) when the request digest matches (`created == false`).
    /// Throws `.conflict` when the key was used with a different request.
    func enqueue(_ request: TriggerRequest, idempotencyKey: String?) async throws -> (
        operation: Operation, created: Bool
    )

    func get(id: String) async throws -> Operation?

    /// Newest first. `pageToken` is the `nextPageToken` of the previous page; paging is stable under new
    /// enqueues (they sort before the first page). Throws `.invalidArgument` for a malformed token or filter.
    func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?)

    /// queued/running → cancelled. Throws `.failedPrecondition` for a finished operation, `.notFound` for
    /// an unknown id. A worker still running a cancelled operation finds out when `complete`/`fail`/
    /// `renewLease` return false. `webhookOwner`: the operation's route has a completion webhook; its delivery
    /// is recorded as pending in the same write, reserved for that owner (see `complete`).
    func cancel(id: String, webhookOwner: String?) async throws -> Operation

    /// Takes up to `limit` operations that are queued with `notBefore <= now`, or running with an expired
    /// lease, oldest first, among those `scope` allows; marks them running under `owner` until
    /// `now + leaseDuration`, attempts + 1. Atomic per call: two callers never take the same operation. An
    /// operation taken from `running` names the owner of its expired lease in `takenOverFrom` (a lease takeover).
    /// `takeover` says which expired leases it may take (``LeaseTakeover``). Lease instants are the store's lease
    /// clock (PostgreSQL: the database server's, see its store), `now` read on it.
    func claim(
        owner: String,
        leaseDuration: Duration,
        limit: Int,
        now: Date,
        scope: ClaimScope,
        takeover: LeaseTakeover
    ) async throws -> [Operation]

    /// Extends the lease; false when `owner` no longer holds the running operation. A lease that expired but that
    /// no claim took over is still `owner`'s and is renewed (a store outage kept its owner from renewing it).
    func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool

    /// Ends at once every lease whose owner starts with `ownerPrefix` (a restarted instance's earlier runs, which
    /// died with its previous process) but not with `sparing` (nil: none spared), so the next `claim` takes those
    /// operations without waiting for the leases to expire. Returns how many leases it ended. Pending webhook
    /// deliveries reserved for such owners are freed too (not counted), so the next `claimWebhooks` takes them
    /// when due.
    ///
    /// `sparing` is the running process's own owner prefix: its claims start beside the take-back, so a lease it
    /// took a moment before must not be ended with its predecessor's (the run went on, the next claim took the
    /// operation again: an attempt counted twice, or the pipeline run twice; session 61, a CI failure of
    /// `AsyncDurabilityTests.twoInstancesPostgres`).
    func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int

    /// Whether another live process writes `instance`'s heartbeat (`probe`) besides this store: a copy of the
    /// data directory, whose `instance-id` it shares, running on another host. A restarted instance asks before
    /// `expireLeases` takes its earlier leases back, since those of a live copy are its running operations (cluster
    /// review 59, M1: they were taken and run a second time, and the copy was found a beat later). When the
    /// heartbeat was written recently by another boot (a crashed predecessor looks so too), waits
    /// `probeInterval` × 2 for a beat of that boot newer than the one read: a live copy beats every
    /// `probeInterval`, a dead one never again. False for a store only one process uses (SQLite: the data
    /// directory's lock). Throws `.unavailable` when the store cannot be reached.
    func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool

    /// running → succeeded, only for the lease owner; false (and nothing changes) otherwise. `webhook`: the
    /// operation's route has a completion webhook; its delivery is recorded as pending in the same write
    /// (``PendingWebhook``: due at `now`, reserved for `owner`), so no crash can leave the result stored and the
    /// delivery forgotten.
    func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws -> Bool

    /// running → failed, or → queued with `notBefore = retryAt` when `retryAt` is given; only for the lease
    /// owner, false (and nothing changes) otherwise. `webhook`: as `complete`'s, for the final failure only
    /// (ignored with a `retryAt`).
    func fail(id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool)
        async throws -> Bool

    /// Takes up to `limit` pending webhook deliveries that are due (`webhookDue <= now`) and reserved for no one
    /// (or whose reservation is older than `leaseDuration`: its holder died or stopped), earliest due first, and
    /// reserves them for `owner` from `now`. Atomic per call: two callers never take the same delivery. The
    /// reservation holds until `now + leaseDuration`, or until `owner` records an attempt
    /// (``recordWebhookAttempt(id:owner:attempts:nextAttemptAt:)``), which renews it from the next due time.
    func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]

    /// Records the attempts made on a pending delivery reserved for `owner`: `attempts` in all, and the next one
    /// due at `nextAttemptAt` (still reserved for `owner`); nil clears the pending delivery (delivered, given up,
    /// or dropped). False (and nothing changes) when the delivery is not pending under `owner` (another instance
    /// took it over after its reservation lapsed).
    func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws -> Bool

    /// running → queued, its attempt not held against it: the gateway itself cut the run (at shutdown) or the
    /// call never reached a runner, so the pipeline was not at fault. The lease is cleared and it is not claimed
    /// again before `notBefore`. `callMade`: whether the cut run's backend call was made (a graceful stop cut
    /// it): `attempts` (backend calls made, API.md) keeps it and `cutRuns` counts it; else (no runner saw the
    /// call) `attempts` drops by one, as if it had never been claimed, and so does `startedAt` when that claim was
    /// the only one counted (no runner was ever reached: nil again). Only for the lease owner; false (and nothing
    /// changes) otherwise.
    func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool

    /// Takes back the attempts of `count` claims of a running operation that made no backend call: a run already
    /// in progress on the claiming instance adopted them (its lease had expired during a store outage; README
    /// "Store outages", `AsyncDispatcher.adopt`), the last of them by `owner`. `attempts` drops by `count`, as
    /// `release(…, callMade: false)` drops it by one; the operation stays running under `owner`. Only for the lease
    /// owner of a running operation whose `attempts` is `attempts` (what the last adopted claim counted) or
    /// already that less `count` (floored at 0); false (and nothing changes) otherwise. So it is idempotent: a
    /// repeat after a reply that was lost (a timeout, a failover) answers true and takes nothing back twice, and
    /// the caller learns that the first one was applied (review 14 F1, review 16 F2: a run that did not learn it
    /// kept a stale fence, and its next adoption's uncount took the first count back again).
    func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool

    /// How many operations are queued now (state `queued`, a retry waiting for its time included): the queue's
    /// length over the whole store, whichever instance queued them. One count on the state index.
    func queuedCount() async throws -> Int

    /// How many operations of one pipeline (`OperationFilter.pipelineKey`, releases included) are queued now, as
    /// `queuedCount()` counts them. For the async dispatcher's warning about operations no route of this instance
    /// matches (`AsyncDispatcher`, review 18 F8): called at most once per such pipeline per warning interval.
    func queuedCount(pipelineKey: String) async throws -> Int

    /// The queue by pipeline (`OperationFilter.pipelineKey`): one entry per pipeline with queued operations (state
    /// `queued`, as `queuedCount()` counts them), in no order. For `trigger_gateway_async_queued{pool}` and
    /// `trigger_gateway_async_oldest_queued_timestamp_seconds{pool}` (review 26 M5), read by the async dispatcher
    /// every few seconds: one walk of the queued rows (the same index as `queuedCount()`), whatever the number of
    /// pipelines.
    func queuedByPipeline() async throws -> [PipelineQueue]

    /// Deletes finished operations whose `finishedAt < finishedBefore`, with their blobs; returns how many. An
    /// operation whose webhook delivery is still pending is kept until the delivery is cleared (delivered, given
    /// up or dropped).
    func purge(finishedBefore: Date) async throws -> Int

    /// Deletes the finished operation `id`, with its blobs, as `purge` deletes it at retention: what Craft AI's
    /// `delete_pipeline_execution` asks of a finished execution. True when it was deleted; false when no such row
    /// was there to delete: an unknown id, an operation not finished (queued or running), or one whose webhook
    /// delivery is still pending (kept until the delivery is cleared, as `purge` keeps it). The caller reads the
    /// operation to say which. Its idempotency key is free again once it is gone, as after `purge`.
    func delete(id: String) async throws -> Bool

    /// Proves the store is reachable and writable right now with a real write: upserts the heartbeat row of
    /// `instance` (one row per gateway instance, so probes of several instances never contend). Throws
    /// `.unavailable` when the write cannot be committed. The readiness of the async component follows it.
    func probe(instance: String, now: Date) async throws

    func close() async throws
}

/// A store on a server that can tell at once when the server went away (it closed our session: stopped,
/// restarted, failed over), so readiness follows the outage within milliseconds rather than at the next probe,
/// which would also wait out its timeout for a connection that cannot be made (review 17: `/readyz` stayed
/// ready ~3 s after PostgreSQL stopped).
package protocol ConnectionLossSignalling: Sendable {
    /// Returns when a session the store holds for this purpose was closed by the server or the network and a new
    /// one could not be opened, with why in operator words (the failed reconnect's error: "connection refused"),
    /// for the log line that says the store is not ready (review 18, F3: the cause was never logged). Never
    /// returns (until cancelled) when no such session could be opened: the periodic probe decides then.
    func connectionLost() async -> String
}

/// Page sizes every store applies.
package enum OperationPaging {
    package static let defaultPageSize = 50
    package static let maximumPageSize = 1000

    /// `pageSize <= 0` means the default; larger than the maximum is capped.
    package static func effectivePageSize(_ requested: Int) -> Int {
        requested <= 0 ? defaultPageSize : min(requested, maximumPageSize)
    }

    /// Where a page continues: after the operation a token names (what this gateway's tokens carry), or after a
    /// store sequence number (tokens made by gateways before it; still honoured, so a listing that spans an
    /// upgrade goes on).
    package enum PageCursor: Equatable, Sendable {
        case afterID(String)
        case afterSequence(Int64)
    }

    /// Tokens are opaque to clients; inside, the id of the last operation the page returned and a tag of the
    /// filter the page was listed with (`i<id>.<tag>`, the tag base 36), so a token is only good for the filter it
    /// was made under (AIP-158: changing the filter between pages is INVALID_ARGUMENT). The id, not the store's
    /// sequence number: that is global, so a token carrying it told any client how many operations the store
    /// had taken, every principal's together (security review 30, I2); the id is one the client was just shown.
    package static func makeToken(afterID id: String, filter: OperationFilter) -> String {
        "i" + id + "." + filterTag(filter)
    }

    /// The token an earlier gateway made (`o<sequence>.<tag>`, base 36): still parsed (``parseToken(_:filter:)``),
    /// no longer issued. For tests of that compatibility.
    package static func legacyToken(afterSequence sequence: Int64, filter: OperationFilter) -> String {
        "o" + String(sequence, radix: 36) + "." + filterTag(filter)
    }

    /// Where `token` continues.
    ///
    /// - Throws: `.invalidArgument` for a malformed token, or one made under another filter than `filter`.
    package static func parseToken(_ token: String, filter: OperationFilter) throws(GatewayError) -> PageCursor {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].isEmpty, let kind = parts[0].first else {
            throw GatewayError(.invalidArgument, "invalid page_token")
        }
        let body = parts[0].dropFirst()
        let cursor: PageCursor
        switch kind {
        case "i" where (1...64).contains(body.utf8.count) && body.utf8.allSatisfy(Self.isIDByte):
            cursor = .afterID(String(body))
        case "o":
            guard let sequence = Int64(body, radix: 36), sequence > 0 else {
                throw GatewayError(.invalidArgument, "invalid page_token")
            }
            cursor = .afterSequence(sequence)
        default:
            throw GatewayError(.invalidArgument, "invalid page_token")
        }
        guard parts[1] == filterTag(filter) else {
            throw GatewayError(
                .invalidArgument,
                "page_token was made for another filter: keep the pipeline and state of the first page, "
                    + "or start again without a page_token")
        }
        return cursor
    }

    /// An operation id's bytes: ASCII letters and digits (``Operation/makeID()``'s alphabet and more), `-`, `_`.
    private static func isIDByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// The operation id a page continues after, when `pageToken` names one (a valid token: `listQuery` parsed it).
    /// A store whose page came back empty checks that this operation still exists: a token whose operation was
    /// removed since (`purge`) would otherwise end the listing early and silently.
    package static func cursorID(_ pageToken: String?) -> String? {
        guard let pageToken, pageToken.hasPrefix("i"), let dot = pageToken.lastIndex(of: ".") else { return nil }
        return String(pageToken[pageToken.index(after: pageToken.startIndex)..<dot])
    }

    /// The error for a token whose operation no longer exists (see `cursorID`).
    package static func cursorGone() -> GatewayError {
        GatewayError(
            .invalidArgument,
            "page_token is no longer valid: the operation it continues after was removed; "
                + "list again from the first page")
    }

    /// A short tag of `filter` (32-bit FNV-1a of its pipeline and state, base 36): the same in every process,
    /// since a token one instance made may come back to another sharing the store. It binds a token to its
    /// filter against mistakes; it is not a secret (the filter is the client's own).
    static func filterTag(_ filter: OperationFilter) -> String {
        var hash: UInt32 = 0x811C_9DC5
        var bytes = Array((filter.pipeline ?? "").utf8) + [0] + Array((filter.state?.rawValue ?? "").utf8)
        // Only a filter with a deployment adds it, so tokens made before it existed stay good.
        if let deployment = filter.deployment { bytes += [0] + Array(deployment.utf8) }
        for byte in bytes {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        return String(hash, radix: 36)
    }

    /// A value `listQuery` binds.
    package enum Bind: Sendable {
        case text(String)
        case integer(Int64)
    }

    /// The statement of one `list` page, the same in every store: `select` from `table` with `filter`'s
    /// conditions, after the row `pageToken` names, newest first, `pageSize + 1` rows (the extra row tells
    /// whether there is a next page without a COUNT). `bind` adds a value to the statement's binds and returns
    /// its placeholder (`?` for SQLite, `$n` for PostgreSQL).
    ///
    /// - Throws: `.invalidArgument` for a malformed token or pipeline filter.
    package static func listQuery(
        select: String,
        from table: String,
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?,
        bind: (Bind) -> String
    ) throws(GatewayError) -> String {
        var sql = "SELECT \(select) FROM \(table) WHERE 1 = 1"
        if let key = try filter.validatedPipelineKey() { sql += " AND pipeline_key = \(bind(.text(key)))" }
        if let state = filter.state { sql += " AND state = \(bind(.text(state.rawValue)))" }
        if let deployment = filter.deployment { sql += " AND deployment = \(bind(.text(deployment)))" }
        if let pageToken {
            switch try parseToken(pageToken, filter: filter) {
            case .afterID(let id):
                // One lookup by the unique id (evaluated once, not per row).
                sql += " AND seq < (SELECT seq FROM \(table) WHERE id = \(bind(.text(id))))"
            case .afterSequence(let sequence):
                sql += " AND seq < \(bind(.integer(sequence)))"
            }
        }
        return sql + " ORDER BY seq DESC LIMIT \(bind(.integer(Int64(pageSize + 1))))"
    }

    /// Splits the rows of a `listQuery` into the page and the token of the next one (nil on the last page),
    /// made for `filter` after the page's last operation (`id` reads a row's operation id).
    package static func page<Row>(
        _ rows: [Row],
        pageSize: Int,
        filter: OperationFilter,
        id: (Row) throws -> String
    ) rethrows -> (rows: [Row], nextPageToken: String?) {
        let page = Array(rows.prefix(pageSize))
        guard rows.count > pageSize, let last = page.last else { return (page, nil) }
        return (page, makeToken(afterID: try id(last), filter: filter))
    }
}

/// The store call under way in this task, as `trigger_gateway_store_errors_total{operation}` names it: set by
/// `MeasuredOperationStore` around each call, and by a SQLite group commit to the calls it carries
/// (`complete+enqueue`); read where a store logs a failure below the call's own code (SQLite's statements, its blob
/// files), so that the log line's `store.operation` is the metric's label (operator review 58, F2: `sqlite`,
/// `heartbeat` and `blob_files` were no label).
package enum StoreCall {
    @TaskLocal package static var name: String?
}

/// The errors every store phrases the same way.
package enum OperationStoreErrors {
    package static func notFound(_ id: String) -> GatewayError {
        GatewayError(.notFound, "operation \(id) not found")
    }

    package static func alreadyFinished(_ id: String, _ state: OperationState) -> GatewayError {
        let finished =
            switch state {
            case .cancelled: "was already cancelled"
            case .succeeded: "has already succeeded"
            case .failed: "has already failed"
            case .queued, .running: "is \(state.rawValue)"
            }
        return GatewayError(.failedPrecondition, "operation \(id) \(finished)")
    }

    package static func idempotencyConflict(_ key: String) -> GatewayError {
        GatewayError(.conflict, "Idempotency-Key \(key) was used with a different request")
    }

    /// What a client sees when the store cannot answer. The cause (paths, driver errors, library type names)
    /// is logged by the store, never put in the message: clients see `request-id` to match it in the log.
    package static let unavailableMessage = "the operation store is unavailable; retry later"

    /// What a client sees when the store refused a write for lack of disk space (SQLite's `SQLITE_FULL`,
    /// `ENOSPC`/`EDQUOT` writing blob files, PostgreSQL's `disk_full`): still UNAVAILABLE (503 / code 14),
    /// since another instance can take the call, but saying why a retry here will not help (review 21, M3).
    /// The store logs the cause (the disk's path); the same refusal marks async NOT_SERVING
    /// (`StoreFullLatch`), so the load balancer leaves this instance.
    package static let diskFullMessage =
        "the operation store's disk is full: this instance cannot take async triggers; retry on another instance"

    /// Whether `error` is a store call refused for lack of disk space (see ``diskFullMessage``).
    package static func isDiskFull(_ error: any Error) -> Bool {
        guard let error = error as? GatewayError else { return false }
        return error.code == .unavailable && error.message == diskFullMessage
    }

    /// Maps a failure below the store to `.unavailable` with the client-safe message, and logs the cause.
    /// A `GatewayError` that is not `.unavailable` (conflict, not found...) passes through unchanged.
    ///
    /// A `CancellationError` while the calling task is cancelled is the caller's doing (its client went away
    /// mid-call, an abandoned long-poll), not the store's: it becomes `.cancelled` (499), unlogged, and
    /// `MeasuredOperationStore` does not count it in `trigger_gateway_store_errors_total`, an operator's alert on a
    /// healthy database otherwise (review 17, finding 3). In a task that is not cancelled it is the store's own:
    /// NIO's thread pool throws it for work given to a pool that was shut down (a closed SQLite store).
    ///
    /// `described`: the cause in an operator's words (a store knows its driver's errors); when given, the
    /// driver's own dump goes to a debug line only. `diskFull`: the store refused the write for lack of space;
    /// the client then reads ``diskFullMessage``.
    package static func unavailable(
        _ what: String,
        _ error: any Error,
        described: String? = nil,
        diskFull: Bool = false,
        logger: Logger,
        requestID: String? = nil
    ) -> GatewayError {
        if let error = error as? GatewayError {
            if error.code != .unavailable || error.message == unavailableMessage || error.message == diskFullMessage {
                return error
            }
        }
        if error is CancellationError, Task.isCancelled { return cancelled }
        let dump = String(reflecting: error)
        let operation = Logger.MetadataValue.string(operationLabel(what))
        var metadata: Logger.Metadata = ["store.operation": operation, "error": "\(described ?? dump)"]
        if let requestID { metadata["request_id"] = "\(requestID)" }
        logger.warning("operation store call failed", metadata: metadata)
        if let described, described != dump {
            logger.debug(
                "operation store call failed: the driver's error",
                metadata: ["store.operation": operation, "error": "\(dump)"])
        }
        return GatewayError(.unavailable, diskFull ? diskFullMessage : unavailableMessage)
    }

    /// `what`, a store call's name as a store spells it (its method, `queuedCount`; a group commit's
    /// `complete+enqueue`; `create schema`), in the spelling of the `operation` label of
    /// `trigger_gateway_store_errors_total` and of the slow-call line's `store.operation` (`queued_count`,
    /// `create_schema`), so that a log line and its metric series are found by one name (review 26, L6).
    package static func operationLabel(_ what: String) -> String {
        var label = ""
        label.reserveCapacity(what.utf8.count + 4)
        for character in what {
            if character == " " {
                label.append("_")
            } else if character.isUppercase {
                if !label.isEmpty, label.last != "_", label.last != "+" { label.append("_") }
                label.append(contentsOf: character.lowercased())
            } else {
                label.append(character)
            }
        }
        return label
    }

    /// A store call whose caller was cancelled before the store answered (see ``unavailable(_:_:described:diskFull:logger:requestID:)``).
    package static let cancelled = GatewayError(
        .cancelled, "the request was cancelled before the operation store answered")

    /// Whether `error` ended a store call because its caller was cancelled, not because the store failed: a
    /// `CancellationError` in a cancelled task, or the `.cancelled` that ``unavailable(_:_:described:diskFull:logger:requestID:)``
    /// made of one. Call it from the task that made the store call.
    package static func isCancellation(_ error: any Error) -> Bool {
        (error is CancellationError && Task.isCancelled) || (error as? GatewayError)?.code == .cancelled
    }

    /// Why `cancel` changed nothing: the operation is unknown (`state` nil) or already finished in `state`.
    package static func notCancellable(_ id: String, state: String?) -> GatewayError {
        guard let state else { return notFound(id) }
        return alreadyFinished(id, OperationState(rawValue: state) ?? .failed)
    }

    package static func invalidFilter(_ pipeline: String) -> GatewayError {
        GatewayError(.invalidArgument, "invalid pipeline filter \"\(pipeline)\" (expected namespace/pipeline)")
    }
}

extension Date {
    /// Milliseconds since 1970: the precision stores keep.
    package var storeMilliseconds: Int64 {
        // Nearest, not down: a Date made from milliseconds must map back to the same milliseconds.
        Int64((timeIntervalSince1970 * 1000).rounded())
    }

    package init(storeMilliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(storeMilliseconds) / 1000)
    }
}

extension Duration {
    package var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// A completion webhook not yet delivered, given up or dropped, as ``OperationStore/claimWebhooks(owner:leaseDuration:limit:now:)``
/// hands it out: the finished operation (its JSON is the body) and the attempts already made (0 before the first).
package struct PendingWebhook: Sendable {
    package var operation: Operation
    package var attempts: Int
    /// The operation's stored result could not be read (a SQLite result blob file is gone: `.dataLoss`): the
    /// operation comes without its result, and the delivery cannot be sent (``OperationRow/makePendingWebhook(attempts:resolveBlob:)``).
    package var lostResult: GatewayError?

    package init(operation: Operation, attempts: Int) {
        self.operation = operation
        self.attempts = attempts
    }
}

extension OperationStore {
    /// ``complete(id:owner:result:now:webhook:)`` of an operation whose route has no webhook.
    package func complete(id: String, owner: String, result: TriggerResult, now: Date) async throws -> Bool {
        try await complete(id: id, owner: owner, result: result, now: now, webhook: false)
    }

    /// ``fail(id:owner:error:retryAt:now:webhook:)`` of an operation whose route has no webhook.
    package func fail(id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date) async throws -> Bool {
        try await fail(id: id, owner: owner, error: error, retryAt: retryAt, now: now, webhook: false)
    }

    /// ``cancel(id:webhookOwner:)`` of an operation whose route has no webhook.
    package func cancel(id: String) async throws -> Operation {
        try await cancel(id: id, webhookOwner: nil)
    }
}

extension OperationStore {
    /// `claim` over every pipeline, taking over any expired lease.
    package func claim(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws -> [Operation] {
        try await claim(owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: .all, takeover: .any)
    }

    /// `claim` taking over any expired lease.
    package func claim(owner: String, leaseDuration: Duration, limit: Int, now: Date, scope: ClaimScope)
        async throws -> [Operation]
    {
        try await claim(
            owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: scope, takeover: .any)
    }
}

extension OperationStore {
    /// ``release(id:owner:notBefore:callMade:now:)`` of a run whose call reached no runner, claimable again at
    /// once (`notBefore = now`).
    package func release(id: String, owner: String, now: Date) async throws -> Bool {
        try await release(id: id, owner: owner, notBefore: now, callMade: false, now: now)
    }

    /// ``release(id:owner:notBefore:callMade:now:)`` of a run whose call reached no runner.
    package func release(id: String, owner: String, notBefore: Date, now: Date) async throws -> Bool {
        try await release(id: id, owner: owner, notBefore: notBefore, callMade: false, now: now)
    }
}
