package import NIOCore

/// An HTTP/1.1 response decoder (RFC 9112) over a backend connection's bytes: what the http transport reads
/// from runners. Heads are kept as one `ByteBuffer` plus byte ranges (a `String` only for a value asked for),
/// bodies handed on as slices of the bytes read. The field lines, framing fields and chunked bodies are checked
/// by the same code as the frontend's ``HTTP1RequestDecoder`` (`HeadParser`, `HTTP1BodyDecoder`).
///
/// Why our own code rather than NIO's `HTTPResponseDecoder` (llhttp): on a REST call through an http runner
/// that codec cost ~2 300 instructions in dynamic casts of the `NIOAny`-wrapped parts, ~5 000 in
/// generic-metadata lookups, plus llhttp and a `String` per header name and value, out of ~191 000 per call
/// (callgrind of main at df0584d, issue 11); see bench/README.md, "Branch h1client", for the figures after.
///
/// Framing (RFC 9112 §6.3), strict because the backend is trusted no more than a client:
/// - status-line `HTTP/1.1` or `HTTP/1.0`, SP, three digits 100–599 (RFC 9110 §15), then SP and a reason
///   phrase (`HTAB / SP / VCHAR / obs-text`, ignored) or, as many servers send it, nothing before the CRLF;
/// - interim responses (1xx but 101) are read and dropped (§6.3 item 1; RFC 9110 §15.2: a client MUST be able
///   to parse one or more before the final response); 101 is refused (we ask for no upgrade);
/// - 1xx, 204, 304 and a response to HEAD have no body whatever their fields say (§6.3 item 1), though the
///   fields are still checked;
/// - Transfer-Encoding and Content-Length together: refused (§6.3 item 3 lets a recipient let
///   Transfer-Encoding win; a response that frames itself twice is refused instead, as a request is);
///   Transfer-Encoding must be a single final `chunked` (another coding is not one we decode);
/// - Content-Length `1*DIGIT` (at most 18 digits, no overflow); repeated (a list or several lines) only with
///   identical values (§6.3 item 5);
/// - with neither, the body ends when the connection closes (§6.3 item 8): ``finish(_:)`` ends it.
///
/// Keep-alive (§9.3): HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`; a
/// close-delimited body, or HTTP/1.0 with Transfer-Encoding (§6.1), never.
///
/// Use: append the bytes read to one buffer and call ``next(_:)`` until it returns `.needMoreBytes`; at the connection's
/// close call ``finish(_:)``. After an error the connection's bytes can no longer be trusted: the caller closes
/// it and must not call ``next(_:)`` again.
package struct HTTP1ResponseDecoder: Sendable {
    /// The head and chunk limits are the frontend decoder's (`maxHeadBytes`, `maxFieldCount`,
    /// `maxChunkLineBytes`, `maxTrailerBytes`); the body's bound is the caller's (`maxResponseBytes`).
    package typealias Limits = HTTP1RequestDecoder.Limits

    /// What the decoder read next.
    ///
    /// "Need more bytes" is a case, not `Part?`: an Optional of this enum (a head's buffer and field ranges)
    /// was copied and destroyed through the runtime's generic Optional witnesses in the backend handler's read
    /// loop, ~640 instructions per REST call (bench/README.md, branch hotpath8), as the request decoder's was
    /// (branch hotpath6).
    package enum Part: Sendable {
        /// A final response's head (interim 1xx heads are dropped).
        case head(HTTP1ResponseHead)
        /// Body bytes, a slice of the bytes read (no copy).
        case body(ByteBuffer)
        /// The response is complete.
        case end
        /// The bytes given make no part yet (none left, or a head or chunk line begun): read more and call
        /// again.
        case needMoreBytes
    }

    /// Why a response was refused.
    package enum Failure: Error, Sendable, Hashable {
        /// Not `HTTP/1.x SSS reason CRLF`.
        case invalidStatusLine
        /// 101 Switching Protocols: the gateway asks for no upgrade.
        case switchingProtocols
        /// The connection closed inside a response (a head, a body shorter than its `Content-Length`, a
        /// chunked body without its last chunk).
        case closedMidResponse
        /// A field line, framing field, chunk or trailer the message rules refuse (shared with the request
        /// decoder, whose failures name them).
        case malformed(HTTP1RequestDecoder.Failure)

        /// What was wrong, in words.
        package var words: String {
            switch self {
            case .invalidStatusLine: "invalid status line"
            case .switchingProtocols: "an unrequested 101 Switching Protocols"
            case .closedMidResponse: "the connection closed mid-response"
            case .malformed(let failure): failure.words
            }
        }
    }

    private enum State: Sendable {
        case head
        case body
        case failed
    }

    package let limits: Limits
    private var state = State.head
    private var body = HTTP1BodyDecoder(.fixed(remaining: 0))
    private var scanner = HTTP1HeadScanner()
    /// The next response answers a HEAD request: it has no body (§6.3 item 1). Set by the caller per request.
    package var respondsToHEAD = false
    /// An interim response was read and the final one has not begun: a close now is mid-response.
    private var awaitingFinal = false

    package init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// True between responses, when no byte of the next one was consumed.
    package var isBetweenResponses: Bool {
        if case .head = state { return !awaitingFinal }
        return false
    }

    /// The next part from `buffer` (consumed from it), or `.needMoreBytes` when more bytes are needed.
    package mutating func next(_ buffer: inout ByteBuffer) throws(Failure) -> Part {
        do {
            return try step(&buffer)
        } catch {
            state = .failed
            throw error
        }
    }

    /// The connection closed with `buffer`'s bytes left unread: `.end` for a body that ends with the close; nil
    /// when it closed between responses with nothing of another begun; otherwise ``Failure/closedMidResponse``.
    package mutating func finish(_ buffer: inout ByteBuffer) throws(Failure) -> Part? {
        switch state {
        case .head where buffer.readableBytes == 0 && !awaitingFinal:
            return nil
        case .body where body.endsWithClose:
            // `next` handed every byte on already; what is left is nothing.
            state = .head
            return .end
        default:
            state = .failed
            throw .closedMidResponse
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(Failure) -> Part {
        switch state {
        case .head:
            while true {
                guard let head = try readHead(&buffer) else { return .needMoreBytes }
                // Interim responses (§6.3 item 1, RFC 9110 §15.2) carry nothing for us: read on.
                if head.status < 200 {
                    awaitingFinal = true
                    continue
                }
                awaitingFinal = false
                switch head.framing {
                case .none: body = HTTP1BodyDecoder(.fixed(remaining: 0))
                case .contentLength(let length): body = HTTP1BodyDecoder(.fixed(remaining: length))
                case .chunked: body = HTTP1BodyDecoder(.chunkSize)
                case .untilClose: body = HTTP1BodyDecoder(.untilClose)
                }
                state = .body
                return .head(head)
            }
        case .body:
            let part: HTTP1BodyDecoder.Part?
            do throws(HTTP1RequestDecoder.Failure) {
                part = try body.next(&buffer, limits: limits)
            } catch {
                throw .malformed(error)
            }
            switch part {
            case nil: return .needMoreBytes
            case .body(let bytes): return .body(bytes)
            case .end:
                state = .head
                return .end
            }
        case .failed:
            preconditionFailure("HTTP1ResponseDecoder used after it failed")
        }
    }

    /// The next head (interim or final), once its blank line has arrived, consumed from `buffer`.
    private mutating func readHead(_ buffer: inout ByteBuffer) throws(Failure) -> HTTP1ResponseHead? {
        let end: Int
        do throws(HTTP1RequestDecoder.Failure) {
            guard let length = try scanner.headLength(buffer, startLine: .status, maxHeadBytes: limits.maxHeadBytes)
            else { return nil }
            end = length
        } catch {
            throw Self.failure(error)
        }
        let layout = try buffer.withUnsafeReadableBytes { bytes throws(Failure) in
            try Self.parse(UnsafeRawBufferPointer(rebasing: bytes[..<end]), limits: limits, toHEAD: respondsToHEAD)
        }
        let bytes = buffer.readSlice(length: end)!
        return HTTP1ResponseHead(bytes: bytes, layout: layout)
    }

    /// A failure of the shared head rules as this decoder names it: the status-line's own (reported by
    /// `HeadParser.statusLine` as `invalidVersion`, or `unsupportedVersion` for `HTTP/2.0`) is `invalidStatusLine`.
    private static func failure(_ error: HTTP1RequestDecoder.Failure) -> Failure {
        error == .invalidVersion || error == .unsupportedVersion ? .invalidStatusLine : .malformed(error)
    }

    /// The layout of a complete head; `toHEAD`: it answers a HEAD request.
    private static func parse(
        _ bytes: UnsafeRawBufferPointer, limits: Limits, toHEAD: Bool
    ) throws(Failure) -> HTTP1ResponseHead.Layout {
        let line: (status: Int, minorVersion: Int, end: Int)
        do throws(HTTP1RequestDecoder.Failure) {
            // Never nil: the head is whole.
            guard let whole = try HeadParser.statusLine(bytes) else { throw .lineEnding }
            line = whole
        } catch {
            throw failure(error)
        }
        let fields: [(name: Range<Int>, value: Range<Int>)]
        do throws(HTTP1RequestDecoder.Failure) {
            fields = try HeadParser.fieldLines(bytes, from: line.end, maxFieldCount: limits.maxFieldCount)
        } catch {
            throw .malformed(error)
        }
        // After the field lines: a head read in pieces has had them checked as they came, so a malformed line in a
        // 101 is that failure whole or in pieces (found by `FUZZ_ONLY=h1resp`, 2026-12-06:
        // `FailCases/h1resp-101-malformed-field-line`).
        if line.status == 101 { throw .switchingProtocols }
        do throws(HTTP1RequestDecoder.Failure) {
            let found = try HeadParser.framingFields(bytes, fields: fields, identicalContentLengths: true)
            var keepAlive = found.persistent(minorVersion: line.minorVersion)
            let framing: HTTP1ResponseHead.Framing
            if found.transferEncoding { try found.checkChunkedOnly() }
            // §6.3 item 1: no body whatever the framing fields say (they are checked all the same).
            if line.status < 200 || line.status == 204 || line.status == 304 || toHEAD {
                framing = .none
            } else if found.transferEncoding {
                framing = .chunked
                // §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing; close after the message.
                keepAlive = keepAlive && line.minorVersion >= 1
            } else if let length = found.contentLength {
                framing = .contentLength(length)
            } else {
                framing = .untilClose
                keepAlive = false
            }
            return HTTP1ResponseHead.Layout(
                status: line.status, minorVersion: line.minorVersion, fields: fields, framing: framing,
                keepAlive: keepAlive)
        } catch {
            throw .malformed(error)
        }
    }
}

extension HeadParser {
    /// `HTTP-version SP status-code SP [ reason-phrase ] CRLF` (RFC 9112 §4), the version `HTTP/1.1` or
    /// `HTTP/1.0`, the status 100–599 (RFC 9110 §15), the reason `*( HTAB / SP / VCHAR / obs-text )`; the SP
    /// before an empty reason may be missing (servers omit it; RFC 9112 §4 tells a client to ignore the
    /// reason). Nil when the bytes end before its CRLF with nothing wrong so far; a malformed line throws
    /// `invalidVersion` (the response decoder's `invalidStatusLine`), a bare CR or LF `lineEnding`.
    static func statusLine(
        _ bytes: UnsafeRawBufferPointer
    ) throws(HTTP1RequestDecoder.Failure) -> (status: Int, minorVersion: Int, end: Int)? {
        let count = bytes.count
        var i = 0
        guard let minor = try httpVersion(bytes, at: &i) else { return nil }
        if i == count { return nil }
        guard bytes[i] == UInt8(ascii: " ") else { throw .invalidVersion }
        i += 1
        var status = 0
        for position in 0..<3 {
            if i == count { return nil }
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10, position > 0 || (1...5).contains(digit) else { throw .invalidVersion }
            status = status * 10 + Int(digit)
            i += 1
        }
        if i == count { return nil }
        if bytes[i] == UInt8(ascii: " ") {
            i += 1
            while i < count, isFieldValueCharacter(bytes[i]) { i += 1 }
            if i == count { return nil }
        }
        switch bytes[i] {
        case UInt8(ascii: "\r"): break
        case UInt8(ascii: "\n"): throw .lineEnding
        default: throw .invalidVersion
        }
        i += 1
        if i == count { return nil }
        guard bytes[i] == UInt8(ascii: "\n") else { throw .lineEnding }
        return (status, minor, i + 1)
    }
}

/// A response head as read: its bytes (status-line to the blank line) and where each field is. Strings are
/// made only for what a caller asks for.
package struct HTTP1ResponseHead: Sendable {
    /// How the body is delimited (RFC 9112 §6.3).
    package enum Framing: Sendable, Hashable {
        /// No body: an interim response, 204, 304 or the answer to HEAD (§6.3 item 1).
        case none
        case contentLength(Int)
        case chunked
        /// The body ends when the connection closes (§6.3 item 8).
        case untilClose
    }

    struct Layout: Sendable {
        var status: Int
        var minorVersion: Int
        var fields: [(name: Range<Int>, value: Range<Int>)]
        var framing: Framing
        var keepAlive: Bool
    }

    /// The head's bytes.
    package let bytes: ByteBuffer
    let layout: Layout

    init(bytes: ByteBuffer, layout: Layout) {
        self.bytes = bytes
        self.layout = layout
    }

    /// The status code, 100–599.
    package var status: Int { layout.status }
    /// 1 (HTTP/1.1) or 0 (HTTP/1.0).
    package var minorVersion: Int { layout.minorVersion }
    /// How the body is delimited.
    package var framing: Framing { layout.framing }
    /// Whether the connection persists after this response (RFC 9112 §9.3).
    package var keepAlive: Bool { layout.keepAlive }
    package var fieldCount: Int { layout.fields.count }

    /// The declared body length, when the response is framed by Content-Length.
    package var contentLength: Int? {
        if case .contentLength(let length) = layout.framing { return length }
        return nil
    }

    /// The value of the first field named `name` (given in lowercase; matched ignoring ASCII case), or nil.
    package func first(name: StaticString) -> String? {
        HeadParser.first(name: name, in: bytes, fields: layout.fields)
    }
}

extension HTTP1ResponseDecoder {
    /// Feeds `pieces` as one connection's reads: each appended to one cumulation buffer, parts taken until the
    /// decoder needs more, read bytes then dropped and the rest kept; then, when `closed`, the connection's
    /// close (``finish(_:)``). Each part goes to `onPart`. Returns the bytes left unread; a decoder failure is
    /// thrown as it is. What the decoder's tests and fuzz target drive it with.
    package mutating func feed(
        reads pieces: [[UInt8]], closed: Bool, _ onPart: (Part) -> Void
    ) throws(Failure) -> Int {
        var buffer = ByteBuffer()
        for piece in pieces {
            buffer.writeBytes(piece)
            while true {
                let part = try next(&buffer)
                if case .needMoreBytes = part { break }
                onPart(part)
            }
            buffer.discardReadBytes()
        }
        if closed, let part = try finish(&buffer) { onPart(part) }
        return buffer.readableBytes
    }
}
