import Foundation
import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
import WireCodecs

@testable import GatewayServer

/// The HTTP/1.1 connection handler (`HTTP1FrontendHandler`) as a client sees it, over the gateway's own
/// pipeline on a testing loop: requests decoded from arbitrary reads, answered one at a time and in order
/// (RFC 9112 §9.3.2), persistence as the decoder decides it (RFC 9112 §9.3, §6.1), decoding failures, and the
/// bytes of an answer (one write for a known body; NIO's framing rules, `HTTP1ResponseEncoder`).
@Suite("HTTP/1.1 connection")
struct HTTP1ConnectionTests {
    static let triggerBody = #"{"data":[{"variable":{"x":1}}]}"#

    /// A sync trigger of the hanging runner (answered 504 at the request timeout, one hour).
    static func trigger(id: String) -> String {
        "POST /v1beta/namespaces/demo/pipelines/wait/trigger HTTP/1.1\r\nhost: gw\r\nrequest-id: \(id)\r\n"
            + "content-type: application/json\r\ncontent-length: \(triggerBody.utf8.count)\r\n\r\n\(triggerBody)"
    }

    /// A request the gateway answers at once, without a backend (no such route: 404).
    static func unknown(id: String, version: String = "HTTP/1.1", extra: String = "") -> String {
        "GET /nope HTTP/1.1\r\nhost: gw\r\nrequest-id: \(id)\r\n\(extra)\r\n".replacingOccurrences(
            of: "HTTP/1.1\r\n", with: "\(version)\r\n")
    }

