package import FoundationEssentials
package import Logging
import OperationStore
import Routing
import ServiceLifecycle
import Synchronization
package import TriggerDispatch
import TriggerModel
import GatewayConfig
import NIOCore
import Observability

/// Runs accepted async operations: claims queued (or lease-expired) work from the store under a lease,
/// renews the lease while the backend call runs, stores the result, retries failures with backoff up to
/// the attempt limit, and purges finished operations past their retention.
///
/// As a `Service` it starts after the store and before the listener. On graceful shutdown it stops
/// claiming, lets running calls finish for up to `shutdownGrace`, then hands what is still running back
/// to the store (queued again) so a restart or another instance picks it up; queued work is never touched.
///
/// Time comes from two injected sources (production: the real ones): `clock`, what every wait sleeps on (the
/// poll interval, lease renewals, the store-retry back-off, the purge interval, the shutdown grace), and
/// `now`, the wall-clock instant written to and compared in the store (lease expiries, retry times, purge
/// cut-offs). The store's instants are wall-clock on purpose: with PostgreSQL several instances compare them,
/// and monotonic clocks are not shared across hosts. Tests pass a `TestClock` and a `now` that moves with
/// it, so hour-long leases and back-offs pass in no real time.
package final class AsyncDispatcher: Service {
    private let operations: AsyncOperations
    /// Swapped by a config reload; each run resolves its route on the dispatcher current when it starts.
    private let currentDispatcher: Mutex<TriggerDispatcher>
    private let shutdownGrace: Duration
    private let logger: Logger
    /// Unique per process start: lease owners are `<instance>/<claim-n>`, unique per claim, which is what
    /// the store's fencing needs (an operation reclaimed after its lease expired gets another owner). With a
    /// stable identity it is `<identity>.<start>`, so a restart knows its earlier leases by their prefix.
    package let instanceID: String
    /// This instance's identity across restarts (kept in its data directory), when it has one.
    private let identity: String?
    private let running = Mutex(0)
    /// Whether a claim is under way (`claimLoop`), for a run whose lease renewal or outcome write was refused:
    /// that claim may be the refusal's cause, and its operations are adopted only once it returns.
    private let claimsUnderWay = ClaimsUnderWay()
    /// What to claim next, per pool (see `ClaimPlanner`).
    private let planner = Mutex(ClaimPlanner())
    private let claims = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let handedBackAtStop = Atomic(0)
    /// Runs the stop cut at `timeouts.shutdown_grace` and handed back to the queue (their calls made, uncounted),
    /// for the stop's summary (review 26 L3).
    package var runsHandedBackAtStop: Int { handedBackAtStop.load(ordering: .relaxed) }
    private let notHandedBackAtStop = Atomic(0)
    /// Runs the stop cut that the store could not take back (a stop during a store outage): their leases expire and
    /// another claim runs them again, an attempt spent (cluster review 59, L1).
    package var runsNotHandedBackAtStop: Int { notHandedBackAtStop.load(ordering: .relaxed) }
    /// Outcomes `finish` is retrying while the store is unreachable; claims wait for them (see `claimLoop`).
    private let pendingOutcomes = Atomic<Int>(0)
    /// From when (on `clock`) claims here may take over other owners' expired leases: a lease period after the store
    /// answered a claim following the start or a failed claim or renewal; nil until then (review 25 H1). In an
    /// outage longer than a lease every lease expires, the living owners' too, since no one can renew; the first
    /// claim after it took them all over and their pipelines ran twice (8 of 12 in the review's run). A lease period
    /// after this instance reached the store again, every owner that is alive and reaches it too has renewed (every
    /// third of a lease, `keepLeases`; a renewal of a lease expired but not taken over succeeds), so what is still
    /// expired then is a dead owner's. The PostgreSQL store adds the server's own start (`LeaseTakeover`).
    private let takeoverGate = Mutex<ClockDeadline?>(nil)
    /// Owners whose expired leases claims here take at once (`LeaseTakeover.guarded`): this instance's, its earlier
    /// processes' included when it has an identity (`takeBackEarlierLeases`).
    private var ownLeasePrefix: String { identity.map { "\($0)." } ?? "\(instanceID)/" }

    /// Awaited before the first claim; when it throws, nothing is claimed (see `init`).
    private let startGate: (@Sendable () async throws -> Void)?
    /// What waits sleep on (see the type's documentation).
    private let clock: any Clock<Duration>
    /// The wall-clock instant for the store (see the type's documentation).
    private let now: @Sendable () -> Date
    /// The longest an outcome waits for an unreachable store (`finish`), unless the lease is longer.
    private let outcomeRetryLimit: Duration
    /// When the claim loop last made a step (`trigger_gateway_async_dispatcher_last_claim_timestamp_seconds`), and
    /// whether `claimWatch` has declared it stalled.
    private let heartbeat: ClaimLoopHeartbeat
    /// Watches `heartbeat` (`watchClaimLoop`); nil: no watch (tests that count the sleepers on their clock).
    private let claimWatch: ClaimLoopWatch?

    /// The warning about operations no route here matches (`reportUnrouted`): one line per pipeline per
    /// `unroutedWarningInterval` of `clock`.
    private let unroutedLog: FailureLogLimiter
    /// The warning about runs handed back because their call reached no runner (`execute`): one line per pool per
    /// `unreachedWarningInterval` of `clock`, with the hand-backs held back since the last (review 23 M1: a
    /// hand-back logged nothing above debug, so an operation waiting for a runner that is down was invisible).
    private let unreachedLog: FailureLogLimiter
    /// The store-outage warnings of runs, failed lease renewals (`keepLeases`) and outcomes kept past the lease
    /// (`finish`): one line of each kind per `renewalWarningInterval` of `clock` for all runs, with those held back
    /// since the last.
    private let renewalFailureLog: FailureLogLimiter
    /// The unrouted pipelines' queues (`reportUnrouted`).
    private struct UnroutedCounts {
        /// Pipeline key → its queued operations as last counted, for the keys the planner holds as unrouted
        /// (`trigger_gateway_async_unrouted_queued` is their sum). Emptied by a reload, and when the store cannot
        /// count (so each is counted again once it can).
        var counts: [String: Int] = [:]
        /// The store's last queue count failed (`queueCountLoop`): the gauge is absent, and no unrouted pipeline
        /// is counted, until a queue count succeeds.
        var storeDown = false
        /// Whether the gauge is absent (an outage, or a pipeline's count that failed): recorded again, even at 0,
        /// once every unrouted pipeline has a count.
        var absent = false
    }

    private let unroutedQueued = Mutex(UnroutedCounts())

    /// The least time between two warnings about one pipeline whose queued operations no route here matches
    /// (review 18 F8). A minute: the state lasts until a reload, often hours; the gauge says it meanwhile.
    package static let unroutedWarningInterval = Duration.seconds(60)

    /// The least time between two warnings about one pool whose runs reach no runner. A minute: while a runner
    /// stays down its pool gets a probe run every 30 s at most (`ClaimPlanner`), and the pool's endpoints log
    /// their own failures every 10 s (`backend endpoint failed`); this line is the async queue's side of it.
    package static let unreachedWarningInterval = Duration.seconds(60)

    /// The least time between two warnings about failed lease renewals. A minute: while the store is down its health
    /// probe says so too (`StoreHealthService`), and the outcome writes warn when an outage outlasts a lease.
    package static let renewalWarningInterval = Duration.seconds(60)

    /// `startGate`: what must be true before operations are claimed, e.g. the listener is bound. A gateway
    /// whose start fails (a port already taken) must not claim queued work only to cut it a moment later.
    /// `clock` and `now`: the dispatcher's time (see the type's documentation); keep the defaults outside tests.
    /// `outcomeRetryLimit`: how long a finished run's outcome is retried while the store is unreachable (the lease
    /// if longer; see `finish`); 10 minutes outlasts a managed PostgreSQL failover (15–120 s). Tests shorten it.
    /// `claimWatch`: who hears when the claim loop stalls and recovers (`stallBound`), nil for none.
    package init(
        operations: AsyncOperations,
        dispatcher: TriggerDispatcher,
        shutdownGrace: Duration,
        logger: Logger,
        identity: String? = nil,
        startGate: (@Sendable () async throws -> Void)? = nil,
        clock: any Clock<Duration> = ContinuousClock(),
        now: @escaping @Sendable () -> Date = { Date() },
        outcomeRetryLimit: Duration = .seconds(600),
        claimWatch: ClaimLoopWatch? = nil
    ) {
        self.outcomeRetryLimit = outcomeRetryLimit
        // On the dispatcher's clocks, so that tests move them with their `TestClock` (the held-back lines' `_since`
        // on its wall clock).
        let sinceStart = clock.stopwatch()
        self.claimWatch = claimWatch
        self.heartbeat = ClaimLoopHeartbeat(sinceStart: sinceStart, report: claimWatch?.report)
        let monotonic: @Sendable () -> NIODeadline = {
            NIODeadline.uptimeNanoseconds(UInt64(TimeAmount(sinceStart()).nanoseconds))
        }
        let wall: @Sendable () -> Int64 = { now().storeMilliseconds }
        self.unroutedLog = FailureLogLimiter(
            interval: TimeAmount(Self.unroutedWarningInterval), now: monotonic, wallClock: wall)
        self.unreachedLog = FailureLogLimiter(
            interval: TimeAmount(Self.unreachedWarningInterval), now: monotonic, wallClock: wall)
        self.renewalFailureLog = FailureLogLimiter(
            interval: TimeAmount(Self.renewalWarningInterval), now: monotonic, wallClock: wall)
        self.startGate = startGate
        self.clock = clock
        self.now = now
        self.operations = operations
        self.currentDispatcher = Mutex(dispatcher)
        self.shutdownGrace = shutdownGrace
        self.logger = logger
        self.identity = identity
        self.instanceID = identity.map { "\($0).\(Operation.makeID())" } ?? Operation.makeID()
        operations.useWebhookOwnerPrefix(instanceID)
    }

    private var store: any OperationStore { operations.store }
    private var metrics: AsyncMetrics? { operations.metrics?.async }

    /// A config reload: operations started from now on run with `dispatcher` (routes and pools of the new
    /// configuration); runs in progress finish with the one they started with.
    ///
    /// Pipelines no route matched are looked at again (their next operation is claimed and routed anew), so
    /// operations that waited for a route run once the reload brings one back (review 18 F8).
    package func use(_ dispatcher: TriggerDispatcher) {
        currentDispatcher.withLock { $0 = dispatcher }
        metrics?.keepQueueSeries(ofPools: Set(dispatcher.poolNames))
        planner.withLock { $0.forgetRoutes() }
        unroutedQueued.withLock { state in
            state.counts = [:]
            if !state.storeDown { metrics?.recordUnroutedQueue(0) }
        }
        operations.dispatcherWake.signal()
    }
    private var settings: StoreConfiguration { operations.settings }

    package func run() async throws {
        if let startGate {
            do {
                try await startGate()
            } catch {
                logger.info("async dispatcher not started: the gateway did not start", metadata: ["error": "\(error)"])
                return
            }
        }
        logger.info("async dispatcher started", metadata: ["dispatcher.instance": "\(instanceID)"])
        claimLoopStepped()
        // Discarding: a finished run's task is freed as it ends. A plain task group keeps every child's result
        // until `next()` takes it, which nothing here calls: each run ever made stayed in memory until the
        // dispatcher stopped (~11 KB an operation, review 13 F0).
        await withDiscardingTaskGroup { workers in
            // Beside the claims, not before them: it may wait two health intervals for a copy's heartbeat
            // (`instanceInUseElsewhere`), and queued operations need not wait for it.
            workers.addTask { await self.takeBackEarlierLeases() }
            workers.addTask { await self.purgeLoop() }
            // Renews through the shutdown grace too (runs still finishing); ended by `cancelAll` below.
            workers.addTask { await self.keepLeases() }
            if metrics != nil { workers.addTask { await self.queueCountLoop() } }
            if let claimWatch { workers.addTask { await self.watchClaimLoop(claimWatch) } }
            await withGracefulShutdownHandler {
                await self.claimLoop(workers: &workers)
            } onGracefulShutdown: {
                self.stopping.store(true, ordering: .sequentiallyConsistent)
                self.operations.dispatcherWake.signal()
            }
            // Stop claiming is done; let running calls finish for the grace period, then cut them (each
            // cut run puts its operation back in the queue).
            let elapsed = clock.stopwatch()
            while running.withLock({ $0 }) > 0, elapsed() < shutdownGrace {
                await operations.dispatcherWake.wait(
                    timeout: min(.milliseconds(50), shutdownGrace - elapsed()), clock: clock)
            }
            workers.cancelAll()
        }
        logger.info(
            "async dispatcher stopped",
            metadata: [
                "runs.handed_back": .stringConvertible(runsHandedBackAtStop),
                "runs.not_handed_back": .stringConvertible(runsNotHandedBackAtStop),
            ])
    }

    // MARK: Claiming

    /// A restart of this instance (same identity) ends the leases its previous process held: that process is
    /// gone (kill -9, a crash), so its running operations are claimed again now rather than when their leases
    /// expire. Other instances' leases are untouched, and so are this process's own (`instanceID/…`): the claim
    /// loop starts beside this, so its first claims may come first (session 61: they were ended too, and claimed
    /// again, one pipeline run twice). A store that cannot be reached now only delays this to the leases' expiry,
    /// as before.
    private func takeBackEarlierLeases() async {
        guard let identity else { return }
        do {
            // Not from a live copy of this data directory: its leases are its running operations (cluster review
            // 59, M1: they were taken and run again, and the copy was seen a beat later).
            // The longest health interval a copy may be configured with: its beats come at least that often.
            let interval = StoreConfiguration.healthIntervalRange.upperBound
            if try await store.instanceInUseElsewhere(instance: identity, probeInterval: interval) {
                logger.error(
                    """
                    instance id \(identity) is in use by another live gateway (a copied data dir?): its running \
                    operations are left to it; stop this copy, delete <data_dir>/instance-id on it and start it again
                    """,
                    metadata: ["instance": "\(identity)"])
                return
            }
            // This process's own leases spared: its claims began beside this call and may have taken some already.
            let ended = try await store.expireLeases(
                ownerPrefix: "\(identity).", sparing: "\(instanceID)/", now: now())
            if ended > 0 {
                logger.info(
                    "took back the leases of this instance's previous run",
                    metadata: ["operations": .stringConvertible(ended)])
                operations.dispatcherWake.signal()
            }
        } catch {
            logger.warning("could not take back earlier leases", metadata: ["error": "\(error)"])
        }
    }

    /// Claims what the pools can take (`ClaimPlanner`), runs each claimed operation as a worker task, and
    /// waits for a wake (a new operation, a finished run) or the poll interval when nothing more is claimable.
    ///
    /// The discovery claim (pipelines not seen yet, see `ClaimPlanner`) is made only while it may find something:
    /// when the last one found an operation, when an operation of an unknown pipeline was queued here, and once
    /// per poll interval (the wait ends then at the latest) for those queued by other instances. Made every
    /// round, it read the whole backlog of the known pipelines each time to answer none.
    private func claimLoop(workers: inout DiscardingTaskGroup) async {
        var failures = 0
        var discoveryPending = true
        // The next look for pipelines queued by other instances: one poll interval after the last one.
        var nextDiscovery = clock.deadline(after: settings.pollInterval)
        // Pending webhook deliveries are looked for at the first round (those a stop or a crash left), then every
        // poll interval (retries due after a stop, those of an instance that died, those whose route a reload took
        // away, to drop): one read of an index that holds only pending deliveries, empty without webhooks.
        var nextWebhookClaim: ClockDeadline? = nil
        while !stopping.load(ordering: .sequentiallyConsistent), !Task.isCancelled {
            if nextWebhookClaim.map({ $0.remaining() <= .zero }) ?? true {
                if await claimPendingWebhooks() { claimLoopStepped() }
                nextWebhookClaim = clock.deadline(after: settings.pollInterval)
            }
            if pendingOutcomes.load(ordering: .relaxed) > 0 {
                // Outcomes wait for the store (`finish`, retrying every second at most): each claim waits up to two
                // seconds for them first, so when the store comes back they are written before a claim here takes
                // one of their operations (its lease expired during the outage) and runs it again. Bounded, so a
                // write that keeps failing on a reachable store slows claiming but never stops it.
                await operations.dispatcherWake.wait(timeout: min(settings.pollInterval, .seconds(2)), clock: clock)
            }
            let dispatcher = currentDispatcher.withLock { $0 }
            var free = settings.workers - running.withLock { $0 }
            let queued = operations.takeQueuedPipelines()
            let pollPassed = nextDiscovery.remaining() <= .zero
            let planned = planner.withLock { planner in
                if queued.overflowed || pollPassed || queued.keys.contains(where: { !planner.knows($0) }) {
                    discoveryPending = true
                }
                return planner.plan(batch: 64, discover: discoveryPending, now: now()) { name in
                    dispatcher.load(ofPool: name).map {
                        ClaimPlanner.Load(maxConcurrency: $0.maxConcurrency, inUse: $0.inUse, reachable: $0.reachable)
                    }
                }
            }
            var more = false
            for claim in planned where free > 0 {
                let limit = min(claim.limit, free)
                let owner = "\(instanceID)/\(claims.wrappingAdd(1, ordering: .relaxed).newValue)"
                let claimed: [Operation]
                // Until its operations are adopted or started below (no suspension point in between).
                claimsUnderWay.begin()
                do {
                    let others = takeoverGate.withLock { gate in gate.map { $0.remaining() <= .zero } ?? false }
                    claimed = try await store.claim(
                        owner: owner,
                        leaseDuration: settings.lease,
                        limit: limit,
                        now: now(),
                        scope: claim.scope,
                        takeover: .guarded(ownPrefix: ownLeasePrefix, others: others)
                    )
                    failures = 0
                    storeReached()
                    claimLoopStepped()
                } catch {
                    claimsUnderWay.end()
                    storeFailed()
                    claimLoopStepped()
                    failures += 1
                    // A store that is down is reported once by its health probe (StoreHealthService), not here.
                    if failures == 1 || failures % 100 == 0 {
                        logger.log(level: Self.logLevel(error), "claim failed", metadata: ["error": "\(error)"])
                    }
                    break
                }
                if claim.isDiscovery {
                    // Look again next round only if it found something.
                    discoveryPending = !claimed.isEmpty
                    nextDiscovery = clock.deadline(after: settings.pollInterval)
                }
                // A full claim means there may be more: plan again at once.
                if claimed.count == limit { more = true }
                free -= claimed.count
                running.withLock { $0 += claimed.count }
                let claimedAt = now()
                var unrouted: [Operation] = []
                var takenOver: [Operation] = []
                for operation in claimed {
                    if adopt(operation, owner: owner) {
                        free += 1
                        running.withLock { $0 -= 1 }
                        continue
                    }
                    if operation.takenOverFrom != nil { takenOver.append(operation) }
                    let pool = dispatcher.poolName(for: operation.request.ref)
                    planner.withLock { $0.claimed(key: OperationFilter.pipelineKey(operation.request.ref), pool: pool) }
                    guard let pool else {
                        // No route here: handed back below, not run (it waits for a route; `reportUnrouted`).
                        unrouted.append(operation)
                        free += 1
                        running.withLock { $0 -= 1 }
                        continue
                    }
                    // Runnable since it was accepted, or since its retry time.
                    let runnableSince = max(operation.createdAt, operation.notBefore)
                    metrics?.recordClaimed(lagSeconds: claimedAt.timeIntervalSince(runnableSince))
                    workers.addTask {
                        let reach = await self.execute(operation, owner: owner, pool: pool)
                        self.planner.withLock { planner in
                            switch reach {
                            case .reached: planner.reached(pool: pool)
                            // Recorded by `execute` before the hand-back (the operation's wait is the pool's).
                            case .notSent, .unknown: break
                            }
                            planner.finished(pool: pool)
                        }
                        self.running.withLock { $0 -= 1 }
                        self.metrics?.recordRunEnded()
                        self.operations.dispatcherWake.signal()
                    }
                }
                claimsUnderWay.end()
                if !takenOver.isEmpty { reportTakeovers(takenOver) }
                for operation in unrouted {
                    await handBackUnrouted(operation, owner: owner)
                    claimLoopStepped()
                }
            }
            await reportUnrouted()
            // The round's end, also when it claimed nothing (no worker free, every pool full): an idle loop steps
            // every poll interval at the latest (the wait below).
            claimLoopStepped()
            if more { continue }
            // Wake up for the next look for unknown pipelines at the latest, so one queued by another instance is
            // found within a poll interval even while wake-ups keep restarting the wait; else at the poll interval.
            // That instant is fixed (`ClockDeadline`), not a timeout worked out here: time passing before the wait
            // begins must not push it later.
            var wake = discoveryPending ? clock.deadline(after: settings.pollInterval) : nextDiscovery
            // And when an unreached pool may be probed again (a pool with no available endpoint is looked at again
            // at the poll interval: nothing signals its return).
            let current = now()
            if let probe = planner.withLock({ $0.nextProbe(after: current) }) {
                // Rounded up: a wake a moment early would find the pool still waiting.
                let untilProbe = Duration.milliseconds(Int64((probe.timeIntervalSince(current) * 1000).rounded(.up)))
                if untilProbe < wake.remaining() { wake = clock.deadline(after: max(.zero, untilProbe)) }
            }
            await operations.dispatcherWake.wait(until: wake)
        }
    }

    /// Claims the pending webhook deliveries that are due and reserved for no live instance
    /// (`OperationStore.claimWebhooks`) and sends them (`AsyncOperations.deliverWebhook`): deliveries this
    /// instance's previous run left (its reservations were freed at start, `takeBackEarlierLeases`), those whose
    /// holder died, and retries of other instances that stopped. One claim of up to 64; the rest at the next poll.
    /// Returns whether it asked the store (a claim-loop step).
    private func claimPendingWebhooks() async -> Bool {
        guard operations.webhooks != nil else { return false }
        let owner = "\(instanceID)/w\(claims.wrappingAdd(1, ordering: .relaxed).newValue)"
        do {
            let pending = try await store.claimWebhooks(
                owner: owner, leaseDuration: operations.webhookLease, limit: 64, now: now())
            for delivery in pending { operations.deliverWebhook(delivery, owner: owner) }
        } catch {
            logger.log(level: Self.logLevel(error), "webhook claim failed", metadata: ["error": "\(error)"])
        }
        return true
    }

    // MARK: Liveness

    /// The longest the claim loop may go between two steps while it works (`ClaimLoopHeartbeat`): after a step it
    /// waits for a wake-up, the poll interval at most; then, while outcomes wait for the store, up to
    /// `min(pollInterval, 2 s)` more (`claimLoop`); then comes one store call, which ends within `storeCallLimit`
    /// (PostgreSQL: `withTimeout`'s timeout, then as long again for a call that ignores its cancellation). A loop
    /// that has gone this long without a step is inside something that did not end (review 26 H1).
    package static func stallBound(pollInterval: Duration, storeCallLimit: Duration) -> Duration {
        pollInterval + min(pollInterval, .seconds(2)) + storeCallLimit
    }

    /// The claim loop made a step (a store call ended, or a round did): moves the heartbeat and
    /// `trigger_gateway_async_dispatcher_last_claim_timestamp_seconds`, and ends a stall the watch declared.
    private func claimLoopStepped() {
        metrics?.recordClaimLoopStep(at: now().timeIntervalSince1970)
        guard let stalledFor = heartbeat.beat() else { return }
        logger.info(
            "async dispatcher claiming again; async triggers are accepted again",
            metadata: ["dispatcher.stalled_for": "\(stalledFor)"])
    }

    /// Declares the claim loop stalled when it has gone `watch.bound` without a step, exactly then (a sleep until
    /// that instant on `clock`, redone after each step), with a warning and `watch.report`; its next step ends the
    /// stall (`claimLoopStepped`). Ends with the dispatcher's stop: a loop that stopped claiming for the shutdown is
    /// not stalled.
    private func watchClaimLoop(_ watch: ClaimLoopWatch) async {
        while !Task.isCancelled, !stopping.load(ordering: .sequentiallyConsistent) {
            switch heartbeat.check(bound: watch.bound) {
            case .due(let wait):
                try? await clock.sleep(for: wait)
            case .stalledNow:
                logger.warning(
                    """
                    async dispatcher stalled: its claim loop made no step (a claim, a store call) within the bound; \
                    async readiness is NOT_SERVING and async triggers answer 503 until it does
                    """,
                    metadata: ["dispatcher.stall_bound": "\(watch.bound)"])
            case .stalled:
                await heartbeat.recovered.wait(until: clock.deadline(after: watch.bound))
            }
        }
    }

    /// The store answered a claim: other owners' expired leases may be taken over a lease period after the first
    /// such answer since the start or the last failure (`takeoverGate`).
    private func storeReached() {
        let lease = settings.lease
        takeoverGate.withLock { gate in
            if gate == nil { gate = clock.deadline(after: lease) }
        }
    }

    /// A claim or lease renewal failed (the store unreachable, or too slow): leases may be expiring unrenewed, so
    /// no takeover of other owners' until a lease period after the store answers again (`takeoverGate`).
    private func storeFailed() {
        takeoverGate.withLock { $0 = nil }
    }

    /// Whether `operation`, just claimed under `owner`, is one whose run is still here (its lease expired while
    /// the store was unreachable: the run went on, or its outcome waits in `finish`): that run adopts the claim
    /// (`LocalRun.adopt`) and stores its outcome under it, so the operation does not run a second time. Without
    /// it, the claim round that follows a store outage could take such an operation back a moment before its
    /// outcome's next try, and run the pipeline again. Another instance's claim cannot be adopted: fencing
    /// refuses this run's write, and that instance runs the operation again. The claim made no backend call: the
    /// run takes its attempt back in the store before its next write (`uncountAdoptedClaims`), so the operation
    /// keeps every attempt of `max_attempts` (review 13 F3).
    private func adopt(_ operation: Operation, owner: String) -> Bool {
        let run = operations.localRun(operation.id)
        guard let run, run.adopt(owner, attempts: operation.attempts) else { return false }
        logger.info(
            "operation claimed again while its run here was still storing its outcome; the run keeps it",
            metadata: ["operation.id": "\(operation.id)", "attempts": "\(operation.attempts)"])
        return true
    }

    /// Counts and logs (one warning per claim) the operations a claim took from `running` under another run's
    /// expired lease (`Operation.takenOverFrom`; this instance's own runs adopted theirs before, `adopt`): the one
    /// sign that a run elsewhere died or lost the store mid-run, so the pipeline may run twice (review 18 F4).
    private func reportTakeovers(_ operations: [Operation]) {
        metrics?.recordLeaseTakeovers(operations.count)
        logger.warning(
            "took over expired leases of runs in progress; their pipelines may run a second time",
            metadata: [
                "operation.ids": "\(operations.map(\.id).joined(separator: ","))",
                "lease.previous_owners": "\(operations.map { $0.takenOverFrom ?? "" }.joined(separator: ","))",
                "operation.attempts": "\(operations.map { String($0.attempts) }.joined(separator: ","))",
            ])
    }

    /// Hands back an operation claimed here whose pipeline no route of this configuration matches (a route a
    /// reload removed, or one this instance never had): queued again at once, its claim's attempt taken back
    /// (`release(…, callMade: false)`), so it waits for a reload that brings the route back, or for an instance
    /// sharing the store that has it, and loses nothing (review 18 F8: it failed NOT_FOUND, attempts 1). Its
    /// pipeline is claimed no more here until the next reload (`ClaimPlanner`).
    private func handBackUnrouted(_ operation: Operation, owner: String) async {
        let now = now()
        do {
            _ = try await store.release(id: operation.id, owner: owner, notBefore: now, callMade: false, now: now)
        } catch {
            // The lease expires and the operation is claimed again (by an instance with its route, or here after
            // a reload); that claim counts an attempt.
            logger.log(
                level: Self.logLevel(error), "could not hand back an operation no route matches",
                metadata: ["operation.id": "\(operation.id)", "error": "\(error)"])
        }
    }

    /// Says which pipelines have operations waiting for a route here: for each pipeline the planner holds as
    /// unrouted, a warning naming it and its queued operations, at most once per `unroutedWarningInterval`
    /// (`FailureLogLimiter`), none while none is queued; and `trigger_gateway_async_unrouted_queued`, their sum as
    /// last counted. A pipeline is counted (`OperationStore.queuedCount(pipelineKey:)`) when its warning is due, or
    /// when it was learnt unrouted since the last count (first seen, or after a reload). Nothing to do, and no store
    /// call, while every pipeline seen has a route.
    ///
    /// While the store cannot count (`queueCountLoop`'s last count failed) the gauge is absent and nothing is
    /// counted; a pipeline whose count fails makes it absent too (review 18 F4: a frozen value through an outage).
    private func reportUnrouted() async {
        let keys = planner.withLock { $0.unrouted }
        let (counted, storeDown, absent) = unroutedQueued.withLock { state in
            state.counts = state.counts.filter { keys.contains($0.key) }
            return (state.counts, state.storeDown, state.absent)
        }
        guard !storeDown, !keys.isEmpty || !counted.isEmpty || absent else { return }
        var unknown = false
        for key in keys {
            let warn = unroutedLog.admit(key) != nil
            guard warn || counted[key] == nil else { continue }
            let counted = try? await store.queuedCount(pipelineKey: key)
            claimLoopStepped()
            guard let queued = counted else {
                // Not counted: taken from the counts, so it is counted again next round.
                unknown = true
                unroutedQueued.withLock { _ = $0.counts.removeValue(forKey: key) }
                continue
            }
            unroutedQueued.withLock { $0.counts[key] = queued }
            if warn, queued > 0 {
                logger.warning(
                    """
                    async operations wait for a route: no route matches their pipeline; they stay queued until a \
                    reload adds one, or an instance sharing the store that has one runs them
                    """,
                    metadata: ["pipeline": "\(key)", "operations.queued": .stringConvertible(queued)])
            }
        }
        // Under the lock, so an outage noticed meanwhile (`queueCountLoop`) is not overwritten by this round's sum.
        unroutedQueued.withLock { state in
            guard !state.storeDown else { return }
            state.absent = unknown
            if unknown {
                metrics?.recordUnroutedQueueUnknown()
            } else {
                metrics?.recordUnroutedQueue(state.counts.values.reduce(0, +))
            }
        }
    }

    // MARK: Running one operation

    /// Whether a run's call reached a runner, for the claim planner's view of the pool (`ClaimPlanner`).
    private enum Reach {
        /// The call was answered (a result or an error from the runner or the way to it).
        case reached
        /// No runner saw the call (`GatewayError.notSent`, e.g. connection refused); the pool's outage is recorded
        /// already (`ClaimPlanner.unreached`, before the hand-back, whose wait it sets).
        case notSent
        /// No call, or not known: the run gave up before calling, was cut (shutdown) or lost its lease.
        case unknown
    }

    private enum Outcome: Sendable {
        case finished(Result<TriggerResult, GatewayError>)
        /// The lease was lost (cancelled, or expired and taken by another owner): the result is not ours.
        case leaseLost
    }

    /// Fails a claimed `operation` that will make no backend call (it gave up, or cannot run) with `error`: the
    /// claim's attempt is taken back with the write (idempotent, `uncountAdoptedClaims`, so a retried write takes it
    /// back once), so the stored `attempts` (backend calls made, API.md) and `attemptsMade` agree (review 25 L2);
    /// counted, and, as no run line is written, one `operation finished` line (review 26 H2).
    private func failWithoutRun(_ operation: Operation, _ error: GatewayError, attemptsMade: Int, owner: String) async {
        let id = operation.id
        let webhook = operations.hasWebhook(operation.ref)
        let attempts = operation.attempts
        if await finish(
            id, ref: operation.ref, run: LocalRun(id: id, owner: owner), webhook: webhook,
            { store, owner, now in
                guard try await store.uncountAdoptedClaims(id: id, owner: owner, count: 1, from: attempts) else {
                    return false
                }
                return try await store.fail(
                    id: id, owner: owner, error: error, retryAt: nil, now: now, webhook: webhook)
            }) == .stored
        {
            metrics?.recordFinished(.failed)
            logger.info(
                "operation finished",
                metadata: [
                    "operation.id": "\(id)", "request_id": "\(operation.request.requestID)", "state": "failed",
                    "error.code": .stringConvertible(error.code.rpcCode), "error": "\(error.message)",
                    "operation.attempts": .stringConvertible(attemptsMade),
                ])
        }
    }

    /// An operation claimed with its stored input gone (`Operation.lostInput`): it cannot run, so it fails at
    /// once with that DATA_LOSS error, no runner called (its claim's attempt taken back, as a give-up's is), with
    /// one warning naming it and the file; the rest of the queue runs on (review 27, H1).
    private func failLostInput(_ operation: Operation, _ lost: GatewayError, owner: String) async -> Reach {
        let id = operation.id
        logger.warning(
            "operation failed: its stored input is missing",
            metadata: [
                "operation.id": "\(id)", "request_id": "\(operation.request.requestID)", "error": "\(lost.message)",
            ])
        await failWithoutRun(operation, lost, attemptsMade: max(operation.countedAttempts - 1, 0), owner: owner)
        return .unknown
    }

    /// `pool`: the pool `operation`'s route sends it to, for the claim planner's view of it.
    private func execute(_ operation: Operation, owner: String, pool: String) async -> Reach {
        let id = operation.id
        if operation.countedAttempts > settings.maxAttempts {
            // Claims count attempts; this one was reclaimed after a lease expired once too often (a run that
            // kills its dispatcher, or outlives every lease).
            // This claim makes no backend call, so its attempt is taken back with the failure: the stored `attempts`
            // (backend calls made, API.md) and the message's count agree (review 25 L2: "gave up after 2 attempts"
            // with attempts 3).
            let made = operation.countedAttempts - 1
            let reason = operation.error.map { ": last error: \($0.message)" } ?? " (each run lost its lease)"
            let error = GatewayError(
                operation.error?.code ?? .deadlineExceeded, "operation gave up after \(made) attempts\(reason)")
            if operation.error == nil {
                // No run ever stored an error: each one's lease was lost (its instance died, or it outlived the
                // lease), which only the takeovers' warnings said so far.
                logger.warning(
                    "operation gave up: each of its runs lost its lease",
                    metadata: [
                        "operation.id": "\(id)", "operation.attempts": .stringConvertible(made),
                        "lease.previous_owner": "\(operation.takenOverFrom ?? "")",
                    ])
            }
            await failWithoutRun(operation, error, attemptsMade: made, owner: owner)
            return .unknown
        }
        if let lost = operation.lostInput {
            return await failLostInput(operation, lost, owner: owner)
        }
        var request = operation.request
        request.mode = .sync
        request.idempotencyKey = id
        // The operation id is the gateway's, not the value the client may have sent as sensitive.
        request.sensitiveFields.remove(.idempotencyKey)
        request.deadline = nil
        request.waitsForCapacity = true
        let call = request
        let dispatcher = currentDispatcher.withLock { $0 }
        let logger = self.logger
        // One task per run; its lease is renewed by `keepLeases` with every other run's, which cancels this task
        // when the lease is gone. (Before, each run was a task group of the call and a lease keeper of its own
        // sleeping on a timer (a second group): six tasks and a timer per operation, issue 12.)
        let run = LocalRun(id: id, owner: owner)
        // Keeps the endpoint and what the tries told, for the run's line (`logRun`).
        let cancellation = TriggerCancellation()
        let elapsed = clock.stopwatch()
        let line = RunLine(
            operation: operation, pool: pool, route: dispatcher.route(for: operation.ref)?.pattern,
            cancellation: cancellation, elapsed: elapsed)
        let task = Task { [dispatcher] () -> Result<TriggerResult, GatewayError> in
            do {
                return .success(try await dispatcher.runSync(call, cancellation: cancellation))
            } catch {
                if !(error is GatewayError), !(error is CancellationError) {
                    logger.error(
                        "internal error running an operation",
                        metadata: [
                            "operation.id": "\(id)", "request_id": "\(call.requestID)",
                            "error": "\(String(reflecting: error))",
                        ]
                    )
                }
                return .failure(Self.gatewayError(from: error))
            }
        }
        run.attach(task)
        // Until the outcome is stored: its lease is renewed while `finish` waits out a store outage, so once the
        // store is back the operation stays this run's (not claimed again) while its result is written. A local
        // cancel (`AsyncOperations.cancel`) finds it there too.
        operations.registerLocalRun(run)
        defer { operations.unregisterLocalRun(run) }
        let result = await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
        let outcome: Outcome = run.leaseLost ? .leaseLost : .finished(result)
        // Whether the final state is stored with a pending webhook delivery (the route's, now).
        let webhook = operations.hasWebhook(operation.ref)
        switch outcome {
        case .finished(.success(let result)):
            let written = await finish(
                id, ref: operation.ref, run: run, webhook: webhook,
                { store, owner, now in
                    try await store.complete(id: id, owner: owner, result: result, now: now, webhook: webhook)
                })
            if written == .stored { metrics?.recordFinished(.succeeded) }
            logRun(line, written.outcome(or: .succeeded), error: nil)
            return .reached
        case .finished(.failure(let error)):
            if Task.isCancelled {
                // Shutdown cut the run: hand the operation back so it runs again soon, here or elsewhere. Its call
                // was made (`attempts` keeps it) but the pipeline was not at fault (the limit does not count it).
                // One line each, so a rolling restart leaves a trace of what it cut (review 12, finding 2).
                // Said once the store took it back: with the store down (a stop during an outage) it did not, the
                // lease expires and another claim runs it again, an attempt spent (cluster review 59, L1: the lines
                // said "queued again" and `handed_back` for runs that were not).
                if await release(run, callMade: true) {
                    logger.info(
                        "run cut at shutdown; the operation is queued again",
                        metadata: ["operation.id": "\(id)", "request_id": "\(call.requestID)"])
                    handedBackAtStop.add(1, ordering: .relaxed)
                    logRun(line, .handedBack, error: error)
                } else {
                    notHandedBackAtStop.add(1, ordering: .relaxed)
                    logRun(line, .notStored, error: error)
                }
                return .unknown
            }
            if error.notSent {
                // No runner saw the call (connection refused: a runner restarting, a backend not up yet): not
                // an attempt. Queued again after a wait that grows with the outage (README "Async runs").
                // The operation waits as long as its pool gets no claims (`ClaimPlanner.unreached`: half the
                // outage so far, 1 s to 30 s), counted from the pool's first refused run: not from the operation's
                // own start, which the hand-back takes back when no runner was ever reached (review 23 M1).
                let now = now()
                let until = planner.withLock { $0.unreached(pool: pool, now: now) } ?? now
                let wait = Duration.milliseconds(Int64((until.timeIntervalSince(now) * 1000).rounded(.up)))
                logger.debug(
                    "backend not reached; operation queued again",
                    metadata: ["operation.id": "\(id)", "retry_in": "\(wait)", "error": "\(error.message)"])
                if let heldBack = unreachedLog.admitLine(pool) {
                    var metadata: Logger.Metadata = [
                        "backend.pool": "\(pool)", "operation.id": "\(id)", "error": "\(error.message)",
                        "next_try": "\(RFC3339.format(milliseconds: until.storeMilliseconds))",
                    ]
                    heldBack.annotate(&metadata, countKey: "handbacks_held_back")
                    logger.warning("runner unreachable; async operations wait in the queue", metadata: metadata)
                }
                await release(run, after: wait)
                logRun(line, .handedBack, error: error)
                return .notSent
            }
            let counted = operation.countedAttempts
            let retry = Self.isRetryable(error) && counted < settings.maxAttempts
            let retryAt = retry ? now().addingTimeInterval(seconds(settings.backoff(afterAttempt: counted))) : nil
            let pending = webhook && !retry
            let written = await finish(
                id, ref: operation.ref, run: run, final: !retry, webhook: pending,
                { store, owner, now in
                    try await store.fail(
                        id: id, owner: owner, error: error, retryAt: retryAt, now: now, webhook: pending)
                })
            if written == .stored, !retry { metrics?.recordFinished(.failed) }
            logRun(line, written.outcome(or: retry ? .retrying : .failed), error: error)
            return .reached
        case .leaseLost:
            // A cancel (`:cancel`) ends the lease too; say which it was (one read, only when a run is cut).
            let error: GatewayError? = if case .failure(let error) = result { error } else { nil }
            if (try? await store.get(id: id))?.state == .cancelled {
                logger.info("operation cancelled; its run was stopped", metadata: ["operation.id": "\(id)"])
                logRun(line, .cancelled, error: error)
            } else {
                reportLeaseLost(id, owner: run.owner, cut: true)
                logRun(line, .leaseLost, error: error)
            }
            operations.completions.notify(id)
            return .unknown
        }
    }

    /// What a run's `operation run` line says besides its outcome, gathered as the run starts (``logRun``).
    private struct RunLine {
        let operation: Operation
        let pool: String
        /// The route the operation's pipeline matched, as configured; nil when none did.
        let route: String?
        /// The run's call: its endpoint and what its tries told (``UpstreamDetail``), once it ended.
        let cancellation: TriggerCancellation
        /// Time since the run started, on the dispatcher's clock.
        let elapsed: @Sendable () -> Duration
    }

    /// How a run ended, the `outcome` of its `operation run` line.
    enum RunOutcome: String {
        /// Its result is stored: the operation succeeded (final).
        case succeeded
        /// Its failure is stored as final: no attempt left, or not retryable.
        case failed
        /// Its failure is stored and the operation queued again for a later attempt (`retry_backoff`).
        case retrying
        /// Handed back to the queue uncounted: no runner saw the call (`UF`), or the gateway's stop cut it.
        case handedBack = "handed_back"
        /// The operation was cancelled while it ran; the run was stopped or its outcome refused (final).
        case cancelled
        /// Another claim took the operation (its lease expired here); the run's result was dropped.
        case leaseLost = "lease_lost"
        /// The store could not take the outcome before the retry limit or the stop; the operation runs again after
        /// its lease.
        case notStored = "not_stored"
    }

    /// The async runs' access log (review 26 H2): one `info` line per run's end, `msg="operation run"`, with
    /// `operation.id`, the accepting request's `request_id` and `trace_id`, `namespace`, `pipeline`, `route`,
    /// `pool`, `endpoint`, `attempt` (the operation's attempt this run was, 1-based), `outcome` (``RunOutcome``),
    /// `response_flags` (as the access line's: `UF`, `UT`, …, or `-`), `error.code` (the google.rpc code the
    /// operation's `error` shows, API.md) and `error` when the run failed, `duration_us` (the run, from its start to
    /// its outcome's write) and the call's upstream fields as a sync request's access line has them (`attempts`,
    /// `upstream_status`, `upstream_duration_us`, `queue_duration_us`). Never held back: like the access log, one
    /// line per exchange with a backend; a run whose outcome is final (succeeded, failed, cancelled) is also the
    /// operation's final line.
    private func logRun(_ line: RunLine, _ outcome: RunOutcome, error: GatewayError?) {
        guard logger.logLevel <= .info else { return }
        let operation = line.operation
        let request = operation.request
        let (endpoint, upstream) = line.cancellation.endpointAndUpstream
        var metadata: Logger.Metadata = [
            "operation.id": "\(operation.id)", "request_id": "\(request.requestID)",
            "namespace": "\(operation.ref.namespace)", "pipeline": "\(operation.ref.pipeline)", "pool": "\(line.pool)",
            "attempt": .stringConvertible(operation.countedAttempts), "outcome": "\(outcome.rawValue)",
            "response_flags": "\(error?.upstreamFailure?.rawValue ?? "-")",
            "duration_us": .stringConvertible(TimeAmount(line.elapsed()).nanoseconds / 1000),
        ]
        if let route = line.route { metadata["route"] = "\(route)" }
        if let endpoint { metadata["endpoint"] = "\(endpoint)" }
        if let traceID = Self.traceID(of: request.traceParent) { metadata["trace_id"] = "\(traceID)" }
        if let error, outcome != .succeeded {
            metadata["error.code"] = .stringConvertible(error.code.rpcCode)
            metadata["error"] = "\(error.message)"
        }
        AccessLog.add(upstream, to: &metadata)
        logger.info("operation run", metadata: metadata)
    }

    /// The trace id of a stored `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, W3C Trace Context §3.2): checked by
    /// the frontend that accepted it, or made by the gateway; nil when there is none.
    static func traceID(of traceParent: String?) -> Substring? {
        guard let traceParent, traceParent.utf8.count >= 35 else { return nil }
        return traceParent.dropFirst(3).prefix(32)
    }

    /// A run here lost its lease to another claim (it expired and was taken over: this instance stopped renewing, or
    /// could not reach the store, for a lease): the losing side of a takeover, counted in
    /// `trigger_gateway_async_leases_lost_total` and logged as a warning, once per run (review 25 I2: an info line
    /// only). `cut`: the run was stopped before it finished; else its outcome was refused and dropped.
    private func reportLeaseLost(_ id: String, owner: String, cut: Bool) {
        metrics?.recordLeaseLost()
        logger.warning(
            cut ? "operation lease lost; run stopped, result dropped" : "operation lease lost; outcome dropped",
            metadata: ["operation.id": "\(id)", "lease.owner": "\(owner)"])
    }

    /// Renews the lease of every run in progress here every third of the lease's duration, until cancelled; a
    /// run whose lease is gone (cancelled, or expired and claimed by another owner) is cancelled and its result
    /// dropped (`LocalRun.loseLease`). One loop for all runs: a run started just after a round is renewed by the
    /// next one, so no lease goes longer than a third of its duration without a renewal, as when each run had a
    /// keeper of its own.
    ///
    /// A renewal refused while a claim is under way here is decided once that claim returns: it may be what took
    /// the lease (committed before the renewal, its answer not yet back), and the run adopts it when it returns.
    /// Cut now, the run would refuse the adoption and the claim would run the pipeline again (review 13 F4).
    private func keepLeases() async {
        let interval = settings.lease / 3
        while !Task.isCancelled {
            try? await clock.sleep(for: interval)
            if Task.isCancelled { return }
            let runs = operations.localRunsInProgress
            for run in runs where !run.leaseLost {
                do {
                    let owner = run.owner
                    let held = try await store.renewLease(
                        id: run.id, owner: owner, leaseDuration: settings.lease, now: now())
                    if !held {
                        if claimsUnderWay.active {
                            // Decided as soon as that claim returns (bounded by one store call), not a third of a
                            // lease later: a claim under way that did not take this lease (another pool's, one
                            // begun after the renewal) must not keep a run another instance took, or one cancelled
                            // there, calling its backend (review 14 F3). Apart, so the other renewals go on.
                            logger.debug(
                                "lease renewal refused while a claim is under way; decided once it returns",
                                metadata: ["operation.id": "\(run.id)"])
                            let claimsUnderWay = self.claimsUnderWay
                            Task {
                                await claimsUnderWay.ended()
                                run.loseLease(ifOwner: owner)
                            }
                            continue
                        }
                        // Not held under a claim the run has adopted since (`adopt`): the lease is the run's still.
                        // One lock with `adopt`: an adoption between a check and the cut would be cut too.
                        run.loseLease(ifOwner: owner)
                    }
                } catch {
                    // The store is unreachable: keep running; if the lease expires meanwhile, fencing makes the
                    // later `complete` a no-op and the reclaimed run stores the result.
                    storeFailed()
                    // One line per interval for all runs, not one per run per renewal (review 25 L1: an outage
                    // logged a line per operation every third of a lease).
                    if let heldBack = renewalFailureLog.admitLine("renewal") {
                        var metadata: Logger.Metadata = ["operation.id": "\(run.id)", "error": "\(error)"]
                        heldBack.annotate(&metadata, countKey: "renewals.held_back")
                        logger.warning("lease renewal failed", metadata: metadata)
                    }
                }
            }
        }
    }

    /// Stores an outcome, retrying (backing off to 1 s) until the store takes or refuses it: while the store is
    /// unreachable (`.unavailable`) for up to `outcomeRetryLimit` (or the lease if longer), any other error for
    /// up to one lease. Each claim round waits up to 2 s for such pending outcomes (`pendingOutcomes`). Notifies
    /// local waiters when the operation is finished. True when the outcome was stored.
    ///
    /// The write is fenced on this run's claim (`run.owner` is unique per claim; the store updates the row only
    /// while it is running under that owner), so retrying past the lease is safe: once another claim has taken
    /// the operation (its lease expired while the store was reachable to that claimer), the store refuses the
    /// write, and until then the result is still this run's to store; a claim of the operation by this instance
    /// meanwhile is adopted by the run (`adopt`), and the write follows it. Giving up after one lease, as before, made
    /// every run that finished during a store outage longer than the lease (a PostgreSQL failover) run again
    /// (review 12, finding 1). The run's lease keeps being renewed meanwhile (`keepLeases`).
    ///
    /// Cancelling the caller (a worker, when the shutdown grace is over) ends the wait between tries and starts
    /// no further try, but never cancels a write under way (PostgresNIO drops a cancelled query): the operation
    /// then runs again after its lease, here or on another instance (the stop does not wait out an outage,
    /// review 12, finding 2).
    @discardableResult
    private func finish(
        _ id: String,
        ref: PipelineRef,
        run: LocalRun,
        final: Bool = true,
        webhook: Bool = false,
        _ write: @escaping @Sendable (_ store: any OperationStore, _ owner: String, _ now: Date) async throws -> Bool
    ) async -> Written {
        let store = self.store
        let lease = settings.lease
        let logger = self.logger
        let (clock, now) = (self.clock, self.now)
        // Why an outcome was not stored matters to the operator: the store refused the write (the lease was lost
        // or the operation cancelled) or it kept failing until the gateway stopped (review 9 #7).
        enum Outcome: Equatable {
            /// Under this claim (the owner the webhook delivery, if any, is reserved for).
            case stored(owner: String)
            case refused, failed
        }
        // How long an unreachable store is waited out (the lease at least): a PostgreSQL failover takes seconds to
        // minutes. Both stores report most failures as `.unavailable` (a statement timeout on a slow but reachable
        // server too), so this bound is what ends a write that cannot succeed (review 12, diff review 2).
        let limit = max(lease, outcomeRetryLimit)
        let stop = OutcomeRetryStop()
        let wake = operations.dispatcherWake
        // Unstructured and never cancelled: a write under way when the shutdown grace ends still reaches the store
        // (cancelled, PostgresNIO would drop it, and the operation would run again; diff review 3). The worker's
        // cancellation only ends the waits between tries (`stop`).
        let task = Task { [self] () async -> Outcome in
            let elapsed = clock.stopwatch()
            var wait = Duration.milliseconds(50)
            var warned = false
            var pending = false
            defer {
                if pending {
                    self.pendingOutcomes.wrappingSubtract(1, ordering: .relaxed)
                    wake.signal()
                }
            }
            func givenUpAtStop(_ error: any Error) -> Outcome {
                logger.error(
                    """
                    could not store an operation outcome before the gateway stopped; the operation runs again \
                    after its lease
                    """,
                    metadata: ["operation.id": "\(id)", "error": "\(error)"])
                _ = run.end(unlessAdoptedSince: run.owner)
                return .failed
            }
            while true {
                do {
                    let (owner, uncounted, attempts) = run.claim
                    // The attempts of the claims the run adopted first (fenced on the same claim as the write, and
                    // on the count, so a repeat after a lost reply takes nothing back twice).
                    if uncounted > 0,
                        try await store.uncountAdoptedClaims(id: id, owner: owner, count: uncounted, from: attempts)
                    {
                        run.uncounted(uncounted, under: owner)
                    }
                    if try await write(store, owner, now()) {
                        await self.endRun(run, after: owner)
                        return .stored(owner: owner)
                    }
                    // Refused. A claim under way here may have taken the operation before the write reached the store
                    // (the lease expired during an outage): once it returns, the run has adopted it (`adopt`) and the
                    // outcome is written again under it at once. Ended before that, the run would refuse the adoption
                    // and the claim would run the pipeline again (review 13 F2).
                    await self.claimsUnderWay.ended()
                    if !run.end(unlessAdoptedSince: owner) { continue }
                    return .refused
                } catch {
                    if stop.requested { return givenUpAtStop(error) }
                    // Unreachable (`.unavailable`): retried for up to `limit`. Any other error is not the outage
                    // this waits out: given up after one lease, as a write that cannot succeed.
                    let unreachable = Self.isStoreUnreachable(error)
                    if elapsed() + wait >= (unreachable ? limit : lease) {
                        logger.error(
                            "could not store an operation outcome; the operation runs again after its lease",
                            metadata: ["operation.id": "\(id)", "error": "\(error)"])
                        // No claim is adopted from now on: one made here runs the operation again at once.
                        _ = run.end(unlessAdoptedSince: run.owner)
                        return .failed
                    }
                    if unreachable, !pending {
                        pending = true
                        self.pendingOutcomes.wrappingAdd(1, ordering: .relaxed)
                    }
                    if unreachable, !warned, elapsed() + wait >= lease {
                        warned = true
                        // One line per interval for all runs, as for renewals (cluster review 59, L4: one per
                        // operation, 30 in a 73 s outage).
                        if let heldBack = self.renewalFailureLog.admitLine("outcome") {
                            var metadata: Logger.Metadata = ["operation.id": "\(id)", "error": "\(error)"]
                            heldBack.annotate(&metadata, countKey: "operations.held_back")
                            logger.warning(
                                """
                                the store has been unreachable for longer than the lease; the operation's outcome \
                                is kept and stored when the store is back, unless another instance has taken the \
                                operation over meanwhile
                                """,
                                metadata: metadata)
                        }
                    }
                    if await !stop.sleep(for: wait, on: clock) { return givenUpAtStop(error) }
                    wait = min(wait * 2, .seconds(1))
                }
            }
        }
        let outcome = await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            stop.request()
        }
        var storedOwner: String?
        if case .stored(let owner) = outcome { storedOwner = owner }
        let stored = storedOwner != nil
        var written = stored ? Written.stored : .notStored
        if outcome == .refused {
            if (try? await store.get(id: id))?.state == .cancelled {
                logger.info("operation outcome not stored (cancelled)", metadata: ["operation.id": "\(id)"])
                written = .cancelled
            } else {
                reportLeaseLost(id, owner: run.owner, cut: false)
                written = .leaseLost
            }
        }
        if final && stored {
            await operations.finished(id, ref: ref, webhookOwner: webhook ? storedOwner : nil)
        } else if !stored {
            operations.completions.notify(id)
        }
        if !final { operations.dispatcherWake.signal() }
        return written
    }

    /// What became of an outcome ``finish(_:ref:run:final:webhook:_:)`` was to store.
    private enum Written {
        case stored
        /// Refused: the operation was cancelled meanwhile.
        case cancelled
        /// Refused: another claim took the operation (its lease expired).
        case leaseLost
        /// The store kept failing (an outage past the limit, or the gateway stopping): the operation runs again
        /// after its lease.
        case notStored

        /// The run's outcome: `stored` when the write was taken.
        func outcome(or stored: RunOutcome) -> RunOutcome {
            switch self {
            case .stored: stored
            case .cancelled: .cancelled
            case .leaseLost: .leaseLost
            case .notStored: .notStored
            }
        }
    }

    /// Hands a run the gateway itself cut (shutdown), or one whose call reached no runner, back to the queue
    /// without counting its attempt, claimable `after` that long from the release's own time stamp (at once when
    /// nil; one stamp, so the wait is exact whatever the store call waited for): a gateway restarted again
    /// and again (a crash loop, a port that stays taken) or a runner down for a while must not use up an
    /// operation's attempts. Outside the cancelled task, so the store call is not cancelled too. The run's adopted
    /// claims (`adopt`) have their attempts taken back first, as before an outcome write.
    /// True when the store took the operation back under this run's lease.
    @discardableResult
    private func release(_ run: LocalRun, after wait: Duration? = nil, callMade: Bool = false) async -> Bool {
        let store = self.store
        let logger = self.logger
        let now = self.now
        let id = run.id
        return await Task {
            do {
                let (owner, uncounted, attempts) = run.claim
                if uncounted > 0,
                    try await store.uncountAdoptedClaims(id: id, owner: owner, count: uncounted, from: attempts)
                {
                    run.uncounted(uncounted, under: owner)
                }
                let now = now()
                let notBefore = wait.map { now.addingTimeInterval(seconds($0)) } ?? now
                // False: fenced, another claim holds the operation now (this run's lease had expired).
                let released = try await store.release(
                    id: id, owner: owner, notBefore: notBefore, callMade: callMade, now: now)
                await self.endRun(run, after: owner)
                return released
            } catch {
                // The lease expires and the operation is claimed again; that claim counts an attempt.
                logger.warning(
                    "could not hand a cut run back: it runs again once its lease expires, an attempt spent",
                    metadata: ["operation.id": "\(id)", "error": "\(error)"])
                return false
            }
        }.value
    }

    /// Ends `run` once its outcome or release is in the store under `owner`: from then on a claim here of its
    /// operation is not adopted (`LocalRun.adopt` refuses) but run. A stored retry or a release queues the
    /// operation again, claimable at once with no backoff (`retry_backoff: 0s`, a release's `notBefore = now`), and
    /// a claim can return before this run has heard its write's answer: the run, not ended yet, adopts that claim,
    /// which would leave the operation running with no run behind it until the lease expires, the claim's attempt
    /// counted (review 14 F2). Such a claim is handed back (`release(…, callMade: false)`: the claim's attempt with
    /// it), so the next claim round runs the operation. A final outcome's row is claimed by no one: nothing to hand back.
    private func endRun(_ run: LocalRun, after owner: String) async {
        let last = run.end()
        guard last != owner else { return }
        let now = now()
        do {
            _ = try await store.release(id: run.id, owner: last, notBefore: now, callMade: false, now: now)
        } catch {
            logger.warning(
                "could not hand back a claim made as the run's outcome was stored; the operation runs after its lease",
                metadata: ["operation.id": "\(run.id)", "error": "\(error)"])
        }
    }

    // MARK: Retention

    private func purgeLoop() async {
        let every = min(settings.retention / 10, .seconds(60))
        while !Task.isCancelled, !stopping.load(ordering: .sequentiallyConsistent) {
            do {
                let cutoff = now().addingTimeInterval(-seconds(settings.retention))
                let purged = try await store.purge(finishedBefore: cutoff)
                if purged > 0 {
                    logger.info(
                        "purged finished operations", metadata: ["operations.purged": .stringConvertible(purged)])
                }
            } catch {
                logger.log(level: Self.logLevel(error), "purge failed", metadata: ["error": "\(error)"])
            }
            try? await clock.sleep(for: every)
        }
    }

    /// How often `trigger_gateway_async_queued` is read from the store: the poll interval, but at most once a
    /// second (a count walks the queued rows: cheap, not free on a long queue), and at most 5 % of the time: a
    /// count that took 200 ms waits 4 s for the next (`queueCountLoop`), so a queue of millions never keeps the
    /// store busy counting it.
    package var queueCountInterval: Duration { max(settings.pollInterval, .seconds(1)) }

    /// Keeps `trigger_gateway_async_queued{pool}` and `…_oldest_queued_timestamp_seconds{pool}` at the store's
    /// count (see `AsyncMetrics`), read every `queueCountInterval` of `clock` (longer after a slow count). A read
    /// that fails takes the series away until a read succeeds (`AsyncMetrics.recordQueueUnknown`: no stale count
    /// through a store outage, review 18 F3; the store's health probe reports the outage).
    private func queueCountLoop() async {
        while !Task.isCancelled, !stopping.load(ordering: .sequentiallyConsistent) {
            let took = clock.stopwatch()
            do {
                let pipelines = try await store.queuedByPipeline()
                let byPool = queueByPool(pipelines)
                metrics?.recordQueue(byPool: byPool)
                operations.queueBounds.recordCount(byPool: byPool.mapValues(\.queued))
                // Back from an outage: `reportUnrouted` counts the unrouted pipelines again at once.
                let recovered = unroutedQueued.withLock { state in
                    defer { state.storeDown = false }
                    return state.storeDown
                }
                if recovered { operations.dispatcherWake.signal() }
            } catch {
                // A stop cancelling the count knows nothing new about the queue.
                if !Task.isCancelled {
                    metrics?.recordQueueUnknown()
                    operations.queueBounds.recordUnknown()
                    // Nor can the store count the unrouted pipelines' queues: their gauge goes too, and each is
                    // counted anew once it can.
                    unroutedQueued.withLock { state in
                        state.storeDown = true
                        state.absent = true
                        state.counts = [:]
                        metrics?.recordUnroutedQueueUnknown()
                    }
                }
            }
            try? await clock.sleep(for: max(queueCountInterval, took() * 20))
        }
    }

    /// The store's queue by pipeline as `trigger_gateway_async_queued{pool}` and
    /// `…_oldest_queued_timestamp_seconds{pool}` take it: every pool of the configuration in force (0, and now, when
    /// nothing waits for it), each pipeline under the pool its route names (a release routed elsewhere is counted
    /// with its pipeline); pipelines no route matches are left out (`reportUnrouted` counts them). The oldest wait
    /// is never in the future: a pool whose queued operations all wait for their retry time waits for nothing now.
    private func queueByPool(_ pipelines: [PipelineQueue]) -> [String: (queued: Int, oldestSince: Double)] {
        let dispatcher = currentDispatcher.withLock { $0 }
        let now = now()
        var byPool: [String: (queued: Int, oldestSince: Date)] = [:]
        for pool in dispatcher.poolNames { byPool[pool] = (0, now) }
        for pipeline in pipelines {
            let parts = pipeline.key.split(separator: "/", maxSplits: 1)
            guard parts.count == 2,
                let pool = dispatcher.poolName(
                    for: PipelineRef(namespace: String(parts[0]), pipeline: String(parts[1])))
            else { continue }
            byPool[pool, default: (0, now)].queued += pipeline.count
            byPool[pool, default: (0, now)].oldestSince = min(
                byPool[pool, default: (0, now)].oldestSince, pipeline.oldestSince)
        }
        return byPool.mapValues { ($0.queued, $0.oldestSince.timeIntervalSince1970) }
    }

    // MARK: Helpers

    /// Failures worth another attempt: the backend or the way to it, not the request itself. A pipeline's own
    /// failure (an application code, DESIGN.md "Failures: whose fault") never is, whatever its code; the
    /// gateway's own overload never reaches here (async runs wait for a slot instead).
    static func isRetryable(_ error: GatewayError) -> Bool {
        switch error.code {
        case .backendFailed, .unavailable, .overloaded, .tooManyRequests, .deadlineExceeded, .internalError: true
        default: false
        }
    }

    /// Store outages are logged by the store's health probe; here they are detail.
    static func logLevel(_ error: any Error) -> Logger.Level {
        isStoreUnreachable(error) ? .debug : .warning
    }

    /// Whether a store call failed because the store cannot be reached (the stores throw
    /// `GatewayError(.unavailable)` for a connection, a timeout or a database file that cannot be opened).
    static func isStoreUnreachable(_ error: any Error) -> Bool {
        (error as? GatewayError)?.code == .unavailable
    }

    static func gatewayError(from error: any Error) -> GatewayError {
        switch error {
        case let error as GatewayError: error
        case is CancellationError: GatewayError(.cancelled, "the run was cancelled")
        default: GatewayError(.internalError, GatewayError.internalErrorMessage)
        }
    }
}

