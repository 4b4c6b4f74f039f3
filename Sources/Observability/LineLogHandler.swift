#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
package import Logging
import Synchronization
import TriggerModel

/// A swift-log handler that writes each event as one line, logfmt or JSON, to a file descriptor (stderr by
/// default), with one `write(2)` per line: nothing is buffered in the process, so a line is out as soon as it
/// is logged, and lines from different threads never interleave inside a line: each line's writes are made under
/// one process-wide lock (``writeAll(_:to:)``).
///
/// swift-log's `StreamLogHandler` writes its own text layout (`<time> <level> <label>: <metadata> <message>`)
/// with metadata neither quoted nor typed, which neither logfmt parsers nor JSON tools read reliably; hence
/// this handler.
///
/// Every line has `ts` (RFC 3339, UTC, milliseconds), `level`, `logger` (the label) and `msg`, then the
/// metadata in key order. In JSON, integer, floating-point and Boolean metadata given as
/// `.stringConvertible` are written as JSON numbers and Booleans, the rest as strings (arrays and
/// dictionaries as JSON arrays and objects). The rule for callers: a count, status, size or flag is given as
/// `.stringConvertible(value)`, never interpolated (`"\(count)"` is `.string`, a JSON string a `jq` comparison
/// with a number silently fails on; review 10, finding 9). In logfmt a value is written bare unless it is empty or holds a
/// space, `=`, `"`, `\` or a control character; then it is double-quoted with `"`, `\`, newline, carriage
/// return and tab escaped by a backslash and the other control characters (C0 such as ESC, DEL, and C1 such
/// as U+009B CSI) as `\u00XX`, in JSON strings too.
///
/// The level: fixed, or the process's `LogLevelSwitch`, which a reload changes for every handler at once (review 18
/// F5). Setting `logLevel` on a handler that follows a switch sets a floor for that handler only (it writes nothing
/// below it, whatever the switch says): what `max(logger.logLevel, .warning)` asks of a chatty library's logger.
package struct LineLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    package var logLevel: Logger.Level {
        get { levelSwitch.map { max($0.level, ownLevel) } ?? ownLevel }
        set { ownLevel = newValue }
    }
    /// The level (a floor when `levelSwitch` is set).
    private var ownLevel: Logger.Level
    private let levelSwitch: LogLevelSwitch?
    private let label: String
    private let format: LineFormat
    private let fileDescriptor: Int32

    /// `fileDescriptor`: where lines go (2, stderr, by default; tests pass a pipe). `levelSwitch`: the level to
    /// follow (`level` is then ignored), changed at run time; nil: `level`, fixed.
    package init(
        label: String, format: LineFormat, level: Logger.Level = .info, fileDescriptor: Int32 = 2,
        metadataProvider: Logger.MetadataProvider? = nil, levelSwitch: LogLevelSwitch? = nil
    ) {
        self.label = label
        self.format = format
        self.ownLevel = levelSwitch == nil ? level : .trace
        self.levelSwitch = levelSwitch
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
        out.begin(timestamp: timestamp, level: level, label: label, message: message)
        for key in metadata.keys.sorted() {
            out.field(key, metadata[key]!)
        }
        out.end()
        return out.bytes
    }

    /// Whether ``writeLine(level:message:into:fields:)`` writes what ``log(event:)`` would: this handler adds no
    /// metadata of its own (none set, no provider), so a line's fields are exactly the caller's.
    package var addsNoMetadata: Bool { metadata.isEmpty && metadataProvider == nil }

    /// Writes one line whose metadata `fields` appends itself, in key order, with the writer's typed fields
    /// (``LineWriter/field(_:string:)``, ``LineWriter/field(_:integer:)``): the same bytes as ``log(event:)``
    /// given that metadata when ``addsNoMetadata``, without building a `Logger.Metadata` dictionary, boxing
    /// numbers or making a `String` per value. `buffer` is reused: emptied, filled, written, kept for the next
    /// line (its capacity stays).
    package func writeLine(
        level: Logger.Level, message: String, into buffer: inout [UInt8], fields: (inout LineWriter) -> Void
    ) {
        guard level >= logLevel else { return }
        buffer.removeAll(keepingCapacity: true)
        var out = LineWriter(format: format, bytes: buffer)
        buffer = []  // `out` holds the only reference: appends grow it in place
        out.begin(timestamp: Self.now(), level: level, label: label, message: message)
        fields(&out)
        out.end()
        out.bytes.withUnsafeMutableBytes { Self.writeAll($0, to: fileDescriptor) }
        buffer = out.bytes
    }

    /// Wall-clock time now, for the line's `ts`: `clock_gettime`, no Foundation.
    /// One line written now to `fileDescriptor`, outside any logger: for what is said before (or instead of) the
    /// bootstrapped handlers, such as a fatal start-up error in the format the log was asked for.
    package static func writeDetachedLine(
        format: LineFormat, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata,
        to fileDescriptor: Int32 = 2
    ) {
        var bytes = line(
            format: format, timestamp: now(), level: level, label: label, message: message, metadata: metadata)
        bytes.withUnsafeMutableBytes { writeAll($0, to: fileDescriptor) }
    }

    private static func now() -> (seconds: Int, milliseconds: Int) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return (Int(spec.tv_sec), Int(spec.tv_nsec) / 1_000_000)
    }

    /// `2026-11-29T14:39:29.123Z` (RFC 3339 §5.6), by `gmtime_r`.
    package static func rfc3339(_ time: (seconds: Int, milliseconds: Int)) -> String {
        String(unsafeUninitializedCapacity: 24) { buffer in
            rfc3339(time, into: buffer)
            return 24
        }
    }

    /// ``rfc3339(_:)`` into the first 24 bytes of `buffer`.
    static func rfc3339(_ time: (seconds: Int, milliseconds: Int), into buffer: UnsafeMutableBufferPointer<UInt8>) {
        var seconds = time_t(time.seconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ count: Int, at index: Int) {
            var value = value
            for i in stride(from: count - 1, through: 0, by: -1) {
                buffer[index + i] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
        digits(parts.tm_year + 1900, 4, at: 0)
        buffer[4] = UInt8(ascii: "-")
        digits(parts.tm_mon + 1, 2, at: 5)
        buffer[7] = UInt8(ascii: "-")
        digits(parts.tm_mday, 2, at: 8)
        buffer[10] = UInt8(ascii: "T")
        digits(parts.tm_hour, 2, at: 11)
        buffer[13] = UInt8(ascii: ":")
        digits(parts.tm_min, 2, at: 14)
        buffer[16] = UInt8(ascii: ":")
        digits(parts.tm_sec, 2, at: 17)
        buffer[19] = UInt8(ascii: ".")
        digits(Int32(time.milliseconds), 3, at: 20)
        buffer[23] = UInt8(ascii: "Z")
    }

    /// Held while a line is written, so that no other line's bytes land inside it. POSIX makes a pipe write atomic
    /// only up to PIPE_BUF (4 KiB here), and a stream socket (journald's, systemd's `StandardError=journal`) not at
    /// all: a longer line was cut where the pipe filled, and another thread's line went into the gap. An access
    /// line is over 4 KiB when the client sends a long path, so the tail of one became a line of its own, with
    /// whatever fields the client wrote into its path (review of the fifty-fourth session: `level=critical`
    /// forged by a 9 KB path under load, and JSON lines that did not parse). swift-log's `StreamLogHandler` locks
    /// likewise. One lock for every descriptor: the log is stderr; the one other is stdout's `listening on` line
    /// with `--log-format json`, once at start-up.
    private static let writeLock = Mutex<Void>(())

    /// Writes every byte, retrying short writes and EINTR, under ``writeLock``; a failing descriptor drops the
    /// line (logging must never stop the gateway). A non-blocking descriptor (an O_NONBLOCK stderr a supervisor
    /// handed down) that is full is waited for (`poll`), as a blocking one would be: giving up there left the line
    /// cut, and the next line went on where it stopped.
    private static func writeAll(_ buffer: UnsafeMutableRawBufferPointer, to fileDescriptor: Int32) {
        guard var base = buffer.baseAddress else { return }
        var left = buffer.count
        writeLock.withLock { _ in
            while left > 0 {
                let written = write(fileDescriptor, base, left)
                if written < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK {
                        var ready = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                        if poll(&ready, 1, -1) >= 0 || errno == EINTR { continue }
                    }
                    return
                }
                left -= written
                base += written
            }
        }
    }
}

