package import FoundationEssentials
package import Logging
import GatewayConfig
import NIOCore
package import Observability
package import OperationStore
package import TriggerModel

/// An operation store that times every call for /metrics (`trigger_gateway_store_operation_duration_seconds`
/// and `trigger_gateway_store_errors_total`, by store method) and otherwise forwards to `base`: the one place
/// all async traffic to either store passes (the frontends, the dispatcher, the scheduler, the health probe).
///
/// Use ``measuring(_:metrics:)``: it keeps schedule state reachable exactly when `base` keeps it.
/// `@unchecked Sendable`: immutable, and not final only so ``MeasuredScheduleStateStore`` can add conformance.
package class MeasuredOperationStore: OperationStore, @unchecked Sendable {
    let base: any OperationStore
    let metrics: StoreMetrics
    let slowCalls: SlowCallLog?
    /// The monotonic clock calls are timed by (tests pass a scripted one).
    let now: @Sendable () -> ContinuousClock.Instant
    /// Told of every call the store refused for lack of disk space (`OperationStoreErrors.isDiskFull`): async
    /// readiness fails at once (``StoreFullLatch/trip()``), not at the next probe, whose small write may still fit.
    let onDiskFull: (@Sendable () -> Void)?

    init(
        _ base: any OperationStore, metrics: StoreMetrics, slowCalls: SlowCallLog?,
        now: @escaping @Sendable () -> ContinuousClock.Instant, onDiskFull: (@Sendable () -> Void)?
    ) {
        self.base = base
        self.metrics = metrics
        self.slowCalls = slowCalls
        self.now = now
        self.onDiskFull = onDiskFull
    }

    /// `base` measured; a ``MeasuredScheduleStateStore`` when `base` is a `ScheduleStateStore`. With
    /// `slowCalls`, a call slower than its threshold is also logged; `onDiskFull` is called for each call refused
    /// for lack of disk space.
    package static func measuring(
        _ base: any OperationStore, metrics: StoreMetrics, slowCalls: SlowCallLog? = nil,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now },
        onDiskFull: (@Sendable () -> Void)? = nil
    ) -> any OperationStore {
        if let scheduling = base as? any OperationStore & ScheduleStateStore {
            return MeasuredScheduleStateStore(
                scheduling, metrics: metrics, slowCalls: slowCalls, now: now, onDiskFull: onDiskFull)
        }
        return MeasuredOperationStore(base, metrics: metrics, slowCalls: slowCalls, now: now, onDiskFull: onDiskFull)
    }

    /// Runs one store call, recording its duration and whether it threw. A call cut short by its caller's
    /// cancellation (a client gone) is recorded as neither: its duration is not the store's, and it is no store
    /// failure (`OperationStoreErrors.isCancellation`).
    func measure<T>(_ operation: String, _ call: () async throws -> T) async throws -> T {
        let start = now()
        do {
            let value = try await StoreCall.$name.withValue(operation) { try await call() }
            recorded(operation, took: now() - start, failed: false)
            return value
        } catch {
            if !OperationStoreErrors.isCancellation(error) {
                recorded(operation, took: now() - start, failed: true)
            }
            if OperationStoreErrors.isDiskFull(error) { onDiskFull?() }
            throw error
        }
    }

    private func recorded(_ operation: String, took elapsed: Duration, failed: Bool) {
        metrics.record(operation, seconds: Self.seconds(elapsed), failed: failed)
        slowCalls?.check(operation, took: elapsed, failed: failed)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    package func enqueue(
        _ request: TriggerRequest,
        idempotencyKey: String?
    ) async throws -> (operation: Operation, created: Bool) {
        try await measure("enqueue") { try await base.enqueue(request, idempotencyKey: idempotencyKey) }
    }

    package func get(id: String) async throws -> Operation? {
        try await measure("get") { try await base.get(id: id) }
    }

    package func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?) {
        try await measure("list") { try await base.list(filter: filter, pageSize: pageSize, pageToken: pageToken) }
    }

    package func cancel(id: String, webhookOwner: String?) async throws -> Operation {
        try await measure("cancel") { try await base.cancel(id: id, webhookOwner: webhookOwner) }
    }

    package func claim(
        owner: String,
        leaseDuration: Duration,
        limit: Int,
        now: Date,
        scope: ClaimScope,
        takeover: LeaseTakeover
    ) async throws -> [Operation] {
        try await measure("claim") {
            try await base.claim(
                owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: scope, takeover: takeover)
        }
    }

    package func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool {
        try await measure("renew_lease") {
            try await base.renewLease(id: id, owner: owner, leaseDuration: leaseDuration, now: now)
        }
    }

    package func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws
        -> Bool
    {
        try await measure("complete") {
            try await base.complete(id: id, owner: owner, result: result, now: now, webhook: webhook)
        }
    }

    package func fail(
        id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool
    ) async throws -> Bool {
        try await measure("fail") {
            try await base.fail(id: id, owner: owner, error: error, retryAt: retryAt, now: now, webhook: webhook)
        }
    }

    package func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]
    {
        try await measure("claim_webhooks") {
            try await base.claimWebhooks(owner: owner, leaseDuration: leaseDuration, limit: limit, now: now)
        }
    }

    package func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws
        -> Bool
    {
        try await measure("record_webhook_attempt") {
            try await base.recordWebhookAttempt(id: id, owner: owner, attempts: attempts, nextAttemptAt: nextAttemptAt)
        }
    }

    package func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int {
        try await measure("expire_leases") {
            try await base.expireLeases(ownerPrefix: ownerPrefix, sparing: sparing, now: now)
        }
    }

    package func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool {
        try await measure("release") {
            try await base.release(id: id, owner: owner, notBefore: notBefore, callMade: callMade, now: now)
        }
    }

    package func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool {
        try await measure("uncount_adopted_claims") {
            try await base.uncountAdoptedClaims(id: id, owner: owner, count: count, from: attempts)
        }
    }

    package func queuedCount() async throws -> Int {
        try await measure("queued_count") { try await base.queuedCount() }
    }

    package func queuedByPipeline() async throws -> [PipelineQueue] {
        try await measure("queued_by_pipeline") { try await base.queuedByPipeline() }
    }

    package func queuedCount(pipelineKey: String) async throws -> Int {
        try await measure("queued_count") { try await base.queuedCount(pipelineKey: pipelineKey) }
    }

    package func purge(finishedBefore: Date) async throws -> Int {
        try await measure("purge") { try await base.purge(finishedBefore: finishedBefore) }
    }

    package func delete(id: String) async throws -> Bool {
        try await measure("delete") { try await base.delete(id: id) }
    }

    package func probe(instance: String, now: Date) async throws {
        try await measure("probe") { try await base.probe(instance: instance, now: now) }
    }

    /// Not measured: once at a start, and its duration is mostly a deliberate wait for a beat (the slow-call log
    /// would name it).
    package func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool {
        try await base.instanceInUseElsewhere(instance: instance, probeInterval: probeInterval)
    }

    package func close() async throws {
        try await base.close()
    }
}

