import Yams

/// How the gateway logs (`log:`): the line format and the least severe level written.
///
/// `format` is read at start-up only (a reload that changes it logs "restart required"): the process's log handler
/// is installed once. `level` is applied by a reload too (`LogLevelSwitch`, review 18 F5). `--log-format` and `--log-level` on the command line override the file.
package struct LogConfiguration: Sendable, Equatable {
    /// The shape of each line: one line per event, written and flushed as it happens.
    package enum Format: String, Sendable, Equatable, CaseIterable {
        /// `key=value` pairs (values with spaces, quotes or `=` in double quotes), as Heroku and Grafana
        /// Loki's logfmt parser read them.
        case logfmt
        /// One JSON object per line (JSON Lines).
        case json
    }

    /// swift-log's levels, by their names there.
    package enum Level: String, Sendable, Equatable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    package var format: Format
    /// The least severe level of the application log (logger `trigger-gateway`).
    package var level: Level
    /// Whether the access log (one `request` line per request, logger `access`) is written: its own switch, apart
    /// from `level` (review 26 L7; nginx's `access_log` beside `error_log`, Envoy's access-log sinks beside
    /// `--log-level`), so `level: warning` quiets the application log and keeps the access log. A reload applies it.
    package var access: Bool

    package init(format: Format = .logfmt, level: Level = .info, access: Bool = true) {
        self.format = format
        self.level = level
        self.access = access
    }

    package static let defaults = LogConfiguration()
}

extension GatewayConfiguration {
    static func readLog(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError) -> LogConfiguration {
        let m = try reader.mapping(node, at: "log", allowed: ["format", "level", "access"])
        var log = LogConfiguration.defaults
        if let n = m["format"] {
            log.format = try reader.choice(n, at: m.path("format"), as: LogConfiguration.Format.self)
        }
        if let n = m["level"] { log.level = try reader.choice(n, at: m.path("level"), as: LogConfiguration.Level.self) }
        if let n = m["access"] { log.access = try reader.bool(n, at: m.path("access")) }
        return log
    }
}
