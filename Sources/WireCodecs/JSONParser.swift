import NIOCore
import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The RFC 8259 recursive-descent parser behind `JSONValueCodec`; lives only for one call of
/// `withUnsafeReadableBytes`, so it may hold the raw pointer.
///
/// An error names where it is (`data[0].variable.n`): each object and array adds its key or index to a failure as
/// it unwinds through them (``Failure/within(_:)``), and ``parseDocument()`` renders the path. Kept as a stack on
/// the way down instead, it cost an array and an append and removal per member on every parse that succeeds
/// (~870 instructions and an allocation per REST trigger of bench/'s 60-byte body, issue 11).
///
/// Ours rather than Foundation's `JSONSerialization`/`JSONDecoder`: those build `Any`/`String` trees first, so
/// a 24 MiB data URI would become a 24 MiB `String` before base64 decoding, where this parser decodes it
/// straight into the blob's buffer (`parseDataURIFast`); they do not take the configured nesting cap
/// (`limits.max_depth`) and give no JSON path in their errors (our 400s name the field). Speed: ours parses
/// 2.4–7× as fast, data URIs decoded included (rows "JSON parse, WireCodecs" and "JSON parse, Foundation
/// JSONSerialization" of one bench/micro run, side by side in bench/README.md "Our code or a library").
struct JSONParser {
    fileprivate enum PathComponent {
        case key(String)
        case index(Int)
    }

    /// A failure on its way out: what went wrong, and the keys and indices it has unwound through so far
    /// (innermost first). ``parseDocument()`` makes it a ``JSONParseFailure`` with the path rendered.
    fileprivate struct Failure: Error {
        fileprivate var isSyntax: Bool
        /// Syntax: `invalid JSON at byte N: …`, to which ` (in PATH)` is added; content: what follows `PATH: `.
        fileprivate var message: String
        fileprivate var unwound: [PathComponent] = []

        /// The failure as seen from the container that holds the failing value at `component`.
        fileprivate consuming func within(_ component: PathComponent) -> Failure {
            unwound.append(component)
            return self
        }
    }

    private let bytes: UnsafePointer<UInt8>
    private let count: Int
    /// Set when large data URIs are decoded in place (`JSONValueCodec.decodeObject(inPlace:)`): the buffer
    /// `bytes` points into, whose storage no one else holds; their blobs are slices of it.
    private let inPlaceSource: ByteBuffer?
    /// With `inPlaceSource`: large data URIs whose payload is canonical base64 are kept as that text
    /// (`Blob(canonicalBase64:)`, a slice of the source), checked but not decoded; others are decoded in place.
    private let keepCanonicalBase64: Bool
    /// With `keepCanonicalBase64`: memory already found in base64's standard alphabet (`HTTP1BodyRelay`'s
    /// check of a relayed body's pieces), not checked again (`DataURI.canonicalBase64Header`).
    private let checkedAlphabet: Range<UInt>?
    /// Whether a string that is a base64 data URI becomes a `.blob` (`JSONValueCodec.DataURIs`).
    private let dataURIsAsBinaries: Bool
    private let maxDepth: Int
    /// `CodecLimits.nonFiniteNumbers`: `NaN`, `Infinity` and `-Infinity` are read as numbers (a runner's answer).
    private let nonFiniteNumbers: Bool
    /// `CodecLimits.maxJSONMembers`: object members plus array elements this parser may read, `members`
    /// included.
    private let maxMembers: Int
    private let pathPrefix: String
    private var pos = 0
    private var depth = 0
    /// Object members (a repeated key each time) and array elements read so far, plus those of the request's
    /// earlier documents (multipart fields) it started with.
    private(set) var members: Int

    /// Objects up to this many keys find duplicates by scanning; larger ones build a dictionary index (the
    /// same threshold as `ValueObject.linearKeyLimit`, kept a literal here: the parser's hot loop reads it).
    private static let linearKeyLimit = 8

    /// `raw` must not be empty (an empty buffer may have no base address); callers reject empty documents.
    /// Payloads at least this long are decoded in place when the parser has an `inPlaceSource`; smaller
    /// blobs get buffers of their own, so that they do not keep a large body alive.
    static let inPlaceBlobBytes = 64 << 10

