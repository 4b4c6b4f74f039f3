import NIOCore

/// The body of an HTTP/1.1 message after its head (RFC 9112 §6, §7.1), shared by the request decoder (the
/// frontend) and the response decoder (http runners): a `Content-Length` body, a chunked one (chunk lines,
/// extensions and trailers checked by the same rules, see ``HTTP1RequestDecoder``), or, for a response only, one
/// that ends with the connection (§6.3 item 8). Body bytes are handed on as slices of the bytes read.
struct HTTP1BodyDecoder: Sendable {
    enum State: Sendable {
        /// `remaining` bytes of a Content-Length body (0: no body).
        case fixed(remaining: Int)
        /// Before a chunk-size line.
        case chunkSize
        /// `remaining` bytes of a chunk's data, then its CRLF.
        case chunkData(remaining: Int)
        case chunkDataEnd
        /// Trailer lines; `bytes` of them read so far.
        case trailers(bytes: Int)
        /// Every byte until the connection closes (a response without framing fields).
        case untilClose
    }

    enum Part: Sendable {
        case body(ByteBuffer)
        case end
    }

    private var state: State

    init(_ state: State) {
        self.state = state
    }

    /// True for a body that ends only with the connection: its end is the close, not a byte.
    var endsWithClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// The next body bytes or the body's end, consumed from `buffer`; nil when more bytes are needed. After
    /// `.end` the decoder is spent (the caller makes a new one for the next message).
    mutating func next(
        _ buffer: inout ByteBuffer, limits: HTTP1RequestDecoder.Limits
    ) throws(HTTP1RequestDecoder.Failure) -> Part? {
        switch state {
        case .fixed(let remaining):
            if remaining == 0 { return .end }
            guard buffer.readableBytes > 0 else { return nil }
            let take = min(remaining, buffer.readableBytes)
            state = .fixed(remaining: remaining - take)
            return .body(buffer.readSlice(length: take)!)
        case .chunkSize:
            guard let line = try Self.readLine(&buffer, limit: limits.maxChunkLineBytes, tooLong: .chunkLineTooLong)
            else { return nil }
            let size = try Self.chunkSize(line)
            state = size == 0 ? .trailers(bytes: 0) : .chunkData(remaining: size)
            return try next(&buffer, limits: limits)
        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let take = min(remaining, buffer.readableBytes)
            state = take == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - take)
            return .body(buffer.readSlice(length: take)!)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else {
                if buffer.readableBytes == 1, buffer.readableBytesView.first != UInt8(ascii: "\r") {
                    throw .invalidChunkEnd
                }
                return nil
            }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw .invalidChunkEnd }
            state = .chunkSize
            return try next(&buffer, limits: limits)
        case .trailers(let bytes):
            let room = limits.maxTrailerBytes - bytes
            guard let line = try Self.readLine(&buffer, limit: room, tooLong: .trailerTooLarge) else { return nil }
            if line.isEmpty {
                state = .fixed(remaining: 0)
                return .end
            }
            state = .trailers(bytes: bytes + line.count + 2)
            guard Self.isFieldLine(line), !Self.namesFraming(line) else { throw .invalidTrailer }
            return try next(&buffer, limits: limits)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        }
    }

    /// One CRLF-ended line (without the CRLF), consumed; nil when it has not all arrived. A bare CR or LF
    /// throws; a line of `limit` bytes or more with its CRLF throws `tooLong`.
    private static func readLine(
        _ buffer: inout ByteBuffer, limit: Int, tooLong: HTTP1RequestDecoder.Failure
    ) throws(HTTP1RequestDecoder.Failure) -> ByteBufferView? {
        let view = buffer.readableBytesView
        if view.isEmpty { return nil }
        guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count >= limit { throw tooLong }
            if let cr = view.firstIndex(of: UInt8(ascii: "\r")), cr != view.index(before: view.endIndex) {
                throw .lineEnding
            }
            return nil
        }
        let length = lf - view.startIndex + 1
        if length > limit { throw tooLong }
        guard lf > view.startIndex, view[lf - 1] == UInt8(ascii: "\r") else { throw .lineEnding }
        let line = view[view.startIndex..<(lf - 1)]
        if line.contains(UInt8(ascii: "\r")) { throw .lineEnding }
        buffer.moveReaderIndex(forwardBy: length)
        return line
    }

    /// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): the size; the extensions are checked and dropped.
    static func chunkSize(_ line: ByteBufferView) throws(HTTP1RequestDecoder.Failure) -> Int {
        var size = 0
        var digits = 0
        var i = line.startIndex
        while i < line.endIndex, let value = hexValue(line[i]) {
            // 15 hex digits stay below 2^60: no overflow, and far past any body limit.
            guard digits < 15 else { throw .invalidChunkSize }
            size = size << 4 | value
            digits += 1
            i += 1
        }
        guard digits > 0 else { throw .invalidChunkSize }
        guard i == line.endIndex || line[i] == UInt8(ascii: ";") else { throw .invalidChunkSize }
        try checkExtensions(line[i...])
        return size
    }

    /// `*( ";" chunk-ext-name [ "=" chunk-ext-val ] )`, chunk-ext-val a token or a quoted-string (RFC 9112
    /// §7.1.1, RFC 9110 §5.6.4). The grammar's BWS around `;` and `=` is refused, as llhttp (strict) refuses
    /// it: whitespace in chunk lines is where parsers disagree, the stuff of request smuggling ("funky
    /// chunks", 2025).
    private static func checkExtensions(_ text: ByteBufferView.SubSequence) throws(HTTP1RequestDecoder.Failure) {
        var i = text.startIndex
        while i < text.endIndex {
            guard text[i] == UInt8(ascii: ";") else { throw .invalidChunkExtension }
            i += 1
            let nameStart = i
            while i < text.endIndex, isTokenCharacter(text[i]) { i += 1 }
            guard i > nameStart else { throw .invalidChunkExtension }
            guard i < text.endIndex, text[i] == UInt8(ascii: "=") else { continue }
            i += 1
            guard i < text.endIndex else { throw .invalidChunkExtension }
            if text[i] == UInt8(ascii: "\"") {
                i += 1
                var closed = false
                while i < text.endIndex {
                    let c = text[i]
                    i += 1
                    if c == UInt8(ascii: "\"") {
                        closed = true
                        break
                    }
                    if c == UInt8(ascii: "\\") {
                        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                        guard i < text.endIndex, isFieldValueCharacter(text[i]) else { throw .invalidChunkExtension }
                        i += 1
                    } else if !isFieldValueCharacter(c) {
                        throw .invalidChunkExtension
                    }
                }
                guard closed else { throw .invalidChunkExtension }
            } else {
                let valueStart = i
                while i < text.endIndex, isTokenCharacter(text[i]) { i += 1 }
                guard i > valueStart else { throw .invalidChunkExtension }
            }
        }
    }

    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c &- UInt8(ascii: "A") &+ 10)
        default: nil
        }
    }

    /// A trailer line (or any field line) as `name: value`: nil when it is not one.
    /// A trailer field that would frame the message (Content-Length, Transfer-Encoding): RFC 9110 §6.5.1 forbids
    /// them in trailers; llhttp refuses them, and so do we rather than drop them.
    static func namesFraming(_ line: ByteBufferView) -> Bool {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return false }
        let name = line[line.startIndex..<colon].map { $0 &- UInt8(ascii: "A") < 26 ? $0 | 0x20 : $0 }
        return name.elementsEqual("content-length".utf8) || name.elementsEqual("transfer-encoding".utf8)
    }

    static func isFieldLine(_ line: ByteBufferView) -> Bool {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else { return false }
        return line[line.startIndex..<colon].allSatisfy(isTokenCharacter)
            && line[(colon + 1)...].allSatisfy(isFieldValueCharacter)
    }
}

