@testable import AsyncDispatch
import Backends
import Clocks
import FoundationEssentials
import GatewayConfig
import Logging
import NIOCore
import NIOEmbedded
import Observability
import OperationStore
import GatewayTestSupport
import PostgresOperationStore
import Routing
import SQLiteOperationStore
import Synchronization
import Testing
import TriggerDispatch
import TriggerModel

/// Time for dispatchers under test: a `TestClock` their waits sleep on, and a wall clock that moves with it.
///
/// `wallClock()` is the real time when the `VirtualTime` was made plus every advance of `clock`: no real time
/// leaks into it, so a loaded machine cannot move the times the tests check (a step that took a second of real
/// time once made a claim look a second late). The store under test stamps its own times (an enqueue's) with
/// it too (``withRecordingStore(now:_:)``), and an hour passes in one `advance`.
///
/// The clock also keeps the deadline of every sleep in progress, so a test can move time one step, then wait
/// until every task it woke has done its work and gone back to sleep (``advance(by:settlingOn:)``): what the
/// dispatcher does at each virtual instant is then the same on a loaded machine as on an idle one.
///
/// `loop` moves with the clock: the pools' attempt timers run on it (a `BackendPool`'s `async` calls and their
/// deadlines are on an event loop, issue 11), so an attempt's request timeout passes in the same steps.
final class VirtualTime: Clock, Sendable {
    typealias Duration = Swift.Duration
    typealias Instant = TestClock<Duration>.Instant

    let loop = NIOAsyncTestingEventLoop()
    private let base = TestClock()
    private let origin: Instant
    private let sleeps = Mutex<[UUID: Instant]>([:])

    /// The wall-clock time at `origin`.
    private let epoch = Date()

    init() { origin = base.now }

    var now: Instant { base.now }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        // A deadline already reached returns at once, as on the real clocks. `TestClock` suspends a sleep whose
        // deadline is exactly now until the next `advance`: a zero timeout (the claim loop's wait when the next
        // look for new pipelines is due at this very step) then hung the step unsettled, "0.0 seconds" asleep,
        // in a minority of runs (the flaky `notSentRunWaitsWithoutAnAttempt`, `attemptTimeout`, `retryWaitsBackoff`).
        try Task.checkCancellation()
        if deadline <= base.now { return }
        let id = UUID()
        sleeps.withLock { $0[id] = deadline }
        defer { _ = sleeps.withLock { $0.removeValue(forKey: id) } }
        if let hook = beforeSuspending.withLock({ $0 }) { await hook() }
        try await base.sleep(until: deadline, tolerance: tolerance)
    }

    /// Runs in every sleep between its check of the deadline and `TestClock`'s suspension: how a test puts an
    /// advance into that window (``isSettled(sleepers:)`` says why it matters).
    let beforeSuspending = Mutex<(@Sendable () async -> Void)?>(nil)

    /// How far the clock has been advanced.
    var elapsed: Duration { origin.duration(to: base.now) }

    @Sendable func wallClock() -> Date {
        let (seconds, attoseconds) = elapsed.components
        return epoch.addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// True when exactly `sleepers` tasks sleep on the clock, none of them due: everything woken so far has
    /// finished its step and waits for a later instant.
    ///
    /// A sleep that is due when asked is woken by an advance of zero (which wakes only what is due): the check in
    /// ``sleep(until:tolerance:)`` and `TestClock`'s suspension are two steps, and an advance that reached the
    /// deadline between them left the sleep suspended until the next advance, its step unsettled with "0.0
    /// seconds" asleep (CI of 4f306fd: `adoptedRetryKeepsTheAttemptLimit` on PostgreSQL). Only the test's own task
    /// calls this and ``advance(by:)``, so no two advances overlap (overlapping, `TestClock` could move time back).
    func isSettled(sleepers: Int) async -> Bool {
        let now = base.now
        let (count, due) = sleeps.withLock { sleeps in (sleeps.count, sleeps.values.contains { $0 <= now }) }
        if due {
            await base.advance(by: .zero)
            return false
        }
        return count == sleepers
    }

    /// The sleeps in progress, each as the time left until its deadline ("3 asleep: 1.0 seconds, …"): what a step
    /// that did not settle reports.
    var sleepsDescription: String {
        let now = base.now
        return sleeps.withLock { sleeps in
            "\(sleeps.count) asleep: " + sleeps.values.map { "\(now.duration(to: $0))" }.joined(separator: ", ")
        }
    }

    /// Waits (bounded in real time) until ``isSettled(sleepers:)``.
    func settle(sleepers: Int) async -> Bool {
        await eventually(within: .seconds(20), interval: .milliseconds(2)) { await isSettled(sleepers: sleepers) }
    }

    /// Moves time by `step`, waking the sleeps due by then in order, then the loop's timers due by then.
    func advance(by step: Duration) async {
        await base.advance(by: step)
        await loop.advanceTime(by: TimeAmount(step))
    }

    /// Moves time by `step`, then waits until the `sleepers` sleeping tasks of the code under test all went
    /// back to sleep. False when they did not within the bound.
    func advance(by step: Duration, settlingOn sleepers: Int) async -> Bool {
        await advance(by: step)
        return await settle(sleepers: sleepers)
    }
}

