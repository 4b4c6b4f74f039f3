#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
package import Logging

/// A swift-log handler that writes each event as one line, logfmt or JSON, to a file descriptor (stderr by
/// default), with one `write(2)` per line: nothing is buffered in the process, so a line is out as soon as it
/// is logged, and lines from different threads never interleave inside a line (a write of up to PIPE_BUF
/// bytes to a pipe is atomic, POSIX `write`).
///
/// swift-log's `StreamLogHandler` writes its own text layout (`<time> <level> <label>: <metadata> <message>`)
/// with metadata neither quoted nor typed, which neither logfmt parsers nor JSON tools read reliably; hence
/// this handler.
///
/// Every line has `ts` (RFC 3339, UTC, milliseconds), `level`, `logger` (the label) and `msg`, then the
/// metadata in key order. In JSON, integer, floating-point and Boolean metadata given as
/// `.stringConvertible` are written as JSON numbers and Booleans, the rest as strings (arrays and
/// dictionaries as JSON arrays and objects). In logfmt a value is written bare unless it is empty or holds a
/// space, `=`, `"`, `\` or a control character; then it is double-quoted with `"`, `\`, newline, carriage
/// return and tab escaped by a backslash.
package struct LineLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    package var logLevel: Logger.Level
    private let label: String
    private let format: LineFormat
    private let fileDescriptor: Int32

    /// `fileDescriptor`: where lines go (2, stderr, by default; tests pass a pipe).
    package init(
        label: String, format: LineFormat, level: Logger.Level = .info, fileDescriptor: Int32 = 2,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.fileDescriptor = fileDescriptor
        self.metadataProvider = metadataProvider
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        let explicit = event.metadata
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let explicit, !explicit.isEmpty {
            merged.merge(explicit) { _, new in new }
        }
        var bytes = Self.line(
            format: format, timestamp: Self.now(), level: event.level, label: label, message: event.message.description,
            metadata: merged)
        bytes.withUnsafeMutableBytes { Self.writeAll($0, to: fileDescriptor) }
    }

    /// One line (with its newline) as bytes.
    package static func line(
        format: LineFormat, timestamp: (seconds: Int, milliseconds: Int), level: Logger.Level, label: String,
        message: String, metadata: Logger.Metadata
    ) -> [UInt8] {
        var out = LineWriter(format: format)
        out.bytes.reserveCapacity(256)
        out.begin()
        out.field("ts", .string(rfc3339(timestamp)))
        out.field("level", .string(level.rawValue))
        out.field("logger", .string(label))
        out.field("msg", .string(message))
        for key in metadata.keys.sorted() {
            out.field(key, metadata[key]!)
        }
        out.end()
        return out.bytes
    }

    /// Wall-clock time now, for the line's `ts`: `clock_gettime`, no Foundation.
    private static func now() -> (seconds: Int, milliseconds: Int) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return (Int(spec.tv_sec), Int(spec.tv_nsec) / 1_000_000)
    }

    /// `2026-11-29T14:39:29.123Z` (RFC 3339 §5.6), by `gmtime_r`.
    package static func rfc3339(_ time: (seconds: Int, milliseconds: Int)) -> String {
        var seconds = time_t(time.seconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ count: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at index: Int) {
            var value = value
            for i in stride(from: count - 1, through: 0, by: -1) {
                buffer[index + i] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
        return String(unsafeUninitializedCapacity: 24) { buffer in
            digits(parts.tm_year + 1900, 4, into: buffer, at: 0)
            buffer[4] = UInt8(ascii: "-")
            digits(parts.tm_mon + 1, 2, into: buffer, at: 5)
            buffer[7] = UInt8(ascii: "-")
            digits(parts.tm_mday, 2, into: buffer, at: 8)
            buffer[10] = UInt8(ascii: "T")
            digits(parts.tm_hour, 2, into: buffer, at: 11)
            buffer[13] = UInt8(ascii: ":")
            digits(parts.tm_min, 2, into: buffer, at: 14)
            buffer[16] = UInt8(ascii: ":")
            digits(parts.tm_sec, 2, into: buffer, at: 17)
            buffer[19] = UInt8(ascii: ".")
            digits(Int32(time.milliseconds), 3, into: buffer, at: 20)
            buffer[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// Writes every byte, retrying short writes and EINTR; a failing descriptor drops the line (logging must
    /// never stop the gateway).
    private static func writeAll(_ buffer: UnsafeMutableRawBufferPointer, to fileDescriptor: Int32) {
        guard var base = buffer.baseAddress else { return }
        var left = buffer.count
        while left > 0 {
            let written = write(fileDescriptor, base, left)
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            left -= written
            base += written
        }
    }
}

/// The two line formats of ``LineLogHandler`` (`--log-format`, config `log.format`).
package enum LineFormat: String, Sendable, CaseIterable {
    case logfmt
    case json
}

/// Appends one line's fields in its format.
private struct LineWriter {
    let format: LineFormat
    var bytes: [UInt8] = []
    private var first = true

    init(format: LineFormat) { self.format = format }

    mutating func begin() {
        if format == .json { bytes.append(UInt8(ascii: "{")) }
    }

    mutating func end() {
        if format == .json { bytes.append(UInt8(ascii: "}")) }
        bytes.append(UInt8(ascii: "\n"))
    }

    mutating func field(_ key: String, _ value: Logger.Metadata.Value) {
        if !first { bytes.append(format == .json ? UInt8(ascii: ",") : UInt8(ascii: " ")) }
        first = false
        switch format {
        case .json:
            jsonString(key)
            bytes.append(UInt8(ascii: ":"))
            json(value)
        case .logfmt:
            logfmtKey(key)
            bytes.append(UInt8(ascii: "="))
            logfmtValue(text(value))
        }
    }

    private func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let value): value.description
        case .array, .dictionary: value.description
        }
    }

    private mutating func json(_ value: Logger.Metadata.Value) {
        switch value {
        case .string(let text):
            jsonString(text)
        case .stringConvertible(let value):
            switch value {
            case let number as any BinaryInteger: bytes.append(contentsOf: "\(number)".utf8)
            case let number as Double where number.isFinite: bytes.append(contentsOf: "\(number)".utf8)
            case let flag as Bool: bytes.append(contentsOf: (flag ? "true" : "false").utf8)
            default: jsonString(value.description)
            }
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                json(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .dictionary(let entries):
            bytes.append(UInt8(ascii: "{"))
            for (i, key) in entries.keys.sorted().enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                jsonString(key)
                bytes.append(UInt8(ascii: ":"))
                json(entries[key]!)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string (RFC 8259 §7): quote, backslash and control characters escaped.
    private mutating func jsonString(_ text: String) {
        quoted(text, escapingOtherControls: true)
    }

    /// `text` in double quotes with `"`, `\\`, newline, return and tab backslash-escaped, as both formats
    /// write them; `escapingOtherControls` (JSON) writes the other control bytes as `\u00XX`, which logfmt
    /// leaves as they are.
    private mutating func quoted(_ text: String, escapingOtherControls: Bool) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): bytes.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): bytes.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20 where escapingOtherControls:
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(Self.hex(byte >> 4))
                bytes.append(Self.hex(byte & 0xF))
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A logfmt key: characters that would break the pair (space, `=`, `"`, control) become `_`.
    private mutating func logfmtKey(_ key: String) {
        for byte in key.utf8 {
            bytes.append(
                byte <= 0x20 || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\"") || byte == 0x7F
                    ? UInt8(ascii: "_") : byte)
        }
    }

    private mutating func logfmtValue(_ text: String) {
        let needsQuotes =
            text.isEmpty
            || text.utf8.contains {
                $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"")
                    || $0 == UInt8(ascii: "\\")
            }
        guard needsQuotes else {
            bytes.append(contentsOf: text.utf8)
            return
        }
        quoted(text, escapingOtherControls: false)
    }

    private static func hex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
    }
}
