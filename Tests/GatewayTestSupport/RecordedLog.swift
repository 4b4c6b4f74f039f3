package import Logging
import Synchronization

/// A swift-log handler that keeps every line (level, message, metadata as text), for assertions.
package final class RecordedLog: LogHandler, Sendable {
    package struct Line: Sendable, CustomStringConvertible {
        package var level: Logger.Level
        package var message: String
        package var metadata: [String: String]
        package var description: String { "\(level) \(message) \(metadata)" }
    }
    package init() {}

    private let recorded = Mutex<[Line]>([])
    package var lines: [Line] { recorded.withLock { $0 } }

    package var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    package var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    package func log(event: LogEvent) {
        let line = Line(
            level: event.level, message: "\(event.message)",
            metadata: (event.metadata ?? [:]).mapValues { "\($0)" })
        recorded.withLock { $0.append(line) }
    }
}