/// A store that records the dispatcher's claims, renewals, outcomes and releases (with the `now` each was made at)
/// and forwards everything to a SQLite or PostgreSQL store: what the tests read the dispatcher's timing from.
final class RecordingStore: OperationStore {
    struct Claim: Sendable {
        var owner: String
        var now: Date
        var ids: [String]
        /// Which expired leases it could take over (`.any` for the tests' own claims).
        var takeover: LeaseTakeover = .any
    }
    struct Renewal: Sendable {
        var owner: String
        var now: Date
        var held: Bool
    }
    struct Failure: Sendable {
        var now: Date
        var retryAt: Date?
        var owner: String
        var stored: Bool
    }
    struct Completion: Sendable {
        var owner: String
        var stored: Bool
    }
    struct Release: Sendable {
        var now: Date
        var notBefore: Date
    }

    let base: any OperationStore
    private let log = Mutex<
        (claims: [Claim], renewals: [Renewal], failures: [Failure], completions: [Completion], releases: [Release])
    >(([], [], [], [], []))
    private let claimHook = Mutex<(@Sendable ([Operation]) async -> Void)?>(nil)
    private let instanceProbeHook = Mutex<(@Sendable () async -> Void)?>(nil)
    private let expirations = Mutex<[(ownerPrefix: String, sparing: String?, ended: Int)]>([])
    private let failHook = Mutex<(@Sendable (_ stored: Bool) async -> Void)?>(nil)

    init(_ base: any OperationStore) { self.base = base }

    /// `body` is called with what each claim took, once it is committed and before it is answered (to hold an
    /// answer back while the test moves the dispatcher's other tasks).
    func onClaim(_ body: @escaping @Sendable ([Operation]) async -> Void) { claimHook.withLock { $0 = body } }

    /// `body` is awaited before each `instanceInUseElsewhere` (a restart's take-back of its earlier leases waits
    /// for it), to order the take-back after the dispatcher's first claims.
    func onInstanceProbe(_ body: @escaping @Sendable () async -> Void) { instanceProbeHook.withLock { $0 = body } }

    /// Each `expireLeases` call: its prefixes and how many leases it ended.
    var leaseExpirations: [(ownerPrefix: String, sparing: String?, ended: Int)] { expirations.withLock { $0 } }

    /// `body` is called with whether each `fail` was stored, once it is committed and before it is answered.
    func onFail(_ body: @escaping @Sendable (_ stored: Bool) async -> Void) { failHook.withLock { $0 = body } }

    private let uncountReplyLost = Atomic<Bool>(false)
    /// When set, the next `uncountAdoptedClaims` is committed and then fails as `.unavailable` (its reply lost: a
    /// timeout, a failover), once.
    func losesNextUncountReply() { uncountReplyLost.store(true, ordering: .relaxed) }
    private let uncountCalls = Atomic<Int>(0)
    /// `uncountAdoptedClaims` calls so far.
    var uncounts: Int { uncountCalls.load(ordering: .relaxed) }

