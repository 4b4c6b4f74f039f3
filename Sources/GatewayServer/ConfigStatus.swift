package import Observability
import Synchronization

/// What operators can see of the configuration in force and of the last reload (SIGHUP): the digest of
/// the file that is running, when and how the last reload ended. Shared by every configuration generation;
/// written by the reload, read by `/metrics` (through ``ConfigMetrics``, told of each change).
package final class ConfigStatus: Sendable {
    package enum ReloadOutcome: String, Sendable {
        /// The new file validated and is in force for new requests.
        case applied
        /// The new file did not validate (or could not be read); the running configuration stayed.
        case refused
    }

    package struct Snapshot: Sendable {
        /// `sha256:<hex>` of the file in force (or of the embedded default's name when there is no file).
        package var digest: String
        package var lastReload: ReloadOutcome?
        /// Seconds since the Unix epoch of the last reload attempt.
        package var lastReloadTime: Double?
        package var applied = 0
        package var refused = 0
        /// Keys the last applied reload's file changed that keep their running values until a restart (empty
        /// after a start): the file whose `digest` is shown is not wholly in force.
        package var restartRequired: [String] = []
    }

    private let state: Mutex<Snapshot>
    /// `trigger_gateway_config_*` on /metrics; nil records nothing.
    private let metrics: ConfigMetrics?

    package init(digest: String, metrics: ConfigMetrics? = nil) {
        self.state = Mutex(Snapshot(digest: digest))
        self.metrics = metrics
        metrics?.setDigest(digest)
    }

    package var snapshot: Snapshot { state.withLock { $0 } }

    /// Records one reload attempt; `digest` is the new one when it was applied, `restartRequired` the keys of its
    /// file that only a restart applies (`GatewayApp.ReloadReport.restartRequired`; ignored when refused).
    package func recordReload(
        _ outcome: ReloadOutcome, digest: String?, restartRequired: [String] = [], at time: Double
    ) {
        if let metrics {
            metrics.recordReload(
                outcome == .applied ? .applied : .refused, restartRequired: !restartRequired.isEmpty, at: time)
            if outcome == .applied, let digest { metrics.setDigest(digest) }
        }
        state.withLock { s in
            s.lastReload = outcome
            s.lastReloadTime = time
            switch outcome {
            case .applied:
                s.applied += 1
                if let digest { s.digest = digest }
                s.restartRequired = restartRequired
            case .refused:
                s.refused += 1
            }
        }
    }
}