func seconds(_ duration: Duration) -> Double {
    let (s, atto) = duration.components
    return Double(s) + Double(atto) / 1e18
}

/// How a worker's cancellation (the shutdown grace is over) reaches `finish`'s retries without cancelling a store
/// write under way: it ends the wait between tries, and no further try starts.
private final class OutcomeRetryStop: Sendable {
    private let state = Mutex<(requested: Bool, sleeper: Task<Void, any Error>?)>((false, nil))

    var requested: Bool { state.withLock { $0.requested } }

    func request() {
        let sleeper = state.withLock { state in
            state.requested = true
            return state.sleeper
        }
        sleeper?.cancel()
    }

    /// Waits `duration` on `clock`; false when a stop was requested before or during the wait.
    func sleep(for duration: Duration, on clock: any Clock<Duration>) async -> Bool {
        let sleeper = Task { try await clock.sleep(for: duration) }
        let stopped = state.withLock { state in
            state.sleeper = sleeper
            return state.requested
        }
        if stopped { sleeper.cancel() }
        _ = await sleeper.result
        return state.withLock { state in
            state.sleeper = nil
            return !state.requested
        }
    }
}

/// One run in progress on this dispatcher: its lease (operation and owner, renewed by
/// `AsyncDispatcher.keepLeases`) and the task running it, cancelled when the lease is lost.
final class LocalRun: Sendable {
    let id: String
    private struct State {
        var owner: String
        var lost = false
        /// The run is over here (its outcome was refused or given up): a claim can no longer be adopted.
        var ended = false
        /// Claims adopted whose attempts the store still counts (`AsyncDispatcher.adopt`, `uncounted(_:)`).
        var uncounted = 0
        /// The store's `attempts` after the last adopted claim, less what was taken back since: the fence of
        /// `uncountAdoptedClaims` (a repeat after a lost reply takes nothing back twice).
        var attempts = 0
        var task: Task<Result<TriggerResult, GatewayError>, Never>?
    }
    private let state: Mutex<State>

