package import Prometheus
package import TriggerModel

/// One backend pool's instruments, made once when the pool is built (a bounded set: the configured pools and
/// their endpoints), so recording is an atomic add on an instrument already at hand, or for the try duration a
/// record into the calling thread's shard of a ``ShardedHistogram`` (no lock: it is recorded on every call).
///
/// Per pool: `trigger_gateway_pool_in_flight` and `trigger_gateway_pool_queued` (gauges, set at scrape time from
/// the pool's limiter), `trigger_gateway_pool_rejected_total` (refused at once: over `max_concurrency` with a
/// full queue). Per endpoint (`pool`, `endpoint` = `host:port` as configured):
/// `trigger_gateway_pool_endpoint_available` (1 when picking may choose it on its own merits, not ejected and passing
/// its health check, and it answered since its last ejection; 0 for a pool's only endpoint while it is ejected,
/// though calls still go to it, review 18 F2, and for any endpoint past its ejection until a call or a health probe
/// to it succeeds, review 26 M6), `trigger_gateway_pool_endpoint_in_flight`, `trigger_gateway_pool_ejections_total`,
/// `trigger_gateway_pool_retries_total` (tries sent again elsewhere after nothing reached this endpoint),
/// `trigger_gateway_pool_health_checks_skipped_total` (active probes not made: the gateway's own connection budget
/// refused them) and
/// `trigger_gateway_backend_request_duration_seconds{pool,endpoint,outcome}` (one try of a call on the endpoint, by how
/// it ended: ``TryOutcome``).
/// `trigger_gateway_backend_failures_total{pool,endpoint,reason}`: tries that failed on the gateway's side, by
/// Envoy's response flag (``UpstreamFailure``: `UF`, `UT`, `UC`, `UPE` per endpoint; `UO`, refused before any
/// endpoint was picked, with `endpoint=""`, and so is a `UT` whose call had no endpoint yet).
///
/// A pool that a reload carries over or rebuilds under the same name gets the same series (the registry hands
/// back the instrument of the same name and labels), so its counters keep counting.
package final class PoolMetrics: Sendable {
    package let pool: String
    package let endpoints: [String]
    package let inFlight: Gauge
    package let queued: Gauge
    package let rejected: Counter
    package let endpointAvailable: [Gauge]
    package let endpointInFlight: [Gauge]
    package let ejections: [Counter]
    package let retries: [Counter]
    package let healthChecksSkipped: [Counter]
    /// Per endpoint, per ``TryOutcome`` (``TryOutcome/column``).
    package let backendDuration: [[ShardedHistogram]]
    /// `trigger_gateway_backend_failures_total`: per endpoint (``endpoints``' order, then one for no endpoint),
    /// per ``UpstreamFailure`` case (`allCases` order). Made up front: a bounded set, and a scrape shows the zeros.
    package let failures: [[Counter]]
    private let registry: PrometheusCollectorRegistry
    private let backendDurations: ShardedHistogramFamily

    /// `backendDurations`: the gateway's `trigger_gateway_backend_request_duration_seconds` family.
    init(
        registry: PrometheusCollectorRegistry,
        backendDurations: ShardedHistogramFamily,
        pool: String,
        endpoints: [String]
    ) {
        self.registry = registry
        self.backendDurations = backendDurations
        self.pool = pool
        self.endpoints = endpoints
        let poolLabel = [("pool", pool)]
        inFlight = registry.gauge(
            name: "trigger_gateway_pool_in_flight",
            labels: poolLabel,
            help: "Calls and streams holding one of the pool's max_concurrency slots."
        )
        queued = registry.gauge(
            name: "trigger_gateway_pool_queued",
            labels: poolLabel,
            help: "Calls waiting for one of the pool's slots (max_queue bounds it; async runs wait apart)."
        )
        rejected = registry.counter(
            name: "trigger_gateway_pool_rejected_total",
            labels: poolLabel,
            help: "Calls and streams refused at once as overloaded: every slot taken and the queue full."
        )
        let labels = endpoints.map { [("pool", pool), ("endpoint", $0)] }
        endpointAvailable = labels.map {
            registry.gauge(
                name: "trigger_gateway_pool_endpoint_available",
                labels: $0,
                help: "1 when the endpoint is healthy: not ejected, passing its health check, and answered since its "
                    + "last ejection (0 while ejected, also when calls still go to it because every endpoint of the "
                    + "pool is ejected, and after its ejection until a call or health probe to it succeeds)."
            )
        }
        endpointInFlight = labels.map {
            registry.gauge(
                name: "trigger_gateway_pool_endpoint_in_flight",
                labels: $0,
                help: "Calls and streams in flight on the endpoint."
            )
        }
        ejections = labels.map {
            registry.counter(
                name: "trigger_gateway_pool_ejections_total",
                labels: $0,
                help: "Times the endpoint was ejected by passive outlier detection."
            )
        }
        retries = labels.map {
            registry.counter(
                name: "trigger_gateway_pool_retries_total",
                labels: $0,
                help: "Calls tried again on another endpoint after nothing reached a backend on this one."
            )
        }
        healthChecksSkipped = labels.map {
            registry.counter(
                name: "trigger_gateway_pool_health_checks_skipped_total",
                labels: $0,
                help: "Active health probes of the endpoint not made: the gateway could not open their connection "
                    + "for its own overload (backend connection budget, open-file limit); its health is unchanged."
            )
        }
        backendDuration = labels.map { endpoint in
            TryOutcome.labels.map { backendDurations.series(labels: endpoint + [("outcome", $0)]) }
        }
        failures = (endpoints + [""]).map { endpoint in
            UpstreamFailure.allCases.map { reason in
                registry.counter(
                    name: "trigger_gateway_backend_failures_total",
                    labels: [("pool", pool), ("endpoint", endpoint), ("reason", reason.rawValue)],
                    help: "Tries of a call that failed on the backend's side, by Envoy's response flag."
                )
            }
        }
    }

    // MARK: Recording (atomic adds and thread-owned shards; no lock)

    /// A call or stream refused as overloaded.
    package func recordRejected() { rejected.increment() }

    /// Endpoint `index` (in ``endpoints``' order) was ejected.
    package func recordEjection(endpoint index: Int) {
        if ejections.indices.contains(index) { ejections[index].increment() }
    }

    /// An active health probe of endpoint `index` was skipped (``healthChecksSkipped``).
    package func recordHealthCheckSkipped(endpoint index: Int) {
        if healthChecksSkipped.indices.contains(index) { healthChecksSkipped[index].increment() }
    }

    /// A try that never reached endpoint `index` goes again to another one.
    package func recordRetry(from index: Int) {
        if retries.indices.contains(index) { retries[index].increment() }
    }

    /// One try on endpoint `index` ended after `nanoseconds`, as `outcome` says.
    package func recordTry(endpoint index: Int, outcome: TryOutcome = .answered, nanoseconds: UInt64) {
        if backendDuration.indices.contains(index) {
            backendDuration[index][outcome.column].record(Double(nanoseconds) / 1e9)
        }
    }

    /// A try failed for `reason`: on endpoint `index` (``endpoints``' order), or nil when none was picked yet.
    /// An overflow (`UO`) is always counted under `endpoint=""`: the gateway's own overload (its pool's slots, or
    /// the process-wide backend connection budget, checked after the pick), never the endpoint's doing.
    package func recordFailure(endpoint index: Int?, reason: UpstreamFailure) {
        let row =
            reason == .overflow
            ? endpoints.count : index.flatMap { endpoints.indices.contains($0) ? $0 : nil } ?? endpoints.count
        failures[row][Self.column(reason)].increment()
    }

    /// ``recordFailure(endpoint:reason:)`` by the endpoint's configured name (the deadline's path, which knows the
    /// name its call went to, not the index): a linear search, on failures only.
    package func recordFailure(endpointNamed name: String?, reason: UpstreamFailure) {
        recordFailure(endpoint: name.flatMap { endpoints.firstIndex(of: $0) }, reason: reason)
    }

    private static func column(_ reason: UpstreamFailure) -> Int {
        UpstreamFailure.allCases.firstIndex(of: reason) ?? 0
    }

    /// Scrape time: the levels the pool keeps elsewhere (its limiter, its balancer).
    package func setLevels(inFlight: Int, queued: Int) {
        self.inFlight.set(to: Double(inFlight))
        self.queued.set(to: Double(queued))
    }

    /// Scrape time: endpoint `index`'s availability and calls in flight.
    package func setEndpoint(_ index: Int, available: Bool, inFlight: Int) {
        guard endpointAvailable.indices.contains(index) else { return }
        endpointAvailable[index].set(to: available ? 1.0 : 0.0)
        endpointInFlight[index].set(to: Double(inFlight))
    }

    /// Takes this pool's series off the registry, except those `live` (the pool of the same name in the
    /// configuration now in force, if any) still uses: a retired pool's series go when its calls are done.
    package func unregister(keeping live: PoolMetrics?) {
        if live == nil {
            registry.unregisterGauge(inFlight)
            registry.unregisterGauge(queued)
            registry.unregisterCounter(rejected)
            for counter in failures[endpoints.count] { registry.unregisterCounter(counter) }
        }
        let kept = Set(live?.endpoints ?? [])
        for (i, endpoint) in endpoints.enumerated() where !kept.contains(endpoint) {
            registry.unregisterGauge(endpointAvailable[i])
            registry.unregisterGauge(endpointInFlight[i])
            registry.unregisterCounter(ejections[i])
            registry.unregisterCounter(retries[i])
            registry.unregisterCounter(healthChecksSkipped[i])
            for series in backendDuration[i] { backendDurations.unregister(series) }
            for counter in failures[i] { registry.unregisterCounter(counter) }
        }
    }
}

