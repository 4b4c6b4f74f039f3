package import Prometheus
import Synchronization

/// Async mode's families:
///
/// - `trigger_gateway_async_accepted_total`: operations stored by an async trigger (a repeat with the same
///   `Idempotency-Key` returns the stored one and is not counted).
/// - `trigger_gateway_async_queued`: the queue's length as the store counts it (operations in state `queued`, a
///   retry waiting for its time included), read by the async dispatcher at a bounded interval
///   (`AsyncDispatcher.queueCountInterval`). It is the whole store's queue, whichever instance queued or claims:
///   instances sharing a PostgreSQL store all report the same value (aggregate with `max`, not `sum`). Counting
///   each instance's own moves instead read negative after a restart or when another instance claimed them.
///   While the store cannot count (unreachable), the series is absent, not its last value (review 18 F3: a frozen
///   gauge flat-lined a backlog alert through the very outage that builds the backlog); see
///   ``recordQueueLengthUnknown()``.
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
package final class AsyncMetrics: Sendable {
    package enum FinalState: String, Sendable, CaseIterable {
        case succeeded
        case failed
        case cancelled
    }

    package let accepted: Counter
    /// `trigger_gateway_async_queued`, absent while the store's last count failed.
    private let queued: AbsentableGauge
    package let running: Gauge
    /// `trigger_gateway_async_unrouted_queued`, absent while the store cannot count.
    private let unroutedQueued: AbsentableGauge
    package let dispatchLag: ValueHistogram
    package let attempts: Counter
    package let leaseTakeovers: Counter
    package let leasesLost: Counter
    private let finished: [FinalState: Counter]

    init(registry: PrometheusCollectorRegistry) {
        accepted = registry.counter(
            name: "trigger_gateway_async_accepted_total",
            help: "Async operations stored (a repeated Idempotency-Key returning the stored one is not counted)."
        )
        queued = AbsentableGauge(
            registry, name: "trigger_gateway_async_queued",
            help: "Operations queued in the store (retries waiting for their time included), as last counted; "
                + "absent while the store cannot count them. Instances sharing a store report the same queue: "
                + "aggregate with max, not sum.")
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
        self.finished = registry.counters(
            FinalState.self, name: "trigger_gateway_async_finished_total", label: "state",
            help: "Async operations that reached a final state on this instance, by state."
        )
    }

    package func finished(_ state: FinalState) -> Counter { finished[state]! }

    // MARK: Recording

    /// An async trigger stored a new operation.
    package func recordAccepted() { accepted.increment() }

    /// The store counted `count` queued operations (the whole store's queue); brings the series back after
    /// ``recordQueueLengthUnknown()``.
    package func recordQueueLength(_ count: Int) { queued.set(Double(count)) }

    /// The store could not count its queue (unreachable, or the count timed out): the series goes until the next
    /// count succeeds. Prometheus' practice for a value that cannot be known (its exporter guidelines: do not
    /// expose what failed to be collected, say the failure in an `up`-like gauge, here
    /// `trigger_gateway_ready{component="async"}`): the last value would be a lie that alerts believe (a backlog
    /// alert stays quiet through the outage that builds the backlog); NaN keeps a series that every comparison
    /// and `max()` across instances then silently skip. An absent series shows as a gap, Prometheus marks it stale
    /// at the next scrape, and `absent(trigger_gateway_async_queued)` or the readiness gauge alerts on it.
    package func recordQueueLengthUnknown() { queued.remove() }

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

    /// A run claimed here ended (whatever became of the operation).
    package func recordRunEnded() { running.decrement() }

    /// An operation reached a final state here.
    package func recordFinished(_ state: FinalState) { finished[state]!.increment() }
}

/// A gauge that can be absent: unregistered while its value cannot be known (``AsyncMetrics/recordQueueLengthUnknown()``
/// says why), registered again, with the same name and help, by the next `set`.
private final class AbsentableGauge: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let name: String
    private let help: String
    /// Nil while absent.
    private let gauge: Mutex<Gauge?>

    init(_ registry: PrometheusCollectorRegistry, name: String, help: String) {
        self.registry = registry
        self.name = name
        self.help = help
        gauge = Mutex(registry.gauge(name: name, help: help))
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

/// Completion webhooks: `trigger_gateway_webhook_deliveries_total{outcome}`, one per delivery when it ends
/// (`delivered`: a 2xx answer; `given_up`: every attempt failed; `dropped`: the gateway stopped before it was
/// sent or while its retry waited: deliveries are in memory, not resumed after a restart), and
/// `trigger_gateway_webhook_attempts_total{outcome}` per POST (`success`, `http_error` for a non-2xx answer,
/// `transport_error` when no answer came).
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

    private let deliveries: [DeliveryOutcome: Counter]
    private let attempts: [AttemptOutcome: Counter]

    init(registry: PrometheusCollectorRegistry) {
        self.deliveries = registry.counters(
            DeliveryOutcome.self, name: "trigger_gateway_webhook_deliveries_total", label: "outcome",
            help:
                "Completion webhooks ended, by outcome: delivered (a 2xx answer), given_up, or dropped (the gateway stopped)."
        )
        self.attempts = registry.counters(
            AttemptOutcome.self, name: "trigger_gateway_webhook_attempts_total", label: "outcome",
            help: "Completion webhook POSTs, by outcome: success, http_error (not 2xx) or transport_error."
        )
    }

    package func recordDelivery(_ outcome: DeliveryOutcome) { deliveries[outcome]!.increment() }
    package func recordAttempt(_ outcome: AttemptOutcome) { attempts[outcome]!.increment() }
}

/// `trigger_gateway_schedule_ticks_total{schedule,outcome}`: schedule ticks and manual runs this instance
/// handled. Every configured schedule has its series from the start (at 0).
package final class ScheduleMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let counters = Mutex<[String: Counter]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// One tick or manual run of `schedule` ended with `outcome`.
    package func recordTick(schedule: String, outcome: String) {
        ticks(schedule: schedule, outcome: outcome).increment()
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
