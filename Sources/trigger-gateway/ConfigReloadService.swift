import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration on SIGHUP (`systemctl reload`), as nginx and Envoy's hot restart users
/// expect, until graceful shutdown begins. Each signal runs `reload` once; signals that arrive while a
/// reload runs are coalesced by the signal source.
struct ConfigReloadService: Service {
    let signals: UnixSignalsSequence
    let logger: Logger
    let reload: @Sendable () -> Void

    func run() async throws {
        for await signal in signals.cancelOnGracefulShutdown() {
            logger.info("reloading the configuration", metadata: ["signal": "\(signal)"])
            reload()
        }
    }
}
