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
///   not run here and wait (review 18 F8); an operator alerts on it staying above 0.
/// - `trigger_gateway_async_running`: runs this instance's dispatcher has in progress.
/// - `trigger_gateway_async_finished_total{state}`: operations that reached a final state here (`succeeded`,
///   `failed`, `cancelled`).
/// - `trigger_gateway_async_dispatch_lag_seconds`: from when an operation became runnable (accepted, or its retry
///   time) to its claim.
/// - `trigger_gateway_async_attempts_total`: runs started (first attempts and retries).
package final class AsyncMetrics: Sendable {
    package enum FinalState: String, Sendable, CaseIterable {
        case succeeded
        case failed
        case cancelled
    }

    package let accepted: Counter
    /// `trigger_gateway_async_queued`, nil while the store's last count failed (the series is then unregistered).
    private let queued: Mutex<Gauge?>
    private let registry: PrometheusCollectorRegistry
    package let running: Gauge
    package let unroutedQueued: Gauge
    package let dispatchLag: ValueHistogram
    package let attempts: Counter
    private let finished: [FinalState: Counter]

    init(registry: PrometheusCollectorRegistry) {
        accepted = registry.counter(
            name: "trigger_gateway_async_accepted_total",
            help: "Async operations stored (a repeated Idempotency-Key returning the stored one is not counted)."
        )
        self.registry = registry
        queued = Mutex(Self.queuedGauge(registry))
        unroutedQueued = registry.gauge(
            name: "trigger_gateway_async_unrouted_queued",
            help: "Queued operations of pipelines no route of this instance matches, as last counted; they wait "
                + "for a reload that adds one, or for an instance sharing the store that has one."
        )
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
    package func recordQueueLength(_ count: Int) {
        queued.withLock { gauge in
            let current = gauge ?? Self.queuedGauge(registry)
            current.set(to: Double(count))
            gauge = current
        }
    }

    /// The store could not count its queue (unreachable, or the count timed out): the series goes until the next
    /// count succeeds. Prometheus' practice for a value that cannot be known (its exporter guidelines: do not
    /// expose what failed to be collected, say the failure in an `up`-like gauge, here
    /// `trigger_gateway_ready{component="async"}`): the last value would be a lie that alerts believe (a backlog
    /// alert stays quiet through the outage that builds the backlog); NaN keeps a series that every comparison
    /// and `max()` across instances then silently skip. An absent series shows as a gap, Prometheus marks it stale
    /// at the next scrape, and `absent(trigger_gateway_async_queued)` or the readiness gauge alerts on it.
    package func recordQueueLengthUnknown() {
        queued.withLock { gauge in
            guard let current = gauge else { return }
            registry.unregisterGauge(current)
            gauge = nil
        }
    }

    private static func queuedGauge(_ registry: PrometheusCollectorRegistry) -> Gauge {
        registry.gauge(
            name: "trigger_gateway_async_queued",
            help: "Operations queued in the store (retries waiting for their time included), as last counted; "
                + "absent while the store cannot count them. Instances sharing a store report the same queue: "
                + "aggregate with max, not sum."
        )
    }

    /// `count` queued operations are of pipelines no route here matches (`trigger_gateway_async_unrouted_queued`).
    package func recordUnroutedQueue(_ count: Int) { unroutedQueued.set(to: Double(count)) }

    /// This instance claimed an operation that became runnable `lagSeconds` ago, and starts running it.
    package func recordClaimed(lagSeconds: Double) {
        running.increment()
        attempts.increment()
        dispatchLag.record(max(lagSeconds, 0))
    }

    /// A run claimed here ended (whatever became of the operation).
    package func recordRunEnded() { running.decrement() }

    /// An operation reached a final state here.
    package func recordFinished(_ state: FinalState) { finished[state]!.increment() }
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