/// ``MeasuredOperationStore`` over a store that keeps schedule state: those calls are measured too.
package final class MeasuredScheduleStateStore: MeasuredOperationStore, ScheduleStateStore, @unchecked Sendable {
    private let scheduleBase: any ScheduleStateStore

    init(
        _ base: any OperationStore & ScheduleStateStore, metrics: StoreMetrics, slowCalls: SlowCallLog?,
        now: @escaping @Sendable () -> ContinuousClock.Instant, onDiskFull: (@Sendable () -> Void)?
    ) {
        self.scheduleBase = base
        super.init(base, metrics: metrics, slowCalls: slowCalls, now: now, onDiskFull: onDiskFull)
    }

    package func scheduleState(name: String, firstTick: Date) async throws -> ScheduleState {
        try await measure("schedule_state") { try await scheduleBase.scheduleState(name: name, firstTick: firstTick) }
    }

    @discardableResult
    package func recordScheduleTick(name: String, tick: Date, operationID: String?) async throws -> ScheduleState {
        try await measure("record_schedule_tick") {
            try await scheduleBase.recordScheduleTick(name: name, tick: tick, operationID: operationID)
        }
    }

    package func recordScheduleRun(name: String, operationID: String) async throws {
        try await measure("record_schedule_run") {
            try await scheduleBase.recordScheduleRun(name: name, operationID: operationID)
        }
    }

    package func setSchedulePaused(name: String, paused: Bool?) async throws {
        try await measure("set_schedule_paused") {
            try await scheduleBase.setSchedulePaused(name: name, paused: paused)
        }
    }
}

/// Says in the log when a store call took longer than `threshold` (review 18, F3: a store slowed by a lock held
/// six seconds made async accepts take 5.6 s each while readiness stayed SERVING and nothing was logged; only
/// the duration histogram showed it). One warning per store method at once, then at most one per 10 s with the
/// count held back (``FailureLogLimiter``, as endpoint failures), so a slow store is not a line per call.
/// Failed calls count too: a call that hung for seconds before failing is the same story.
package struct SlowCallLog: Sendable {
    /// Calls that take longer than this are logged (1 s: a healthy store answers in milliseconds, and the
    /// health probe's own timeout is 2 s).
    package static let defaultThreshold = Duration.seconds(1)

    let logger: Logger
    let threshold: Duration
    let limiter: FailureLogLimiter
    /// Names the store in the line (kind, host, database), as the readiness lines do.
    let storeName: String

    package init(
        logger: Logger, storeName: String, threshold: Duration = defaultThreshold,
        limiter: FailureLogLimiter = FailureLogLimiter(interval: .seconds(10))
    ) {
        self.logger = logger
        self.storeName = storeName
        self.threshold = threshold
        self.limiter = limiter
    }

    func check(_ operation: String, took elapsed: Duration, failed: Bool) {
        guard elapsed > threshold, let heldBack = limiter.admitLine(operation) else { return }
        var metadata: Logger.Metadata = [
            "store": "\(storeName)", "store.operation": "\(operation)",
            "duration": "\(ConfigUnits.format(.milliseconds(Self.milliseconds(elapsed))))",
            "threshold": "\(ConfigUnits.format(threshold))",
        ]
        if failed { metadata["store.call_failed"] = "true" }
        heldBack.annotate(&metadata, countKey: "store.slow_calls_held_back")
        logger.warning("operation store call slow", metadata: metadata)
    }

    /// Whole milliseconds of `duration`, from its exact components (a Double's 1.001 s is 1000.999… ms).
    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
