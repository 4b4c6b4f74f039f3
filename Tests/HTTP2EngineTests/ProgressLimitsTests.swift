import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// What a peer that does not progress may hold (issue 10, items 1, 3 and 4), h2spec-style: frames in,
/// frames out, time moved by hand on the embedded event loop.
@Suite("HTTP/2 progress limits")
struct ProgressLimitsTests {
    static let timeout = TimeAmount.milliseconds(200)

    static func server(prefaceTimeout: TimeAmount? = nil, writeProgressTimeout: TimeAmount? = nil)
        -> HTTP2SessionConfiguration
    {
        var configuration = HTTP2SessionConfiguration.defaults
        configuration.prefaceTimeout = prefaceTimeout
        configuration.writeProgressTimeout = writeProgressTimeout
        return configuration
    }

    /// A client whose stream windows let `window` bytes through before it consumes anything.
    static func client(window: Int) -> HTTP2SessionConfiguration {
        var configuration = HTTP2SessionConfiguration.defaults
        configuration.initialWindowSize = window
        return configuration
    }

    // MARK: Item 1: preface timeout

    @Test(
        "a silent client is cut with GOAWAY(SETTINGS_TIMEOUT) at the preface timeout, not 1 ms before",
        arguments: [(199, true), (200, false)]
    )
    func silentClient(elapsedMilliseconds: Int64, staysOpen: Bool) throws {
        let pair = try ConnectionPair(server: Self.server(prefaceTimeout: Self.timeout))
        _ = try pair.server.readAllOutbound()  // our SETTINGS
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(elapsedMilliseconds))
        #expect(pair.server.isActive == staysOpen)
        let frames = FrameHeader.parse(try pair.server.readAllOutbound())
        if staysOpen {
            #expect(frames.isEmpty)
        } else {
            #expect(frames.compactMap(\.goAwayFields).map(\.1) == [.settingsTimeout])
            #expect(pair.serverDelegate.events == [.sessionClosed(failed: true)])
        }
    }

    @Test("a client stalled in the middle of its preface is cut at the preface timeout")
    func stalledMidPreface() throws {
        let pair = try ConnectionPair(server: Self.server(prefaceTimeout: Self.timeout))
        let preface = try pair.client.readAllOutbound()
        try pair.server.writeInbound(preface.getSlice(at: preface.readerIndex, length: 30)!)  // magic + 6 bytes
        pair.server.embeddedEventLoop.advanceTime(by: Self.timeout - .milliseconds(1))
        #expect(pair.server.isActive)
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!pair.server.isActive)
    }

    @Test("a client whose preface arrived in time is not cut by the preface timeout")
    func prefaceInTime() throws {
        let pair = try ConnectionPair(server: Self.server(prefaceTimeout: Self.timeout))
        pair.server.embeddedEventLoop.advanceTime(by: Self.timeout - .milliseconds(1))
        try pair.interact()
        pair.server.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(pair.server.isActive && pair.client.isActive)
    }

    @Test("a graceful shutdown of a connection whose client never finished its preface closes it at once")
    func shutdownBeforePreface() throws {
        let pair = try ConnectionPair()
        _ = try pair.server.readAllOutbound()
        pair.serverSession.initiateGracefulShutdown()
        let frames = FrameHeader.parse(try pair.server.readAllOutbound())
        #expect(frames.compactMap(\.goAwayFields).map(\.1) == [.noError])
        #expect(!pair.server.isActive)
        #expect(pair.serverDelegate.events == [.sessionClosed(failed: false)])
    }

    // MARK: Item 2: request header and body progress

    static func server(headerTimeout: TimeAmount, bodyTimeout: TimeAmount) -> HTTP2SessionConfiguration {
        var configuration = HTTP2SessionConfiguration.defaults
        configuration.requestHeaderTimeout = headerTimeout
        configuration.requestBodyProgressTimeout = bodyTimeout
        return configuration
    }

    @Test(
        "a request whose header block stalls part-way is reset with CANCEL at the header timeout, not 1 ms before",
        arguments: [(199, false), (200, true)]
    )
    func stalledHeaderBlock(elapsedMilliseconds: Int64, reset: Bool) throws {
        let pair = try ConnectionPair(server: Self.server(headerTimeout: Self.timeout, bodyTimeout: .seconds(10)))
        try pair.interact()
        _ = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        let headers = try pair.client.readAllOutbound()
        // The frame header and a few bytes of the block: libnghttp2 has begun the header block, not ended it.
        try pair.server.writeInbound(headers.getSlice(at: headers.readerIndex, length: 12)!)
        _ = try pair.server.readAllOutbound()
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(elapsedMilliseconds))
        let frames = FrameHeader.parse(try pair.server.readAllOutbound())
        let resets = frames.filter { $0.type == FrameHeader.rstStream && $0.streamID == 1 }
        #expect(resets.count == (reset ? 1 : 0), "\(frames.map(\.type))")
        if let code = resets.first?.payload.getInteger(at: resets.first!.payload.readerIndex, as: UInt32.self) {
            #expect(HTTP2ErrorCode(code) == .cancel)
        }
        #expect(pair.serverDelegate.events.isEmpty)  // an unfinished block never reached the owner
    }

    @Test("a request body is reset with CANCEL when silent for the body-progress timeout; each DATA restarts it")
    func stalledBody() throws {
        let pair = try ConnectionPair(server: Self.server(headerTimeout: .seconds(10), bodyTimeout: Self.timeout))
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        try pair.interact()
        for _ in 0..<3 {
            pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(150))
            pair.clientSession.sendData(stream: stream, ByteBuffer(string: "more"), endStream: false)
            try pair.interact()
        }
        #expect(pair.clientDelegate.events(for: stream.rawValue).isEmpty)
        pair.server.embeddedEventLoop.advanceTime(by: Self.timeout - .milliseconds(1))
        try pair.interact()
        #expect(pair.clientDelegate.events(for: stream.rawValue).isEmpty)
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        try pair.interact()
        #expect(pair.clientDelegate.events(for: stream.rawValue) == [.closed(stream.rawValue, .cancel)])
        #expect(pair.serverDelegate.events(for: stream.rawValue).last == .closed(stream.rawValue, .cancel))
    }

    @Test(
        "the clock is read once per received batch: a body deadline set after a slow callback of the same read counts from the read's start",
        arguments: [(199, false), (200, true)]
    )
    func batchClock(elapsedMilliseconds: Int64, reset: Bool) throws {
        let pair = try ConnectionPair(server: Self.server(headerTimeout: .seconds(10), bodyTimeout: Self.timeout))
        try pair.interact()
        let first = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        let second = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        // The first request's owner takes 50 ms; the second's header block is in the same read, after it. The hook
        // captures the loop, not the pair (which owns the delegate: a cycle, and a leak under ASan).
        let serverLoop = pair.server.embeddedEventLoop
        pair.serverDelegate.onHeaders = { _, stream, _, _ in
            if stream == first { serverLoop.advanceTime(by: .milliseconds(50)) }
        }
        try ConnectionPair.deliver(try pair.client.readAllOutbound(), to: pair.server, chunkSize: nil)
        _ = try pair.server.readAllOutbound()
        // 50 ms have passed in the read; the second request's body deadline is the read's start + 200 ms.
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(elapsedMilliseconds - 50))
        let frames = FrameHeader.parse(try pair.server.readAllOutbound())
        let resets = frames.filter { $0.type == FrameHeader.rstStream && $0.streamID == second.rawValue }
        #expect(resets.count == (reset ? 1 : 0), "\(frames.map(\.type))")
    }

    @Test(
        "a silent body the owner answers gets the whole answer, then RST_STREAM(NO_ERROR) after its END_STREAM; the connection goes on (RFC 9113 §8.1)",
        arguments: [false, true]
    )
    func stalledBodyAnswered(withBody: Bool) throws {
        let pair = try ConnectionPair(server: Self.server(headerTimeout: .seconds(10), bodyTimeout: Self.timeout))
        pair.serverDelegate.onRequestBodyTimedOut = { session, stream in
            var headers = HTTP2Headers()
            headers.add(name: ":status", value: "408")
            session.sendResponseHeaders(stream: stream, headers: headers, endStream: !withBody)
            if withBody { session.sendData(stream: stream, ByteBuffer(string: "too late"), endStream: true) }
            return true
        }
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "some"), endStream: false)
        try pair.interact()
        pair.server.embeddedEventLoop.advanceTime(by: Self.timeout - .milliseconds(1))
        try pair.interact()
        #expect(pair.clientDelegate.events(for: stream.rawValue).isEmpty)
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        let written = try pair.server.readAllOutbound()
        let frames = FrameHeader.parse(written).filter { $0.streamID == stream.rawValue }
        // The answer's frames first, the reset last: a reset ahead of them would drop the answer.
        #expect(
            frames.map(\.type)
                == (withBody
                    ? [FrameHeader.headers, FrameHeader.data, FrameHeader.rstStream]
                    : [FrameHeader.headers, FrameHeader.rstStream]),
            "\(frames.map(\.type))")
        let reset = try #require(frames.last)
        let code = try #require(reset.payload.getInteger(at: reset.payload.readerIndex, as: UInt32.self))
        #expect(HTTP2ErrorCode(code) == .noError)
        try pair.client.writeInbound(written)
        try pair.interact()
        let events = pair.clientDelegate.events(for: stream.rawValue)
        guard case .headers(_, let answer, _) = events.first else {
            Issue.record("no answer before the reset: \(events)")
            return
        }
        #expect(answer.first(name: ":status") == "408")
        #expect(events.last == .closed(stream.rawValue, .noError), "\(events)")
        #expect(pair.serverDelegate.events(for: stream.rawValue).last == .closed(stream.rawValue, .noError))
        // The connection still serves: a second request is answered.
        let second = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        pair.serverDelegate.onHeaders = { session, stream, _, _ in
            var headers = HTTP2Headers()
            headers.add(name: ":status", value: "200")
            session.sendResponseHeaders(stream: stream, headers: headers, endStream: true)
        }
        try pair.interact()
        #expect(pair.clientDelegate.events(for: second.rawValue).last == .closed(second.rawValue, .noError))
        #expect(pair.server.isActive && pair.client.isActive)
    }

    /// The frontend holds a body's window back while its connection is over its bound on buffered bodies
    /// (`limits.max_buffered_request_bytes_per_connection`): the client waits for us, it is not silent.
    @Test("a body the owner holds unconsumed is not reset for silence; the whole-receipt timeout still ends it")
    func heldBodyNotSilent() throws {
        var configuration = Self.server(headerTimeout: .seconds(10), bodyTimeout: Self.timeout)
        configuration.requestReceiptTimeout = .milliseconds(1000)  // five body timeouts
        let pair = try ConnectionPair(server: configuration)
        pair.serverDelegate.autoConsume = false
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "held"), endStream: false)
        try pair.interact()
        for _ in 0..<4 {
            pair.server.embeddedEventLoop.advanceTime(by: Self.timeout)
            try pair.interact()
        }
        pair.server.embeddedEventLoop.advanceTime(by: Self.timeout - .milliseconds(1))
        try pair.interact()
        #expect(pair.clientDelegate.events(for: stream.rawValue).isEmpty)
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        try pair.interact()
        #expect(pair.clientDelegate.events(for: stream.rawValue) == [.closed(stream.rawValue, .cancel)])
    }

    @Test("a request that ended is not reset by the request timeouts while its response is pending")
    func endedRequestNotReset() throws {
        let pair = try ConnectionPair(server: Self.server(headerTimeout: Self.timeout, bodyTimeout: Self.timeout))
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "all"), endStream: true)
        try pair.interact()
        pair.server.embeddedEventLoop.advanceTime(by: .seconds(5))
        try pair.interact()
        #expect(pair.serverSession.openStreamCount == 1)
        #expect(pair.clientDelegate.events(for: stream.rawValue).isEmpty)
    }

    // MARK: Item 3: the graceful shutdown completes when the PING is answered

    @Test("the shutdown PING's ACK is recognised and the final GOAWAY follows (release builds too)")
    func shutdownPingAck() throws {
        let pair = try ConnectionPair()
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()
        pair.serverSession.initiateGracefulShutdown()
        try pair.interact()
        #expect(pair.clientDelegate.events == [.goAway(Int32.max, .noError), .goAway(stream.rawValue, .noError)])
    }

    // MARK: Item 4: write-progress timeout

    @Test(
        "a stream whose window stays shut is reset with CANCEL at the write-progress timeout, not 1 ms before",
        arguments: [(199, false), (200, true)]
    )
    func shutWindow(elapsedMilliseconds: Int64, reset: Bool) throws {
        let pair = try ConnectionPair(
            client: Self.client(window: 0),
            server: Self.server(writeProgressTimeout: Self.timeout)
        )
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()
        pair.serverSession.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
        pair.serverSession.sendData(stream: stream, ByteBuffer(repeating: 0x41, count: 100), endStream: true)
        try pair.interact()
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(elapsedMilliseconds))
        try pair.interact()
        let closed = pair.clientDelegate.events(for: stream.rawValue).contains(.closed(stream.rawValue, .cancel))
        #expect(closed == reset, "\(pair.clientDelegate.events)")
        #expect(pair.serverSession.bufferedOutboundBytes == (reset ? 0 : 100))
        #expect(pair.server.isActive)
    }

    @Test("each window update the client sends restarts the write-progress clock")
    func slowButProgressing() throws {
        let pair = try ConnectionPair(
            client: Self.client(window: 10),
            server: Self.server(writeProgressTimeout: Self.timeout)
        )
        pair.clientDelegate.autoConsume = false
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()
        pair.serverSession.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
        pair.serverSession.sendData(stream: stream, ByteBuffer(repeating: 0x41, count: 40), endStream: true)
        try pair.interact()
        for _ in 0..<3 {
            pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(150))
            pair.clientDelegate.consumeAll(pair.clientSession)
            try pair.interact()
        }
        #expect(pair.clientDelegate.body(stream.rawValue).count == 40)
        #expect(pair.clientDelegate.events(for: stream.rawValue).last == .closed(stream.rawValue, .noError))
    }

    @Test(
        "a write the owner makes outside any read is stamped with the time then, not a read's earlier one",
        arguments: [(199, true), (200, false)]
    )
    func stampOutsideABatch(elapsedMilliseconds: Int64, active: Bool) throws {
        var configuration = Self.server(writeProgressTimeout: Self.timeout)
        configuration.requestHeaderTimeout = .seconds(10)  // so the server's read takes the time (a stamp)
        let pair = try ConnectionPair(server: configuration)
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()  // the server's last read, and its clock batch, end here
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        pair.server.isWritable = false
        pair.server.pipeline.fireChannelWritabilityChanged()
        pair.serverSession.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
        pair.serverSession.sendData(stream: stream, ByteBuffer(repeating: 0x41, count: 100), endStream: false)
        // Stamped 100 ms after the read: the timeout counts from the write, not from the read.
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(elapsedMilliseconds))
        #expect(pair.server.isActive == active)
    }

    @Test("a client that reads nothing at all is disconnected at the write-progress timeout")
    func unreadConnection() throws {
        let pair = try ConnectionPair(server: Self.server(writeProgressTimeout: Self.timeout))
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()
        pair.server.isWritable = false
        pair.server.pipeline.fireChannelWritabilityChanged()
        pair.serverSession.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
        pair.serverSession.sendData(stream: stream, ByteBuffer(repeating: 0x41, count: 100), endStream: false)
        pair.server.embeddedEventLoop.advanceTime(by: Self.timeout - .milliseconds(1))
        #expect(pair.server.isActive)
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!pair.server.isActive)
        #expect(pair.serverDelegate.events.last == .sessionClosed(failed: true))
    }

    // MARK: Item 4: connection ceiling

    @Test(
        "streams report unwritable once the connection's queued bytes pass its ceiling, not at it",
        arguments: [(250, true), (251, false)]
    )
    func connectionCeiling(total: Int, writable: Bool) throws {
        var server = HTTP2SessionConfiguration.defaults
        server.streamOutboundHighWatermark = 1000
        server.connectionOutboundHighWatermark = 250
        let pair = try ConnectionPair(client: Self.client(window: 0), server: server)
        var streams: [HTTP2StreamID] = []
        for _ in 0..<3 {
            streams.append(
                try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true))
        }
        try pair.interact()
        for stream in streams {
            pair.serverSession.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
        }
        pair.serverSession.sendData(stream: streams[0], ByteBuffer(repeating: 0x41, count: 100), endStream: false)
        pair.serverSession.sendData(stream: streams[1], ByteBuffer(repeating: 0x41, count: 100), endStream: false)
        pair.serverSession.sendData(
            stream: streams[2], ByteBuffer(repeating: 0x41, count: total - 200), endStream: false)
        try pair.interact()
        #expect(pair.serverSession.bufferedOutboundBytes == total)
        for stream in streams {
            #expect(pair.serverSession.isWritable(stream: stream) == writable)
        }
        let reported = pair.serverDelegate.events.filter { if case .writable = $0 { true } else { false } }
        #expect(reported == (writable ? [] : streams.map { .writable($0.rawValue, false) }))
    }

    @Test("streams become writable again once the connection's queue falls to half its ceiling")
    func connectionCeilingReleased() throws {
        var server = HTTP2SessionConfiguration.defaults
        server.connectionOutboundHighWatermark = 250
        let pair = try ConnectionPair(client: Self.client(window: 0), server: server)
        let first = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        let second = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()
        for stream in [first, second] {
            pair.serverSession.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
        }
        pair.serverSession.sendData(stream: first, ByteBuffer(repeating: 0x41, count: 200), endStream: false)
        pair.serverSession.sendData(stream: second, ByteBuffer(repeating: 0x41, count: 100), endStream: false)
        try pair.interact()
        #expect(!pair.serverSession.isWritable(stream: second))

        pair.clientSession.resetStream(first, errorCode: .cancel)  // its 200 queued bytes are dropped
        try pair.interact()
        #expect(pair.serverSession.bufferedOutboundBytes == 100)
        #expect(pair.serverSession.isWritable(stream: second))
        #expect(pair.serverDelegate.events(for: second.rawValue).last == .writable(second.rawValue, true))
    }
}
