package import NIOCore
import Synchronization

/// What operators can see of the configuration in force and of the last reload (SIGHUP): the digest of
/// the file that is running, when and how the last reload ended. Shared by every configuration generation;
/// written by the reload, read by `/metrics`.
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
    }

    private let state: Mutex<Snapshot>

    package init(digest: String) {
        self.state = Mutex(Snapshot(digest: digest))
    }

    package var snapshot: Snapshot { state.withLock { $0 } }

    /// Records one reload attempt; `digest` is the new one when it was applied.
    package func recordReload(_ outcome: ReloadOutcome, digest: String?, at time: Double) {
        state.withLock { s in
            s.lastReload = outcome
            s.lastReloadTime = time
            switch outcome {
            case .applied:
                s.applied += 1
                if let digest { s.digest = digest }
            case .refused:
                s.refused += 1
            }
        }
    }

    /// The Prometheus text exposition of these facts (format 0.0.4), named after Prometheus' own
    /// `prometheus_config_last_reload_successful` family.
    package func writeMetrics(into buffer: inout ByteBuffer) {
        let s = snapshot
        buffer.writeString(
            """
            # HELP trigger_gateway_config_info The configuration in force; digest is the SHA-256 of its file.
            # TYPE trigger_gateway_config_info gauge
            trigger_gateway_config_info{digest="\(s.digest)"} 1
            # HELP trigger_gateway_config_last_reload_successful Whether the last reload was applied (1) or refused (0); 1 before any reload.
            # TYPE trigger_gateway_config_last_reload_successful gauge
            trigger_gateway_config_last_reload_successful \(s.lastReload == .refused ? 0 : 1)
            # HELP trigger_gateway_config_reloads_total Reloads attempted (SIGHUP), by outcome.
            # TYPE trigger_gateway_config_reloads_total counter
            trigger_gateway_config_reloads_total{outcome="applied"} \(s.applied)
            trigger_gateway_config_reloads_total{outcome="refused"} \(s.refused)

            """
        )
        if let time = s.lastReloadTime {
            buffer.writeString(
                """
                # HELP trigger_gateway_config_last_reload_timestamp_seconds When the last reload was attempted.
                # TYPE trigger_gateway_config_last_reload_timestamp_seconds gauge
                trigger_gateway_config_last_reload_timestamp_seconds \(time)

                """
            )
        }
    }
}