    var claims: [Claim] { log.withLock { $0.claims } }
    private let gets = Atomic<Int>(0)
    private let unreachable = Atomic<Bool>(false)
    private let refusedWrites = Atomic<Int>(0)
    /// While true the dispatcher's calls (claims, renewals, outcomes, releases) fail as a store that cannot be
    /// reached does (a PostgreSQL failover); reads and enqueues still work, for the test's own checks.
    var isUnreachable: Bool {
        get { unreachable.load(ordering: .relaxed) }
        set { unreachable.store(newValue, ordering: .relaxed) }
    }
    private let completesFail = Atomic<Bool>(false)
    /// While true only the outcome writes (`complete`, `fail`) fail, as `.unavailable` (a write that times out on a
    /// slow but reachable store): claims and renewals still work.
    var failsOutcomes: Bool {
        get { completesFail.load(ordering: .relaxed) }
        set { completesFail.store(newValue, ordering: .relaxed) }
    }
    private let renewalsFail = Atomic<Bool>(false)
    /// While true only lease renewals fail, as `.unavailable`: a lease expired by the test (`expireLeases`) is then
    /// taken by the next claim round, not renewed first.
    var failsRenewals: Bool {
        get { renewalsFail.load(ordering: .relaxed) }
        set { renewalsFail.store(newValue, ordering: .relaxed) }
    }
    private let queueCountsFail = Atomic<Bool>(false)
    /// While true `queuedCount()` fails as `.unavailable` (the metrics' count of a store that cannot be reached).
    var failsQueueCounts: Bool {
        get { queueCountsFail.load(ordering: .relaxed) }
        set { queueCountsFail.store(newValue, ordering: .relaxed) }
    }
    /// Outcome writes (`complete`, `fail`) that failed as unreachable so far.
    var unreachableWrites: Int { refusedWrites.load(ordering: .relaxed) }

    private func checkReachable(write: Bool = false) throws {
        guard isUnreachable else { return }
        if write { refusedWrites.wrappingAdd(1, ordering: .relaxed) }
        throw GatewayError(.unavailable, "the store is unreachable (test)")
    }
    private let inFlight = Atomic<Int>(0)
    /// The dispatcher's store calls (claims, renewals, outcomes, releases) under way: none once what a step
    /// woke has been written. A claim held by `onClaim` counts.
    var callsInFlight: Int { inFlight.load(ordering: .sequentiallyConsistent) }

    private func trackCall() -> CallEnd {
        inFlight.wrappingAdd(1, ordering: .sequentiallyConsistent)
        return CallEnd(store: self)
    }
    private struct CallEnd {
        let store: RecordingStore
        func end() { store.inFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
    }

    /// `get` calls so far.
    var getCount: Int { gets.load(ordering: .relaxed) }
    var renewals: [Renewal] { log.withLock { $0.renewals } }
    var failures: [Failure] { log.withLock { $0.failures } }
    var completions: [Completion] { log.withLock { $0.completions } }
    var releases: [Release] { log.withLock { $0.releases } }
    /// The claims that took operation `id`.
    func claims(of id: String) -> [Claim] { claims.filter { $0.ids.contains(id) } }

    func enqueue(_ request: TriggerRequest, idempotencyKey: String?) async throws -> (
        operation: Operation, created: Bool
    ) {
        try await base.enqueue(request, idempotencyKey: idempotencyKey)
    }

    func get(id: String) async throws -> Operation? {
        gets.wrappingAdd(1, ordering: .relaxed)
        return try await base.get(id: id)
    }

    func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?) {
        try await base.list(filter: filter, pageSize: pageSize, pageToken: pageToken)
    }

    func cancel(id: String, webhookOwner: String?) async throws -> Operation {
        try await base.cancel(id: id, webhookOwner: webhookOwner)
    }

