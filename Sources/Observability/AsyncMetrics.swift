package import Prometheus
import Synchronization

/// Async mode's families:
///
/// - `trigger_gateway_async_accepted_total`: operations stored by an async trigger or a schedule's run (a repeat
///   with the same `Idempotency-Key` returns the stored one and is not counted).
/// - `trigger_gateway_async_queued{pool}`: the queue's length per backend pool, as the store counts it (operations
///   in state `queued`, a retry waiting for its time included), each pipeline's under the pool its route names
///   here; one series per configured pool (0 when nothing waits for it). Operations no route here matches are in
///   `…_unrouted_queued`. Read by the async dispatcher at a bounded interval (`AsyncDispatcher.queueCountInterval`).
///   It is the whole store's queue, whichever instance queued or claims: instances sharing a PostgreSQL store all
///   report the same value (aggregate with `max by (pool)`, not `sum`). Counting each instance's own moves instead
///   read negative after a restart or when another instance claimed them. While the store cannot count
///   (unreachable), the series are absent, not their last values (review 18 F3: a frozen gauge flat-lined a backlog
///   alert through the very outage that builds the backlog); see ``recordQueueUnknown()``. Before review 26 M5 it
///   was one series without labels (the whole queue, unrouted operations included).
/// - `trigger_gateway_async_oldest_queued_timestamp_seconds{pool}`: from the same count, since when the pool's
///   longest-waiting queued operation has waited (Unix seconds; `PipelineQueue.oldestSince`: its acceptance while
///   no runner has run it, else its retry time), or the count's time when none waits (empty, or every one in its
///   retry back-off): `time() - …` is how long the oldest has waited (review 26 M5: SQS's age of the oldest
///   message). Absent with `…_queued`.
/// - `trigger_gateway_async_unrouted_queued`: queued operations of pipelines no route of this instance's
///   configuration matches (a route a reload removed, or one only other instances sharing the store have), as the
///   async dispatcher last counted them (at most once a minute per pipeline, and when it learns of one). They are
///   not run here and wait (review 18 F8); an operator alerts on it staying above 0. Absent while the store cannot
///   count (as `async_queued`, ``recordUnroutedQueueUnknown()``).
/// - `trigger_gateway_async_running`: runs this instance's dispatcher has in progress.
/// - `trigger_gateway_async_finished_total{state}`: operations that reached a final state here (`succeeded`,
///   `failed`, `cancelled`).
/// - `trigger_gateway_async_dispatch_lag_seconds`: from when an operation became runnable (accepted, or its retry
///   time) to its claim.
/// - `trigger_gateway_async_attempts_total`: runs started (first attempts and retries).
/// - `trigger_gateway_async_lease_takeovers_total`: operations this instance claimed while they were `running` under
///   another run's expired lease (review 18 F4): that run's instance died, stopped renewing, or lost the store
///   mid-run, so the pipeline may run twice. A run of this instance adopting its own claim after a store outage
///   (`AsyncDispatcher.adopt`) is not one. Any increase is worth a look: `increase(…[1h]) > 0`.
/// - `trigger_gateway_async_leases_lost_total`: the other side of a takeover, on the instance that lost it: runs of
///   this instance whose lease another claim took after it expired (this instance could not renew it for a lease:
///   a stall, or an outage of the store that the others outlasted); each run's outcome was dropped (review 25 I2).
/// - `trigger_gateway_async_dispatcher_last_claim_timestamp_seconds`: when this instance's dispatcher's claim loop
///   last made a step (a claim answered or failed, another of its store calls ended, or a round with nothing to
///   claim), Unix seconds; from the dispatcher's start. An idle loop steps every `store.poll_interval`; a loop that
///   stopped inside a call that never returns stops it (review 26 H1): `time() - … > N` alerts.
package final class AsyncMetrics: Sendable {
    package enum FinalState: String, Sendable, CaseIterable {
        case succeeded
        case failed
        case cancelled
    }

    package let accepted: Counter
    /// `trigger_gateway_async_queued{pool}` and `…_oldest_queued_timestamp_seconds{pool}`, absent while the
    /// store's last count failed.
    private let queue: PoolQueueGauges
    package let running: Gauge
    /// `trigger_gateway_async_unrouted_queued`, absent while the store cannot count.
    private let unroutedQueued: AbsentableGauge
    package let dispatchLag: ValueHistogram
    package let attempts: Counter
    package let leaseTakeovers: Counter
    package let leasesLost: Counter
    /// Absent until the dispatcher starts: a 0 would read as a loop stalled since 1970 (review 26 M7's lesson).
    private let lastClaimLoopStep: AbsentableGauge
    private let finished: [FinalState: Counter]

    init(registry: PrometheusCollectorRegistry) {
        accepted = registry.counter(
            name: "trigger_gateway_async_accepted_total",
            help: "Async operations stored, by async triggers and by schedules' runs (a repeated Idempotency-Key "
                + "returning the stored one is not counted, nor a schedule's run another instance stored)."
        )
        queue = PoolQueueGauges(registry: registry)
        unroutedQueued = AbsentableGauge(
            registry, name: "trigger_gateway_async_unrouted_queued",
            help: "Queued operations of pipelines no route of this instance matches, as last counted; they wait "
                + "for a reload that adds one, or for an instance sharing the store that has one. Absent while "
                + "the store cannot count them.")
        running = registry.gauge(
            name: "trigger_gateway_async_running",
            help: "Operations this instance's dispatcher is running now."
        )
        dispatchLag = registry.histogram(
            name: "trigger_gateway_async_dispatch_lag_seconds",
            buckets: MetricBuckets.seconds,
            help: "From an operation becoming runnable (accepted, or its retry time) to its claim, in seconds."
        )
        attempts = registry.counter(
            name: "trigger_gateway_async_attempts_total",
            help: "Runs of async operations started (first attempts and retries)."
        )
        leaseTakeovers = registry.counter(
            name: "trigger_gateway_async_lease_takeovers_total",
            help: "Async operations claimed here while running under another run's expired lease (that run's "
                + "instance died or lost the store mid-run; the pipeline may have run twice)."
        )
        leasesLost = registry.counter(
            name: "trigger_gateway_async_leases_lost_total",
            help: "Runs of this instance whose lease another claim took over after it expired (this instance could "
                + "not renew it for a lease); their outcome was dropped and the pipeline may have run twice."
        )
        lastClaimLoopStep = AbsentableGauge(
            registry, name: "trigger_gateway_async_dispatcher_last_claim_timestamp_seconds",
            help: "When the async dispatcher's claim loop last made a step (a claim answered or failed, another of "
                + "its store calls ended, or a round with nothing to claim), in Unix seconds. An idle loop steps "
                + "every store.poll_interval; a stalled one stops it.",
            present: false)
        self.finished = registry.counters(
            FinalState.self, name: "trigger_gateway_async_finished_total", label: "state",
            help: "Async operations that reached a final state on this instance, by state."
        )
    }

    package func finished(_ state: FinalState) -> Counter { finished[state]! }

    // MARK: Recording

    /// An async trigger stored a new operation.
    package func recordAccepted() { accepted.increment() }

    /// The store counted the queue: per configured pool, its queued operations and since when the longest-waiting
    /// one has waited (Unix seconds; the count's time when none waits). Pools not in `byPool` lose their series (a
    /// reload removed them); brings the series back after ``recordQueueUnknown()``.
    package func recordQueue(byPool: [String: (queued: Int, oldestSince: Double)]) { queue.set(byPool) }

    /// The store could not count its queue (unreachable, or the count timed out): the series goes until the next
    /// count succeeds. Prometheus' practice for a value that cannot be known (its exporter guidelines: do not
    /// expose what failed to be collected, say the failure in an `up`-like gauge, here
    /// `trigger_gateway_ready{component="async"}`): the last value would be a lie that alerts believe (a backlog
    /// alert stays quiet through the outage that builds the backlog); NaN keeps a series that every comparison
    /// and `max()` across instances then silently skip. An absent series shows as a gap, Prometheus marks it stale
    /// at the next scrape, and `absent(trigger_gateway_async_queued)` or the readiness gauge alerts on it.
    package func recordQueueUnknown() { queue.removeAll() }

    /// A reload: the queue series of pools not in `pools` go at once (a pool's series name only configured pools);
    /// new pools get theirs at the next count.
    package func keepQueueSeries(ofPools pools: Set<String>) { queue.keepOnly(pools) }

    /// `count` queued operations are of pipelines no route here matches (`trigger_gateway_async_unrouted_queued`);
    /// brings the series back after ``recordUnroutedQueueUnknown()``.
    package func recordUnroutedQueue(_ count: Int) { unroutedQueued.set(Double(count)) }

    /// The store cannot count the unrouted pipelines' queues (an outage): the series goes until the next count, for
    /// the reasons of ``recordQueueLengthUnknown()`` (review 18 F4: it kept its last value through an outage).
    package func recordUnroutedQueueUnknown() { unroutedQueued.remove() }

    /// This instance claimed an operation that became runnable `lagSeconds` ago, and starts running it.
    package func recordClaimed(lagSeconds: Double) {
        running.increment()
        attempts.increment()
        dispatchLag.record(max(lagSeconds, 0))
    }

    /// This instance took over `count` expired leases of runs elsewhere (or of an earlier process).
    package func recordLeaseTakeovers(_ count: Int) { leaseTakeovers.increment(by: Int64(count)) }

    /// A run here lost its lease to another claim (the losing side of a takeover).
    package func recordLeaseLost() { leasesLost.increment() }

    /// The dispatcher's claim loop made a step at `unixSeconds`.
    package func recordClaimLoopStep(at unixSeconds: Double) { lastClaimLoopStep.set(unixSeconds) }

    /// A run claimed here ended (whatever became of the operation).
    package func recordRunEnded() { running.decrement() }

    /// An operation reached a final state here.
    package func recordFinished(_ state: FinalState) { finished[state]!.increment() }
}

