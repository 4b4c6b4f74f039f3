import Prometheus

/// What this binary is: `trigger-gateway --version`, the `configuration loaded` log line's `gateway.version`, and
/// `trigger_gateway_build_info{version,revision} 1` (Prometheus' `<name>_build_info` convention, as
/// `prometheus_build_info` and node_exporter's `node_exporter_build_info`), so a rolling upgrade's dashboards
/// tell which instance runs which build (review 18, F4).
package enum GatewayBuild {
    /// The gateway's version (semantic versioning), set by hand when a release is cut; the one place it is spelled.
    package static let version = "0.1.0"
    /// The VCS revision this binary was built from: always "unknown" for now. SwiftPM passes no string into the
    /// compiler at build time (`-D` defines are flags without values) and a build-tool plugin that runs `git` would
    /// fail in a source tarball or a fresh clone without `.git`; a release script that stamps the revision is
    /// still to come, and until then the metric says it does not know rather than guess.
    package static let revision = "unknown"

    /// `trigger_gateway_build_info{version,revision}` at 1, on `registry`.
    static func register(on registry: PrometheusCollectorRegistry) {
        registry.gauge(
            name: "trigger_gateway_build_info",
            labels: [("version", version), ("revision", revision)],
            help: "The gateway's build (always 1): version and VCS revision (\"unknown\" when not stamped)."
        ).set(to: 1.0)
    }
}