    init(id: String, owner: String) {
        self.id = id
        self.state = Mutex(State(owner: owner))
    }

    /// The claim this run's lease and outcome are under: the one that started it, or a later claim of the same
    /// operation by this instance that the run adopted (`adopt`).
    var owner: String { state.withLock { $0.owner } }

    /// `owner`, and how many adopted claims still count an attempt in the store (each claim counts one, and an
    /// adopted claim made no backend call): taken back under `owner` before the run's outcome or release is written
    /// (`AsyncDispatcher.finish`, `release`: one after the other, never two at once, so none is taken back twice).
    /// `attempts`: what the store counts now (the fence of `uncountAdoptedClaims`).
    var claim: (owner: String, uncounted: Int, attempts: Int) {
        state.withLock { ($0.owner, $0.uncounted, $0.attempts) }
    }

    /// `count` adopted claims' attempts were taken back in the store under `owner`. The fence (`attempts`) drops
    /// with them only if no claim was adopted since: an adoption sets it to what its claim counted, which already
    /// excludes what was taken back (review 16 F2).
    func uncounted(_ count: Int, under owner: String) {
        state.withLock { state in
            state.uncounted -= count
            if state.owner == owner { state.attempts = max(state.attempts - count, 0) }
        }
    }

    /// A claim here took this run's operation again (its lease expired while the store was unreachable): the run
    /// goes on under that claim, renewing its lease and storing its outcome with it, instead of a second run.
    /// False when the lease was already lost (the run is being cut) or the run is over (`end`): the claim then
    /// runs the operation.
    /// `attempts`: the claimed operation's, as the claim counted them.
    func adopt(_ owner: String, attempts: Int) -> Bool {
        state.withLock { state in
            if state.lost || state.ended { return false }
            state.owner = owner
            state.uncounted += 1
            state.attempts = attempts
            return true
        }
    }

