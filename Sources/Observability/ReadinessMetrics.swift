import Prometheus
import Synchronization

/// `trigger_gateway_ready{component}`: 1 while a component of the gateway is SERVING, 0 otherwise — what
/// `/readyz?component=` and the gRPC health service answer, on /metrics, where an operator's alerts look
/// (review 18, F3: a store outage showed only as store errors and async 503s; Prometheus does not scrape
/// readiness endpoints). Components: `gateway` (the whole server: 0 while starting and draining) and `async`
/// (follows the operation store's probe; absent when async mode is off). Set at scrape time from the health
/// registry (`GatewayApp`'s collector), so it is never older than the scrape.
package final class ReadinessMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let gauges = Mutex<[String: Gauge]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// The component named `component` (the health registry's name) is SERVING or not.
    package func set(_ component: String, serving: Bool) {
        let gauge = gauges.withLock { gauges in
            if let gauge = gauges[component] { return gauge }
            let gauge = registry.gauge(
                name: "trigger_gateway_ready", labels: [("component", component)],
                help: "Whether a component is SERVING (1) or not (0), as /readyz?component= answers: gateway (the "
                    + "whole server; 0 while starting or draining), async (follows the operation store).")
            gauges[component] = gauge
            return gauge
        }
        gauge.set(to: serving ? 1 : 0)
    }
}
