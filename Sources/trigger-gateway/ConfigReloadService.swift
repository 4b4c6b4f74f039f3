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

/// SIGUSR1 and SIGUSR2, which end a process by default, are taken and logged instead: nginx, nghttpx and Envoy
/// reopen their log files on SIGUSR1, so a logrotate `postrotate` written for them sends it. The gateway writes
/// its log to stderr only (the service manager or a pipe owns the file), so there is nothing to reopen.
struct IgnoredSignalsService: Service {
    let signals: UnixSignalsSequence
    let logger: Logger

    func run() async throws {
        for await signal in signals.cancelOnGracefulShutdown() {
            logger.notice(
                "signal ignored: the log is stderr, there is no log file to reopen", metadata: ["signal": "\(signal)"])
        }
    }
}
