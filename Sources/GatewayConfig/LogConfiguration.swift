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
    /// The access log (one line per request) is at `info`: `warning` and above leave it out.
    package var level: Level

    package init(format: Format = .logfmt, level: Level = .info) {
        self.format = format
        self.level = level
    }

    package static let defaults = LogConfiguration()
}

extension GatewayConfiguration {
    static func readLog(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError) -> LogConfiguration {
        let m = try reader.mapping(node, at: "log", allowed: ["format", "level"])
        var log = LogConfiguration.defaults
        if let n = m["format"] {
            log.format = try reader.choice(n, at: m.path("format"), as: LogConfiguration.Format.self)
        }
        if let n = m["level"] { log.level = try reader.choice(n, at: m.path("level"), as: LogConfiguration.Level.self) }
        return log
    }
}