    func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]
    {
        try checkReachable()
        return try await base.claimWebhooks(owner: owner, leaseDuration: leaseDuration, limit: limit, now: now)
    }

    func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws -> Bool {
        try checkReachable(write: true)
        return try await base.recordWebhookAttempt(
            id: id, owner: owner, attempts: attempts, nextAttemptAt: nextAttemptAt)
    }

    func claim(
        owner: String, leaseDuration: Duration, limit: Int, now: Date, scope: ClaimScope, takeover: LeaseTakeover
    ) async throws -> [Operation] {
        let call = trackCall()
        defer { call.end() }
        try checkReachable()
        let claimed = try await base.claim(
            owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: scope, takeover: takeover)
        log.withLock { $0.claims.append(Claim(owner: owner, now: now, ids: claimed.map(\.id), takeover: takeover)) }
        await claimHook.withLock { $0 }?(claimed)
        return claimed
    }

    func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool {
        let call = trackCall()
        defer { call.end() }
        try checkReachable()
        if failsRenewals { throw GatewayError(.unavailable, "renewLease timed out (test)") }
        let held = try await base.renewLease(id: id, owner: owner, leaseDuration: leaseDuration, now: now)
        log.withLock { $0.renewals.append(Renewal(owner: owner, now: now, held: held)) }
        return held
    }

    func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int {
        let call = trackCall()
        defer { call.end() }
        try checkReachable()
        let ended = try await base.expireLeases(ownerPrefix: ownerPrefix, sparing: sparing, now: now)
        expirations.withLock { $0.append((ownerPrefix, sparing, ended)) }
        return ended
    }

    func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws -> Bool {
        let call = trackCall()
        defer { call.end() }
        try checkReachable(write: true)
        try checkOutcomeWritable("complete")
        let stored = try await base.complete(id: id, owner: owner, result: result, now: now, webhook: webhook)
        log.withLock { $0.completions.append(Completion(owner: owner, stored: stored)) }
        return stored
    }

    private func checkOutcomeWritable(_ call: String) throws {
        guard failsOutcomes else { return }
        refusedWrites.wrappingAdd(1, ordering: .relaxed)
        throw GatewayError(.unavailable, "operation store unavailable: \(call) timed out (test)")
    }

    func fail(id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool)
        async throws -> Bool
    {
        let call = trackCall()
        defer { call.end() }
        try checkReachable(write: true)
        try checkOutcomeWritable("fail")
        let stored = try await base.fail(
            id: id, owner: owner, error: error, retryAt: retryAt, now: now, webhook: webhook)
        log.withLock { $0.failures.append(Failure(now: now, retryAt: retryAt, owner: owner, stored: stored)) }
        await failHook.withLock { $0 }?(stored)
        return stored
    }

    func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool {
        let call = trackCall()
        defer { call.end() }
        try checkReachable()
        uncountCalls.wrappingAdd(1, ordering: .relaxed)
        let uncounted = try await base.uncountAdoptedClaims(id: id, owner: owner, count: count, from: attempts)
        if uncountReplyLost.exchange(false, ordering: .relaxed) {
            throw GatewayError(.unavailable, "operation store unavailable: uncountAdoptedClaims timed out (test)")
        }
        return uncounted
    }

    func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool {
        let call = trackCall()
        defer { call.end() }
        try checkReachable()
        let released = try await base.release(id: id, owner: owner, notBefore: notBefore, callMade: callMade, now: now)
        log.withLock { $0.releases.append(Release(now: now, notBefore: notBefore)) }
        return released
    }

    func queuedCount() async throws -> Int {
        if failsQueueCounts { throw GatewayError(.unavailable, "the store is unreachable (test)") }
        return try await base.queuedCount()
    }
    func queuedCount(pipelineKey: String) async throws -> Int {
        if failsQueueCounts { throw GatewayError(.unavailable, "the store is unreachable (test)") }
        return try await base.queuedCount(pipelineKey: pipelineKey)
    }
    func queuedByPipeline() async throws -> [PipelineQueue] {
        if failsQueueCounts { throw GatewayError(.unavailable, "the store is unreachable (test)") }
        return try await base.queuedByPipeline()
    }
    func purge(finishedBefore: Date) async throws -> Int { try await base.purge(finishedBefore: finishedBefore) }
    func delete(id: String) async throws -> Bool { try await base.delete(id: id) }

    func probe(instance: String, now: Date) async throws { try await base.probe(instance: instance, now: now) }

    func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool {
        await instanceProbeHook.withLock { $0 }?()
        return try await base.instanceInUseElsewhere(instance: instance, probeInterval: probeInterval)
    }

    func close() async throws { try await base.close() }
}