/// How one try on an endpoint ended: the `outcome` label of `trigger_gateway_backend_request_duration_seconds`
/// (review 26 L5: refused connects, timeouts and answers were one histogram, so a refusing endpoint improved the
/// pool's quantiles and the p99 of answered calls could not be read). A bounded set: `ok`, the response flags
/// (``UpstreamFailure``), `cancelled`.
///
/// A label on the one family, rather than a second family for failed tries: `sum by (pool, endpoint)` over
/// `outcome` is exactly the series as it was, so existing dashboards and alerts keep their meaning, and the
/// answered calls' latency is `{outcome="ok"}`.
package enum TryOutcome: Sendable, Equatable {
    /// `ok`: the endpoint answered, with a result or with the pipeline's own error (an answer, not a failure).
    case answered
    /// The response flag of a try that failed on the backend's side (`UF`, `UT`, `UC`, `UPE`; `UO` for a try the
    /// gateway's connection budget refused after the pick), as `trigger_gateway_backend_failures_total` counts it.
    case failed(UpstreamFailure)
    /// `cancelled`: cut before its answer, with no verdict on the endpoint: the client went away, or its own
    /// shorter deadline (`grpc-timeout`) passed. (A try cut at the pool's `request_timeout` is `UT`.)
    case cancelled

    /// The label values, in ``column`` order.
    package static let labels = ["ok"] + UpstreamFailure.allCases.map(\.rawValue) + ["cancelled"]

    /// The index of this outcome's series in ``PoolMetrics/backendDuration``'s row, and of its label in ``labels``.
    package var column: Int {
        switch self {
        case .answered: 0
        case .failed(let reason): 1 + (UpstreamFailure.allCases.firstIndex(of: reason) ?? 0)
        case .cancelled: Self.labels.count - 1
        }
    }
}