    init(
        _ raw: UnsafeRawBufferPointer, maxDepth: Int, maxMembers: Int = .max, membersBefore: Int = 0,
        pathPrefix: String, inPlaceSource: ByteBuffer? = nil, keepCanonicalBase64: Bool = false,
        checkedAlphabet: Range<UInt>? = nil, dataURIsAsBinaries: Bool = true, nonFiniteNumbers: Bool = false
    ) {
        precondition(raw.count > 0, "JSONParser needs at least one byte")
        self.nonFiniteNumbers = nonFiniteNumbers
        self.dataURIsAsBinaries = dataURIsAsBinaries
        self.bytes = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        self.count = raw.count
        self.inPlaceSource = inPlaceSource
        self.keepCanonicalBase64 = keepCanonicalBase64
        self.checkedAlphabet = checkedAlphabet
        self.maxDepth = maxDepth
        self.maxMembers = maxMembers
        self.members = membersBefore
        self.pathPrefix = pathPrefix
    }

    mutating func parseDocument() throws(JSONParseFailure) -> Value {
        do throws(Failure) {
            skipWhitespace()
            guard pos < count else { throw syntax("empty document, expected a JSON value") }
            let value = try parseValue()
            skipWhitespace()
            guard pos == count else { throw syntax("unexpected \(describeByte()) after the JSON value") }
            return value
        } catch {
            throw rendered(error)
        }
    }

    // MARK: Values

    private mutating func parseValue() throws(Failure) -> Value {
        guard pos < count else { throw syntax("unexpected end of input, expected a value") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return .object(try parseObject())
        case UInt8(ascii: "["): return .list(try parseArray())
        case UInt8(ascii: "\""): return try parseStringValue()
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseNumber()
        case UInt8(ascii: "N") where nonFiniteNumbers:
            try expectLiteral("NaN")
            return .number(.nan)
        case UInt8(ascii: "I") where nonFiniteNumbers:
            try expectLiteral("Infinity")
            return .number(.infinity)
        default:
            throw syntax("unexpected \(describeByte()), expected a value")
        }
    }

    private mutating func enterContainer() throws(Failure) {
        depth += 1
        if depth > maxDepth {
            throw content("nesting deeper than the limit of \(maxDepth) levels")
        }
    }

    /// Counts the member or element about to be read, before any of it is built.
    @inline(__always)
    private mutating func countMember() throws(Failure) {
        members += 1
        if members > maxMembers {
            throw content("more than the limit of \(maxMembers) object members and array elements in the body")
        }
    }