/// The pipelines the dispatcher tests run, by name: `hang` runs until cancelled; `pair` succeeds once two of its
/// runs are under way; `flaky` fails with a
/// retryable `.unavailable` on its first run and succeeds afterwards; `down` fails so on every run; `unreached` fails as a call that reached
/// no runner (``GatewayError/notSent``, connection refused) on its first 12 runs and succeeds afterwards;
/// `gated` fails as a call that reached no runner while ``isDown`` (a runner that is down) and succeeds otherwise;
/// anything else succeeds at once.
/// `runs` counts the runs started, per pipeline. A runner made with `hangs: true` runs every pipeline until
/// cancelled (an instance whose backend call never returns).
final class ScriptedRunner: TriggerRunner {
    private let started = Mutex<[String: Int]>([:])
    private let hangs: Bool
    private let down = Atomic<Bool>(false)
    private let whenRunning = Mutex<(@Sendable (String) -> Void)?>(nil)

    init(hangs: Bool = false) { self.hangs = hangs }

    /// Called with the pipeline's name at the start of every run (e.g. to take the store away mid-run).
    func onRun(_ body: @escaping @Sendable (String) -> Void) { whenRunning.withLock { $0 = body } }

    /// Whether `gated`'s runner is down (its calls refused).
    var isDown: Bool {
        get { down.load(ordering: .relaxed) }
        set { down.store(newValue, ordering: .relaxed) }
    }

    func runs(_ pipeline: String) -> Int { started.withLock { $0[pipeline, default: 0] } }

    func run(_ request: TriggerRequest) async throws -> TriggerResult {
        let pipeline = request.ref.pipeline
        whenRunning.withLock { $0 }?(pipeline)
        let run = started.withLock { runs in
            runs[pipeline, default: 0] += 1
            return runs[pipeline]!
        }
        switch pipeline {
        case "pair":
            // Ends once two `pair` runs are under way, so that both end together: polled on the real clock, which
            // no test moves for it.
            while started.withLock({ $0["pair", default: 0] }) < 2 { try await Task.sleep(for: .milliseconds(1)) }
            return TriggerResult(outputs: [["run": .number(Double(run))]])
        case _ where hangs, "hang":
            // A run that hangs until cancelled (the behaviour under test, not a wait): on the real clock, since
            // no test moves time for it.
            while true { try await Task.sleep(for: .seconds(3600)) }
        case "flaky" where run == 1, "down":
            throw GatewayError(.unavailable, "the backend is restarting")
        case "unreached" where run <= 12, "gated" where isDown:
            var refused = GatewayError(.backendFailed, "cannot connect to an endpoint: connection refused")
            refused.notSent = true
            throw refused
        default:
            return TriggerResult(outputs: [["run": .number(Double(run))]])
        }
    }

    func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "no streams here")) }
    }
}

/// One gateway instance's async side on a shared store: its `AsyncOperations` and a dispatcher sleeping on
/// `clock` and reading `now`, running until ``stop()``.
struct DispatcherInstance {
    let operations: AsyncOperations
    let dispatcher: AsyncDispatcher
    let task: Task<Void, any Error>