/// Where a head ends across reads, its complete lines checked as they arrive (so that garbage is refused at
/// once rather than after the limit or a timeout): shared by the request and the response decoder, which
/// differ only in the start line.
struct HTTP1HeadScanner: Sendable {
    /// Bytes from the reader index already scanned for the head's end without finding it (resumed from there).
    private var scanned = 0
    /// Bytes from the reader index of the head's complete lines already checked (see `HeadParser.check`).
    private var checked = 0

    init() {}

    mutating func reset() {
        scanned = 0
        checked = 0
    }

    /// The length of the head at the start of `buffer`'s readable bytes, with its blank line, once it has all
    /// arrived; nil before. Throws `headTooLarge` past `maxHeadBytes`, or what `HeadParser.check` finds wrong
    /// in the lines complete so far.
    mutating func headLength(
        _ buffer: ByteBuffer, startLine: HeadParser.StartLine, maxHeadBytes: Int
    ) throws(HTTP1RequestDecoder.Failure) -> Int? {
        let scanned = self.scanned
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in Self.headEnd(bytes, from: scanned) }
        guard let end else {
            let readable = buffer.readableBytes
            try buffer.withUnsafeReadableBytes { bytes throws(HTTP1RequestDecoder.Failure) in
                try HeadParser.check(bytes, startLine: startLine, resume: &checked)
            }
            if readable >= maxHeadBytes {
                throw Self.overLimit(buffer, startLine: startLine, maxHeadBytes: maxHeadBytes)
            }
            self.scanned = max(0, readable - 3)
            return nil
        }
        reset()
        if end > maxHeadBytes { throw Self.overLimit(buffer, startLine: startLine, maxHeadBytes: maxHeadBytes) }
        return end
    }

    /// A head past `maxHeadBytes`: `requestTargetTooLong` when a request line does not end within the limit
    /// (RFC 9112 §3: a server that receives a request-target longer than any it wishes to parse MUST answer 414,
    /// RFC 9110 §15.5.15), else `headTooLarge` (431, RFC 6585 §5).
    private static func overLimit(
        _ buffer: ByteBuffer, startLine: HeadParser.StartLine, maxHeadBytes: Int
    ) -> HTTP1RequestDecoder.Failure {
        guard case .request = startLine else { return .headTooLarge }
        let lineEnds = buffer.withUnsafeReadableBytes { bytes in
            bytes.prefix(maxHeadBytes).contains(UInt8(ascii: "\n"))
        }
        return lineEnds ? .headTooLarge : .requestTargetTooLong
    }

    /// The length of the head up to and with its blank line (`CRLF CRLF`), or nil.
    static func headEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var i = start
        let count = bytes.count
        while i + 3 < count {
            // Jump by the LF: the scan looks at most bytes once.
            if bytes[i + 3] != UInt8(ascii: "\n") {
                i += bytes[i + 3] == UInt8(ascii: "\r") ? 1 : 4
                continue
            }
            if bytes[i] == UInt8(ascii: "\r") && bytes[i + 1] == UInt8(ascii: "\n")
                && bytes[i + 2] == UInt8(ascii: "\r")
            {
                return i + 4
            }
            i += 1
        }
        return nil
    }
}
