import NIOCore
import SeededRandom
import Testing
import TriggerModel
import WireCodecs
import TestScheduling

/// `HTTP1RequestDecoder` (RFC 9112): every rule it enforces, each limit at its edge and one past it, and a few
/// requests split at every byte boundary.
@Suite("HTTP/1.1 request decoder")
struct HTTP1RequestDecoderTests {
    /// What a decoder made of some bytes: the requests read, and the failure that stopped it (if any).
    struct Decoded: Equatable {
        struct Request: Equatable {
            var method: String
            var target: String
            var minorVersion: Int
            var fields: [String]
            var framing: HTTP1RequestHead.Framing
            var keepAlive: Bool
            var body: [UInt8]
            var ended: Bool
        }
        var requests: [Request] = []
        var failure: HTTP1RequestDecoder.Failure?
        /// Bytes left in the buffer when the decoder needed more.
        var leftover = 0
    }

    static func decode(
        _ pieces: [[UInt8]], limits: HTTP1RequestDecoder.Limits = .init()
    ) -> Decoded {
        var decoder = HTTP1RequestDecoder(limits: limits)
        var result = Decoded()
        do {
            let leftover = try decoder.feed(reads: pieces) { part in
                switch part {
                case .head(let head):
                    result.requests.append(
                        .init(
                            method: head.method, target: head.target, minorVersion: head.minorVersion,
                            fields: head.fields.map { "\($0.name): \($0.value)" }, framing: head.framing,
                            keepAlive: head.keepAlive, body: [], ended: false))
                case .body(let chunk):
                    result.requests[result.requests.count - 1].body += Array(chunk.readableBytesView)
                case .end:
                    result.requests[result.requests.count - 1].ended = true
                case .needMoreBytes:
                    Issue.record("feed(reads:) handed on .needMoreBytes")
                }
                return true
            }
            result.leftover = leftover ?? 0
        } catch {
            result.failure = error
        }
        return result
    }

    static func decode(_ text: String, limits: HTTP1RequestDecoder.Limits = .init()) -> Decoded {
        decode([Array(text.utf8)], limits: limits)
    }

    static func failure(_ text: String, limits: HTTP1RequestDecoder.Limits = .init()) -> HTTP1RequestDecoder
        .Failure?
    {
        decode(text, limits: limits).failure
    }

    // MARK: Request-line