/// A gauge that can be absent: unregistered while its value cannot be known (``AsyncMetrics/recordQueueUnknown()``
/// says why), registered again, with the same name and help, by the next `set`.
private final class AbsentableGauge: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let name: String
    private let help: String
    /// Nil while absent.
    private let gauge: Mutex<Gauge?>

    /// `present`: whether the series is there (at 0) before the first `set`.
    init(_ registry: PrometheusCollectorRegistry, name: String, help: String, present: Bool = true) {
        self.registry = registry
        self.name = name
        self.help = help
        gauge = Mutex(present ? registry.gauge(name: name, help: help) : nil)
    }

    func set(_ value: Double) {
        gauge.withLock { gauge in
            let current = gauge ?? registry.gauge(name: name, help: help)
            current.set(to: value)
            gauge = current
        }
    }

    func remove() {
        gauge.withLock { gauge in
            guard let current = gauge else { return }
            registry.unregisterGauge(current)
            gauge = nil
        }
    }
}

/// `trigger_gateway_async_queued{pool}` and `trigger_gateway_async_oldest_queued_timestamp_seconds{pool}` (see
/// ``AsyncMetrics``): one pair of series per configured pool, all absent while the store cannot count.
private final class PoolQueueGauges: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let byPool = Mutex<[String: (queued: Gauge, oldestSince: Gauge)]>([:])

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func set(_ values: [String: (queued: Int, oldestSince: Double)]) {
        keepOnly(Set(values.keys))
        byPool.withLock { gauges in
            for (pool, value) in values {
                let pair = gauges[pool] ?? make(pool)
                pair.queued.set(to: Double(value.queued))
                pair.oldestSince.set(to: value.oldestSince)
                gauges[pool] = pair
            }
        }
    }

    /// Unregisters the series of the pools not in `pools`.
    func keepOnly(_ pools: Set<String>) {
        byPool.withLock { gauges in
            for (pool, pair) in gauges where !pools.contains(pool) {
                registry.unregisterGauge(pair.queued)
                registry.unregisterGauge(pair.oldestSince)
                gauges.removeValue(forKey: pool)
            }
        }
    }

    func removeAll() { keepOnly([]) }

    private func make(_ pool: String) -> (queued: Gauge, oldestSince: Gauge) {
        let labels = [("pool", pool)]
        return (
            registry.gauge(
                name: "trigger_gateway_async_queued", labels: labels,
                help: "Operations queued in the store for a backend pool (retries waiting for their time included), "
                    + "as last counted; absent while the store cannot count them. Instances sharing a store report "
                    + "the same queue: aggregate with max by (pool), not sum."),
            registry.gauge(
                name: "trigger_gateway_async_oldest_queued_timestamp_seconds", labels: labels,
                help: "Since when a pool's longest-waiting queued operation has waited (accepted, or its retry "
                    + "time), in Unix seconds; the count's time when none waits. Absent while the store cannot "
                    + "count.")
        )
    }
}

