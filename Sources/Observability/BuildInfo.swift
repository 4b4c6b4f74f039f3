import Prometheus
import Synchronization

/// What this binary is: `trigger-gateway --version`, the `configuration loaded` log line's `gateway.version`, and
/// `trigger_gateway_build_info{version,revision} 1` (Prometheus' `<name>_build_info` convention, as
/// `prometheus_build_info` and node_exporter's `node_exporter_build_info`), so a rolling upgrade's dashboards
/// tell which instance runs which build (review 18, F4).
package enum GatewayBuild {
    /// The gateway's version (semantic versioning), set by hand when a release is cut; the one place it is spelled.
    package static let version = "0.1.0"
    /// The VCS revision this binary was built from: the commit's full hash, `-dirty` when tracked files differed
    /// from it, `unknown` when built without git (a source tarball) and in a process that did not ``stamp(revision:)``
    /// (the test suites' in-process gateways). Review 26 L8.
    ///
    /// The `RevisionStamp` plugin writes it into the executable's module at build time (`stampedRevision`, generated
    /// before every build), and the executable hands it here when it starts, before any metrics are made. Not
    /// stamped into this module: every module that imports this one was recompiled after each commit (a new
    /// revision is a new module file; 175 compile steps, 4.5 minutes of debug build for a commit that changed no
    /// source), where the executable's module is a handful of files.
    package static var revision: String { stamped.withLock { $0 } }

    private static let stamped = Mutex("unknown")

    /// Sets ``revision``: the executable, at start-up, with the revision stamped into it.
    package static func stamp(revision: String) {
        stamped.withLock { $0 = revision }
    }

    /// `trigger_gateway_build_info{version,revision}` at 1, on `registry`.
    static func register(on registry: PrometheusCollectorRegistry) {
        registry.gauge(
            name: "trigger_gateway_build_info",
            labels: [("version", version), ("revision", revision)],
            help: "The gateway's build (always 1): version and VCS revision (\"unknown\" when not stamped)."
        ).set(to: 1.0)
    }
}