    @Test("a GET with no body: head then end, keep-alive")
    func simpleGet() {
        let decoded = Self.decode("GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n")
        #expect(decoded.failure == nil)
        #expect(
            decoded.requests == [
                .init(
                    method: "GET", target: "/healthz?x=1", minorVersion: 1, fields: ["Host: a", "Accept: */*"],
                    framing: .none, keepAlive: true, body: [], ended: true)
            ])
    }

    @Test("lowercasedFields: names in lowercase from the bytes, values as sent, order and duplicates kept")
    func lowercasedFields() throws {
        var decoder = HTTP1RequestDecoder()
        var buffer = ByteBuffer(
            string: "GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: AbC\r\naccept: */*\r\nACCEPT: text/Plain\r\n"
                + "Content-Type-Long-Name-Over-Fifteen: V\r\nCONTENT-type: application/json\r\n"
                + "content-TYPE: Application/JSON\r\nUser-Agent: curl/8.5.0\r\nContent-Length: 0\r\n\r\n")
        guard case .head(let head) = try decoder.next(&buffer) else {
            Issue.record("no head")
            return
        }
        #expect(
            head.lowercasedFields.map { "\($0.name)=\($0.value)" } == [
                "host=a", "x-request-id=AbC", "accept=*/*", "accept=text/Plain",
                "content-type-long-name-over-fifteen=V", "content-type=application/json",
                "content-type=Application/JSON", "user-agent=curl/8.5.0", "content-length=0",
            ])
    }

    @Test(
        "request targets in each form (RFC 9112 §3.2)",
        arguments: [
            ("GET / HTTP/1.1", true),
            ("GET http://example.com:80/a?b HTTP/1.1", true),
            ("GET HTTPS://host/ HTTP/1.1", true),
            ("GET h2c+x.y-z://host/ HTTP/1.1", false),
            ("OPTIONS * HTTP/1.1", true),
            ("GET * HTTP/1.1", false),
            ("CONNECT example.com:443 HTTP/1.1", true),
            ("CONNECT example.com HTTP/1.1", false),
            ("CONNECT /a:1 HTTP/1.1", true),  // origin-form is always allowed
            ("GET example.com HTTP/1.1", false),
            ("GET 1http://x/ HTTP/1.1", false),
            ("GET http:/x HTTP/1.1", false),
            ("GET http://a`b/ HTTP/1.1", false),
            ("GET http://u@[::1]:80?q HTTP/1.1", true),
            ("GET http://a:80[80/p HTTP/1.1", false),
            ("GET http://a:8x/p HTTP/1.1", false),
            ("GET http://[::1/p HTTP/1.1", false),
            ("GET /a b HTTP/1.1", false),
            ("GET /a#b HTTP/1.1", false),
            ("GET /\u{7F} HTTP/1.1", false),
            ("GET /é HTTP/1.1", false),
        ])
    func targetForms(line: String, accepted: Bool) {
        let decoded = Self.decode(line + "\r\nHost: a\r\n\r\n")
        #expect((decoded.failure == nil) == accepted, "\(decoded)")
        // "GET /a b HTTP/1.1" reads as the target "/a" and the version "b …".
        if !accepted { #expect([.invalidTarget, .invalidVersion].contains(decoded.failure)) }
    }

    @Test(
        "methods are tokens; single spaces; the version HTTP/1.1 or HTTP/1.0; HTTP/2.0 and up 505, HTTP/1.2 and HTTP/0.9 400",
        arguments: [
            ("PURGE / HTTP/1.1", nil),
            ("G@T / HTTP/1.1", HTTP1RequestDecoder.Failure.invalidMethod),
            (" GET / HTTP/1.1", .invalidMethod),
            ("GET  / HTTP/1.1", .invalidTarget),
            ("GET / HTTP/1.1 ", .invalidVersion),
            ("GET / HTTP/1.0", nil),
            ("GET / HTTP/2.0", .unsupportedVersion),
            ("GET / HTTP/3.0", .unsupportedVersion),
            ("GET / HTTP/9.9", .unsupportedVersion),
            ("GET / HTTP/2", .invalidVersion),
            ("GET / HTTP/20.0", .invalidVersion),
            ("GET / HTTP/2.x", .invalidVersion),
            ("GET / HTTP/0.9", .invalidVersion),
            ("GET / HTTP/1.2", .invalidVersion),
            ("GET / http/1.1", .invalidVersion),
            ("GET / HTTP/1.10", .invalidVersion),
            ("GET /", .invalidTarget),
        ])
    func requestLine(line: String, failure: HTTP1RequestDecoder.Failure?) {
        #expect(Self.failure(line + "\r\nHost: a\r\n\r\n") == failure)
    }

    @Test("HTTP/1.0 persists only with Connection: keep-alive; HTTP/1.1 until Connection: close")
    func persistence() {
        #expect(Self.decode("GET / HTTP/1.0\r\n\r\n").requests.first?.keepAlive == false)
        #expect(Self.decode("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").requests.first?.keepAlive == true)
        #expect(Self.decode("GET / HTTP/1.1\r\nHost: a\r\n\r\n").requests.first?.keepAlive == true)
        #expect(
            Self.decode("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n").requests.first?.keepAlive
                == false)
        #expect(
            Self.decode("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").requests.first?.keepAlive == false)
    }

    @Test("empty lines before a request-line are skipped; a bare LF is refused")
    func leadingEmptyLines() {
        let decoded = Self.decode("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(decoded.failure == nil)
        #expect(decoded.requests.count == 1)
        #expect(Self.failure("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == .lineEnding)
        #expect(Self.failure("\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n") == .lineEnding)
    }

    @Test("a request-line ended by a bare LF is refused in its own words; CRLF and a split CRLF are taken")
    func requestLineBareLF() {
        // The edge: the same line with CRLF decodes, whole or with the CR and LF in separate reads.
        #expect(Self.decode("GET / HTTP/1.1\r\nHost: a\r\n\r\n").requests.count == 1)
        let split = Self.decode(["GET / HTTP/1.1\r", "\nHost: a\r\n\r\n"].map { Array($0.utf8) })
        #expect(split.failure == nil)
        #expect(split.requests.count == 1)
        // Just past it: a bare LF, whole or arriving after the version.
        #expect(Self.failure("GET / HTTP/1.1\nHost: a\r\n\r\n") == .requestLineBareLF)
        #expect(Self.failure("GET / HTTP/1.1\n") == .requestLineBareLF)
        #expect(Self.failure("POST /x HTTP/1.0\n\n") == .requestLineBareLF)
        // A CR followed by anything but LF is still a bad line ending.
        #expect(Self.failure("GET / HTTP/1.1\rX") == .lineEnding)
        #expect(
            HTTP1RequestDecoder.Failure.requestLineBareLF.words
                == "the request line ends with a bare LF; it must end with CRLF (RFC 9112 §2.2)")
        #expect(HTTP1RequestDecoder.Failure.requestLineBareLF.status == 400)
    }

    // MARK: Field lines

    @Test(
        "field lines: token names, no space before the colon, no obs-fold, no control characters but HTAB",
        arguments: [
            ("X-A: b\r\n", nil),
            ("X-A:b\r\n", nil),
            ("X-A: \t b \t\r\n", nil),
            ("X-A: caf\u{E9}\r\n", nil),  // obs-text (UTF-8 bytes ≥ 0x80)
            ("X-A:\r\n", nil),  // an empty value
            ("X-A : b\r\n", HTTP1RequestDecoder.Failure.invalidFieldName),
            ("X A: b\r\n", .invalidFieldName),
            (": b\r\n", .invalidFieldName),
            ("X-A\r\n", .invalidFieldName),
            ("X(A): b\r\n", .invalidFieldName),
            ("X-A: b\r\n c\r\n", .obsoleteLineFolding),
            ("X-A: b\r\n\tc\r\n", .obsoleteLineFolding),
            ("X-A: a\u{1}b\r\n", .invalidFieldValue),
            ("X-A: a\u{7F}b\r\n", .invalidFieldValue),
            ("X-A: a\0b\r\n", .invalidFieldValue),
            ("X-A: a\rb\r\n", .lineEnding),
            ("X-A: ab\n", .lineEnding),
        ])
    func fieldLines(line: String, failure: HTTP1RequestDecoder.Failure?) {
        #expect(Self.failure("GET / HTTP/1.1\r\nHost: a\r\n" + line + "\r\n") == failure)
    }

    @Test("values lose the whitespace around them; names keep their case and match ignoring it")
    func fieldValues() throws {
        var decoder = HTTP1RequestDecoder()
        var buffer = ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nX-Thing: \t one two \t\r\nx-thing: 3\r\n\r\n")
        guard case .head(let head) = try decoder.next(&buffer) else {
            Issue.record("no head")
            return
        }
        #expect(head.first(name: "x-thing") == "one two")
        #expect(head.values(name: "x-thing") == ["one two", "3"])
        #expect(head.first(name: "host") == "a")
        #expect(head.first(name: "content-type") == nil)
        #expect(head.methodIs("GET"))
        #expect(!head.methodIs("get"))
        #expect(head.fields.map(\.name) == ["Host", "X-Thing", "x-thing"])
    }

    @Test("a whitespace line right after the request-line is refused")
    func whitespaceAfterRequestLine() {
        #expect(Self.failure("GET / HTTP/1.1\r\n Host: a\r\n\r\n") == .obsoleteLineFolding)
    }

    // MARK: Framing

    @Test(
        "Content-Length: digits only, one line, no overflow (RFC 9112 §6.3)",
        arguments: [
            ("Content-Length: 3\r\n", nil),
            ("Content-Length: 003\r\n", nil),
            ("content-length:3 \r\n", nil),
            ("Content-Length: +3\r\n", HTTP1RequestDecoder.Failure.invalidContentLength),
            ("Content-Length: -1\r\n", .invalidContentLength),
            ("Content-Length: 3 3\r\n", .invalidContentLength),
            ("Content-Length: 0x3\r\n", .invalidContentLength),
            ("Content-Length:\r\n", .invalidContentLength),
            ("Content-Length: 3, 3\r\n", .invalidContentLength),
            ("Content-Length: 3\r\nContent-Length: 3\r\n", .duplicateContentLength),
            ("Content-Length: 999999999999999999\r\n", nil),
            ("Content-Length: 1000000000000000000\r\n", .invalidContentLength),
            ("Content-Length: 99999999999999999999999\r\n", .invalidContentLength),
        ])
    func contentLength(fields: String, failure: HTTP1RequestDecoder.Failure?) {
        #expect(Self.failure("POST / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\nabc") == failure)
    }

    @Test(
        "Transfer-Encoding: chunked last and once (400), no other coding (501), never with Content-Length",
        arguments: [
            ("Transfer-Encoding: chunked\r\n", nil),
            ("Transfer-Encoding: CHUNKED\r\n", nil),
            ("Transfer-Encoding: , chunked ,\r\n", nil),
            ("Transfer-Encoding: gzip, chunked\r\n", HTTP1RequestDecoder.Failure.unsupportedTransferCoding),
            ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", .unsupportedTransferCoding),
            ("Transfer-Encoding: chunked, gzip\r\n", .chunkedNotFinal),
            ("Transfer-Encoding: gzip\r\n", .chunkedNotFinal),
            ("Transfer-Encoding: chunked, chunked\r\n", .chunkedNotFinal),
            ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", .chunkedNotFinal),
            ("Transfer-Encoding: chunked;q=1\r\n", .chunkedNotFinal),
            ("Transfer-Encoding:\r\n", .chunkedNotFinal),
            ("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", .contentLengthWithTransferEncoding),
            ("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", .contentLengthWithTransferEncoding),
        ])
    func transferEncoding(fields: String, failure: HTTP1RequestDecoder.Failure?) {
        #expect(Self.failure("POST / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n0\r\n\r\n") == failure)
    }

    @Test("failures map to 400, 431 and 501")
    func statuses() {
        #expect(HTTP1RequestDecoder.Failure.contentLengthWithTransferEncoding.status == 400)
        #expect(HTTP1RequestDecoder.Failure.chunkedNotFinal.status == 400)
        #expect(HTTP1RequestDecoder.Failure.unsupportedTransferCoding.status == 501)
        #expect(HTTP1RequestDecoder.Failure.headTooLarge.status == 431)
        #expect(HTTP1RequestDecoder.Failure.tooManyFields.status == 431)
    }

    @Test("an HTTP/1.0 request with Transfer-Encoding does not persist (RFC 9112 §6.1)")
    func http10Chunked() {
        let decoded = Self.decode(
            "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        #expect(decoded.requests.first?.keepAlive == false)
        #expect(decoded.requests.first?.ended == true)
    }

    @Test("a Content-Length body, then a pipelined request in the same read")
    func pipelined() {
        let decoded = Self.decode(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
                + "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /d HTTP/1.1\r\n"
        )
        #expect(decoded.failure == nil)
        #expect(decoded.requests.map(\.target) == ["/a", "/b", "/c"])
        #expect(decoded.requests.map { String(decoding: $0.body, as: UTF8.self) } == ["hello", "", "hi"])
        #expect(decoded.requests.allSatisfy { $0.ended })
        #expect(decoded.leftover == "GET /d HTTP/1.1\r\n".utf8.count)
    }

    // MARK: Chunked bodies

    @Test(
        "chunk sizes are hex, at most 15 digits; extensions are parsed and dropped",
        arguments: [
            ("5\r\nhello\r\n0\r\n\r\n", nil),
            ("A\r\n0123456789\r\n0\r\n\r\n", nil),
            ("a\r\n0123456789\r\n0\r\n\r\n", nil),
            ("000000000000005\r\nhello\r\n0\r\n\r\n", nil),
            ("0000000000000005\r\nhello\r\n0\r\n\r\n", HTTP1RequestDecoder.Failure.invalidChunkSize),
            ("fffffffffffffffff\r\n", .invalidChunkSize),
            ("\r\nhello\r\n0\r\n\r\n", .invalidChunkSize),
            ("-5\r\nhello\r\n0\r\n\r\n", .invalidChunkSize),
            ("5x\r\nhello\r\n0\r\n\r\n", .invalidChunkSize),
            ("5;a=b\r\nhello\r\n0\r\n\r\n", nil),
            ("5;a=\"b\\\"c\";d\r\nhello\r\n0;e\r\n\r\n", nil),
            ("5 ;a\r\nhello\r\n0\r\n\r\n", .invalidChunkSize),
            ("5; a\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
            ("5;a =b\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
            ("5;\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
            ("5;a=\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
            ("5;a=\"b\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
            ("5;a b\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
            ("5;a=\u{1}\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
            ("5\r\nhelloX\r\n0\r\n\r\n", .invalidChunkEnd),
            ("5\nhello\r\n0\r\n\r\n", .lineEnding),
            ("5\r\nhello\r\n0\r\nTrailer-A: 1\r\nb: \r\n\r\n", nil),
            ("5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", .invalidTrailer),
            ("5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidTrailer),
            ("5\r\nhello\r\n0\r\ncontent-length: 5\r\n\r\n", .invalidTrailer),
            ("5\r\nhello\r\n0\r\nT: \u{1}\r\n\r\n", .invalidTrailer),
        ])
    func chunked(body: String, failure: HTTP1RequestDecoder.Failure?) {
        let decoded = Self.decode("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        #expect(decoded.failure == failure, "\(decoded)")
        if failure == nil {
            #expect(decoded.requests.first?.ended == true)
            #expect([5, 10].contains(decoded.requests.first?.body.count ?? 0))
        }
    }

    // MARK: Limits, at the edge and one past

    static let get = "GET / HTTP/1.1\r\nHost: a\r\n"

    @Test("the head limit: a head of exactly maxHeadBytes passes, one byte more is refused")
    func headLimit() {
        let limit = 200
        let limits = HTTP1RequestDecoder.Limits(maxHeadBytes: limit)
        let fixed = Self.get.utf8.count + "X: \r\n\r\n".utf8.count
        let atLimit = Self.get + "X: " + String(repeating: "v", count: limit - fixed) + "\r\n\r\n"
        #expect(atLimit.utf8.count == limit)
        #expect(Self.failure(atLimit, limits: limits) == nil)
        let past = Self.get + "X: " + String(repeating: "v", count: limit - fixed + 1) + "\r\n\r\n"
        #expect(Self.failure(past, limits: limits) == .headTooLarge)
        // Incomplete heads too: refused once the bytes reach the limit without the blank line.
        let incomplete = Self.get + "X: " + String(repeating: "v", count: limit)
        #expect(Self.failure(incomplete, limits: limits) == .headTooLarge)
        #expect(Self.decode([Array(incomplete.utf8.prefix(limit - 1))], limits: limits).failure == nil)
        // A request line whose LF is the limit's last byte ends within it: the head past it is 431; a line one
        // byte longer is a target too long, 414 (RFC 9112 §3).
        let lineAtLimit =
            "GET /" + String(repeating: "t", count: limit - "GET / HTTP/1.1\r\n".utf8.count) + " HTTP/1.1\r\n"
        #expect(lineAtLimit.utf8.count == limit)
        #expect(Self.failure(lineAtLimit + "Host: a\r\n\r\n", limits: limits) == .headTooLarge)
        let linePast =
            "GET /" + String(repeating: "t", count: limit + 1 - "GET / HTTP/1.1\r\n".utf8.count) + " HTTP/1.1\r\n"
        #expect(Self.failure(linePast + "Host: a\r\n\r\n", limits: limits) == .requestTargetTooLong)
    }

    @Test("the field count limit: maxFieldCount fields pass, one more is refused")
    func fieldCountLimit() {
        let limits = HTTP1RequestDecoder.Limits(maxFieldCount: 5)
        let five = "GET / HTTP/1.1\r\n" + (1...5).map { "f\($0): v\r\n" }.joined() + "\r\n"
        let six = "GET / HTTP/1.1\r\n" + (1...6).map { "f\($0): v\r\n" }.joined() + "\r\n"
        #expect(Self.failure(five, limits: limits) == nil)
        #expect(Self.failure(six, limits: limits) == .tooManyFields)
    }

    @Test("the chunk line limit: a line of maxChunkLineBytes passes, one byte more is refused")
    func chunkLineLimit() {
        let limits = HTTP1RequestDecoder.Limits(maxChunkLineBytes: 20)
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        // "1;" + name + CRLF
        let atLimit = "1;" + String(repeating: "e", count: 16) + "\r\n"
        #expect(atLimit.utf8.count == 20)
        #expect(Self.failure(head + atLimit + "x\r\n0\r\n\r\n", limits: limits) == nil)
        let past = "1;" + String(repeating: "e", count: 17) + "\r\n"
        #expect(Self.failure(head + past + "x\r\n0\r\n\r\n", limits: limits) == .chunkLineTooLong)
        // Without its CRLF yet: refused once it cannot fit.
        #expect(Self.failure(head + String(repeating: "0", count: 20), limits: limits) == .chunkLineTooLong)
    }

    @Test("the trailer limit: a trailer section of maxTrailerBytes passes, one byte more is refused")
    func trailerLimit() {
        let limits = HTTP1RequestDecoder.Limits(maxTrailerBytes: 20)
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        let atLimit = "T: " + String(repeating: "v", count: 13) + "\r\n\r\n"
        #expect(atLimit.utf8.count == 20)
        #expect(Self.failure(head + atLimit, limits: limits) == nil)
        let past = "T: " + String(repeating: "v", count: 14) + "\r\n\r\n"
        #expect(Self.failure(head + past, limits: limits) == .trailerTooLarge)
    }

    // MARK: Splits

    static let splitRequests: [String] = [
        "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello worldGET /c HTTP/1.0\r\n\r\n",
        "POST /d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "3;x=\"y\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n",
        "POST /e HTTP/1.1\r\nHost: a\r\nX: a\u{1}\r\n\r\n",
        "GET / HTTP/1.1\r\nX : y\r\n\r\n",
        "POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
        // Values longer than a word (the value loop takes eight bytes at a time): blanks inside and around them,
        // obs-text, a DEL and a bare CR past the first word, a value running into the blank line.
        "GET /g HTTP/1.1\r\nHost: a\r\nUser-Agent: \t curl/8.5.0 (x86_64-pc-linux-gnu)\t \r\nX: \u{E9}t\u{E9}-caf\u{E9}s\r\n\r\n",
        "GET /h HTTP/1.1\r\nAccept: application/json;q=0.9,\ttext/plain\r\nX-Long: abcdefghijklmnop\u{7F}q\r\n\r\n",
        "GET /i HTTP/1.1\r\nX-Long: abcdefghijklmnopqrs\rt\r\n\r\n",
        "GET /j HTTP/1.1\r\nX: abcdefghijklmnopqrstuvw\r\n\r\n",
    ]

    @Test("split at every byte boundary (two pieces) and a byte at a time: the same outcome", arguments: splitRequests)
    func splits(text: String) {
        let bytes = Array(text.utf8)
        let whole = Self.decode([bytes])
        for cut in 0...bytes.count {
            let split = Self.decode([Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(split == whole, "cut at \(cut)")
        }
        // Body pieces differ with the split; `Decoded.Request.body` holds each body whole.
        #expect(Self.decode(bytes.map { [$0] }) == whole)
    }

    @Test("a malformed request-line is refused before the head ends")
    func earlyRefusal() {
        #expect(Self.failure("GET /a\u{1}") == .invalidTarget)
        #expect(Self.failure("GET / HTTP/1.1\r\nX : ") == .invalidFieldName)
        #expect(Self.failure("GET / HTTP/1.1\r\nHost: a\r\nX: \u{1}") == .invalidFieldValue)
        // Incomplete but fine so far: waits.
        #expect(Self.decode("GET / HTTP/1.1\r\nHost: a\r\nX: y").failure == nil)
        #expect(Self.decode("GET / HTTP/1.1\r\nHost: a\r\nX: y").leftover > 0)
    }

    // MARK: Character classes

    @Test("each byte in a method, a request-target, a field name and a field value: accepted exactly by its class")
    func characterClassesMatchTheirDefinitions() {
        func fails(_ parts: [UInt8]...) -> Bool { Self.decode([Array(parts.joined())]).failure != nil }
        let ending = Array(" HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        for c in UInt8.min...UInt8.max {
            // tchar, HTTPToken's one definition (RFC 9110 §5.6.2).
            #expect(fails(Array("G".utf8), [c], Array("T /".utf8), ending) == !HTTPToken.isTChar(c), "method \(c)")
            // VCHAR but "#" (RFC 9112 §3.2).
            let isTarget = (0x21...0x7E).contains(c) && c != UInt8(ascii: "#")
            #expect(fails(Array("GET /a".utf8), [c], Array("b".utf8), ending) == !isTarget, "target \(c)")
            let head = Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8)
            if c != UInt8(ascii: ":") {  // a colon ends the name: "X:y: v" is the field X
                let badName = fails(head, Array("X".utf8), [c], Array("y: v\r\n\r\n".utf8))
                #expect(badName == !HTTPToken.isTChar(c), "field name \(c)")
            }
            // field-vchar / SP / HTAB with obs-text (RFC 9110 §5.5).
            let isValue = c == 0x09 || (0x20...0x7E).contains(c) || c >= 0x80
            #expect(fails(head, Array("X: a".utf8), [c], Array("b\r\n\r\n".utf8)) == !isValue, "field value \(c)")
        }
    }
}

/// `isFieldValue(_:)` checks eight bytes at a time (branch hotpath); it must answer as the byte-by-byte rule.
@Suite("HTTP field values checked whole")
struct FieldValueCheckTests {
    /// field-vchar / SP / HTAB with obs-text (RFC 9110 §5.5), a byte at a time.
    static func byteRule(_ c: UInt8) -> Bool { c == 0x09 || (c >= 0x20 && c != 0x7F) }

    @Test("every byte at every position of a word, a tail and a short value agrees with the byte rule")
    func everyBytePosition() {
        for length in [1, 7, 8, 9, 16, 23, 55] {
            for position in 0..<length {
                for c in UInt8.min...UInt8.max {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    bytes[position] = c
                    let whole = bytes.withUnsafeBytes { isFieldValue($0) }
                    #expect(whole == Self.byteRule(c), "byte \(c) at \(position) of \(length)")
                }
            }
        }
        #expect([UInt8]().withUnsafeBytes { isFieldValue($0) })
    }

    @Test("seeded values with HTAB, DEL, obs-text and controls next to each other agree with the byte rule")
    func seededValues() {
        var random = SplitMix64(seed: 11)
        let alphabet: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x21, 0x41, 0x7E, 0x7F, 0x80, 0xC3, 0xFF]
        for _ in 0..<5_000 {
            let bytes = seededFieldValue(&random, lengths: 0...40, alphabet: alphabet, oneIn: 4)
            #expect(bytes.withUnsafeBytes { isFieldValue($0) } == bytes.allSatisfy { Self.byteRule($0) }, "\(bytes)")
        }
    }
}

/// A seeded field value of a length in `lengths`: visible ASCII, with one byte in `oneIn` drawn from `alphabet`
/// (the class edges a test aims at).
func seededFieldValue(
    _ random: inout SplitMix64, lengths: ClosedRange<Int>, alphabet: [UInt8], oneIn: Int
) -> [UInt8] {
    let length = Int.random(in: lengths, using: &random)
    return (0..<length).map { _ -> UInt8 in
        Int.random(in: 0..<oneIn, using: &random) == 0
            ? alphabet.randomElement(using: &random)! : UInt8.random(in: 0x20...0x7E, using: &random)
    }
}

/// The field-line value loop, which takes eight bytes at a time while none is below 0x21 or 0x7F (branch
/// hotpath4), against the rule a byte at a time (RFC 9110 §5.5 field-value, §5.6.3 OWS around it; RFC 9112 §2.2
/// CRLF): every byte at every position of values that end in, at and past a word's edge, behind names that move
/// where the words start.
@Suite("HTTP/1.1 field values a word at a time")
struct FieldLineWordTests {
    /// What the request decoder should make of `X…: value CRLF CRLF` (a byte at a time): the value without the
    /// whitespace around it, or the failure.
    static func expected(_ value: [UInt8]) -> Result<[UInt8], HTTP1RequestDecoder.Failure> {
        let line = value + [0x0D, 0x0A]
        var i = 0
        while line[i] == 0x20 || line[i] == 0x09 { i += 1 }
        let start = i
        var end = i
        while FieldValueCheckTests.byteRule(line[i]) {
            if line[i] != 0x20 && line[i] != 0x09 { end = i + 1 }
            i += 1
        }
        switch line[i] {
        case 0x0D: return line[i + 1] == 0x0A ? .success(Array(line[start..<end])) : .failure(.lineEnding)
        case 0x0A: return .failure(.lineEnding)
        default: return .failure(.invalidFieldValue)
        }
    }

    /// What the decoder makes of it: the one field's value as a string, or the failure.
    static func decoded(name: String, value: [UInt8]) -> Result<String, HTTP1RequestDecoder.Failure> {
        let head = Array("GET / HTTP/1.1\r\n\(name): ".utf8) + value + Array("\r\n\r\n".utf8)
        let result = HTTP1RequestDecoderTests.decode([head])
        if let failure = result.failure { return .failure(failure) }
        return .success(result.requests.first?.fields.first.map { String($0.dropFirst(name.count + 2)) } ?? "?")
    }

    static func check(name: String, value: [UInt8], _ comment: @autoclosure () -> String) {
        let want = expected(value).map { String(decoding: $0, as: UTF8.self) }
        let got = decoded(name: name, value: value)
        #expect(got == want, "\(comment())")
    }

    @Test("each byte 0x00–0xFF at each position of 1- to 25-byte values: as the byte rule says", .cpuBound)
    func everyByteAtEveryPosition() {
        for length in 1...25 {
            for position in 0..<length {
                for c in UInt8.min...UInt8.max {
                    var value = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                    value[position] = c
                    Self.check(name: "X", value: value, "byte \(c) at \(position) of \(length)")
                }
            }
        }
    }

    @Test(
        "the class edges (0x1F/0x20/0x21, HTAB, CR, LF, 0x7E/0x7F/0x80, 0xFF) behind names of 1 to 8 bytes", .cpuBound)
    func classEdgesAtEachAlignment() {
        let edges: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x21, 0x7E, 0x7F, 0x80, 0xFF]
        for nameLength in 1...8 {
            let name = String(repeating: "n", count: nameLength)
            for length in 1...18 {
                for position in 0..<length {
                    for c in edges {
                        var value = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                        value[position] = c
                        Self.check(
                            name: name, value: value, "byte \(c) at \(position) of \(length), name \(nameLength)")
                    }
                }
            }
        }
    }

    @Test("trailing whitespace after a word of value (words straddling the value's end) is not value")
    func trailingWhitespace() {
        for length in 1...20 {
            for blanks in 0...9 {
                for blank: UInt8 in [0x20, 0x09] {
                    let value =
                        [UInt8](repeating: UInt8(ascii: "w"), count: length)
                        + [UInt8](repeating: blank, count: blanks)
                    Self.check(name: "X", value: value, "\(length) bytes then \(blanks) of \(blank)")
                    Self.check(name: "X", value: [blank] + value, "leading \(blank), \(length), \(blanks)")
                }
            }
        }
    }

    @Test("seeded values mixing blanks, controls, DEL and obs-text: as the byte rule says")
    func seededValues() {
        var random = SplitMix64(seed: 41)
        let alphabet: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x21, 0x7E, 0x7F, 0x80, 0xC3, 0xA9, 0xFF]
        for _ in 0..<4_000 {
            var value = seededFieldValue(&random, lengths: 1...40, alphabet: alphabet, oneIn: 6)
            // A CRLF inside would end the line there and start another field line, which `expected` does not model.
            for k in value.indices.dropLast() where value[k] == 0x0D && value[k + 1] == 0x0A { value[k + 1] = 0x78 }
            let name = String(repeating: "k", count: Int.random(in: 1...8, using: &random))
            Self.check(name: name, value: value, "\(value) behind \(name)")
        }
    }
}

/// Review 10, finding 10: a head refused after its request line names that line, for the access log.
@Suite("HTTP/1.1 request decoder: the request line of a refused head")
struct HTTP1RequestDecoderFailedLineTests {
    /// Feeds `text` whole; the failure and the decoder's `failedRequestLine`.
    static func fail(_ text: String) -> (HTTP1RequestDecoder.Failure?, method: String?, target: String?) {
        var decoder = HTTP1RequestDecoder(limits: .init(maxHeadBytes: 128))
        var buffer = ByteBuffer(string: text)
        do {
            while true {
                if case .needMoreBytes = try decoder.next(&buffer) { break }
            }
            return (nil, nil, nil)
        } catch {
            return (error, decoder.failedRequestLine?.method, decoder.failedRequestLine?.target)
        }
    }

    @Test("a control character in a field value (whole head or not): the line's method and target")
    func controlInField() {
        let whole = Self.fail("GET /healthz?x=1 HTTP/1.1\r\nRequest-Id: abc\u{1B}[31mRED\r\n\r\n")
        #expect(whole.0 == .invalidFieldValue)
        #expect(whole.method == "GET" && whole.target == "/healthz?x=1")
        // The head not yet whole: refused as the bad line arrives, after two empty lines before it (§2.2).
        let partial = Self.fail("\r\n\r\nPOST /v1beta/x HTTP/1.1\r\nA: \u{7F}\r\n")
        #expect(partial.0 == .invalidFieldValue)
        #expect(partial.method == "POST" && partial.target == "/v1beta/x")
    }

    @Test("a head over the limit names its line; a bad request line, or none whole, names nothing")
    func limitsAndBadLines() {
        let long = Self.fail("GET /big HTTP/1.1\r\nA: " + String(repeating: "a", count: 200))
        #expect(long.0 == .headTooLarge)
        #expect(long.method == "GET" && long.target == "/big")
        let badMethod = Self.fail("G(T / HTTP/1.1\r\n\r\n")
        #expect(badMethod.0 == .invalidMethod && badMethod.method == nil)
        let badVersion = Self.fail("GET / HTTP/1.2\r\n\r\n")
        #expect(badVersion.0 == .invalidVersion && badVersion.target == nil)
        let http2 = Self.fail("GET / HTTP/2.0\r\n\r\n")
        #expect(http2.0 == .unsupportedVersion && http2.target == nil)
        #expect(HTTP1RequestDecoder.Failure.unsupportedVersion.status == 505)
        // A request line that does not end within the limit is a target too long (414, protocol review 58, L1).
        let overlongLine = Self.fail("GET /" + String(repeating: "a", count: 200))
        #expect(overlongLine.0 == .requestTargetTooLong && overlongLine.method == nil)
        #expect(HTTP1RequestDecoder.Failure.requestTargetTooLong.status == 414)
    }
}
