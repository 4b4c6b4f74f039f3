import NIOCore
import Testing
import WireCodecs

/// `HTTP1ResponseDecoder` (RFC 9112 §4, §6.3, §7.1, §9.3): every framing case, each limit at its edge and one
/// past it, malformed responses refused with their typed failure, and a few responses split at every byte
/// boundary.
@Suite("HTTP/1.1 response decoder")
struct HTTP1ResponseDecoderTests {
    /// What a decoder made of some bytes: the final responses read, and the failure that stopped it (if any).
    struct Decoded: Equatable {
        struct Response: Equatable {
            var status: Int
            var minorVersion: Int
            var framing: HTTP1ResponseHead.Framing
            var keepAlive: Bool
            var contentType: String?
            var body: [UInt8] = []
            var ended = false
        }
        var responses: [Response] = []
        var failure: HTTP1ResponseDecoder.Failure?
        /// Bytes left in the buffer when the decoder needed more.
        var leftover = 0
    }

    static func decode(
        _ pieces: [[UInt8]], closed: Bool = false, toHEAD: Bool = false, limits: HTTP1ResponseDecoder.Limits = .init()
    ) -> Decoded {
        var decoder = HTTP1ResponseDecoder(limits: limits)
        decoder.respondsToHEAD = toHEAD
        var result = Decoded()
        do {
            result.leftover = try decoder.feed(reads: pieces, closed: closed) { part in
                switch part {
                case .head(let head):
                    result.responses.append(
                        .init(
                            status: head.status, minorVersion: head.minorVersion, framing: head.framing,
                            keepAlive: head.keepAlive, contentType: head.first(name: "content-type")))
                case .body(let chunk):
                    result.responses[result.responses.count - 1].body += Array(chunk.readableBytesView)
                case .end:
                    result.responses[result.responses.count - 1].ended = true
                case .needMoreBytes:
                    Issue.record("feed handed on .needMoreBytes")
                }
            }
        } catch {
            result.failure = error
        }
        return result
    }

    static func decode(
        _ text: String, closed: Bool = false, toHEAD: Bool = false, limits: HTTP1ResponseDecoder.Limits = .init()
    ) -> Decoded {
        decode([Array(text.utf8)], closed: closed, toHEAD: toHEAD, limits: limits)
    }

    static func failure(_ text: String, limits: HTTP1ResponseDecoder.Limits = .init()) -> HTTP1ResponseDecoder.Failure?
    {
        decode(text, limits: limits).failure
    }

    static func body(_ decoded: Decoded) -> String? {
        decoded.responses.first.map { String(decoding: $0.body, as: UTF8.self) }
    }

    // MARK: Framing

    @Test("Content-Length: the body, then the end; HTTP/1.1 keeps the connection")
    func contentLength() {
        let decoded = Self.decode(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
        #expect(decoded.failure == nil)
        #expect(
            decoded.responses == [
                .init(
                    status: 200, minorVersion: 1, framing: .contentLength(7), keepAlive: true,
                    contentType: "application/json", body: Array(#"{"a":1}"#.utf8), ended: true)
            ])
    }

    @Test("chunked: chunk extensions and trailer fields read and dropped")
    func chunked() {
        let decoded = Self.decode(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "3;ext=1;q=\"a b\"\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Checksum: 1\r\n\r\n")
        #expect(decoded.failure == nil)
        #expect(decoded.responses.first?.framing == .chunked)
        #expect(Self.body(decoded) == "abc0123456789")
        #expect(decoded.responses.first?.ended == true)
        #expect(decoded.responses.first?.keepAlive == true)
    }

    @Test("neither field: the body ends with the connection, which does not persist")
    func closeDelimited() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
        let open = Self.decode(text)
        #expect(open.failure == nil && open.responses.first?.ended == false)
        let closed = Self.decode(text, closed: true)
        #expect(closed.failure == nil)
        #expect(
            closed.responses == [
                .init(
                    status: 200, minorVersion: 1, framing: .untilClose, keepAlive: false, contentType: "text/plain",
                    body: Array("all of it".utf8), ended: true)
            ])
    }