/// The two line formats of ``LineLogHandler`` (`--log-format`, config `log.format`).
package enum LineFormat: String, Sendable, CaseIterable {
    case logfmt
    case json
}

/// Appends one line's fields in its format, into one byte array (no `String` per value).
package struct LineWriter {
    let format: LineFormat
    var bytes: [UInt8]
    private var first = true

    init(format: LineFormat, bytes: [UInt8] = []) {
        self.format = format
        self.bytes = bytes
    }

    /// Opens the line and writes the fields every line has: `ts`, `level`, `logger`, `msg`.
    mutating func begin(
        timestamp: (seconds: Int, milliseconds: Int), level: Logger.Level, label: String, message: String
    ) {
        if format == .json { bytes.append(UInt8(ascii: "{")) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { time in
            LineLogHandler.rfc3339(timestamp, into: time)
            key("ts")
            stringValue(UnsafeBufferPointer(rebasing: time[0..<24]))
        }
        field("level", string: level.rawValue)
        field("logger", string: label)
        field("msg", string: message)
    }

    mutating func end() {
        if format == .json { bytes.append(UInt8(ascii: "}")) }
        bytes.append(UInt8(ascii: "\n"))
    }

    /// A field as `Logger.Metadata.Value.string(value)` writes it.
    package mutating func field(_ key: String, string value: String) {
        self.key(key)
        value.withUTF8Bytes { stringValue($0) }
    }

    /// ``field(_:string:)`` for a view of a string (a trace id within its `traceparent`): written from its bytes,
    /// not made a string of its own first.
    package mutating func field(_ key: String, string value: Substring) {
        self.key(key)
        value.withUTF8Bytes { stringValue($0) }
    }

    /// A field as `Logger.Metadata.Value.stringConvertible(value)` writes an integer: a JSON number, bare in
    /// logfmt.
    package mutating func field(_ key: String, integer value: Int) {
        self.key(key)
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { room in  // UInt64.max has 20 digits
            var start = room.count
            repeat {
                start -= 1
                room[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: room[start...]))
        }
    }

    mutating func field(_ key: String, _ value: Logger.Metadata.Value) {
        self.key(key)
        switch format {
        case .json:
            json(value)
        case .logfmt:
            text(value).withUTF8Bytes { logfmtValue($0) }
        }
    }

    /// The separator before a field, its key, and the separator after it.
    private mutating func key(_ key: String) {
        if !first { bytes.append(format == .json ? UInt8(ascii: ",") : UInt8(ascii: " ")) }
        first = false
        switch format {
        case .json:
            jsonString(key)
            bytes.append(UInt8(ascii: ":"))
        case .logfmt:
            logfmtKey(key)
            bytes.append(UInt8(ascii: "="))
        }
    }

    /// A string value in the line's format.
    private mutating func stringValue(_ value: UnsafeBufferPointer<UInt8>) {
        switch format {
        case .json: quoted(value)
        case .logfmt: logfmtValue(value)
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
        text.withUTF8Bytes { quoted($0) }
    }

    /// `text` in double quotes with `"`, `\\`, newline, return and tab backslash-escaped, and every other C0
    /// control byte, DEL and every C1 control (U+0080–U+009F, UTF-8 `C2 80`–`C2 9F`) as `\u00XX`, in both
    /// formats: JSON requires it of C0 (RFC 8259 §7) and allows it of the rest, and in logfmt a raw ESC, or a
    /// C1 CSI (U+009B, what ESC `[` abbreviates), from a client's pipeline id or request id would reach the
    /// terminal of whoever `tail`s the log (escape-sequence injection, review 8; ECMA-48 §5.3).
    private mutating func quoted(_ text: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        // The runs between escapes go in whole (one append each, not one per byte).
        var run = 0
        var index = 0
        while index < text.count {
            let byte = text[index]
            let escape: StaticString
            var escaped = byte  // the code point whose two hex digits follow a `\u00`
            var length = 1
            switch byte {
            case UInt8(ascii: "\""): escape = #"\""#
            case UInt8(ascii: "\\"): escape = #"\\"#
            case UInt8(ascii: "\n"): escape = #"\n"#
            case UInt8(ascii: "\r"): escape = #"\r"#
            case UInt8(ascii: "\t"): escape = #"\t"#
            case 0..<0x20, 0x7F: escape = #"\u00"#
            case 0xC2 where Self.isC1(text, at: index):
                escape = #"\u00"#
                escaped = text[index + 1]
                length = 2
            default:
                index += 1
                continue
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[run..<index]))
            bytes.append(contentsOf: UnsafeBufferPointer(start: escape.utf8Start, count: escape.utf8CodeUnitCount))
            if escape.utf8CodeUnitCount == 4 {  // `\u00`: the code point's two hex digits follow
                bytes.append(Self.hex(escaped >> 4))
                bytes.append(Self.hex(escaped & 0xF))
            }
            index += length
            run = index
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[run...]))
        bytes.append(UInt8(ascii: "\""))
    }

    /// Whether the UTF-8 at `index` is a C1 control, U+0080–U+009F (`C2 80`–`C2 9F`).
    private static func isC1(_ text: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        text[index] == 0xC2 && index + 1 < text.count && (0x80...0x9F).contains(text[index + 1])
    }

    /// A logfmt key: characters that would break the pair (space, `=`, `"`, control) become `_`.
    private mutating func logfmtKey(_ key: String) {
        func breaksPair(_ byte: UInt8) -> Bool {
            byte <= 0x20 || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\"") || byte == 0x7F
        }
        key.withUTF8Bytes { key in
            // Our keys are plain: in whole, one append. (A key that a value would have to quote may still be
            // plain as a key, a `\\` in it; it takes the loop below, which then writes it unchanged.)
            guard Self.logfmtNeedsQuotes(key) else {
                bytes.append(contentsOf: key)
                return
            }
            var index = 0
            while index < key.count {
                if Self.isC1(key, at: index) {  // one `_` for the control's two bytes
                    bytes.append(UInt8(ascii: "_"))
                    index += 2
                    continue
                }
                bytes.append(breaksPair(key[index]) ? UInt8(ascii: "_") : key[index])
                index += 1
            }
        }
    }

    private mutating func logfmtValue(_ text: UnsafeBufferPointer<UInt8>) {
        guard Self.logfmtNeedsQuotes(text) else {
            bytes.append(contentsOf: text)
            return
        }
        quoted(text)
    }

    /// Whether a logfmt value must be written quoted (``quoted(_:)``): it is empty, or holds a byte up to SP, DEL,
    /// `=`, `"`, `\\` or a C1 control (``isC1(_:at:)``); a value without one is written bare.
    ///
    /// Eight bytes at a time, as WireCodecs' `isFieldValue` checks field values: a word with no byte below 0x21 and
    /// none equal to 0x7F, `=`, `"`, `\\` or 0xC2 (a C1 control's first byte) needs none of its bytes quoted (each
    /// test is exact as a yes/no: "Bit Twiddling Hacks", `hasless` and `haszero`); only a word with one is looked at
    /// byte by byte. A byte at a time cost ~10 instructions a byte, ~5 000 per access-log line (issue 11). The last
    /// 1–7 bytes are one more word (``tailWord(_:from:)``), so a short key or value (`status`, `POST`, `200`) is
    /// one test, not one per byte (branch hotpath6).
    package static func logfmtNeedsQuotes(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        if text.isEmpty { return true }
        let raw = UnsafeRawBufferPointer(text)
        var index = 0
        while index + 8 <= text.count {
            if mayBreakLogfmtValue(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                for i in index..<(index + 8) where breaksLogfmtValue(text, at: i) { return true }
            }
            index += 8
        }
        if index < text.count, mayBreakLogfmtValue(tailWord(raw, from: index)) {
            for i in index..<text.count where breaksLogfmtValue(text, at: i) { return true }
        }
        return false
    }

    /// A word holding every byte of `raw` from `start` (1–7 bytes before the end), and otherwise only bytes of
    /// `raw` or `a` (one that never makes a value need quotes), read without touching a byte outside `raw`: the
    /// last eight bytes when there are eight (the ones before `start` were checked already), else two overlapping
    /// loads of 4, or of 2, or the one byte, padded. ``mayBreakLogfmtValue(_:)`` asks only whether some byte is
    /// in a set, so the bytes' order and repeats do not matter.
    @inline(__always)
    private static func tailWord(_ raw: UnsafeRawBufferPointer, from start: Int) -> UInt64 {
        let count = raw.count
        assert(start < count && count - start < 8 && (count >= 8 || start == 0), "not a tail of 1-7 bytes")
        if count >= 8 { return raw.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self) }
        let plain: UInt64 = 0x6161_6161_6161_6161  // "aaaaaaaa"
        switch count {
        case 4...:
            return UInt64(raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
                | UInt64(raw.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)) << 32
        case 2...:
            return UInt64(raw.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
                | UInt64(raw.loadUnaligned(fromByteOffset: count - 2, as: UInt16.self)) << 16
                | (plain & 0xFFFF_FFFF_0000_0000)
        default:
            return UInt64(raw[0]) | (plain & ~0xFF)
        }
    }

    /// The byte at `index` makes a logfmt value need quotes: a byte up to SP, DEL, `=`, `"`, `\\`, or the start of
    /// a C1 control.
    @inline(__always)
    private static func breaksLogfmtValue(_ text: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        let byte = text[index]
        return byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\"")
            || byte == UInt8(ascii: "\\") || isC1(text, at: index)
    }

    /// Whether any of `word`'s eight bytes is below 0x21 or equal to 0x7F, `=`, `"`, `\\` or 0xC2: false only when
    /// none of them can make a logfmt value need quotes (``breaksLogfmtValue(_:at:)``).
    @inline(__always)
    private static func mayBreakLogfmtValue(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        // A byte of `word` equal to `byte` (`haszero(word ^ byte…)`).
        @inline(__always) func has(_ byte: UInt8) -> UInt64 {
            let other = word ^ (ones &* UInt64(byte))
            return (other &- ones) & ~other & highBits
        }
        let belowVisible = (word &- ones &* 0x21) & ~word & highBits
        return belowVisible | has(0x7F) | has(UInt8(ascii: "=")) | has(UInt8(ascii: "\"")) | has(UInt8(ascii: "\\"))
            | has(0xC2) != 0
    }

    private static func hex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
    }
}

/// The least severe level the process logs, shared by its `LineLogHandler`s and changed while it runs: a reload's
/// `log.level` applies at once to every logger made from the bootstrapped handler (review 18 F5; nginx applies
/// `error_log` on SIGHUP, Envoy changes levels at run time). One relaxed atomic byte, read at each log call.
package final class LogLevelSwitch: Sendable {
    private let raw: Atomic<UInt8>

    package init(_ level: Logger.Level) {
        raw = Atomic(Self.encode(level))
    }

    /// Read at every level check of every logger (the access log's per request): a load and a switch, no
    /// allocation (`Logger.Level.allCases` would build an array each time).
    package var level: Logger.Level {
        switch raw.load(ordering: .relaxed) {
        case 0: .trace
        case 1: .debug
        case 2: .info
        case 3: .notice
        case 4: .warning
        case 5: .error
        default: .critical
        }
    }

    package func set(_ level: Logger.Level) {
        raw.store(Self.encode(level), ordering: .relaxed)
    }

    private static func encode(_ level: Logger.Level) -> UInt8 {
        switch level {
        case .trace: 0
        case .debug: 1
        case .info: 2
        case .notice: 3
        case .warning: 4
        case .error: 5
        case .critical: 6
        }
    }
}
