import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

@Suite("HTTP/2 request and response")
struct RequestResponseTests {
    @Test("a request with a body gets headers, body and trailers back", arguments: [nil, 1, 7] as [Int?])
    func requestResponseWithTrailers(chunkSize: Int?) throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let stream = try pair.startRequest(body: "hello, backend")
        try pair.interact(chunkSize: chunkSize)

        #expect(stream == HTTP2StreamID(1))
        let request = pair.serverDelegate.events(for: 1)
        #expect(request.count >= 3)
        guard case .headers(1, let headers, endStream: false) = request.first else {
            Issue.record("expected request headers first, got \(request)")
            return
        }
        #expect(headers.first(name: ":path") == "/pkg.Service/Method")
        #expect(headers.first(name: ":method") == "POST")
        #expect(headers.first(name: "content-type") == "application/grpc")
        #expect(pair.serverDelegate.body(1) == "hello, backend")
        #expect(request.last == .closed(1, .noError))

        let response = pair.clientDelegate.events(for: 1)
        guard case .headers(1, let responseHeaders, endStream: false) = response.first else {
            Issue.record("expected response headers first, got \(response)")
            return
        }
        #expect(responseHeaders.first(name: ":status") == "200")
        #expect(pair.clientDelegate.body(1) == "hello, backend")
        #expect(response.suffix(2) == [.trailers(1, ["grpc-status": "0"]), .closed(1, .noError)])
        #expect(pair.clientSession.openStreamCount == 0)
        #expect(pair.serverSession.openStreamCount == 0)
        #expect(pair.client.isActive && pair.server.isActive)
    }

    @Test(
        "consecutive header blocks on one connection keep their own fields, kept by the delegate or let go (reused)",
        arguments: [false, true])
    func headerBlocksDoNotLeak(serverCopies: Bool) throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        pair.serverDelegate.copiesHeaderBlocks = serverCopies
        pair.clientDelegate.copiesHeaderBlocks = !serverCopies
        // A first block larger than the engine's initial room, then smaller ones.
        let extra = (0..<20).map { ("x-first-\($0)", "value \($0)") }
        let first = try pair.clientSession.startRequest(
            headers: ConnectionPair.requestHeaders(path: "/pkg.Service/First", extra: extra), endStream: false)
        pair.clientSession.sendData(stream: first, ByteBuffer(string: "a"), endStream: true)
        try pair.interact()
        let second = try pair.startRequest(body: "b", path: "/pkg.Service/Second")
        try pair.interact()

        guard case .headers(_, let firstHeaders, _) = pair.serverDelegate.events(for: first.rawValue).first,
            case .headers(_, let secondHeaders, _) = pair.serverDelegate.events(for: second.rawValue).first
        else {
            Issue.record("expected both requests' headers")
            return
        }
        #expect(firstHeaders.first(name: ":path") == "/pkg.Service/First")
        #expect(firstHeaders.count == 25)
        #expect(firstHeaders.first(name: "x-first-19") == "value 19")
        #expect(secondHeaders == ConnectionPair.requestHeaders(path: "/pkg.Service/Second"))
        for stream in [first, second] {
            let response = pair.clientDelegate.events(for: stream.rawValue)
            #expect(
                response.first
                    == .headers(
                        stream.rawValue, [":status": "200", "content-type": "application/grpc"],
                        endStream: false))
            #expect(
                response.suffix(2) == [
                    .trailers(stream.rawValue, ["grpc-status": "0"]), .closed(stream.rawValue, .noError),
                ])
        }
    }

    @Test("a response made inside callbacks leaves in one write")
    func responseIsCoalesced() throws {
        let pair = try ConnectionPair()
        try pair.interact()  // SETTINGS exchange
        pair.serveEcho()
        try pair.startRequest(body: "x")
        // Move the client's request over by hand and count the server's writes for it.
        while let bytes = try pair.client.readOutbound(as: ByteBuffer.self) {
            try pair.server.writeInbound(bytes)
        }
        let response = try pair.server.readAllOutbound()
        #expect(try pair.server.readOutbound(as: ByteBuffer.self) == nil)
        let frames = FrameHeader.parse(response)
        // HEADERS, DATA(x), DATA(empty, EOF w/o END_STREAM), trailers HEADERS(END_STREAM) + WINDOW_UPDATEs.
        #expect(frames.contains { $0.type == 0x1 && $0.flags & 0x1 == 0 })
        #expect(frames.contains { $0.type == 0x1 && $0.flags & 0x1 == 0x1 })
        #expect(frames.contains { $0.type == 0x0 && $0.payload.readableBytes == 1 })
    }

    @Test("a request without a body, answered with a trailers-only response")
    func headersOnly() throws {
        let pair = try ConnectionPair()
        pair.serverDelegate.onHeaders = { session, stream, _, endStream in
            #expect(endStream)
            session.sendResponseHeaders(
                stream: stream,
                headers: [":status": "200", "grpc-status": "5", "grpc-message": "not found"],
                endStream: true
            )
        }
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()
        #expect(
            pair.clientDelegate.events(for: stream.rawValue) == [
                .headers(1, [":status": "200", "grpc-status": "5", "grpc-message": "not found"], endStream: true),
                .closed(1, .noError),
            ]
        )
    }

    @Test("many concurrent streams over the server's limit all complete", arguments: [10, 250])
    func manyConcurrentStreams(count: Int) throws {
        var server = HTTP2SessionConfiguration.defaults
        server.maxConcurrentStreams = 100
        let pair = try ConnectionPair(server: server)
        pair.serveEcho()
        var ids: [HTTP2StreamID] = []
        for index in 0..<count {
            ids.append(try pair.startRequest(body: "body-\(index)", path: "/svc/\(index)"))
        }
        try pair.interact()
        #expect(ids.map(\.rawValue) == (0..<count).map { Int32(2 * $0 + 1) })
        for (index, id) in ids.enumerated() {
            #expect(pair.clientDelegate.body(id.rawValue) == "body-\(index)")
            #expect(pair.clientDelegate.events(for: id.rawValue).last == .closed(id.rawValue, .noError))
        }
        #expect(pair.clientSession.openStreamCount == 0)
    }

    @Test("a deferred body resumes when data is queued later")
    func deferredDataResumes() throws {
        let pair = try ConnectionPair()
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        try pair.interact()
        #expect(pair.serverDelegate.events(for: 1).count == 1)  // headers only; the provider is deferred

        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "abc"), endStream: false)
        try pair.interact()
        #expect(pair.serverDelegate.events(for: 1).last == .data(1, "abc", endStream: false))

        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "def"), endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(), endStream: true)
        try pair.interact()
        #expect(pair.serverDelegate.body(1) == "abcdef")
        guard case .data(1, _, endStream: true) = pair.serverDelegate.events(for: 1).last else {
            Issue.record("no end of stream: \(pair.serverDelegate.events)")
            return
        }
    }

    @Test("output waits while the channel is not writable and resumes after")
    func channelWritability() throws {
        let pair = try ConnectionPair()
        try pair.interact()
        pair.client.isWritable = false
        pair.client.pipeline.fireChannelWritabilityChanged()
        let stream = try pair.startRequest(body: "later")
        #expect(try pair.client.readOutbound(as: ByteBuffer.self) == nil)

        pair.client.isWritable = true
        pair.client.pipeline.fireChannelWritabilityChanged()
        let resumed = try pair.client.readAllOutbound()
        #expect(FrameHeader.parse(resumed).contains { $0.type == 0x0 && $0.streamID == stream.rawValue })
        try ConnectionPair.deliver(resumed, to: pair.server, chunkSize: nil)
        try pair.interact()
        #expect(pair.serverDelegate.body(stream.rawValue) == "later")
    }

    @Test("a stream reports unwritable above the high watermark and writable once drained")
    func streamWritability() throws {
        var client = HTTP2SessionConfiguration.defaults
        client.streamOutboundHighWatermark = 100
        let pair = try ConnectionPair(client: client)
        try pair.interact()
        // As a socket channel does at each change (the handler keeps the channel's writability from these events).
        pair.client.isWritable = false
        pair.client.pipeline.fireChannelWritabilityChanged()
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(repeating: 0x41, count: 100), endStream: false)
        #expect(pair.clientSession.isWritable(stream: stream))
        pair.clientSession.sendData(stream: stream, ByteBuffer(repeating: 0x41, count: 1), endStream: false)
        #expect(!pair.clientSession.isWritable(stream: stream))
        #expect(pair.clientDelegate.events == [.writable(1, false)])

        pair.client.isWritable = true
        pair.client.pipeline.fireChannelWritabilityChanged()
        #expect(pair.clientSession.bufferedOutboundBytes(stream: stream) == 0)
        #expect(pair.clientDelegate.events == [.writable(1, false), .writable(1, true)])
    }
}