    @Test("100 Continue and 103 Early Hints before the answer are dropped; 101 is refused")
    func interimResponses() {
        let decoded = Self.decode(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
                + "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        #expect(decoded.failure == nil)
        #expect(decoded.responses.map(\.status) == [201])
        #expect(Self.body(decoded) == "ok")
        #expect(Self.failure("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n") == .switchingProtocols)
    }

    @Test("a 101 with a malformed field line is that malformed line, whole and a byte at a time (the fuzzer's find)")
    func switchingProtocolsWithMalformedLine() {
        let text = "HTTP/1.1 101 Switching Protocols\r\nM\nUpgrade: h2c\r\n\r\n"
        let whole = Self.decode(text).failure
        #expect(whole == .malformed(.invalidFieldName))
        #expect(Self.decode(text.utf8.map { [$0] }).failure == whole)
    }

    @Test("204, 304 and the answer to HEAD have no body whatever their fields say, and keep the connection")
    func noBody() {
        for status in ["204 No Content", "304 Not Modified"] {
            let decoded = Self.decode(
                "HTTP/1.1 \(status)\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
            #expect(decoded.failure == nil)
            #expect(decoded.responses.map(\.framing) == [.none, .contentLength(1)], "\(status)")
            #expect(decoded.responses.map(\.keepAlive) == [true, true])
            #expect(decoded.responses.first?.body == [] && decoded.responses.first?.ended == true)
            #expect(decoded.responses.last?.body == [UInt8(ascii: "x")])
        }
        let head = Self.decode("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", toHEAD: true)
        #expect(head.responses == [.init(status: 200, minorVersion: 1, framing: .none, keepAlive: true, ended: true)])
        // The same bytes not to a HEAD: ten body bytes awaited.
        #expect(Self.decode("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n").responses.first?.ended == false)
        // A 204 with no framing field is not close-delimited.
        #expect(Self.decode("HTTP/1.1 204 No Content\r\n\r\n").responses.first?.keepAlive == true)
    }

    @Test("keep-alive: HTTP/1.1 unless close; HTTP/1.0 only with keep-alive, never with Transfer-Encoding")
    func persistence() {
        func keepAlive(_ version: String, _ fields: String) -> Bool? {
            Self.decode("HTTP/\(version) 200 OK\r\n\(fields)\r\n").responses.first?.keepAlive
        }
        #expect(keepAlive("1.1", "Content-Length: 0\r\n") == true)
        #expect(keepAlive("1.1", "Connection: foo, Close\r\nContent-Length: 0\r\n") == false)
        #expect(keepAlive("1.0", "Content-Length: 0\r\n") == false)
        #expect(keepAlive("1.0", "Connection: keep-alive\r\nContent-Length: 0\r\n") == true)
        #expect(keepAlive("1.0", "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n") == false)
        #expect(keepAlive("1.1", "Transfer-Encoding: chunked\r\n") == true)
    }

    @Test("a response after a response on one connection; bytes of the next left in the buffer")
    func sequence() {
        let decoded = Self.decode(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 500 Internal Server Error\r\nContent-Length: 1\r\n\r\nbHTTP/1.1"
        )
        #expect(decoded.failure == nil)
        #expect(decoded.responses.map(\.status) == [200, 500])
        #expect(decoded.leftover == 8)
    }

    // MARK: Refused framing

    @Test(
        "framing fields a response may not carry are refused",
        arguments: [
            ("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", .contentLengthWithTransferEncoding),
            ("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", .contentLengthWithTransferEncoding),
            ("Transfer-Encoding: gzip, chunked\r\n", .unsupportedTransferCoding),
            ("Transfer-Encoding: chunked, gzip\r\n", .chunkedNotFinal),
            ("Transfer-Encoding: gzip\r\n", .chunkedNotFinal),
            ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", .chunkedNotFinal),
            ("Content-Length: 3\r\nContent-Length: 4\r\n", .duplicateContentLength),
            ("Content-Length: 3, 4\r\n", .duplicateContentLength),
            ("Content-Length: 3a\r\n", .invalidContentLength),
            ("Content-Length: -3\r\n", .invalidContentLength),
            ("Content-Length: +3\r\n", .invalidContentLength),
            ("Content-Length: \r\n", .invalidContentLength),
            ("Content-Length: ,\r\n", .invalidContentLength),
            ("Content-Length: 1234567890123456789\r\n", .invalidContentLength),
        ] as [(String, HTTP1RequestDecoder.Failure)])
    func refusedFraming(fields: String, failure: HTTP1RequestDecoder.Failure) {
        #expect(Self.failure("HTTP/1.1 200 OK\r\n\(fields)\r\n") == .malformed(failure))
    }

    @Test("Content-Length repeated with one value is accepted (RFC 9112 §6.3 item 5); 18 digits read")
    func identicalContentLengths() {
        #expect(Self.decode("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok").responses.first?.ended == true)
        #expect(
            Self.decode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok").responses.first?.ended
                == true)
        let longest = Self.decode("HTTP/1.1 200 OK\r\nContent-Length: 123456789012345678\r\n\r\n")
        #expect(longest.failure == nil && longest.responses.first?.framing == .contentLength(123_456_789_012_345_678))
    }

    @Test("chunk sizes: 15 hex digits read, 16 refused (no overflow); bad sizes and chunk ends refused")
    func chunkSizes() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        let fifteen = Self.decode(head + "fffffffffffffff\r\nabc")
        #expect(fifteen.failure == nil && Self.body(fifteen) == "abc")
        #expect(Self.failure(head + "1000000000000000\r\n") == .malformed(.invalidChunkSize))
        #expect(Self.failure(head + "g\r\n") == .malformed(.invalidChunkSize))
        #expect(Self.failure(head + "\r\n") == .malformed(.invalidChunkSize))
        #expect(Self.failure(head + "1 ;a\r\n") == .malformed(.invalidChunkSize))
        #expect(Self.failure(head + "1;\r\n") == .malformed(.invalidChunkExtension))
        #expect(Self.failure(head + "1\r\nab\r\n") == .malformed(.invalidChunkEnd))
        #expect(Self.failure(head + "0\r\nContent-Length: 1\r\n\r\n") == .malformed(.invalidTrailer))
        #expect(Self.failure(head + "1\nx") == .malformed(.lineEnding))
    }

