package import NIOCore
import TriggerModel

/// An HTTP/1.1 request decoder (RFC 9112) over the connection's bytes: request heads kept as one `ByteBuffer`
/// plus byte ranges, bodies handed on as slices of the bytes read, and the framing rules the server must
/// enforce (request smuggling: RFC 9112 §6.1, §6.3, §11.2) decided here rather than after the head.
///
/// Why our own code rather than NIO's `HTTPRequestDecoder` (llhttp): on a small REST call the NIO decoder
/// and the parts it hands on cost ~4 000 instructions in llhttp, ~2 900 making a `String` of every header
/// name and value, ~3 400 in dynamic casts of the `NIOAny`-wrapped parts and ~4 700 in generic-metadata
/// lookups, out of 240 936 per call (callgrind of main at 9d4843f, issue 11). This decoder makes no
/// `String` until a caller asks for a value, and matches names case-insensitively on bytes.
///
/// Strictness (each rule at least as strict as llhttp's strict mode, differential-fuzzed against it in
/// `GatewayFuzzing.HTTP1DecoderFuzzing`):
/// - request-line `method SP request-target SP HTTP-version CRLF` (§3), single spaces; the method a token;
///   the target visible ASCII in origin-form, absolute-form, asterisk-form (`*`, OPTIONS only) or
///   authority-form (CONNECT only) (§3.2); the version `HTTP/1.1` or `HTTP/1.0` (another major version 505);
/// - empty lines (CRLF) before the request-line are skipped (§2.2), as llhttp does;
/// - lines end in CRLF; a bare CR or LF is refused (§2.2 lets a server accept a bare LF; llhttp does not): one
///   rule for every line, the request-line included (`requestLineBareLF`, its own words), since a front proxy
///   that takes a bare LF as a line end while we do not, or the reverse, disagrees with us on where a head ends;
/// - field names are tokens with no whitespace before the colon (§5.1: MUST be rejected); field values are
///   `field-vchar`, SP, HTAB and obs-text (§5.5), other control characters refused; obs-fold refused (§5.2);
/// - Content-Length is 1*DIGIT, at most 18 digits (no overflow; llhttp allows leading zeros past that); a second Content-Length line or a list is refused
///   (§6.3 item 5 lets a recipient accept a list of identical values; llhttp refuses, and so do we);
/// - Transfer-Encoding and Content-Length together: refused (§6.3 item 3 allows processing after removing
///   Content-Length, but a server "ought to" treat it as an error; the smuggling vector, as llhttp does);
/// - Transfer-Encoding whose final coding is not `chunked` (400, §6.3 item 4), or with another coding
///   before it (501, §6.1: not one we implement); `chunked` twice: 400 (§7: applied once);
/// - chunk-size `1*HEXDIG`, at most 15 digits (no overflow), chunk extensions parsed as
///   `*( ";" token [ "=" ( token / quoted-string ) ] )` (§7.1.1 without its BWS, as llhttp) and dropped, the chunk line
///   within `maxChunkLineBytes`; trailer fields parsed as field lines and dropped, within
///   `maxTrailerBytes` (§7.1.2), except that Content-Length and Transfer-Encoding there are refused (RFC 9110
///   §6.5.1);
/// - a request with neither Content-Length nor Transfer-Encoding has no body (§6.3 item 7).
///
/// Keep-alive (§9.3): HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with `Connection:
/// keep-alive`; an HTTP/1.0 request with Transfer-Encoding does not persist (§6.1: "MUST treat the message as
/// if the framing is faulty … and close the connection after processing the message").
///
/// Use: append the bytes read to one buffer and call ``next(_:)`` until it returns nil (needs more bytes);
/// the decoder consumes what it returns. After an error the connection's bytes can no longer be trusted: the
/// caller answers and closes, and must not call ``next(_:)`` again.
package struct HTTP1RequestDecoder: Sendable {
    /// Bounds of what one request may hold before the decoder refuses it.
    package struct Limits: Sendable, Hashable {
        /// The head's bytes: request-line, field lines and the blank line, plus any empty lines before it.
        /// Default 80 KiB: llhttp's (NIO's `maxHeaderListSize`) field bytes, and the line for the target.
        package var maxHeadBytes: Int
        /// Field lines in one head (NIO: 65 534).
        package var maxFieldCount: Int
        /// One chunk-size line, with its extensions and CRLF.
        package var maxChunkLineBytes: Int
        /// The trailer section, with its final CRLF.
        package var maxTrailerBytes: Int

        package init(
            maxHeadBytes: Int = 80 * 1024 + 8 * 1024, maxFieldCount: Int = 65_534, maxChunkLineBytes: Int = 4096,
            maxTrailerBytes: Int = 16 * 1024
        ) {
            self.maxHeadBytes = maxHeadBytes
            self.maxFieldCount = maxFieldCount
            self.maxChunkLineBytes = maxChunkLineBytes
            self.maxTrailerBytes = maxTrailerBytes
        }
    }

    /// What the decoder read next.
    ///
    /// "Need more bytes" is a case, not `Part?`: an Optional of this ~90-byte enum was copied and destroyed
    /// through the runtime's generic Optional witnesses in the frontend's read loop (~1 000 instructions per
    /// REST call, bench/README.md, branch hotpath6).
    package enum Part: Sendable {
        case head(HTTP1RequestHead)
        /// Body bytes, a slice of the bytes read (no copy).
        case body(ByteBuffer)
        /// The request (its body, if any) is complete.
        case end
        /// The bytes given make no part yet (none consumed but whole empty lines before a head, or a head or
        /// chunk line begun): read more and call again.
        case needMoreBytes
    }

    /// Why a request was refused: each maps to the answer's status (``status``) and the words of its message.
    package enum Failure: Error, Sendable, Hashable {
        case headTooLarge
        /// The request line does not end within the head limit: its target is longer than the gateway parses
        /// (RFC 9112 §3, answered 414 as nginx does).
        case requestTargetTooLong
        case tooManyFields
        case invalidMethod
        case invalidTarget
        case invalidVersion
        /// A well-formed `HTTP/x.y` of a major version from 2 up (`HTTP/2.0`, `HTTP/3.0`): RFC 9110 §15.6.6,
        /// answered 505 (as nginx does). HTTP/2 comes as its connection preface, not as a request line.
        case unsupportedVersion
        /// A line that does not end in CRLF (a bare CR or LF).
        case lineEnding
        /// The request-line ends with a bare LF (`GET / HTTP/1.1\n`): refused, named apart from a bad version so
        /// that the client reads what is wrong.
        case requestLineBareLF
        case invalidFieldName
        case invalidFieldValue
        case obsoleteLineFolding
        case invalidContentLength
        case duplicateContentLength
        case contentLengthWithTransferEncoding
        /// Transfer-Encoding whose final coding is not a single `chunked`.
        case chunkedNotFinal
        /// A transfer coding other than `chunked` (before a final `chunked`).
        case unsupportedTransferCoding
        case invalidChunkSize
        case invalidChunkExtension
        case chunkLineTooLong
        /// The CRLF after a chunk's data is missing.
        case invalidChunkEnd
        case trailerTooLarge
        case invalidTrailer

        /// The answer's status: 431 for a head over its limits, 414 for a request line past them, 501 for a
        /// coding not implemented, 505 for a major version from 2 up, else 400.
        package var status: Int {
            switch self {
            case .headTooLarge, .tooManyFields: 431
            case .requestTargetTooLong: 414
            case .unsupportedTransferCoding: 501
            case .unsupportedVersion: 505
            default: 400
            }
        }

        /// What was wrong, in words (for the error message after "malformed HTTP/1.1 request: ").
        package var words: String {
            switch self {
            case .headTooLarge: "headers too large"
            case .requestTargetTooLong: "request target too long"
            case .tooManyFields: "too many header fields"
            case .invalidMethod: "invalid method"
            case .invalidTarget: "invalid request target"
            case .invalidVersion: "invalid HTTP version"
            case .unsupportedVersion:
                "the request line's version is not HTTP/1.1 or HTTP/1.0; HTTP/2 starts with its connection preface"
                    + " (prior knowledge) or is negotiated with TLS ALPN"
            case .lineEnding: "a line must end with CRLF"
            case .requestLineBareLF: "the request line ends with a bare LF; it must end with CRLF (RFC 9112 §2.2)"
            case .invalidFieldName: "invalid header field"
            case .invalidFieldValue: "invalid characters"
            case .obsoleteLineFolding: "obsolete line folding"
            case .invalidContentLength: "invalid Content-Length"
            case .duplicateContentLength: "more than one Content-Length"
            case .contentLengthWithTransferEncoding: "both Content-Length and Transfer-Encoding"
            case .chunkedNotFinal: "Transfer-Encoding does not end with a single chunked coding"
            case .unsupportedTransferCoding: "a transfer coding other than chunked"
            case .invalidChunkSize: "invalid chunk size"
            case .invalidChunkExtension: "invalid chunk extension"
            case .chunkLineTooLong: "chunk line too long"
            case .invalidChunkEnd: "a chunk's data must end with CRLF"
            case .trailerTooLarge: "trailer section too large"
            case .invalidTrailer: "invalid trailer field"
            }
        }
    }

    private enum State: Sendable {
        /// Reading a head.
        case head
        /// Reading the body (`body`), then the next head.
        case body
        case failed
    }

    package let limits: Limits
    private var state = State.head
    /// The body being read while `state` is `.body`.
    private var body = HTTP1BodyDecoder(.fixed(remaining: 0))
    /// Where the head being read ends, resumed across reads.
    private var scanner = HTTP1HeadScanner()

    /// The request line of a head the decoder failed on after that line was whole (a bad field line, a head
    /// over the limit): its method and request-target, for the access line of the refusal (review 10, finding
    /// 10). nil until a failure, and when the failure was in the request line itself or in a body.
    package private(set) var failedRequestLine: (method: String, target: String)?

    package init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// True between requests (no byte of the next one consumed): the connection may close here cleanly.
    package var isBetweenRequests: Bool {
        if case .head = state { return true }
        return false
    }

    /// The next part from `buffer` (consumed from it), or `.needMoreBytes`.
    package mutating func next(_ buffer: inout ByteBuffer) throws(Failure) -> Part {
        do {
            return try step(&buffer)
        } catch {
            if case .head = state { failedRequestLine = Self.requestLine(in: buffer) }
            state = .failed
            throw error
        }
    }

    /// The method and request-target of the whole, valid request line at the start of `buffer`'s readable bytes
    /// (after empty lines, as ``readHead(_:)`` skips them); nil when there is none. Off the hot path: failures,
    /// and a head still incomplete when the request-header timeout ends it (its 408's access line).
    package static func requestLine(in buffer: ByteBuffer) -> (method: String, target: String)? {
        buffer.withUnsafeReadableBytes { bytes -> (method: String, target: String)? in
            var start = 0
            while start + 1 < bytes.count, bytes[start] == UInt8(ascii: "\r"), bytes[start + 1] == UInt8(ascii: "\n") {
                start += 2
            }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
            guard let line = try? HeadParser.requestLine(rest) else { return nil }
            return (
                String(decoding: rest[line.method], as: UTF8.self), String(decoding: rest[line.target], as: UTF8.self)
            )
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(Failure) -> Part {
        switch state {
        case .head:
            guard let head = try readHead(&buffer) else { return .needMoreBytes }
            switch head.framing {
            case .none: body = HTTP1BodyDecoder(.fixed(remaining: 0))
            case .contentLength(let length): body = HTTP1BodyDecoder(.fixed(remaining: length))
            case .chunked: body = HTTP1BodyDecoder(.chunkSize)
            }
            state = .body
            return .head(head)
        case .body:
            switch try body.next(&buffer, limits: limits) {
            case nil: return .needMoreBytes
            case .body(let bytes): return .body(bytes)
            case .end:
                state = .head
                return .end
            }
        case .failed:
            preconditionFailure("HTTP1RequestDecoder used after it failed")
        }
    }

    // MARK: Head

    /// The head, once its blank line has arrived, consumed from `buffer`; its lines are checked as soon as
    /// each is complete, so a malformed request is refused without waiting for the rest.
    private mutating func readHead(_ buffer: inout ByteBuffer) throws(Failure) -> HTTP1RequestHead? {
        // Empty lines before the request-line (§2.2): dropped.
        while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
            scanner.reset()
        }
        switch buffer.readableBytesView.first {
        case UInt8(ascii: "\r"):
            // An empty line's CR, its LF not read yet (a CR followed by anything else is not a line end).
            if buffer.readableBytes == 1 { return nil }
            throw .lineEnding
        case UInt8(ascii: "\n"):
            throw .lineEnding
        default:
            break
        }
        guard let end = try scanner.headLength(buffer, startLine: .request, maxHeadBytes: limits.maxHeadBytes) else {
            return nil
        }
        let layout = try buffer.withUnsafeReadableBytes { bytes throws(Failure) in
            try HeadParser.parse(UnsafeRawBufferPointer(rebasing: bytes[..<end]), limits: limits)
        }
        let bytes = buffer.readSlice(length: end)!
        return HTTP1RequestHead(bytes: bytes, layout: layout)
    }
}

// MARK: Character classes

/// `tchar` (RFC 9110 §5.6.2).
@inline(__always)
func isTokenCharacter(_ c: UInt8) -> Bool {
    HTTP1CharacterClass.contains(c, low: HTTP1CharacterClass.tokenLow, high: HTTP1CharacterClass.tokenHigh)
}

/// `field-vchar / SP / HTAB` with obs-text (RFC 9110 §5.5): anything but CTLs other than HTAB, and DEL.
@inline(__always)
func isFieldValueCharacter(_ c: UInt8) -> Bool {
    c == 0x09 || (c >= 0x20 && c != 0x7F)
}

/// Whether every byte of `bytes` is a field-value byte (``isFieldValueCharacter(_:)``, RFC 9110 §5.5), for values
/// checked whole before they are sent (the gateway's forwarded fields, `TriggerRequest.forEachForwardedField`).
///
/// Eight bytes at a time: a word with no byte below 0x20 and none equal to 0x7F is valid whole (both tests are
/// exact as a yes/no, "Bit Twiddling Hacks", `hasless` and `haszero`); only a word that has one, such as one
/// holding a HTAB, is looked at byte by byte. A byte at a time cost ~10 instructions a byte, ~850 per call for a
/// request id and a `traceparent` (bench/callgrind, branch hotpath).
package func isFieldValue(_ bytes: UnsafeRawBufferPointer) -> Bool {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highBits: UInt64 = 0x8080_8080_8080_8080
    var offset = 0
    while offset + 8 <= bytes.count {
        let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        let belowSpace = (word &- ones &* 0x20) & ~word & highBits
        let notDEL = word ^ (ones &* 0x7F)
        let isDEL = (notDEL &- ones) & ~notDEL & highBits
        if belowSpace | isDEL != 0 {
            for index in offset..<(offset + 8) where !isFieldValueCharacter(bytes[index]) { return false }
        }
        offset += 8
    }
    while offset < bytes.count {
        if !isFieldValueCharacter(bytes[offset]) { return false }
        offset += 1
    }
    return true
}

/// Whether all eight bytes of `word` are `field-vchar` (VCHAR / obs-text, RFC 9110 §5.5): none below 0x21 (CTLs,
/// HTAB and SP) and none equal to 0x7F (DEL); bytes 0x80 and up are obs-text. Both tests are exact as a yes/no
/// ("Bit Twiddling Hacks", `hasless(x, 0x21)` and `haszero(x ^ 0x7F…)`: a borrow can mark a byte above a
/// true match, never one in a word with none).
@inline(__always)
func isFieldVisibleWord(_ word: UInt64) -> Bool {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highBits: UInt64 = 0x8080_8080_8080_8080
    let belowVisible = (word &- ones &* 0x21) & ~word & highBits
    let notDEL = word ^ (ones &* 0x7F)
    let isDEL = (notDEL &- ones) & ~notDEL & highBits
    return belowVisible | isDEL == 0
}

/// A request-target byte: VCHAR but "#" (RFC 9112 §3.2 with RFC 3986's characters; no raw non-ASCII, space or
/// fragment: absolute-path, query, absolute-URI).
@inline(__always)
func isTargetCharacter(_ c: UInt8) -> Bool {
    HTTP1CharacterClass.contains(c, low: HTTP1CharacterClass.targetLow, high: HTTP1CharacterClass.targetHigh)
}

@inline(__always)
func isBlank(_ c: UInt8) -> Bool {
    c == UInt8(ascii: " ") || c == UInt8(ascii: "\t")
}

/// ASCII character classes as 128-bit sets of bytes, two integer literals each: bit `c` of `low` (c < 64) or bit
/// `c - 64` of `high` (64 ≤ c < 128) is set when byte `c` is in the class; no byte ≥ 0x80 is.
///
/// Why literals and not a table built from `HTTPToken.isTChar`: a global array is initialised lazily, so every
/// read of it in a scanning loop went through `swift_once` (~1.5 k instructions per REST call, bench/README
/// "Branch restalloc"); integer constants fold into the loop. `HTTPToken.isTChar` stays the one definition of
/// `tchar`: `HTTP1RequestDecoderTests.characterClassesMatchTheirDefinitions` checks these bits against it for every byte.
enum HTTP1CharacterClass {
    /// `tchar`: ALPHA, DIGIT and ``!#$%&'*+-.^_`|~`` (RFC 9110 §5.6.2).
    static let tokenLow: UInt64 = 0x03FF_6CFA_0000_0000
    static let tokenHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE
    /// 0x21...0x7E but 0x23 ("#").
    static let targetLow: UInt64 = 0xFFFF_FFF6_0000_0000
    static let targetHigh: UInt64 = 0x7FFF_FFFF_FFFF_FFFF

    @inline(__always)
    static func contains(_ c: UInt8, low: UInt64, high: UInt64) -> Bool {
        if c < 64 { return (low &>> UInt64(c)) & 1 != 0 }
        if c < 128 { return (high &>> UInt64(c &- 64)) & 1 != 0 }
        return false
    }
}

// MARK: Head parsing

/// Where the parts of a head are, in its bytes.
struct HTTP1HeadLayout: Sendable {
    var method: Range<Int>
    var target: Range<Int>
    var minorVersion: Int
    /// Each field line's name and value (the value without the whitespace around it).
    var fields: [(name: Range<Int>, value: Range<Int>)]
    var framing: HTTP1RequestHead.Framing
    var keepAlive: Bool
}

/// The head's lines checked in one pass over its bytes (request-line, field lines, blank line).
enum HeadParser {
    /// The layout of a complete head.
    static func parse(
        _ bytes: UnsafeRawBufferPointer, limits: HTTP1RequestDecoder.Limits
    ) throws(HTTP1RequestDecoder.Failure) -> HTTP1HeadLayout {
        guard let line = try requestLine(bytes) else { throw .lineEnding }  // unreachable: the head is whole
        let fields = try fieldLines(bytes, from: line.end, maxFieldCount: limits.maxFieldCount)
        let (framing, keepAlive) = try framingAndPersistence(bytes, fields: fields, minorVersion: line.minorVersion)
        return HTTP1HeadLayout(
            method: line.method, target: line.target, minorVersion: line.minorVersion, fields: fields,
            framing: framing, keepAlive: keepAlive)
    }

    /// The field lines of a complete head from `start` (after its start line) to its blank line, which must end
    /// `bytes`.
    static func fieldLines(
        _ bytes: UnsafeRawBufferPointer, from start: Int, maxFieldCount: Int
    ) throws(HTTP1RequestDecoder.Failure) -> [(name: Range<Int>, value: Range<Int>)] {
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        fields.reserveCapacity(16)
        var i = start
        while let next = try fieldLine(bytes, at: i) {
            guard let field = next.field else {
                guard next.end == bytes.count else { throw .lineEnding }
                return fields
            }
            guard fields.count < maxFieldCount else { throw .tooManyFields }
            fields.append(field)
            i = next.end
        }
        throw .lineEnding  // unreachable: the head ends with a blank line
    }

    /// The first line of a head: a request's request-line or a response's status-line.
    enum StartLine: Sendable {
        case request
        case status
    }

    /// Checks the lines of an incomplete head from `resume` (0: the start line; else the start of a field
    /// line after lines already checked), and the start of the line not yet complete; moves `resume` past the
    /// complete lines. Each byte is checked about once however the head is split across reads.
    static func check(
        _ bytes: UnsafeRawBufferPointer, startLine: StartLine, resume: inout Int
    ) throws(HTTP1RequestDecoder.Failure) {
        if resume == 0 {
            switch startLine {
            case .request:
                guard let line = try requestLine(bytes) else { return }
                resume = line.end
            case .status:
                guard let line = try statusLine(bytes) else { return }
                resume = line.end
            }
        }
        while let next = try fieldLine(bytes, at: resume) {
            resume = next.end
        }
    }

    /// `method SP request-target SP HTTP-version CRLF` (RFC 9112 §3): nil when the bytes end before its CRLF
    /// with nothing wrong so far.
    static func requestLine(
        _ bytes: UnsafeRawBufferPointer
    ) throws(HTTP1RequestDecoder.Failure) -> (method: Range<Int>, target: Range<Int>, minorVersion: Int, end: Int)? {
        let count = bytes.count
        var i = 0
        let methodStart = i
        while i < count, isTokenCharacter(bytes[i]) { i += 1 }
        if i == count { return nil }
        guard i > methodStart, bytes[i] == UInt8(ascii: " ") else { throw .invalidMethod }
        let method = methodStart..<i
        i += 1
        let targetStart = i
        while i < count, isTargetCharacter(bytes[i]) { i += 1 }
        if i == count { return nil }
        guard i > targetStart, bytes[i] == UInt8(ascii: " ") else { throw .invalidTarget }
        let target = targetStart..<i
        i += 1
        guard let minor = try httpVersion(bytes, at: &i) else { return nil }
        if i == count { return nil }
        if bytes[i] == UInt8(ascii: "\n") { throw .requestLineBareLF }
        guard bytes[i] == UInt8(ascii: "\r") else { throw .invalidVersion }
        i += 1
        if i == count { return nil }
        guard bytes[i] == UInt8(ascii: "\n") else { throw .lineEnding }
        i += 1
        try checkTargetForm(bytes, method: method, target: target)
        return (method, target, minor, i)
    }

    /// `HTTP/1.1` or `HTTP/1.0` at `i` (RFC 9112 §2.3), moving `i` past it: its minor version, or nil when the
    /// bytes end first with nothing wrong so far. Request and status lines alike. A well-formed `HTTP/x.y` of a
    /// major version from 2 up throws `unsupportedVersion` (505, as nginx answers it); anything else, `HTTP/1.2`
    /// included, `invalidVersion` (400). RFC 9110 §6.2 would have `HTTP/1.2` read as 1.1; llhttp's strict mode,
    /// the differential fuzzers' reference, refuses it, and this decoder stays at least as strict.
    static func httpVersion(
        _ bytes: UnsafeRawBufferPointer, at i: inout Int
    ) throws(HTTP1RequestDecoder.Failure) -> Int? {
        let count = bytes.count
        for expected in "HTTP/".utf8 {
            if i == count { return nil }
            guard bytes[i] == expected else { throw .invalidVersion }
            i += 1
        }
        if i == count { return nil }
        let major = bytes[i] &- UInt8(ascii: "0")
        guard major < 10 else { throw .invalidVersion }
        i += 1
        if i == count { return nil }
        guard bytes[i] == UInt8(ascii: ".") else { throw .invalidVersion }
        i += 1
        if i == count { return nil }
        let minor = bytes[i] &- UInt8(ascii: "0")
        guard minor < 10 else { throw .invalidVersion }
        i += 1
        guard major == 1 else { throw major == 0 ? .invalidVersion : .unsupportedVersion }
        guard minor < 2 else { throw .invalidVersion }
        return Int(minor)
    }

    /// The field line (or the blank line ending the head: `field` nil) at `start`: nil when the bytes end
    /// before its CRLF with nothing wrong so far. The value is without the whitespace around it (§5.1).
    static func fieldLine(
        _ bytes: UnsafeRawBufferPointer, at start: Int
    ) throws(HTTP1RequestDecoder.Failure) -> (field: (name: Range<Int>, value: Range<Int>)?, end: Int)? {
        let count = bytes.count
        var i = start
        if i == count { return nil }
        if bytes[i] == UInt8(ascii: "\r") {
            i += 1
            if i == count { return nil }
            guard bytes[i] == UInt8(ascii: "\n") else { throw .lineEnding }
            return (nil, i + 1)
        }
        // A line starting with whitespace continues the previous one: obs-fold (§5.2), refused. (Before the
        // first field line it is whitespace after the request-line, refused as well.)
        if isBlank(bytes[i]) { throw .obsoleteLineFolding }
        let nameStart = i
        while i < count, isTokenCharacter(bytes[i]) { i += 1 }
        if i == count { return nil }
        // No whitespace between the name and the colon (§5.1).
        guard i > nameStart, bytes[i] == UInt8(ascii: ":") else { throw .invalidFieldName }
        let name = nameStart..<i
        i += 1
        while i < count, isBlank(bytes[i]) { i += 1 }
        let valueStart = i
        var valueEnd = i
        valueBytes: while i < count {
            // Eight bytes at a time while they are all `field-vchar` (a word with no byte below 0x21 and none
            // equal to 0x7F, ``isFieldVisibleWord(_:)``): each is value and the last ends it so far. A word with
            // a space, a HTAB or the line's CR is taken byte by byte. A byte at a time cost ~10 instructions a
            // byte, ~2.5 k per REST call (bench/README.md, "Branch hotpath4").
            if i + 8 <= count {
                if isFieldVisibleWord(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) {
                    i += 8
                    valueEnd = i
                    continue
                }
                for _ in 0..<8 {
                    let c = bytes[i]
                    guard isFieldValueCharacter(c) else { break valueBytes }
                    if !isBlank(c) { valueEnd = i + 1 }
                    i += 1
                }
                continue
            }
            let c = bytes[i]
            guard isFieldValueCharacter(c) else { break }
            if !isBlank(c) { valueEnd = i + 1 }
            i += 1
        }
        if i == count { return nil }
        guard bytes[i] == UInt8(ascii: "\r") else {
            throw bytes[i] == UInt8(ascii: "\n") ? .lineEnding : .invalidFieldValue
        }
        i += 1
        if i == count { return nil }
        guard bytes[i] == UInt8(ascii: "\n") else { throw .lineEnding }
        return ((name, valueStart..<valueEnd), i + 1)
    }

    /// RFC 9112 §3.2: origin-form (`/…`), absolute-form (`scheme://…`), authority-form for CONNECT, asterisk-form
    /// for OPTIONS.
    private static func checkTargetForm(
        _ bytes: UnsafeRawBufferPointer, method: Range<Int>, target: Range<Int>
    ) throws(HTTP1RequestDecoder.Failure) {
        let first = bytes[target.lowerBound]
        if first == UInt8(ascii: "/") { return }
        if equals(bytes, method, "CONNECT") {
            // authority-form = uri-host ":" port
            guard let colon = (target.lowerBound..<target.upperBound).last(where: { bytes[$0] == UInt8(ascii: ":") }),
                colon > target.lowerBound, colon + 1 < target.upperBound,
                (colon + 1..<target.upperBound).allSatisfy({ (0x30...0x39).contains(bytes[$0]) }),
                !(target.lowerBound..<colon).contains(where: { "/?#@".utf8.contains(bytes[$0]) })
            else { throw .invalidTarget }
            return
        }
        if target.count == 1, first == UInt8(ascii: "*") {
            guard equals(bytes, method, "OPTIONS") else { throw .invalidTarget }
            return
        }
        // absolute-form: scheme ":" then "//" authority.
        var i = target.lowerBound
        guard isLetter(bytes[i]) else { throw .invalidTarget }
        // Letters only, as llhttp (RFC 3986 also allows digits, "+", "-", "."): the schemes an HTTP server
        // is sent (http, https) have none.
        while i < target.upperBound, isLetter(bytes[i]) { i += 1 }
        guard target.upperBound - i >= 3, bytes[i] == UInt8(ascii: ":"), bytes[i + 1] == UInt8(ascii: "/"),
            bytes[i + 2] == UInt8(ascii: "/")
        else { throw .invalidTarget }
        // authority = [ userinfo "@" ] host [ ":" port ] (RFC 3986 §3.2), up to the path, query or fragment.
        i += 3
        var end = i
        while end < target.upperBound, !"/?#".utf8.contains(bytes[end]) { end += 1 }
        guard isAuthority(bytes, i..<end) else { throw .invalidTarget }
    }

    /// RFC 3986 §3.2: userinfo of unreserved, pct-encoded, sub-delims and ":"; a host that is an IP literal
    /// in brackets or a reg-name (unreserved, pct-encoded, sub-delims); a port of digits.
    private static func isAuthority(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        func isRegular(_ c: UInt8) -> Bool {
            isLetter(c) || (0x30...0x39).contains(c) || "-._~%!$&'()*+,;=".utf8.contains(c)
        }
        var i = range.lowerBound
        if let at = range.last(where: { bytes[$0] == UInt8(ascii: "@") }) {
            guard (i..<at).allSatisfy({ isRegular(bytes[$0]) || bytes[$0] == UInt8(ascii: ":") }) else { return false }
            i = at + 1
        }
        if i < range.upperBound, bytes[i] == UInt8(ascii: "[") {
            guard let close = (i..<range.upperBound).first(where: { bytes[$0] == UInt8(ascii: "]") }), close > i + 1,
                (i + 1..<close).allSatisfy({ isRegular(bytes[$0]) || bytes[$0] == UInt8(ascii: ":") })
            else { return false }
            i = close + 1
        } else {
            while i < range.upperBound, isRegular(bytes[i]) { i += 1 }
        }
        if i == range.upperBound { return true }
        guard bytes[i] == UInt8(ascii: ":") else { return false }
        return (i + 1..<range.upperBound).allSatisfy { (0x30...0x39).contains(bytes[$0]) }
    }

    private static func isLetter(_ c: UInt8) -> Bool {
        (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z")
    }

    /// What a head's framing and connection fields say (RFC 9112 §6.1, §6.3, §9.3), each checked: the
    /// request and the response decoders each apply their own rules to it.
    struct FramingFields {
        var contentLength: Int? = nil
        var transferEncoding = false
        /// The last transfer coding is `chunked`.
        var chunkedFinal = false
        var chunkedCount = 0
        /// A transfer coding other than `chunked`.
        var otherCoding = false
        /// `Connection: close`.
        var close = false
        /// `Connection: keep-alive`.
        var keepAlive = false

        /// Persistence (§9.3): HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive`.
        func persistent(minorVersion: Int) -> Bool {
            !close && (minorVersion >= 1 || keepAlive)
        }

        /// With Transfer-Encoding: no Content-Length too (§6.3 item 3 allows processing after removing it, but
        /// a recipient "ought to" treat it as an error: the smuggling vector), and the codings exactly one final
        /// `chunked` (§6.3 item 4, §7: applied once) and nothing else (§6.1: no other coding is implemented).
        func checkChunkedOnly() throws(HTTP1RequestDecoder.Failure) {
            if contentLength != nil { throw .contentLengthWithTransferEncoding }
            guard chunkedFinal, chunkedCount == 1 else { throw .chunkedNotFinal }
            if otherCoding { throw .unsupportedTransferCoding }
        }
    }

    /// The framing and connection fields among `fields`. Content-Length is `1*DIGIT`, at most 18 digits (no
    /// overflow). A second Content-Length (another line or a list) is refused, unless `identicalContentLengths`
    /// (a response: §6.3 item 5 lets a recipient accept a list of identical values), when only differing values
    /// are.
    static func framingFields(
        _ bytes: UnsafeRawBufferPointer, fields: [(name: Range<Int>, value: Range<Int>)],
        identicalContentLengths: Bool = false
    ) throws(HTTP1RequestDecoder.Failure) -> FramingFields {
        var found = FramingFields()
        for field in fields {
            let name = field.name
            switch name.count {
            case 14 where equalsIgnoringCase(bytes, name, "content-length"):
                if identicalContentLengths {
                    var any = false
                    try forEachElement(bytes, field.value) { (element) throws(HTTP1RequestDecoder.Failure) in
                        let length = try contentLength(bytes, element)
                        guard found.contentLength == nil || found.contentLength == length else {
                            throw .duplicateContentLength
                        }
                        found.contentLength = length
                        any = true
                    }
                    guard any else { throw .invalidContentLength }
                } else {
                    guard found.contentLength == nil else { throw .duplicateContentLength }
                    found.contentLength = try contentLength(bytes, field.value)
                }
            case 17 where equalsIgnoringCase(bytes, name, "transfer-encoding"):
                found.transferEncoding = true
                // A list of codings (§6.1, RFC 9110 §5.6.1: empty elements ignored), possibly over several lines.
                forEachElement(bytes, field.value) { coding in
                    if found.chunkedFinal { found.chunkedFinal = false }
                    let token = coding.lowerBound..<(coding.lowerBound + tokenLength(bytes, coding))
                    if token.count == 7 && equalsIgnoringCase(bytes, token, "chunked") && token == coding {
                        found.chunkedCount += 1
                        found.chunkedFinal = true
                    } else {
                        found.otherCoding = true
                    }
                }
            case 10 where equalsIgnoringCase(bytes, name, "connection"):
                forEachElement(bytes, field.value) { option in
                    if equalsIgnoringCase(bytes, option, "close") { found.close = true }
                    if equalsIgnoringCase(bytes, option, "keep-alive") { found.keepAlive = true }
                }
            default:
                break
            }
        }
        return found
    }

    /// `1*DIGIT`, at most 18 digits (below 2^63: no overflow, far past any body limit).
    private static func contentLength(
        _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>
    ) throws(HTTP1RequestDecoder.Failure) -> Int {
        guard value.count > 0, value.count <= 18 else { throw .invalidContentLength }
        var length = 0
        for i in value {
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10 else { throw .invalidContentLength }
            length = length * 10 + Int(digit)
        }
        return length
    }

    /// RFC 9112 §6.1, §6.3 and §9.3 over a request's field lines.
    private static func framingAndPersistence(
        _ bytes: UnsafeRawBufferPointer, fields: [(name: Range<Int>, value: Range<Int>)], minorVersion: Int
    ) throws(HTTP1RequestDecoder.Failure) -> (HTTP1RequestHead.Framing, Bool) {
        let found = try framingFields(bytes, fields: fields)
        let persistent = found.persistent(minorVersion: minorVersion)
        if found.transferEncoding {
            try found.checkChunkedOnly()
            return (.chunked, persistent && minorVersion >= 1)
        }
        if let contentLength = found.contentLength { return (.contentLength(contentLength), persistent) }
        return (.none, persistent)
    }

    /// Calls `body` with each comma-separated element of a list value (RFC 9110 §5.6.1), in order, each without
    /// the whitespace around it; empty ones skipped. A call per element, not an array of them: every head has a
    /// list field to read (`Connection`, a response's `Content-Length`), and the array was an allocation per
    /// head (issue 11).
    static func forEachElement<Failure: Error>(
        _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>, _ body: (Range<Int>) throws(Failure) -> Void
    ) throws(Failure) {
        var start = value.lowerBound
        var i = value.lowerBound
        while i <= value.upperBound {
            if i == value.upperBound || bytes[i] == UInt8(ascii: ",") {
                var a = start
                var b = i
                while a < b, isBlank(bytes[a]) { a += 1 }
                while b > a, isBlank(bytes[b - 1]) { b -= 1 }
                if a < b { try body(a..<b) }
                start = i + 1
            }
            i += 1
        }
    }

    static func tokenLength(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int {
        var n = 0
        while range.lowerBound + n < range.upperBound, isTokenCharacter(bytes[range.lowerBound + n]) { n += 1 }
        return n
    }

    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        let t = text.utf8Start
        for k in 0..<range.count where bytes[range.lowerBound + k] != t[k] { return false }
        return true
    }

    /// The value of the first of `fields` (ranges in `bytes`' readable bytes) named `name` (lowercase; matched
    /// ignoring ASCII case), or nil.
    static func first(
        name: StaticString, in bytes: ByteBuffer, fields: [(name: Range<Int>, value: Range<Int>)]
    ) -> String? {
        let index: Int? = bytes.withUnsafeReadableBytes { raw in
            fields.firstIndex { equalsIgnoringCase(raw, $0.name, name) }
        }
        guard let index else { return nil }
        let value = fields[index].value
        return bytes.getString(at: bytes.readerIndex + value.lowerBound, length: value.count) ?? ""
    }

    /// ASCII case-insensitive comparison with a lowercase `text`.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString)
        -> Bool
    {
        guard range.count == text.utf8CodeUnitCount else { return false }
        let t = text.utf8Start
        for k in 0..<range.count {
            var c = bytes[range.lowerBound + k]
            if c &- UInt8(ascii: "A") < 26 { c |= 0x20 }
            if c != t[k] { return false }
        }
        return true
    }
}

/// A request head as read: its bytes (request-line to the blank line) and where each part is. Strings are
/// made only for what a caller asks for.
package struct HTTP1RequestHead: Sendable {
    /// How the body is delimited (RFC 9112 §6.3).
    package enum Framing: Sendable, Hashable {
        case none
        case contentLength(Int)
        case chunked

        /// Whether the head declares a body (RFC 9112 §6.3: `content-length`, even 0, or chunked). Asked in the
        /// module that owns the enum: `framing != .none` elsewhere went through Equatable's witness (issue 11).
        package var declaresBody: Bool {
            if case .none = self { false } else { true }
        }
    }

    /// The head's bytes, with any empty lines before the request-line dropped.
    package let bytes: ByteBuffer
    let layout: HTTP1HeadLayout

    init(bytes: ByteBuffer, layout: HTTP1HeadLayout) {
        self.bytes = bytes
        self.layout = layout
    }

    /// The method; a common one is a string literal (``HTTP1CommonFields/method(_:)``), never made or counted.
    package var method: String {
        bytes.withUnsafeReadableBytes { HTTP1CommonFields.method(UnsafeRawBufferPointer(rebasing: $0[layout.method])) }
            ?? string(layout.method)
    }
    package var target: String { string(layout.target) }
    /// 1 (HTTP/1.1) or 0 (HTTP/1.0).
    package var minorVersion: Int { layout.minorVersion }
    package var framing: Framing { layout.framing }
    /// Whether the connection persists after this request (RFC 9112 §9.3).
    package var keepAlive: Bool { layout.keepAlive }
    package var fieldCount: Int { layout.fields.count }

    /// The method equals `text` (case-sensitive, RFC 9110 §9.1).
    package func methodIs(_ text: StaticString) -> Bool {
        bytes.withUnsafeReadableBytes { HeadParser.equals($0, layout.method, text) }
    }

    /// Each field as strings, in order, the name as sent.
    package var fields: [(name: String, value: String)] {
        layout.fields.map { (string($0.name), string($0.value)) }
    }

    /// ``fields`` in the shape NIO's `HTTPHeaders` takes: one array, not relabelled into a second one.
    package var fieldPairs: [(String, String)] {
        layout.fields.map { (string($0.name), string($0.value)) }
    }

    /// Each field as strings, in order, the name in lowercase (RFC 9110 §5.1: names are case-insensitive):
    /// what a server that matches names by equality wants, made from the bytes in one pass per field (no
    /// second string for a name sent in capitals, as `String.lowercased()` would make). Common names and values
    /// are string literals (``HTTP1CommonFields``): neither made nor validated, and never reference counted.
    package var lowercasedFields: [(name: String, value: String)] {
        bytes.withUnsafeReadableBytes { raw in
            layout.fields.map { field in
                let nameBytes = UnsafeRawBufferPointer(rebasing: raw[field.name])
                let name =
                    HTTP1CommonFields.name(nameBytes)
                    ?? String(unsafeUninitializedCapacity: nameBytes.count) { out in
                        for k in 0..<nameBytes.count {
                            let c = nameBytes[k]
                            out[k] = c &- UInt8(ascii: "A") < 26 ? c | 0x20 : c
                        }
                        return nameBytes.count
                    }
                let valueBytes = UnsafeRawBufferPointer(rebasing: raw[field.value])
                let value = HTTP1CommonFields.value(valueBytes) ?? String(decoding: valueBytes, as: UTF8.self)
                return (name, value)
            }
        }
    }

    /// The value of the first field named `name` (given in lowercase; matched ignoring ASCII case), or nil.
    package func first(name: StaticString) -> String? {
        HeadParser.first(name: name, in: bytes, fields: layout.fields)
    }

    /// The values of every field named `name` (lowercase; matched ignoring ASCII case).
    package func values(name: StaticString) -> [String] {
        let ranges: [Range<Int>] = bytes.withUnsafeReadableBytes { raw in
            layout.fields.filter { HeadParser.equalsIgnoringCase(raw, $0.name, name) }.map(\.value)
        }
        return ranges.map(string)
    }

    private func string(_ range: Range<Int>) -> String {
        bytes.getString(at: bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }
}

extension HTTP1RequestDecoder {
    /// Feeds `pieces` as one connection's reads: each appended to one cumulation buffer, parts taken until the
    /// decoder needs more, read bytes then dropped and the rest kept. Each part goes to `onPart` (never
    /// `.needMoreBytes`), which returns false to stop there. Returns the bytes left unread after the last piece, or nil when `onPart` stopped; a
    /// decoder failure is thrown as it is. What the differential fuzzer and the decoder's tests drive it with.
    package mutating func feed(
        reads pieces: [[UInt8]], _ onPart: (Part) -> Bool
    ) throws(Failure) -> Int? {
        var buffer = ByteBuffer()
        for piece in pieces {
            buffer.writeBytes(piece)
            while true {
                let part = try next(&buffer)
                if case .needMoreBytes = part { break }
                guard onPart(part) else { return nil }
            }
            buffer.discardReadBytes()
        }
        return buffer.readableBytes
    }
}