@Suite("HTTP/2 writes flushed once per event-loop tick")
struct FlushOncePerTickTests {
    @Test(
        "with flushesOncePerTick, the writes of separate operations wait for the tick's flush; without, each is flushed"
    )
    func deferredFlush() throws {
        var configuration = HTTP2SessionConfiguration.defaults
        configuration.flushesOncePerTick = true
        let pair = try ConnectionPair(client: configuration)
        pair.client.embeddedEventLoop.run()  // the client's SETTINGS
        try pair.interact()
        try pair.startRequest(body: "first")
        try pair.startRequest(body: "second")
        // Two operations outside any callback, two drains: nothing is flushed before the loop runs its tasks.
        #expect(try pair.client.readOutbound(as: ByteBuffer.self) == nil)
        pair.client.embeddedEventLoop.run()
        let flushed = try pair.client.readAllOutbound()
        let headers = FrameHeader.parse(flushed).filter { $0.type == 0x1 }
        #expect(headers.count == 2)
        try pair.server.writeInbound(flushed)
        #expect(pair.serverDelegate.body(1) == "first")
        #expect(pair.serverDelegate.body(3) == "second")

        let eager = try ConnectionPair()
        try eager.interact()
        try eager.startRequest(body: "now")
        #expect(try eager.client.readOutbound(as: ByteBuffer.self) != nil)
    }
}