    // MARK: Status-line and fields

    @Test("status-lines read: a reason with spaces and obs-text, an empty one, none at all")
    func statusLines() {
        for line in ["HTTP/1.1 404 Not Found", "HTTP/1.1 599 \u{E9}t\u{E9} x", "HTTP/1.1 200 ", "HTTP/1.1 200"] {
            let decoded = Self.decode(line + "\r\nContent-Length: 0\r\n\r\n")
            #expect(decoded.failure == nil, "\(line)")
        }
        #expect(Self.decode("HTTP/1.0 599 \r\nContent-Length: 0\r\n\r\n").responses.first?.status == 599)
    }

    @Test(
        "malformed status-lines are refused",
        arguments: [
            "HTTP/2 200 OK", "HTTP/2.0 200 OK", "HTTP/1.2 200 OK", "http/1.1 200 OK", "HTTP/1.1  200 OK",
            "HTTP/1.1 20 OK",
            "HTTP/1.1 2000 OK", "HTTP/1.1 099 X", "HTTP/1.1 600 X", "HTTP/1.1 2x0 OK", "HTTP/1.1 200 O\u{0}K",
            "SSH-2.0-OpenSSH_9.2", "HTTP/1.1 200\tOK",
        ])
    func malformedStatusLine(line: String) {
        #expect(Self.failure(line + "\r\n\r\n") == .invalidStatusLine)
    }

    @Test("garbage is refused as soon as its first line is wrong, not after the head limit")
    func earlyRefusal() {
        #expect(Self.failure("SSH-2.0-") == .invalidStatusLine)
        #expect(Self.failure("HTTP/1.1 200 OK\nx") == .malformed(.lineEnding))
        #expect(Self.failure("HTTP/1.1 200 OK\r\nBad Name: x\r\n") == .malformed(.invalidFieldName))
    }

    @Test(
        "malformed field lines are refused",
        arguments: [
            ("Bad Name: x\r\n", .invalidFieldName),
            ("Name : x\r\n", .invalidFieldName),
            (": x\r\n", .invalidFieldName),
            ("Name: a\u{0}b\r\n", .invalidFieldValue),
            ("Name: a\rb\r\n", .lineEnding),
            ("Name: a\u{7F}\r\n", .invalidFieldValue),
            ("Name: a\r\n folded\r\n", .obsoleteLineFolding),
            ("Name: a\n", .lineEnding),
        ] as [(String, HTTP1RequestDecoder.Failure)])
    func malformedFields(fields: String, failure: HTTP1RequestDecoder.Failure) {
        #expect(Self.failure("HTTP/1.1 200 OK\r\n\(fields)\r\n") == .malformed(failure))
    }

    // MARK: Limits

    @Test("head size: a head of exactly maxHeadBytes is read, one byte more is refused, whole or still arriving")
    func headLimit() {
        let text = "HTTP/1.1 200 OK\r\nX-Pad: " + String(repeating: "p", count: 100) + "\r\nContent-Length: 0\r\n\r\n"
        let size = text.utf8.count
        #expect(Self.decode(text, limits: .init(maxHeadBytes: size)).failure == nil)
        #expect(Self.failure(text, limits: .init(maxHeadBytes: size - 1)) == .malformed(.headTooLarge))
        // Arriving: the first maxHeadBytes bytes without the head's end already refused.
        let partial = String(text.utf8.prefix(size - 1))!
        #expect(Self.failure(partial, limits: .init(maxHeadBytes: size - 1)) == .malformed(.headTooLarge))
        #expect(Self.decode(partial, limits: .init(maxHeadBytes: size)).failure == nil)
    }

    @Test("field count: maxFieldCount fields read, one more refused")
    func fieldLimit() {
        let fields = (0..<5).map { "X-\($0): v\r\n" }.joined()
        let text = "HTTP/1.1 200 OK\r\n\(fields)Content-Length: 0\r\n\r\n"
        #expect(Self.decode(text, limits: .init(maxFieldCount: 6)).failure == nil)
        #expect(Self.failure(text, limits: .init(maxFieldCount: 5)) == .malformed(.tooManyFields))
    }