    /// `requestTimeout`: the pool's, which bounds each attempt; its timer runs on `clock`'s loop. `metrics`: with
    /// them the dispatcher also counts the queue (one more sleeper, `queueCountLoop`). `claimWatch`: with it the
    /// dispatcher watches its claim loop (one more sleeper, `watchClaimLoop`). `identity`: the instance's id kept
    /// across restarts (a data directory's), with which it takes back its earlier processes' leases at start.
    init(
        store: any OperationStore,
        settings: StoreConfiguration,
        runner: ScriptedRunner,
        clock: VirtualTime,
        now: @escaping @Sendable () -> Date,
        requestTimeout: TimeAmount = .hours(24),
        outcomeRetryLimit: Duration = .seconds(600),
        metrics: GatewayMetrics? = nil,
        log: RecordedLog? = nil,
        claimWatch: ClaimLoopWatch? = nil,
        identity: String? = nil
    ) {
        let operations = AsyncOperations(store: store, settings: settings, metrics: metrics)
        self.operations = operations
        let pool = BackendPool(
            configuration: BackendPoolConfiguration(
                name: "local", transport: .inProcess, requestTimeout: requestTimeout),
            transport: runner,
            eventLoopGroup: clock.loop
        )
        let routes = RouteTable(routes: [RouteConfiguration(namespace: "test", pool: "local")])
        var logger =
            log.map { log in Logger(label: "dispatcher-test") { _ in log } } ?? Logger(label: "dispatcher-test")
        logger.logLevel = log == nil ? .critical : .warning
        let dispatcher = AsyncDispatcher(
            operations: operations,
            dispatcher: TriggerDispatcher(routes: routes, pools: ["local": pool]),
            shutdownGrace: .zero,
            logger: logger,
            identity: identity,
            clock: clock,
            now: now,
            outcomeRetryLimit: outcomeRetryLimit,
            claimWatch: claimWatch
        )
        self.dispatcher = dispatcher
        task = Task { try await dispatcher.run() }
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// The store under a dispatcher test.
enum DispatchStoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// Runs `body` with a store of `kind`, recording (see ``RecordingStore``) and stamping its own times with `now` (a
/// test's `VirtualTime.wallClock`, or the real time); closes (and for SQLite removes) it afterwards. Every
/// dispatcher of a test shares the one store, as instances share PostgreSQL. SQLite: a fresh temporary directory.
/// PostgreSQL: the server of `TG_POSTGRES_URL` (scripts/with-postgres.sh), tables of a fresh prefix; without it
/// the test fails, unless `TG_ALLOW_NO_POSTGRES=1` (then `body` does not run).
func withRecordingStore(
    _ kind: DispatchStoreKind = .sqlite,
    now: @escaping @Sendable () -> Date = { Date() }, _ body: (RecordingStore) async throws -> Void
) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-dispatch-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store: RecordingStore
    switch kind {
    case .sqlite:
        store = RecordingStore(try await SQLiteOperationStore.open(.init(dataDirectory: directory.path, now: now)))
    case .postgres:
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TG_POSTGRES_URL"], !url.isEmpty else {
            if environment["TG_ALLOW_NO_POSTGRES"] != "1" {
                Issue.record(
                    "TG_POSTGRES_URL is not set: run under scripts/with-postgres.sh (or TG_ALLOW_NO_POSTGRES=1)")
            }
            return
        }
        var configuration = try PostgresOperationStore.Configuration(url: url)
        configuration.tablePrefix = "d\(Operation.makeID().prefix(12))_"
        configuration.maximumConnections = 4
        // Generous: the suites share two cores.
        configuration.operationTimeout = .seconds(60)
        configuration.now = now
        store = RecordingStore(try await PostgresOperationStore.open(configuration))
    }
    do {
        try await body(store)
    } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
}

func asyncRequest(_ pipeline: String) -> TriggerRequest {
    TriggerRequest(
        ref: PipelineRef(namespace: "test", pipeline: pipeline),
        mode: .async,
        inputs: [TriggerInput(variables: ["n": .number(1)])],
        requestID: "req-\(pipeline)"
    )
}

/// Holds one of `store`'s calls, once committed and before it is answered, until ``release()``: the window in
/// which a test interleaves the dispatcher's other store calls with one still under way. A claim of one operation
/// (or of the first operation a predicate matches): a refused outcome write or renewal meanwhile (review 13 F2,
/// F4; `whenCommitted` runs first, inside the claim). The first stored `fail`: a claim meanwhile (review 14 F2).
final class HeldStoreCall: Sendable {
    private let held = Atomic<Bool>(false)
    private let released = Atomic<Bool>(false)

    /// The call is committed and being held.
    var isHeld: Bool { held.load(ordering: .sequentiallyConsistent) }

    convenience init(claimOf id: String, in store: RecordingStore, whenCommitted: @escaping @Sendable () -> Void = {}) {
        self.init(claimMatching: { $0.id == id }, in: store, whenCommitted: whenCommitted)
    }

    /// Holds every claim that took an operation `matching`.
    init(
        claimMatching matching: @escaping @Sendable (Operation) -> Bool, in store: RecordingStore,
        whenCommitted: @escaping @Sendable () -> Void = {}
    ) {
        store.onClaim { [self] claimed in
            guard claimed.contains(where: matching) else { return }
            whenCommitted()
            await hold()
        }
    }

    /// Holds the first `fail` that was stored.
    init(firstStoredFailIn store: RecordingStore) {
        store.onFail { [self] stored in
            guard stored, !isHeld else { return }
            await hold()
        }
    }

    private func hold() async {
        held.store(true, ordering: .sequentiallyConsistent)
        _ = await eventually(within: .seconds(30), interval: .milliseconds(2)) {
            self.released.load(ordering: .sequentiallyConsistent)
        }
    }

    /// Lets the call return.
    func release() { released.store(true, ordering: .sequentiallyConsistent) }
}