    /// Ends the run here unless it adopted a claim since `owner` (one lock with `adopt`, so a claim is either
    /// adopted before, and the outcome written again under it, or not at all, and run by its claimer): a refused
    /// write that raced an adoption must not leave the operation claimed with no run behind it (review 13 F2).
    func end(unlessAdoptedSince owner: String) -> Bool {
        state.withLock { state in
            if state.owner != owner { return false }
            state.ended = true
            return true
        }
    }

    /// Ends the run here whatever claim it is under (its outcome or release is stored): no claim is adopted from
    /// now on. Returns the owner of the claim it was under last (one lock with `adopt`).
    func end() -> String {
        state.withLock { state in
            state.ended = true
            return state.owner
        }
    }

    /// The task running the operation; cancelled at once when the lease was lost before.
    func attach(_ task: Task<Result<TriggerResult, GatewayError>, Never>) {
        let lost = state.withLock { state in
            state.task = task
            return state.lost
        }
        if lost { task.cancel() }
    }

    /// The lease is gone: the run is cancelled and its result is not stored.
    func loseLease() {
        state.withLock { state in
            state.lost = true
            return state.task
        }?.cancel()
    }

    /// `loseLease()` unless the run has adopted a claim since `owner` (whose lease a renewal under `owner` found
    /// gone): checked and cut under one lock with `adopt`, so an adoption cannot fall between the two.
    func loseLease(ifOwner owner: String) {
        state.withLock { state -> Task<Result<TriggerResult, GatewayError>, Never>? in
            guard state.owner == owner else { return nil }
            state.lost = true
            return state.task
        }?.cancel()
    }

    var leaseLost: Bool { state.withLock { $0.lost } }
}

/// Whether the claim loop has a claim under way: sent, and its operations not yet adopted or started. A run whose
/// renewal or outcome write was refused asks it, since that claim may be what took the lease (`keepLeases`,
/// `finish`). One claim at a time (the claim loop is one task).
private final class ClaimsUnderWay: Sendable {
    private let state = Mutex<(active: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    var active: Bool { state.withLock { $0.active } }

    func begin() { state.withLock { $0.active = true } }

    func end() {
        let waiters = state.withLock { state in
            state.active = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once no claim is under way: at once when none is, else when the current one ends (its operations
    /// adopted or started). Not cancellable: a claim ends with its store call, which is bounded.
    func ended() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state in
                if !state.active { return true }
                state.waiters.append(waiter)
                return false
            }
            if now { waiter.resume() }
        }
    }
}