    static func connection() async throws -> (NIOAsyncTestingEventLoop, NIOAsyncTestingChannel) {
        try await FrontendDeadlineTests.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(2), runner: FrontendDeadlineTests.Hanging())
    }

    /// Each buffer the gateway wrote so far, as text.
    static func writes(_ channel: NIOAsyncTestingChannel) async throws -> [String] {
        var writes: [String] = []
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) { writes.append(String(buffer: buffer)) }
        return writes
    }

    /// The answers in `text`, in order: (status line, header block lowercased, body).
    static func answers(_ text: String) -> [(status: String, head: String, body: String)] {
        var answers: [(String, String, String)] = []
        var rest = Substring(text)
        while let end = rest.range(of: "\r\n\r\n") {
            let head = rest[..<end.lowerBound]
            let status = String(head.prefix { $0 != "\r\n" })
            let lower = head.lowercased()
            var length = 0
            if let field = lower.range(of: "content-length: ") {
                length = Int(lower[field.upperBound...].prefix { $0.isNumber }) ?? 0
            }
            if status.hasPrefix("HTTP/1.1 100") || lower.contains("\r\nhead-request: yes") { length = 0 }
            let bodyEnd = rest.index(end.upperBound, offsetBy: length, limitedBy: rest.endIndex) ?? rest.endIndex
            answers.append((status, lower, String(rest[end.upperBound..<bodyEnd])))
            rest = rest[bodyEnd...]
        }
        return answers
    }

    static func finish(_ loop: NIOAsyncTestingEventLoop, _ channel: NIOAsyncTestingChannel) async {
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    @Test(
        "a head and its body split over reads; a bodyless request after it in a read of its own",
        .timeLimit(.minutes(1)))
    func splitReads() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(
            ByteBuffer(string: "POST /nope?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nRequest-Id: one\r\n\r\nab"))
        try await channel.writeInbound(ByteBuffer(string: "cde"))
        try await channel.writeInbound(ByteBuffer(string: "GET /nope HTTP/1.0\r\nrequest-id: two\r\n\r\n"))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.map(\.status) == ["HTTP/1.1 404 Not Found", "HTTP/1.1 404 Not Found"], "\(answers)")
        #expect(answers.first?.head.contains("request-id: one") == true, "a capitalised name is matched")
        #expect(answers.first?.head.contains("connection: close") == false)
        // HTTP/1.0 without keep-alive: the connection ends after the answer (RFC 9112 §9.3).
        #expect(answers.last?.head.contains("request-id: two") == true)
        #expect(answers.last?.head.contains("connection: close") == true)
        await Self.finish(loop, channel)
    }

    @Test("an HTTP/1.0 request framed by Transfer-Encoding does not persist, even with Connection: keep-alive")
    func http10ChunkedCloses() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(
            ByteBuffer(
                string: "POST /nope HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "3\r\nabc\r\n0\r\n\r\n"))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        // RFC 9112 §6.1: the connection closes after the answer.
        #expect(answers.count == 1 && answers[0].head.contains("connection: close"), "\(answers)")
        await Self.finish(loop, channel)

        let (otherLoop, other) = try await Self.connection()
        try await other.writeInbound(ByteBuffer(string: "GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        await otherLoop.run()
        let kept = Self.answers(try await Self.writes(other).joined())
        #expect(kept.count == 1 && !kept[0].head.contains("connection: close"), "\(kept)")
        // Persistence is opt-in for HTTP/1.0, so the answer says it persists (RFC 9112 §9.3); HTTP/1.1's does not.
        #expect(kept.first?.head.contains("connection: keep-alive") == true, "\(kept)")
        await Self.finish(otherLoop, other)

        let (loop11, http11) = try await Self.connection()
        try await http11.writeInbound(ByteBuffer(string: Self.unknown(id: "v11")))
        await loop11.run()
        let plain = Self.answers(try await Self.writes(http11).joined())
        #expect(plain.count == 1 && !plain[0].head.contains("connection: keep-alive"), "\(plain)")
        await Self.finish(loop11, http11)
    }

    @Test(
        "HTTP/1.0 Expect: 100-continue is ignored (RFC 9110 §10.1.1): no 100, the body is read", .timeLimit(.minutes(1))
    )
    func http10ExpectIgnored() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(
            ByteBuffer(
                string: "POST /v1beta/namespaces/demo/pipelines/wait/trigger HTTP/1.0\r\nhost: gw\r\n"
                    + "content-type: application/json\r\nexpect: 100-continue\r\n"
                    + "content-length: \(Self.triggerBody.utf8.count)\r\n\r\n"))
        await loop.run()
        #expect(try await Self.writes(channel) == [])
        await Self.finish(loop, channel)
    }

    @Test(
        "a request refused before its held-back body (Expect: 100-continue) closes: the body may never come",
        .timeLimit(.minutes(1)))
    func refusedBeforeContinueCloses() async throws {
        let (loop, channel) = try await Self.connection()
        // No such route: answered at the head, without a 100; the client may skip the body and send its next
        // request, which must not be read as that body.
        try await channel.writeInbound(
            ByteBuffer(
                string: "POST /nope HTTP/1.1\r\nhost: gw\r\nexpect: 100-continue\r\ncontent-length: 5000\r\n\r\n"
                    + Self.unknown(id: "next")))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.count == 1, "\(answers)")
        #expect(answers.first?.status.hasPrefix("HTTP/1.1 404") == true, "\(answers)")
        #expect(answers.first?.head.contains("connection: close") == true, "\(answers)")
        await Self.finish(loop, channel)

        // The same request without Expect keeps the connection (its body follows).
        let (otherLoop, other) = try await Self.connection()
        try await other.writeInbound(
            ByteBuffer(
                string: "POST /nope HTTP/1.1\r\nhost: gw\r\ncontent-length: 3\r\n\r\nabc" + Self.unknown(id: "b")))
        await otherLoop.run()
        let both = Self.answers(try await Self.writes(other).joined())
        #expect(both.count == 2 && !both[0].head.contains("connection: close"), "\(both)")
        await Self.finish(otherLoop, other)
    }

    @Test("an error answer to CONNECT keeps its body (RFC 9110 §9.3.6 drops only a 2xx's)", .timeLimit(.minutes(1)))
    func connectErrorHasBody() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(ByteBuffer(string: "CONNECT /nope HTTP/1.1\r\nhost: gw\r\n\r\n"))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.count == 1, "\(answers)")
        #expect(
            answers.first.map { !$0.body.isEmpty && $0.head.contains("content-length: \($0.body.utf8.count)") } == true,
            "\(answers)")
        await Self.finish(loop, channel)
    }

    @Test("a decoding failure is answered with the decoder's status and closes; later bytes are not answered")
    func failure() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(
            ByteBuffer(string: "POST /nope HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n"))
        try await channel.writeInbound(ByteBuffer(string: Self.unknown(id: "later")))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.count == 1, "\(answers)")
        #expect(answers.first?.status == "HTTP/1.1 501 Not Implemented")
        #expect(answers.first?.head.contains("connection: close") == true)
        #expect(answers.first?.body.contains("malformed HTTP/1.1 request") == true)
        await Self.finish(loop, channel)
    }

    @Test(
        "a request line of HTTP/2.0 or later is answered 505 saying how HTTP/2 is spoken; HTTP/1.2 is a 400",
        arguments: [("HTTP/2.0", "HTTP/1.1 505 HTTP Version Not Supported"), ("HTTP/1.2", "HTTP/1.1 400 Bad Request")])
    func unsupportedVersion(version: String, statusLine: String) async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(ByteBuffer(string: "GET /readyz \(version)\r\nhost: x\r\n\r\n"))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.count == 1, "\(answers)")
        #expect(answers.first?.status == statusLine)
        #expect(answers.first?.head.contains("connection: close") == true)
        let body = answers.first?.body ?? ""
        if version == "HTTP/2.0" {
            #expect(body.contains(#""code":12"#), "\(body)")
            #expect(
                body.contains(
                    "HTTP version not supported: the request line's version is not HTTP/1.1 or HTTP/1.0; HTTP/2"
                        + " starts with its connection preface (prior knowledge) or is negotiated with TLS ALPN"),
                "\(body)")
        } else {
            #expect(body.contains("malformed HTTP/1.1 request: invalid HTTP version"), "\(body)")
        }
        await Self.finish(loop, channel)
    }

    @Test("an answer with a known body leaves in one write: status line, fields, body")
    func knownBodyOneWrite() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(ByteBuffer(string: Self.unknown(id: "w")))
        await loop.run()
        let writes = try await Self.writes(channel)
        #expect(writes.count == 1, "\(writes)")
        let answer = Self.answers(writes.joined())
        #expect(answer.count == 1)
        #expect(answer.first?.head.contains("content-type: application/json") == true)
        #expect(answer.first.map { $0.head.contains("content-length: \($0.body.utf8.count)") } == true)
        #expect(answer.first?.body.hasPrefix("{") == true)
        await Self.finish(loop, channel)
    }

    @Test("a HEAD request's answer keeps its Content-Length and has no body", .timeLimit(.minutes(1)))
    func headAnswer() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(ByteBuffer(string: "HEAD /nope HTTP/1.1\r\nhost: gw\r\n\r\n"))
        try await channel.writeInbound(ByteBuffer(string: Self.unknown(id: "after")))
        await loop.run()
        let text = try await Self.writes(channel).joined()
        let first = text.components(separatedBy: "\r\n\r\n")
        #expect(first.count == 3, "two heads, one body: \(text)")
        #expect(first[0].hasPrefix("HTTP/1.1 404") && first[0].contains("content-length: "))
        #expect(first[1].hasPrefix("HTTP/1.1 404") && first[1].contains("request-id: after"), "no HEAD body between")
        await Self.finish(loop, channel)
    }

    @Test("Expect: 100-continue gets 100 Continue at once, before the body is sent", .timeLimit(.minutes(1)))
    func expectContinue() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(
            ByteBuffer(
                string: "POST /v1beta/namespaces/demo/pipelines/wait/trigger HTTP/1.1\r\nhost: gw\r\n"
                    + "content-type: application/json\r\nexpect: 100-continue\r\n"
                    + "content-length: \(Self.triggerBody.utf8.count)\r\n\r\n"))
        await loop.run()
        #expect(try await Self.writes(channel) == ["HTTP/1.1 100 Continue\r\n\r\n"])
        await Self.finish(loop, channel)
    }

    @Test("two requests in one read: both answered, in order", .timeLimit(.minutes(1)))
    func twoInOneRead() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(ByteBuffer(string: Self.unknown(id: "first") + Self.unknown(id: "second")))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.count == 2, "\(answers)")
        #expect(answers.first?.head.contains("request-id: first") == true)
        #expect(answers.last?.head.contains("request-id: second") == true)
        #expect(channel.isActive)
        await Self.finish(loop, channel)
    }

    @Test(
        "a request arriving while the one before it is still being answered waits for that answer",
        .timeLimit(.minutes(1)))
    func secondWhileFirstPending() async throws {
        let runner = FrontendDeadlineTests.Hanging()
        let (loop, channel) = try await FrontendDeadlineTests.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(2), runner: runner)
        try await channel.writeInbound(ByteBuffer(string: Self.trigger(id: "slow")))
        await loop.run()
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
        // Pipelined, in two reads: its answer is ready at once, but must not overtake the trigger's.
        let quick = Self.unknown(id: "quick")
        try await channel.writeInbound(ByteBuffer(string: String(quick.prefix(10))))
        try await channel.writeInbound(ByteBuffer(string: String(quick.dropFirst(10))))
        await loop.run()
        #expect(try await Self.writes(channel).isEmpty, "answered out of order")
        // Past the request-header timeout (while it waited, its header time had not begun): still no 408.
        await loop.advanceTime(by: .hours(1))
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.map(\.status) == ["HTTP/1.1 504 Gateway Timeout", "HTTP/1.1 404 Not Found"], "\(answers)")
        #expect(answers.first?.head.contains("request-id: slow") == true)
        #expect(answers.last?.head.contains("request-id: quick") == true)
        await Self.finish(loop, channel)
    }

    @Test("a request pipelined after Connection: close is not answered", .timeLimit(.minutes(1)))
    func afterConnectionClose() async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(
            ByteBuffer(
                string: Self.unknown(id: "last", extra: "connection: close\r\n") + Self.unknown(id: "ignored")))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.count == 1, "\(answers)")
        #expect(answers.first?.head.contains("request-id: last") == true)
        #expect(answers.first?.head.contains("connection: close") == true)
        await Self.finish(loop, channel)
    }

    @Test("a draining connection answers the request in progress with Connection: close", .timeLimit(.minutes(1)))
    func drainSaysClose() async throws {
        let runner = FrontendDeadlineTests.Hanging()
        let (loop, channel) = try await FrontendDeadlineTests.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(2), runner: runner)
        try await channel.writeInbound(ByteBuffer(string: Self.trigger(id: "drained")))
        await loop.run()
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try await channel.writeInbound(ByteBuffer(string: Self.unknown(id: "too-late")))
        await loop.advanceTime(by: .hours(1))
        let answers = Self.answers(try await Self.writes(channel).joined())
        #expect(answers.map(\.status) == ["HTTP/1.1 504 Gateway Timeout"], "\(answers)")
        #expect(answers.first?.head.contains("connection: close") == true)
        await Self.finish(loop, channel)
    }

    @Test(
        "a draining idle connection serves a request that arrives within the idle grace (Connection: close, then closed); at the grace it is closing and answers nothing",
        .timeLimit(.minutes(1)), arguments: [(999, true), (1000, false)])
    func drainIdleGrace(elapsedMilliseconds: Int64, served: Bool) async throws {
        let (loop, channel) = try await Self.connection()
        try await channel.writeInbound(ByteBuffer(string: Self.unknown(id: "before")))
        await loop.run()
        #expect(Self.answers(try await Self.writes(channel).joined()).count == 1)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        await loop.advanceTime(by: .milliseconds(elapsedMilliseconds))
        // Within the grace the connection is whole. Past it the staged close has begun: the testing channel has
        // no half-close (it closes at the output's shutdown), so the FIN and the reading on are HTTP1DrainTests'.
        #expect(channel.isActive == served)
        _ = try? await channel.writeInbound(ByteBuffer(string: Self.unknown(id: "in-flight")))
        await loop.run()
        let answers = Self.answers(try await Self.writes(channel).joined())
        if served {
            #expect(answers.map(\.status) == ["HTTP/1.1 404 Not Found"], "\(answers)")
            #expect(answers.first?.head.contains("request-id: in-flight") == true)
            #expect(answers.first?.head.contains("connection: close") == true)
        } else {
            #expect(answers.isEmpty, "\(answers)")
        }
        await loop.advanceTime(by: HTTP1FrontendHandler.drainLingerBound)
        #expect(!channel.isActive)
        await Self.finish(loop, channel)
    }

    @Test("the response encoder: chunked stream framing, no framing fields for 204, decimal lengths")
    func encoder() {
        let allocator = ByteBufferAllocator()
        let head = HTTP1ResponseEncoder.streamHead(
            status: 200, fields: [("content-type", "text/event-stream")], keepAlive: true, allocator: allocator)
        #expect(
            String(buffer: head)
                == "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        var chunk = HTTP1ResponseEncoder.chunkBuffer(capacity: 26, allocator: allocator)
        chunk.writeString(String(repeating: "x", count: 26))
        HTTP1ResponseEncoder.frameChunk(&chunk)
        #expect(String(buffer: chunk) == "1a\r\n" + String(repeating: "x", count: 26) + "\r\n")
        var noData = HTTP1ResponseEncoder.chunkBuffer(capacity: 0, allocator: allocator)
        HTTP1ResponseEncoder.frameChunk(&noData)
        #expect(noData.readableBytes == 0, "an empty chunk would end the body")
        // Framed in place: the size line written into the room before the data, at each hex digit count's edges.
        for size in [1, 9, 15, 16, 255, 256, 4095, 4096, 65535, 65536, 1 << 20] {
            var framed = HTTP1ResponseEncoder.chunkBuffer(capacity: 8, allocator: allocator)
            framed.writeRepeatingByte(UInt8(ascii: "y"), count: size)
            HTTP1ResponseEncoder.frameChunk(&framed)
            #expect(
                String(buffer: framed) == String(size, radix: 16) + "\r\n" + String(repeating: "y", count: size)
                    + "\r\n",
                "\(size)")
        }
        var empty = HTTP1ResponseEncoder.chunkBuffer(capacity: 8, allocator: allocator)
        HTTP1ResponseEncoder.frameChunk(&empty)
        #expect(empty.readableBytes == 0, "an empty chunk would end the body")
        let noContent = HTTP1ResponseEncoder.response(
            status: 204, fields: [("request-id", "r")], body: ByteBuffer(string: "x"), keepAlive: false,
            omitsBody: false, allocator: allocator)
        #expect(String(buffer: noContent) == "HTTP/1.1 204 No Content\r\nrequest-id: r\r\nconnection: close\r\n\r\n")
        for value in [0, 7, 10, 99, 100, 1_048_576, Int.max] {
            var buffer = allocator.buffer(capacity: 8)
            buffer.writeDecimal(value)
            #expect(String(buffer: buffer) == String(value))
        }
    }
}
