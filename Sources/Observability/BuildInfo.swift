import Prometheus

/// What this binary is: `trigger-gateway --version`, the `configuration loaded` log line's `gateway.version`, and
/// `trigger_gateway_build_info{version,revision} 1` (Prometheus' `<name>_build_info` convention, as
/// `prometheus_build_info` and node_exporter's `node_exporter_build_info`), so a rolling upgrade's dashboards
/// tell which instance runs which build (review 18, F4).
package enum GatewayBuild {
    /// The gateway's version (semantic versioning), set by hand when a release is cut; the one place it is spelled.
    package static let version = "0.1.0"
    /// The VCS revision this binary was built from: the commit's full hash, `-dirty` when tracked files differed
    /// from it, `unknown` when built without git (a source tarball). Stamped at build time by the `RevisionStamp`
    /// plugin (`stampedRevision`, generated before every build; review 26 L8).
    package static let revision = stampedRevision

    /// `trigger_gateway_build_info{version,revision}` at 1, on `registry`.
    static func register(on registry: PrometheusCollectorRegistry) {
        registry.gauge(
            name: "trigger_gateway_build_info",
            labels: [("version", version), ("revision", revision)],
            help: "The gateway's build (always 1): version and VCS revision (\"unknown\" when not stamped)."
        ).set(to: 1.0)
    }
}
