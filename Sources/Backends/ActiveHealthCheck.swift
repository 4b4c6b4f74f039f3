import Logging
package import NIOCore
import Observability

/// A pool's active health check (optional, off unless configured): every `interval` each endpoint is asked
/// `grpc.health.v1.Health/Check` (grpc pools) or `GET {base}{path}` (http pools); `unhealthyThreshold` failed
/// probes in a row take it out of picking, `healthyThreshold` passed ones in a row bring it back.
package struct HealthCheckConfiguration: Sendable, Equatable {
    /// For http pools: the path probed under the endpoint's base path; a 2xx answer passes.
    package var path: String
    package var interval: TimeAmount
    /// A probe not answered within this fails.
    package var timeout: TimeAmount
    package var healthyThreshold: Int
    package var unhealthyThreshold: Int

    package init(
        path: String = "/healthz",
        interval: TimeAmount = .seconds(5),
        timeout: TimeAmount = .seconds(1),
        healthyThreshold: Int = 2,
        unhealthyThreshold: Int = 3
    ) {
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
    }
}

/// One endpoint's verdict from consecutive probe results: flips only after a threshold of results in a row
/// that disagree with it (Envoy's healthy/unhealthy thresholds). An endpoint starts healthy.
package struct ActiveHealthState: Sendable, Equatable {
    package private(set) var isHealthy = true
    /// Results in a row that disagree with `isHealthy`.
    private var streak = 0

    package init() {}

    /// Records one probe; true when the verdict changed.
    package mutating func record(passed: Bool, healthyThreshold: Int, unhealthyThreshold: Int) -> Bool {
        guard passed != isHealthy else {
            streak = 0
            return false
        }
        streak += 1
        guard streak >= (passed ? healthyThreshold : unhealthyThreshold) else { return false }
        isHealthy = passed
        streak = 0
        return true
    }
}

/// One probe's outcome.
package enum HealthProbeResult: Sendable, Equatable {
    case passed
    case failed
    /// Not made: the gateway could not open the probe's connection for its own overload (the backend connection
    /// budget, or the process out of descriptors; `BackendErrors.isConnectionRefusedLocally`). It says nothing of
    /// the endpoint, so the endpoint's health does not change (review 18, backend budget: under descriptor
    /// exhaustion, refused probes counted as failures marked healthy endpoints unhealthy).
    case skipped
}

/// Runs a pool's probes until cancelled (the pool retired) or `probe` answers nil (its transport is gone: the
/// probe holds the transport weakly, so a pool dropped without retiring stops its checker too).
package enum ActiveHealthChecker {
    /// The checker of `pool` when it has a health check (nil otherwise), probing through `transport`, which it
    /// holds weakly: `probe(transport, index, check)` probes endpoint `index`.
    static func start<Transport: BalancedTransport & AnyObject>(
        for pool: BackendPoolConfiguration,
        of transport: Transport,
        clock: any Clock<Duration> = ContinuousClock(),
        probe: @escaping @Sendable (Transport, Int, HealthCheckConfiguration) async -> HealthProbeResult
    ) -> Task<Void, Never>? {
        guard let check = pool.healthCheck else { return nil }
        return start(check, balancer: transport.balancer, pool: pool.name, clock: clock) { [weak transport] index in
            guard let transport else { return nil }
            return await probe(transport, index, check)
        }
    }

    /// Probes every endpoint at once, records the round, then waits `check.interval` (at least 1 ms) on `clock`
    /// before the next round; tests pass a manual clock to step rounds without sleeping.
    ///
    /// A skipped probe (``HealthProbeResult/skipped``) leaves its endpoint's health and streak as they were; it is
    /// counted (`trigger_gateway_pool_health_checks_skipped_total{pool,endpoint}`) and a round with any logs one
    /// warning naming them: at most one line per interval. `pool`: the pool's name, for that line.
    package static func start(
        _ check: HealthCheckConfiguration,
        balancer: EndpointBalancer,
        pool: String = "",
        clock: any Clock<Duration> = ContinuousClock(),
        probe: @escaping @Sendable (Int) async -> HealthProbeResult?
    ) -> Task<Void, Never> {
        Task.detached {
            var states = [ActiveHealthState](repeating: ActiveHealthState(), count: balancer.count)
            while !Task.isCancelled {
                let results = await withTaskGroup(of: (Int, HealthProbeResult?).self) { group in
                    for index in 0..<balancer.count { group.addTask { (index, await probe(index)) } }
                    var results: [(Int, HealthProbeResult?)] = []
                    for await result in group { results.append(result) }
                    return results
                }
                var skipped: [Int] = []
                for (index, result) in results {
                    guard let result else { return }
                    guard result != .skipped else {
                        skipped.append(index)
                        balancer.metrics?.recordHealthCheckSkipped(endpoint: index)
                        continue
                    }
                    if result == .passed { balancer.probePassed(index) }
                    if states[index].record(
                        passed: result == .passed,
                        healthyThreshold: check.healthyThreshold,
                        unhealthyThreshold: check.unhealthyThreshold
                    ) {
                        balancer.setActivelyHealthy(index, states[index].isHealthy)
                    }
                }
                if !skipped.isEmpty { logSkipped(skipped.sorted(), pool: pool, balancer: balancer) }
                try? await clock.sleep(for: .nanoseconds(max(check.interval.nanoseconds, 1_000_000)))
            }
        }
    }

    private static let logger = Logger(label: "trigger-gateway")

    private static func logSkipped(_ indices: [Int], pool: String, balancer: EndpointBalancer) {
        let configured = balancer.metrics?.endpoints ?? []
        let names = indices.map { configured.indices.contains($0) ? configured[$0] : "#\($0)" }
        logger.warning(
            "health check skipped: the gateway could not open a probe connection (its own backend connection budget or open-file limit); the endpoints keep their health",
            metadata: ["backend.pool": "\(pool)", "backend.endpoints": "\(names.joined(separator: ","))"])
    }
}
