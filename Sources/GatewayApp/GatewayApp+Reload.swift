import FoundationEssentials
package import GatewayConfig
package import GatewayServer
import Logging

extension GatewayApp {
    /// Reloads from the configuration file (what SIGHUP does): reads and validates it exactly as
    /// `check-config` does, then swaps it in with `reload(to:digest:)`. A file that does not validate is
    /// refused with one log line whose `config.error` is `check-config`'s message (every mistake of the file,
    /// then their count, as `ConfigError.description` joins them: the log format escapes the newlines), and
    /// the running configuration stays.
    /// `listen`/`dataDir`/`logFormat`/`logLevel`/`listenReusePort`/`adminListen` are the command line's overrides, applied as at start-up: a
    /// key the command line sets is the command line's, so a file without it (or with another value) is no
    /// "restart required" change (review 12, finding 5: `--log-format json` warned at every reload).
    /// `inheritedListen`: the inherited socket's address, which the listener keeps serving whatever the file
    /// says (a reload never touches the socket; see `ConfigFile.load`).
    ///
    /// Returns the outcome, also recorded in `configStatus` (seen on `/metrics`).
    @discardableResult
    package func reload(
        fromFile path: String,
        listen: ListenAddress? = nil,
        inheritedListen: ListenAddress? = nil,
        dataDir: String? = nil,
        logFormat: LogConfiguration.Format? = nil,
        logLevel: LogConfiguration.Level? = nil,
        listenReusePort: Bool? = nil,
        adminListen: ListenAddress? = nil
    ) -> ConfigStatus.ReloadOutcome {
        let now = Date().timeIntervalSince1970
        var loaded: (configuration: GatewayConfiguration, digest: String)
        let report: ReloadReport
        do {
            loaded = try ConfigFile.load(
                path: path, listen: listen, inheritedListen: inheritedListen, dataDir: dataDir, adminListen: adminListen
            )
            if let logFormat { loaded.configuration.log.format = logFormat }
            if let logLevel { loaded.configuration.log.level = logLevel }
            if let listenReusePort { loaded.configuration.listenReusePort = listenReusePort }
            report = try reload(to: loaded.configuration)
        } catch {
            // Counted before the line is written, as the applied reload below: whoever reads the line and then
            // scrapes (an operator, the reload tests) sees the count that goes with it.
            configStatus.recordReload(.refused, digest: nil, at: now)
            logger.error(
                "config reload refused; the running configuration stays",
                metadata: ["config.error": "\(error)", "config.running_digest": "\(configStatus.snapshot.digest)"]
            )
            return .refused
        }
        configStatus.recordReload(
            .applied, digest: loaded.digest, restartRequired: report.restartRequired, at: now)
        var metadata: Logger.Metadata = ["config.digest": "\(loaded.digest)", "config.source": "\(path)"]
        if !report.poolsAdded.isEmpty { metadata["pools.new"] = "\(report.poolsAdded.joined(separator: ","))" }
        if !report.poolsRetired.isEmpty { metadata["pools.retired"] = "\(report.poolsRetired.joined(separator: ","))" }
        if let certificate = report.certificate {
            // As the start-up `listening` line names them (review 10, finding 3: which certificate is in force).
            metadata["tls.subject"] = "\(certificate.subject)"
            metadata["tls.not_valid_after"] = "\(ListenerTLS.logTime(certificate.notValidAfter))"
        }
        // Said at the configured level when that leaves `info` out, so the line is written: the log is where an
        // applied reload shows (`systemctl reload` reports success either way), also one under `level: warning`
        // that changes no level (operator review 58, F4: it left no line, `log.access=false` included).
        // At most `warning`: an applied reload is no error, and must not page whoever alerts on errors.
        let configured = Logger.Level(rawValue: loaded.configuration.log.level.rawValue) ?? .info
        let level = min(max(Logger.Level.info, configured), .warning)
        if let changed = report.logLevel { metadata["log.level"] = "\(changed.rawValue)" }
        if let access = report.accessLog { metadata["log.access"] = .stringConvertible(access) }
        logger.log(level: level, "config reloaded", metadata: metadata)
        for warning in loaded.configuration.warnings {
            logger.warning("\(warning.message)", metadata: ["config.key": "\(warning.path)"])
        }
        // As at start: a reload is when rotated keys come into force, and with them a wrong mode (review 17, #6).
        for (keyPath, exposure) in Self.exposedKeyFiles(loaded.configuration) {
            logger.warning("\(exposure)", metadata: ["path": "\(keyPath)"])
        }
        if !report.restartRequired.isEmpty {
            logger.warning(
                "restart required: these keys changed but keep their running values until a restart",
                metadata: ["config.keys": "\(report.restartRequired.joined(separator: ","))"]
            )
        }
        return .applied
    }
}