    @Test("chunk line and trailer section: at their limits read, one byte more refused")
    func chunkLimits() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        let line = "1;name=value\r\n"  // 14 bytes with its CRLF
        let chunk = head + line + "x\r\n0\r\n\r\n"
        #expect(Self.decode(chunk, limits: .init(maxChunkLineBytes: 14)).failure == nil)
        #expect(Self.failure(chunk, limits: .init(maxChunkLineBytes: 13)) == .malformed(.chunkLineTooLong))
        let trailers = head + "0\r\nX-A: 1\r\n\r\n"  // trailer section 10 bytes with its final CRLF
        #expect(Self.decode(trailers, limits: .init(maxTrailerBytes: 10)).responses.first?.ended == true)
        #expect(Self.failure(trailers, limits: .init(maxTrailerBytes: 9)) == .malformed(.trailerTooLarge))
    }

    // MARK: The connection's close

    @Test("a close inside a response is closedMidResponse; between responses it is nothing")
    func closes() {
        let cut = [
            "HTTP/1.1 200 OK\r\nContent-Le",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
            "HTTP/1.1 100 Continue\r\n\r\n",
        ]
        for text in cut {
            #expect(Self.decode(text, closed: true).failure == .closedMidResponse, "\(text)")
        }
        let whole = Self.decode("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", closed: true)
        #expect(whole.failure == nil && whole.responses.first?.ended == true)
        #expect(Self.decode("", closed: true) == Decoded())
    }

    // MARK: Splits

    static let representative = [
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
            + "{\"ok\":true}",
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            + "f;x=y\r\ndata: {\"a\":1}\n\n\r\n11\r\nevent: end\ndata: \r\n0\r\ntrailer: t\r\n\r\n",
        "HTTP/1.0 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\nupstream said no",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
    ]

    @Test("split at every byte boundary, and a byte at a time, a response reads as it does whole")
    func splits() {
        for text in Self.representative {
            let bytes = Array(text.utf8)
            let whole = Self.decode([bytes], closed: true)
            #expect(Self.decode(bytes.map { [$0] }, closed: true) == whole, "\(text)")
            for cut in 0...bytes.count {
                let pieces = [Array(bytes[..<cut]), Array(bytes[cut...])]
                #expect(Self.decode(pieces, closed: true) == whole, "cut at \(cut): \(text)")
            }
        }
        // What the wholes are: each representative read (or refused) as intended.
        let wholes = Self.representative.map { Self.decode($0, closed: true) }
        #expect(wholes[0].responses.map(\.status) == [200] && Self.body(wholes[0]) == "{\"ok\":true}")
        #expect(Self.body(wholes[1]) == "data: {\"a\":1}\n\nevent: end\ndata: ")
        #expect(wholes[2].responses.first?.keepAlive == false && Self.body(wholes[2]) == "upstream said no")
        #expect(wholes[3].failure == .malformed(.contentLengthWithTransferEncoding))
    }

    /// What ``HTTP1ResponseDecoder/next(_:)`` returns, part by part: `.needMoreBytes` (a case, not nil) while a
    /// head or the body is incomplete, consuming nothing of a head begun, and between responses.
    @Test("next: .needMoreBytes until a part is whole, and between responses")
    func needMoreBytes() throws {
        var decoder = HTTP1ResponseDecoder()
        var buffer = ByteBuffer()
        #expect(Self.name(try decoder.next(&buffer)) == "needMoreBytes")
        buffer.writeString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
        #expect(Self.name(try decoder.next(&buffer)) == "needMoreBytes")
        #expect(buffer.readableBytes == 36)
        buffer.writeString("\r\nh")
        #expect(Self.name(try decoder.next(&buffer)) == "head 200")
        #expect(Self.name(try decoder.next(&buffer)) == "body h")
        #expect(Self.name(try decoder.next(&buffer)) == "needMoreBytes")
        #expect(!decoder.isBetweenResponses)
        buffer.writeString("i")
        #expect(Self.name(try decoder.next(&buffer)) == "body i")
        #expect(Self.name(try decoder.next(&buffer)) == "end")
        #expect(Self.name(try decoder.next(&buffer)) == "needMoreBytes")
        #expect(decoder.isBetweenResponses && buffer.readableBytes == 0)
    }

    /// A part in words, for comparisons.
    static func name(_ part: HTTP1ResponseDecoder.Part) -> String {
        switch part {
        case .head(let head): "head \(head.status)"
        case .body(let bytes): "body \(String(buffer: bytes))"
        case .end: "end"
        case .needMoreBytes: "needMoreBytes"
        }
    }
}
