import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import WireCodecs

@testable import GatewayServer

/// The HTTP/1.1 frontend's codec (`HTTP1ServerCodec`) over an embedded channel: the request parts the
/// handlers behind it see, and the bytes a response leaves as (NIO's `HTTPResponseEncoder` framing, a known
/// body in one write).
@Suite("HTTP/1.1 server codec")
struct HTTP1ServerCodecTests {
    /// Collects what reaches the end of the pipeline: parts, errors.
    final class Sink: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var parts: [HTTPServerRequestPart] = []
        var errors: [any Error] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            parts.append(unwrapInboundIn(data))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            errors.append(error)
        }
    }

    static func channel() throws -> (EmbeddedChannel, Sink, HTTP1ServerCodec.FailureNote) {
        let note = HTTP1ServerCodec.FailureNote()
        let sink = Sink()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP1ServerCodec(note: note))
        try channel.pipeline.syncOperations.addHandler(sink)
        return (channel, sink, note)
    }

    static func written(_ channel: EmbeddedChannel) throws -> [String] {
        var writes: [String] = []
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { continue }
            writes.append(String(buffer: buffer))
        }
        return writes
    }

    @Test("a head, its body split over reads, and its end; the end of a request without body needs no more bytes")
    func decodesParts() throws {
        let (channel, sink, _) = try Self.channel()
        try channel.writeInbound(
            ByteBuffer(string: "POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Id: 7\r\n\r\nab"))
        try channel.writeInbound(ByteBuffer(string: "cde"))
        // A second request without a body, in the same read as nothing else: its `.end` comes at once.
        try channel.writeInbound(ByteBuffer(string: "GET /h HTTP/1.0\r\n\r\n"))
        #expect(sink.parts.count == 6)
        guard case .head(let head) = sink.parts[0] else { Issue.record("\(sink.parts)"); return }
        #expect(head.method == .POST && head.uri == "/a?b=c" && head.version == .http1_1)
        #expect(head.headers.first(name: "x-id") == "7" && head.headers.count == 3 && head.isKeepAlive)
        var body = ""
        for case .body(let chunk) in sink.parts { body += String(buffer: chunk) }
        #expect(body == "abcde")
        guard case .end = sink.parts[3], case .head(let second) = sink.parts[4], case .end = sink.parts[5] else {
            Issue.record("\(sink.parts)")
            return
        }
        #expect(second.version == .http1_0 && !second.isKeepAlive)
        #expect(try channel.finish().isClean)
    }

    @Test("an HTTP/1.0 request framed by Transfer-Encoding does not persist, even with Connection: keep-alive")
    func http10ChunkedCloses() throws {
        let (channel, sink, _) = try Self.channel()
        try channel.writeInbound(
            ByteBuffer(
                string: "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "3\r\nabc\r\n0\r\n\r\n"))
        guard case .head(let head)? = sink.parts.first else { Issue.record("\(sink.parts)"); return }
        // RFC 9112 §6.1: the connection closes after the answer (a keep-alive HTTP/1.0 request without it stays).
        #expect(head.version == .http1_0 && !head.isKeepAlive)
        let (other, otherSink, _) = try Self.channel()
        try other.writeInbound(ByteBuffer(string: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        guard case .head(let kept)? = otherSink.parts.first else { Issue.record("\(otherSink.parts)"); return }
        #expect(kept.isKeepAlive)
    }

    @Test("a decoding failure is an HTTPParserError, its exact reason in the note; later bytes are dropped")
    func failure() throws {
        let (channel, sink, note) = try Self.channel()
        try channel.writeInbound(
            ByteBuffer(string: "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n"))
        #expect(sink.errors.first as? HTTPParserError != nil)
        #expect(note.failure == .unsupportedTransferCoding)
        #expect(note.failure?.status == 501)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: x\r\n\r\n"))
        #expect(sink.parts.isEmpty)
        #expect(sink.errors.count == 1)
        _ = try channel.finish()
    }

    @Test(
        "the client gone inside a request is invalidEOFState (a relayed body is cut); between requests, or when the gateway closed, nothing"
    )
    func endOfInput() throws {
        let (channel, sink, _) = try Self.channel()
        try channel.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 9\r\n\r\nab"))
        channel.pipeline.fireChannelInactive()  // the peer went away: no close through the pipeline
        #expect(sink.errors.count == 1)
        #expect(sink.errors.first as? HTTPParserError == .invalidEOFState)
        _ = try? channel.finish()

        let (clean, cleanSink, _) = try Self.channel()
        try clean.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: x\r\n\r\n"))
        clean.pipeline.fireChannelInactive()
        #expect(cleanSink.errors.isEmpty)
        #expect(cleanSink.parts.count == 2)
        _ = try? clean.finish()

        // The gateway closed (its close passes the codec) with a body still arriving: no error asks for an answer.
        let (closed, closedSink, _) = try Self.channel()
        try closed.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 9\r\n\r\nab"))
        _ = try closed.finish()
        #expect(closedSink.errors.isEmpty)
    }

    @Test("a response with a Content-Length: head, body and end leave in one write")
    func knownBodyOneWrite() throws {
        let (channel, _, _) = try Self.channel()
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "2")
        channel.write(
            HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)),
            promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "{}"))), promise: nil)
        #expect(try Self.written(channel).isEmpty, "held until the end or a flush")
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        #expect(
            try Self.written(channel) == [
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
            ])
        _ = try channel.finish()
    }

    @Test("no Content-Length on HTTP/1.1: chunked (SSE); a flushed head leaves alone; 100 Continue at once")
    func chunkedAndInterim() throws {
        let (channel, _, _) = try Self.channel()
        channel.writeAndFlush(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .continue)))
            .whenFailure { Issue.record($0) }
        #expect(try Self.written(channel) == ["HTTP/1.1 100 Continue\r\n\r\n"])
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        channel.write(
            HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)),
            promise: nil)
        let first = channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "data: 1\n\n"))))
        #expect(
            try Self.written(channel).joined() == "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                + "transfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        #expect(throws: Never.self) { try first.wait() }
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        #expect(try Self.written(channel) == ["0\r\n\r\n"])
        _ = try channel.finish()
    }

    @Test("a HEAD request's answer has no body; 204 loses its framing fields")
    func bodylessAnswers() throws {
        let (channel, _, _) = try Self.channel()
        try channel.writeInbound(ByteBuffer(string: "HEAD / HTTP/1.1\r\nhost: x\r\n\r\n"))
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: "2")
        channel.write(
            HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)),
            promise: nil)
        let body = channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "{}"))))
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        #expect(try Self.written(channel) == ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"])
        #expect(throws: (any Error).self) { try body.wait() }

        channel.write(
            HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .noContent, headers: headers)),
            promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        #expect(try Self.written(channel) == ["HTTP/1.1 204 No Content\r\n\r\n"])
        _ = try channel.finish()
    }
}
