import NIOCore
import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Scans JSON text for values already in the gateway's writer's form: what `JSONParser` reads and
/// `JSONValueCodec.write` writes back as the same bytes, apart from insignificant whitespace (RFC 8259 §2), which
/// is dropped: by the caller after the scan (``writeCompacted(_:into:)``), or as the scan copies the text to its
/// output (``startCopy()``). Builds no tree (issue 11: the passthroughs of a runner's answer,
/// `CanonicalSyncResponse`, and of a client's trigger body, `RESTRequestPassthrough`, each skip a decode into
/// `Value` trees and an encode again). A value is canonical when:
/// - strings: valid UTF-8 (the checks of `String(validating:)`: no overlong forms, surrogates or code points
///   past U+10FFFF), escapes only where the writer puts them (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, and
///   `\u00xx` in lowercase hex for the other control characters); no value string starting `data:` (any
///   case), since the parser makes it a blob and the writer re-renders its data URI;
/// - numbers: integers without a leading zero or a minus zero (any length: the parser keeps their digits), or
///   other numbers whose text is the writer's form for a number written as a float (`JSONValueCodec.writeNumber`
///   with `NumberForm.float`: Swift's shortest round-trip form, integral values below 1e16 as digits and `.0`);
/// - objects: no repeated key (the parser would merge them, and Swift takes canonically equivalent keys for
///   one), at most ``maxCheckedKeys`` keys;
/// - nesting within `maxDepth`, and object members plus array elements within `maxMembers`, counted as the parser
///   counts them (`CodecLimits.maxDepth`, `.maxJSONMembers`).
/// Anything else, valid or not, gets "no", and the caller takes the decoding path, which produces today's
/// result or today's error: the scan never decides what is an error. A document's shape around the values is
/// its caller's (an extension per document).
struct CanonicalJSONScanner {
    private let bytes: UnsafePointer<UInt8>
    private let count: Int
    private let maxDepth: Int
    private let maxMembers: Int
    /// The offset of the next byte to read.
    private(set) var pos = 0
    private var depth = 0
    /// Object members and array elements read so far (`JSONParser.countMember`).
    private var members = 0
    /// Keys of the objects being scanned (offset and length), innermost last.
    private var keys = KeyStack()
    /// Whether whitespace was skipped since the scan began.
    private(set) var sawWhitespace = false
    /// Where ``emit(_:)`` and copies (``startCopy()``) write; nil: nowhere.
    private let output: UnsafeMutableRawBufferPointer?
    /// Bytes written to `output`.
    private(set) var written = 0
    /// Whether the text read is being copied to `output`, and from where the part not yet copied starts: a copy
    /// is cut at each whitespace run as it is skipped, so the text is read once.
    private var copying = false
    private var copyFrom = 0

    /// `raw` must not be empty. `output`: where a document's scan writes what it makes of the text (a
    /// precondition failure past its end: the caller bounds what the document can need).
    init(
        _ raw: UnsafeRawBufferPointer, maxDepth: Int, maxMembers: Int = .max,
        output: UnsafeMutableRawBufferPointer? = nil
    ) {
        self.bytes = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        self.count = raw.count
        self.maxDepth = maxDepth
        self.maxMembers = maxMembers
        self.output = output
    }

    /// Whether the text is read to its end.
    var atEnd: Bool { pos == count }

    /// Whether the next byte is `byte`.
    func next(is byte: UInt8) -> Bool { pos < count && bytes[pos] == byte }

    /// Whether the text at `pos` starts with `text` (not moved past it).
    func next(is text: StaticString) -> Bool {
        count - pos >= text.utf8CodeUnitCount && memcmp(bytes + pos, text.utf8Start, text.utf8CodeUnitCount) == 0
    }

    /// `"name"` and its colon, with the whitespace around them, counted as a member of the object being read.
    mutating func member(_ name: StaticString) -> Bool {
        guard countMember() else { return false }
        skipWhitespace()
        guard literal("\""), literal(name), literal("\"") else { return false }
        skipWhitespace()
        guard literal(":") else { return false }
        skipWhitespace()
        return true
    }