    private mutating func parseObject() throws(Failure) -> ValueObject {
        try enterContainer()
        pos += 1
        var entries: [(key: String, value: Value)] = []
        var index: [String: Int]? = nil
        skipWhitespace()
        if pos < count && bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            depth -= 1
            return ValueObject()
        }
        // Room for two members at once: grown from empty, an object of two members was allocated twice (the
        // one-member and the two-member storage; −650 instructions and an allocation per REST trigger, issue 11).
        // Not more: a body of many one-member objects would hold that much more memory per object.
        entries.reserveCapacity(2)
        while true {
            guard pos < count, bytes[pos] == UInt8(ascii: "\"") else {
                throw syntax("expected a string key, found \(describeByte())")
            }
            try countMember()
            let key = try parseString()
            skipWhitespace()
            guard pos < count, bytes[pos] == UInt8(ascii: ":") else {
                throw syntax("expected ':' after object key, found \(describeByte())")
            }
            pos += 1
            skipWhitespace()
            let value: Value
            do throws(Failure) {
                value = try parseValue()
            } catch {
                throw error.within(.key(key))
            }
            // A repeated key keeps its first position and takes the last value, as `ValueObject`'s setter does.
            // Indexed, a new key is hashed once: inserted at the next position, and put back only if it was there
            // (hashing is a third of a wide object's cost, review 24 M2).
            let existing: Int?
            if index != nil {
                existing = index!.updateValue(entries.count, forKey: key)
                if let existing { index![key] = existing }
            } else {
                existing = entries.firstIndex(where: { $0.key == key })
            }
            if let existing {
                entries[existing].value = value
            } else {
                entries.append((key: key, value: value))
                if index == nil && entries.count > Self.linearKeyLimit {
                    var built: [String: Int] = [:]
                    for (i, entry) in entries.enumerated() { built[entry.key] = i }
                    index = built
                }
            }
            guard try separator(closing: .object) else { break }
        }
        depth -= 1
        return ValueObject(uniqueKeyEntries: entries)
    }

    private mutating func parseArray() throws(Failure) -> [Value] {
        try enterContainer()
        pos += 1
        var elements: [Value] = []
        skipWhitespace()
        if pos < count && bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            depth -= 1
            return elements
        }
        while true {
            // Everything from the element's count to the separator after it is at `[index]`.
            let index = elements.count
            do throws(Failure) {
                try countMember()
                elements.append(try parseValue())
                guard try separator(closing: .array) else { break }
            } catch {
                throw error.within(.index(index))
            }
        }
        depth -= 1
        return elements
    }

    /// A container being parsed, as ``separator(closing:)``'s errors name it.
    private enum Container {
        case object, array

        var closer: UInt8 { self == .object ? UInt8(ascii: "}") : UInt8(ascii: "]") }
        var errorAtEnd: String {
            self == .object ? "unexpected end of input in an object" : "unexpected end of input in an array"
        }
        var expected: String {
            switch self {
            case .object: "expected ',' or '}' after an object member"
            case .array: "expected ',' or ']' after an array element"
            }
        }
    }

    /// What follows an object's member or an array's element (RFC 8259 §4, §5): whitespace, then `,` and the
    /// whitespace after it (true: another member comes) or the container's closing bracket (false, taken).
    /// Anything else, or the end of input, is a syntax error naming the container.
    @inline(__always)
    private mutating func separator(closing container: Container) throws(Failure) -> Bool {
        skipWhitespace()
        guard pos < count else { throw syntax(container.errorAtEnd) }
        let c = bytes[pos]
        pos += 1
        if c == UInt8(ascii: ",") {
            skipWhitespace()
            return true
        }
        if c == container.closer { return false }
        pos -= 1
        throw syntax("\(container.expected), found \(describeByte())")
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Failure) {
        let n = literal.utf8CodeUnitCount
        guard count - pos >= n, memcmp(bytes + pos, literal.utf8Start, n) == 0 else {
            throw syntax("invalid literal, expected '\(literal)'")
        }
        pos += n
    }

    // MARK: Numbers

    /// A number: integers stay exact (`Value.integer(text:)`: past ±2^53 as a `largeInteger`), others are the
    /// nearest `Double` in the float form (`NumberForm.float`: `2.0` is written back as `2.0`); a non-integer past
    /// `Double`'s range (`1e400`) is refused rather than made infinite.
    private mutating func parseNumber() throws(Failure) -> Value {
        let start = pos
        var negative = false
        if bytes[pos] == UInt8(ascii: "-") {
            negative = true
            pos += 1
            if nonFiniteNumbers, pos < count, bytes[pos] == UInt8(ascii: "I") {
                try expectLiteral("Infinity")
                return .number(-.infinity)
            }
        }
        guard pos < count, isDigit(bytes[pos]) else { throw syntax("invalid number: expected a digit") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < count && isDigit(bytes[pos]) { throw syntax("invalid number: leading zero") }
        } else {
            while pos < count && isDigit(bytes[pos]) { pos += 1 }
        }
        let integerEnd = pos
        var isInteger = true
        if pos < count && bytes[pos] == UInt8(ascii: ".") {
            isInteger = false
            pos += 1
            guard pos < count, isDigit(bytes[pos]) else { throw syntax("invalid number: expected a digit after '.'") }
            while pos < count && isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < count && (bytes[pos] | 0x20) == UInt8(ascii: "e") {
            isInteger = false
            pos += 1
            if pos < count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard pos < count, isDigit(bytes[pos]) else { throw syntax("invalid number: expected exponent digits") }
            while pos < count && isDigit(bytes[pos]) { pos += 1 }
        }
        let digitsStart = negative ? start + 1 : start
        // Up to 15 digits an integer is exact in a Double: skip strtod for the common case.
        if isInteger && integerEnd - digitsStart <= 15 {
            var v: Int64 = 0
            for i in digitsStart..<integerEnd { v = v * 10 + Int64(bytes[i] &- UInt8(ascii: "0")) }
            return .number(negative ? -Double(v) : Double(v))
        }
        let text = String(decoding: UnsafeBufferPointer(start: bytes + start, count: pos - start), as: UTF8.self)
        if isInteger, let integer = Value.integer(text: text) { return integer }
        guard let value = Double(text), value.isFinite else {
            throw syntax("number \(text.prefix(40)) is out of range")
        }
        // Written with a fraction or an exponent: the float form, so `2.0` goes on as `2.0` (`NumberForm`).
        return .number(value, form: isInteger ? .plain : .float)
    }

    @inline(__always)
    private func isDigit(_ c: UInt8) -> Bool { c &- UInt8(ascii: "0") < 10 }

    // MARK: Strings

    /// A string in value position: a base64 data URI becomes a blob, decoded from the body bytes directly
    /// (unless `dataURIsAsBinaries` is off: then it is a string like any other).
    private mutating func parseStringValue() throws(Failure) -> Value {
        guard dataURIsAsBinaries else { return .string(try parseString()) }
        let start = pos + 1
        if count - start >= 5, bytes[start] | 0x20 == UInt8(ascii: "d"),
            let blob = try parseDataURIFast(from: start)
        {
            return .blob(blob)
        }
        let string = try parseString()
        if string.utf8.count >= 5, string.utf8.first.map({ $0 | 0x20 }) == UInt8(ascii: "d") {
            // Rare: a data URI with escapes in it (e.g. `\/` from encoders that escape slashes).
            var copy = string
            let result = copy.withUTF8 { utf8 in
                Result { () throws(Failure) -> Blob? in try makeBlob(UnsafeRawBufferPointer(utf8)) }
            }
            if let blob = try result.get() { return .blob(blob) }
        }
        return .string(string)
    }

    /// The data-URI fast path: find the closing quote with `memchr` (a data URI has no escapes), then decode the
    /// payload in place. Returns nil, leaving `pos` alone, when this is not a data URI or holds an escape.
    private mutating func parseDataURIFast(from start: Int) throws(Failure) -> Blob? {
        guard let found = memchr(bytes + start, Int32(UInt8(ascii: "\"")), count - start) else { return nil }
        let end = bytes.distance(to: found.assumingMemoryBound(to: UInt8.self))
        let raw = UnsafeRawBufferPointer(start: bytes + start, count: end - start)
        if memchr(raw.baseAddress!, Int32(UInt8(ascii: "\\")), raw.count) != nil { return nil }
        if let source = inPlaceSource, raw.count >= Self.inPlaceBlobBytes {
            if keepCanonicalBase64, let header = DataURI.canonicalBase64Header(raw, checkedAlphabet: checkedAlphabet) {
                pos = end + 1
                let text = source.getSlice(
                    at: source.readerIndex + start + header.payloadOffset, length: raw.count - header.payloadOffset)!
                return Blob(contentType: header.contentType, fileName: header.fileName, canonicalBase64: text)
            }
            // The storage is the parser's alone (see `inPlaceSource`) and these bytes are behind `pos` once
            // this string is consumed: decoding over them cannot be seen by anyone else or by the parser.
            let decoded: (contentType: String, fileName: String?, payloadOffset: Int, byteCount: Int)?
            do {
                decoded = try DataURI.decodeInPlace(UnsafeMutableRawBufferPointer(mutating: raw))
            } catch {
                throw content(DataURI.message(for: error))
            }
            guard let decoded else { return nil }
            pos = end + 1
            let bytes = source.getSlice(
                at: source.readerIndex + start + decoded.payloadOffset, length: decoded.byteCount)!
            return Blob(contentType: decoded.contentType, fileName: decoded.fileName, bytes: bytes)
        }
        guard let blob = try makeBlob(raw) else { return nil }
        pos = end + 1
        return blob
    }

    /// A blob for a complete data URI, nil if `text` is not one; bad base64 in a real data URI is an error.
    private func makeBlob(_ text: UnsafeRawBufferPointer) throws(Failure) -> Blob? {
        do {
            return try DataURI.decode(text)
        } catch {
            throw content(DataURI.message(for: error))
        }
    }

    /// Parses the string at `pos` (an opening quote) and leaves `pos` after its closing quote.
    private mutating func parseString() throws(Failure) -> String {
        pos += 1
        let start = pos
        var nonASCII: UInt8 = 0
        while pos < count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                let text = UnsafeBufferPointer(start: bytes + start, count: pos - start)
                pos += 1
                // ASCII needs no validation; `String(decoding:)` is the cheaper initializer for it.
                if nonASCII < 0x80 { return String(decoding: text, as: UTF8.self) }
                guard let string = String(validating: text, as: UTF8.self) else {
                    throw syntax("invalid UTF-8 in string", at: start)
                }
                return string
            }
            nonASCII |= c
            if c == UInt8(ascii: "\\") { return try parseEscapedString(from: start) }
            if c < 0x20 { throw syntax("unescaped control character in string") }
            pos += 1
        }
        throw syntax("unterminated string", at: start - 1)
    }

    private mutating func parseEscapedString(from start: Int) throws(Failure) -> String {
        var utf8 = [UInt8](UnsafeBufferPointer(start: bytes + start, count: pos - start))
        while pos < count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                guard let string = String(validating: utf8, as: UTF8.self) else {
                    throw syntax("invalid UTF-8 in string", at: start)
                }
                return string
            }
            if c < 0x20 { throw syntax("unescaped control character in string") }
            if c != UInt8(ascii: "\\") {
                utf8.append(c)
                pos += 1
                continue
            }
            guard pos + 1 < count else { break }
            let escape = bytes[pos + 1]
            pos += 2
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                let scalar = try parseUnicodeEscape()
                utf8.append(contentsOf: UTF8.encode(scalar)!)
            default:
                pos -= 1
                throw syntax("invalid escape '\\\(Character(Unicode.Scalar(escape)))' in string")
            }
        }
        throw syntax("unterminated string", at: start - 1)
    }

    /// After `\u`: four hex digits, and for a high surrogate the `\uDC00`–`\uDFFF` that must follow it
    /// (RFC 8259 §7); lone surrogates are errors since they cannot be UTF-8.
    private mutating func parseUnicodeEscape() throws(Failure) -> Unicode.Scalar {
        let first = try parseHex4()
        if first >= 0xDC00 && first <= 0xDFFF {
            throw syntax("invalid \\u escape: lone low surrogate \\u\(String(first, radix: 16, uppercase: true))")
        }
        if first >= 0xD800 && first <= 0xDBFF {
            guard count - pos >= 6, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                throw syntax("invalid \\u escape: high surrogate not followed by a low surrogate")
            }
            pos += 2
            let second = try parseHex4()
            guard second >= 0xDC00 && second <= 0xDFFF else {
                throw syntax("invalid \\u escape: high surrogate not followed by a low surrogate")
            }
            let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            return Unicode.Scalar(combined)!
        }
        return Unicode.Scalar(first)!
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        guard count - pos >= 4 else { throw syntax("invalid \\u escape: expected 4 hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw syntax("invalid \\u escape: expected 4 hex digits")
            }
            v = v << 4 | UInt32(digit)
            pos += 1
        }
        return v
    }

    // MARK: Whitespace and errors

    @inline(__always)
    private mutating func skipWhitespace() {
        while pos < count {
            switch bytes[pos] {
            case 0x20, 0x0A, 0x0D, 0x09: pos += 1
            default: return
            }
        }
    }

    private func describeByte() -> String {
        guard pos < count else { return "end of input" }
        let c = bytes[pos]
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(String(c, radix: 16, uppercase: true))"
    }

    /// `pathPrefix`, then the keys and indices `failure` unwound through, outermost first (`data[0].variable.n`).
    private func pathDescription(_ failure: Failure) -> String {
        var text = pathPrefix
        for component in failure.unwound.reversed() {
            switch component {
            case .key(let key): text += text.isEmpty ? key : ".\(key)"
            case .index(let i): text += "[\(i)]"
            }
        }
        return text
    }

    private func rendered(_ failure: Failure) -> JSONParseFailure {
        let location = pathDescription(failure)
        if failure.isSyntax {
            let suffix = location.isEmpty ? "" : " (in \(location))"
            return JSONParseFailure(isSyntax: true, error: GatewayError(.invalidArgument, failure.message + suffix))
        }
        return JSONParseFailure(
            isSyntax: false,
            error: GatewayError(.invalidArgument, "\(location.isEmpty ? "body" : location): \(failure.message)"))
    }

    private func syntax(_ message: String, at offset: Int? = nil) -> Failure {
        Failure(isSyntax: true, message: "invalid JSON at byte \(offset ?? pos): \(message)")
    }

    private func content(_ message: String) -> Failure {
        Failure(isSyntax: false, message: message)
    }
}