/// The operation store's calls: `trigger_gateway_store_operation_duration_seconds{operation}` (every call,
/// failed or not) and `trigger_gateway_store_errors_total{operation}` (calls that threw). `operation` is the
/// store method (`enqueue`, `get`, `claim`, …): a fixed set.
package final class StoreMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let byOperation = Mutex<[String: (duration: ValueHistogram, errors: Counter)]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Records one call of `operation` that took `seconds` (and failed when `failed`). Store calls are I/O:
    /// the one lock here is small next to them.
    package func record(_ operation: String, seconds: Double, failed: Bool) {
        let instruments = byOperation.withLock { map in
            if let found = map[operation] { return found }
            let labels = [("operation", operation)]
            let made = (
                duration: registry.histogram(
                    name: "trigger_gateway_store_operation_duration_seconds",
                    labels: labels,
                    buckets: MetricBuckets.seconds,
                    help: "Operation store calls, by store method, in seconds (failed calls included)."
                ),
                errors: registry.counter(
                    name: "trigger_gateway_store_errors_total",
                    labels: labels,
                    help: "Operation store calls that failed, by store method."
                )
            )
            map[operation] = made
            return made
        }
        instruments.duration.record(seconds)
        if failed { instruments.errors.increment() }
    }
}

/// Completion webhooks, per route (`route`: the configured route pattern whose webhook it is, `namespace/pipeline`
/// or `namespace/*`, bounded by the configuration; `none` for a delivery whose operation no route matches any more,
/// review 26 M4: with two routes posting to two receivers, the counters could not say which one was down):
/// `trigger_gateway_webhook_deliveries_total{route,outcome}`, one per delivery when it ends (`delivered`: a 2xx
/// answer; `given_up`: every attempt failed; `dropped`: its route has no webhook any more, or the gateway stopped
/// a delivery kept only in memory), and `trigger_gateway_webhook_attempts_total{route,outcome}` per POST
/// (`success`, `http_error` for a non-2xx answer, `transport_error` when no answer came). A route's series are
/// there (at 0) from the start or the reload that configured its webhook.
package final class WebhookMetrics: Sendable {
    package enum DeliveryOutcome: String, Sendable, CaseIterable {
        case delivered
        case givenUp = "given_up"
        case dropped
    }

    package enum AttemptOutcome: String, Sendable, CaseIterable {
        case success
        case httpError = "http_error"
        case transportError = "transport_error"
    }

    private let registry: PrometheusCollectorRegistry
    /// Per route: its deliveries' and attempts' counters, each by outcome.
    private let byRoute = Mutex<
        [String: (deliveries: [DeliveryOutcome: Counter], attempts: [AttemptOutcome: Counter])]
    >(
        [:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    package func recordDelivery(_ outcome: DeliveryOutcome, route: String) {
        counters(route).deliveries[outcome]!.increment()
    }

    package func recordAttempt(_ outcome: AttemptOutcome, route: String) {
        counters(route).attempts[outcome]!.increment()
    }

    /// Makes `route`'s series (at 0), so that the first delivery's increment shows in `rate()` and `increase()`: the
    /// gateway calls it for each route with a webhook at start and at each reload.
    package func register(route: String) { _ = counters(route) }

    /// A route's counters, made (every outcome at 0) at ``register(route:)`` or its first delivery.
    private func counters(_ route: String) -> (
        deliveries: [DeliveryOutcome: Counter], attempts: [AttemptOutcome: Counter]
    ) {
        byRoute.withLock { map in
            if let found = map[route] { return found }
            var deliveries: [DeliveryOutcome: Counter] = [:]
            for outcome in DeliveryOutcome.allCases {
                deliveries[outcome] = registry.counter(
                    name: "trigger_gateway_webhook_deliveries_total",
                    labels: [("route", route), ("outcome", outcome.rawValue)],
                    help: "Completion webhooks ended, by route and outcome: delivered (a 2xx answer), given_up, "
                        + "or dropped.")
            }
            var attempts: [AttemptOutcome: Counter] = [:]
            for outcome in AttemptOutcome.allCases {
                attempts[outcome] = registry.counter(
                    name: "trigger_gateway_webhook_attempts_total",
                    labels: [("route", route), ("outcome", outcome.rawValue)],
                    help: "Completion webhook POSTs, by route and outcome: success, http_error (not 2xx) or "
                        + "transport_error.")
            }
            map[route] = (deliveries, attempts)
            return (deliveries, attempts)
        }
    }
}

/// `trigger_gateway_schedule_ticks_total{schedule,outcome}`: schedule ticks and manual runs this instance
/// handled. Every configured schedule has its series from the start (at 0).
package final class ScheduleMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let counters = Mutex<[String: Counter]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// `count` ticks (or one manual run) of `schedule` ended with `outcome` (several: ticks `missed` in one pass).
    package func recordTick(schedule: String, outcome: String, count: Int = 1) {
        ticks(schedule: schedule, outcome: outcome).increment(by: Int64(count))
    }

    /// A reload: the series of schedules no longer configured go (a schedule added back starts again at 0, a
    /// counter reset Prometheus' `rate` and `increase` handle).
    package func keepOnly(schedules names: Set<String>) {
        counters.withLock { map in
            for (key, counter) in map where !names.contains(String(key.prefix { $0 != "\u{0}" })) {
                registry.unregisterCounter(counter)
                map.removeValue(forKey: key)
            }
        }
    }

    /// Makes the series of `schedule` and `outcome` (at 0) if it is not there yet.
    package func register(schedule: String, outcome: String) {
        _ = ticks(schedule: schedule, outcome: outcome)
    }

    private func ticks(schedule: String, outcome: String) -> Counter {
        counters.withLock { map in
            let key = "\(schedule)\u{0}\(outcome)"
            if let found = map[key] { return found }
            let counter = registry.counter(
                name: "trigger_gateway_schedule_ticks_total",
                labels: [("schedule", schedule), ("outcome", outcome)],
                help: "Schedule ticks and manual runs this instance handled, by schedule and outcome."
            )
            map[key] = counter
            return counter
        }
    }
}