    /// A value in the writer's form at `pos`; moves past it.
    mutating func value() -> Bool {
        guard pos < count else { return false }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string(isValue: true)
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
        default: return false
        }
    }

    /// Counts an object or array about to be read against `maxDepth`.
    mutating func enterContainer() -> Bool {
        depth += 1
        return depth <= maxDepth
    }

    /// Ends a container ``enterContainer()`` counted.
    mutating func leaveContainer() {
        depth -= 1
    }

    /// Counts a member or element about to be read against `maxMembers`.
    @inline(__always)
    private mutating func countMember() -> Bool {
        members += 1
        return members <= maxMembers
    }

    /// The object at `pos` (its opening brace), every value in it in the writer's form; moves past it.
    mutating func object() -> Bool {
        let frame = keys.count
        guard container(closing: "}", { $0.objectMember(frame: frame) }) else { return false }
        keys.truncate(to: frame)
        return true
    }

    /// The object or array at `pos` (its opening bracket): counted against `maxDepth`, then empty (`closing` at
    /// once) or `element`s up to `closing` (``elements(closing:_:)``); moves past it.
    @inline(__always)
    private mutating func container(closing: StaticString, _ element: (inout CanonicalJSONScanner) -> Bool) -> Bool {
        guard enterContainer() else { return false }
        pos += 1
        skipWhitespace()
        if !literal(closing) {
            guard elements(closing: closing, element) else { return false }
        }
        leaveContainer()
        return true
    }

    /// `"key": value` at `pos`, its key not one already read in the object whose keys start at `frame`.
    private mutating func objectMember(frame: Int) -> Bool {
        guard pos < count, bytes[pos] == UInt8(ascii: "\"") else { return false }
        let start = pos + 1
        guard string(isValue: false) else { return false }
        let key = (start: start, count: pos - 1 - start)
        guard keys.count - frame < Self.maxCheckedKeys else { return false }
        for index in frame..<keys.count where sameKey(keys[index], key) { return false }
        keys.append(key)
        skipWhitespace()
        guard literal(":") else { return false }
        skipWhitespace()
        return value()
    }

    /// The elements of a non-empty array or object from its first one at `pos`: `element` (which reads one)
    /// separated by commas, then `closing`, with whitespace around each comma. Leaves `pos` after `closing`.
    @inline(__always)
    mutating func elements(closing: StaticString, _ element: (inout CanonicalJSONScanner) -> Bool) -> Bool {
        while true {
            guard countMember(), element(&self) else { return false }
            skipWhitespace()
            guard literal(",") else { return literal(closing) }
            skipWhitespace()
        }
    }

    /// Objects with more keys are left to the parser: the duplicate check here is quadratic.
    static let maxCheckedKeys = 16

    /// Whether the parser's `ValueObject` would take the keys whose text is at `a` and `b` for one key
    /// (`ValueObject.isSameKey`: the scan accepts escapes only where the writer puts them, so equal ASCII keys
    /// have equal text).
    private func sameKey(_ a: (start: Int, count: Int), _ b: (start: Int, count: Int)) -> Bool {
        ValueObject.isSameKey(text(a), text(b)) { decodedKey($0) }
    }

    private func text(_ key: (start: Int, count: Int)) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes + key.start, count: key.count)
    }

    /// The text of a key the scan accepted, unescaped by the parser's own string reading (the key with its
    /// quotes as a document), so the two cannot disagree on what a key is. A key the parser would not read
    /// as a plain string (a `data:` blob) compares as "", equal to any other such key: the scan then says
    /// "no" and the caller takes the decoding path, which is always right.
    private func decodedKey(_ key: UnsafeRawBufferPointer) -> String {
        var parser = JSONParser(
            UnsafeRawBufferPointer(start: key.baseAddress! - 1, count: key.count + 2), maxDepth: 1,
            pathPrefix: "")
        guard case .string(let text)? = try? parser.parseDocument() else { return "" }
        return text
    }

    private mutating func array() -> Bool {
        container(closing: "]") { $0.value() }
    }

    /// The string at `pos` (its opening quote); leaves `pos` after the closing quote.
    private mutating func string(isValue: Bool) -> Bool {
        pos += 1
        if isValue, count - pos >= 5 {
            let d = bytes + pos
            if d[0] | 0x20 == UInt8(ascii: "d"), d[1] | 0x20 == UInt8(ascii: "a"), d[2] | 0x20 == UInt8(ascii: "t"),
                d[3] | 0x20 == UInt8(ascii: "a"), d[4] == UInt8(ascii: ":")
            {
                return false
            }
        }
        while pos < count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                return true
            }
            if c < 0x20 { return false }
            if c == UInt8(ascii: "\\") {
                guard canonicalEscape() else { return false }
                continue
            }
            if c < 0x80 {
                pos += 1
                continue
            }
            guard utf8Sequence() else { return false }
        }
        return false
    }

    /// An escape at `pos` written as `JSONValueCodec.writeString` writes it; moves past it.
    private mutating func canonicalEscape() -> Bool {
        guard pos + 1 < count else { return false }
        switch bytes[pos + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"),
            UInt8(ascii: "b"), UInt8(ascii: "f"):
            pos += 2
            return true
        case UInt8(ascii: "u"):
            guard pos + 5 < count, bytes[pos + 2] == UInt8(ascii: "0"), bytes[pos + 3] == UInt8(ascii: "0"),
                let high = lowerHex(bytes[pos + 4]), high < 2, let low = lowerHex(bytes[pos + 5])
            else { return false }
            switch high << 4 | low {
            case 0x08, 0x09, 0x0A, 0x0C, 0x0D: return false  // written as \b \t \n \f \r
            default:
                pos += 6
                return true
            }
        default:
            return false
        }
    }

    private func lowerHex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// A well-formed UTF-8 sequence of 2 to 4 bytes at `pos` (`UTF8Validation`); moves past it.
    private mutating func utf8Sequence() -> Bool {
        let length = UTF8Validation.sequenceLength(bytes + pos, available: count - pos)
        pos += length
        return length > 0
    }

    /// A number `JSONValueCodec.writeNumber` writes back as the same text.
    private mutating func number() -> Bool {
        let start = pos
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        let digitsStart = pos
        guard pos < count, isDigit(bytes[pos]) else { return false }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < count && isDigit(bytes[pos]) { return false }
        } else {
            while pos < count && isDigit(bytes[pos]) { pos += 1 }
        }
        let isInteger = pos >= count || (bytes[pos] != UInt8(ascii: ".") && bytes[pos] | 0x20 != UInt8(ascii: "e"))
        if isInteger {
            // The parser keeps integers exact (a Double up to ±2^53, the digits past it) and the writer
            // prints the same digits; "-0" comes back as "0".
            let digits = pos - digitsStart
            return !(start != digitsStart && digits == 1 && bytes[digitsStart] == UInt8(ascii: "0"))
        }
        if bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < count, isDigit(bytes[pos]) else { return false }
            while pos < count && isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < count && bytes[pos] | 0x20 == UInt8(ascii: "e") {
            pos += 1
            if pos < count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard pos < count, isDigit(bytes[pos]) else { return false }
            while pos < count && isDigit(bytes[pos]) { pos += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(start: bytes + start, count: pos - start), as: UTF8.self)
        guard let number = Double(text), number.isFinite else { return false }
        // Integral values below 1e16 written with a fraction or exponent keep the float form, written back as
        // their digits and ".0" (`NumberForm.float`): "2.0" is canonical, "2.00" and "2e0" are not.
        if number == number.rounded(.towardZero) && abs(number) < JSONValueCodec.plainIntegralLimit {
            var written = ByteBuffer()
            JSONValueCodec.writeNumber(number, form: .float, into: &written)
            return written.readableBytesView.elementsEqual(text.utf8)
        }
        return number.description == text
    }

    @inline(__always)
    private func isDigit(_ c: UInt8) -> Bool { c &- UInt8(ascii: "0") < 10 }

    /// `text` at `pos` (moved past it). A one-byte literal (`{`, `,`, `:`, …, most calls) is compared as a byte:
    /// through `memcmp` each was a library call (~570 instructions per REST answer's scan, issue 11).
    @inline(__always)
    mutating func literal(_ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        if n == 1 {
            guard pos < count, bytes[pos] == text.utf8Start.pointee else { return false }
            pos += 1
            return true
        }
        guard count - pos >= n, memcmp(bytes + pos, text.utf8Start, n) == 0 else { return false }
        pos += n
        return true
    }

    mutating func skipWhitespace() {
        let start = pos
        while pos < count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D:
                pos += 1
            default:
                if pos > start { skipped(from: start) }
                return
            }
        }
        if pos > start { skipped(from: start) }
    }

    /// Whitespace was skipped from `start` to `pos`: a copy under way takes the text before it.
    private mutating func skipped(from start: Int) {
        sawWhitespace = true
        guard copying else { return }
        emit(UnsafeRawBufferPointer(start: bytes + copyFrom, count: start - copyFrom))
        copyFrom = pos
    }

    // MARK: Copying

    /// Appends `text` to the output (see ``init(_:maxDepth:maxMembers:output:)``).
    mutating func emit(_ text: StaticString) {
        emit(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private mutating func emit(_ text: UnsafeRawBufferPointer) {
        guard let output, let source = text.baseAddress else { return }
        precondition(text.count <= output.count - written, "CanonicalJSONScanner: more output than its bound")
        (output.baseAddress! + written).copyMemory(from: source, byteCount: text.count)
        written += text.count
    }

    /// Starts copying the text read from `pos` on to the output, whitespace outside strings dropped.
    mutating func startCopy() {
        copyFrom = pos
        copying = true
    }

    /// Ends the copy ``startCopy()`` began, at `pos`.
    mutating func endCopy() {
        copying = false
        emit(UnsafeRawBufferPointer(start: bytes + copyFrom, count: pos - copyFrom))
    }

    /// Appends the text of `raw` without whitespace outside strings; only called on text the scanner accepted.
    static func writeCompacted(_ raw: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        var inString = false
        var escaped = false
        var runStart = 0
        for i in 0..<raw.count {
            let c = raw[i]
            if inString {
                if escaped {
                    escaped = false
                } else if c == UInt8(ascii: "\\") {
                    escaped = true
                } else if c == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if c == UInt8(ascii: "\"") {
                inString = true
            } else if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D {
                if runStart < i { out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[runStart..<i])) }
                runStart = i + 1
            }
        }
        if runStart < raw.count { out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[runStart...])) }
    }

    /// The keys of the objects being scanned, innermost last: the first ``inlineCount`` in the scanner itself, the
    /// rest in an array. Two scans a REST call (the client's body, the runner's answer), each with an array of its
    /// own, allocated it twice (issue 11); nesting with more keys than fit inline is rare.
    struct KeyStack {
        typealias Key = (start: Int, count: Int)
        static let inlineCount = 16
        private var inline = InlineArray<16, Key>(repeating: (0, 0))
        private var overflow: [Key] = []
        private(set) var count = 0

        subscript(index: Int) -> Key {
            index < Self.inlineCount ? inline[index] : overflow[index - Self.inlineCount]
        }

        mutating func append(_ key: Key) {
            if count < Self.inlineCount {
                inline[count] = key
            } else {
                overflow.append(key)
            }
            count += 1
        }

        /// Drops the keys from `newCount` on.
        mutating func truncate(to newCount: Int) {
            if newCount < count, count > Self.inlineCount {
                overflow.removeLast(count - max(newCount, Self.inlineCount))
            }
            count = min(count, newCount)
        }
    }
}
