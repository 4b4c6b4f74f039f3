import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

@Suite("HTTP/2 stream and connection errors")
struct ErrorHandlingTests {
    @Test("RST_STREAM on one stream leaves another intact")
    func resetOneStream() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let echo = pair.serverDelegate.onData
        pair.serverDelegate.onData = { session, stream, data, endStream in
            if stream.rawValue == 1 {
                session.resetStream(stream, errorCode: .cancel)
            } else {
                echo?(session, stream, data, endStream)
            }
        }
        let reset = try pair.startRequest(body: "reset me")
        let kept = try pair.startRequest(body: "keep me")
        try pair.interact()

        #expect(pair.clientDelegate.events(for: reset.rawValue) == [.closed(1, .cancel)])
        #expect(pair.clientDelegate.body(kept.rawValue) == "keep me")
        #expect(pair.clientDelegate.events(for: kept.rawValue).last == .closed(3, .noError))
        #expect(pair.serverDelegate.events(for: reset.rawValue).last == .closed(1, .cancel))
        #expect(pair.client.isActive && pair.server.isActive)
    }

    @Test("a malformed header block resets only its stream (PROTOCOL_ERROR)")
    func badHeadersResetOneStream() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        // Connection-specific fields are malformed in HTTP/2 (RFC 9113 §8.2.2).
        let bad = try pair.clientSession.startRequest(
            headers: ConnectionPair.requestHeaders(extra: [("connection", "close")]),
            endStream: true
        )
        let good = try pair.startRequest(body: "fine")
        try pair.interact()

        #expect(pair.clientDelegate.events(for: bad.rawValue) == [.closed(bad.rawValue, .protocolError)])
        #expect(pair.serverDelegate.events(for: bad.rawValue).isEmpty)
        #expect(pair.clientDelegate.body(good.rawValue) == "fine")
        #expect(pair.clientDelegate.events(for: good.rawValue).last == .closed(good.rawValue, .noError))
    }

    /// The request block is 251 bytes by RFC 9113 §6.5.2 accounting; `x: <n bytes>` adds 33 + n.
    @Test("header lists are limited to maxHeaderListSize", arguments: [(16, true), (17, false)])
    func headerListLimit(padding: Int, accepted: Bool) throws {
        var server = HTTP2SessionConfiguration.defaults
        server.maxHeaderListSize = 300
        let pair = try ConnectionPair(server: server)
        pair.serveEcho()
        let stream = try pair.clientSession.startRequest(
            headers: ConnectionPair.requestHeaders(extra: [("x", String(repeating: "p", count: padding))]),
            endStream: true
        )
        let other = try pair.startRequest(body: "unaffected")
        try pair.interact()

        if accepted {
            #expect(
                pair.serverDelegate.events(for: stream.rawValue).first.map { event in
                    if case .headers(_, let headers, endStream: true) = event {
                        return headers.first(name: "x")?.utf8.count == padding
                    }
                    return false
                } == true
            )
            #expect(pair.clientDelegate.events(for: stream.rawValue).last == .closed(stream.rawValue, .noError))
        } else {
            // Reported to the delegate (`didReceiveOversizedHeaders`), whose default resets the stream: no
            // headers event, then its close.
            #expect(pair.serverDelegate.events(for: stream.rawValue) == [.closed(stream.rawValue, .internalError)])
            #expect(pair.clientDelegate.events(for: stream.rawValue) == [.closed(stream.rawValue, .internalError)])
        }
        #expect(pair.clientDelegate.body(other.rawValue) == "unaffected")
    }

    @Test("bytes that are not the client preface close the connection with GOAWAY")
    func garbageInsteadOfPreface() throws {
        let pair = try ConnectionPair()
        _ = try pair.server.readAllOutbound()  // our SETTINGS
        try pair.server.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))

        let frames = FrameHeader.parse(try pair.server.readAllOutbound())
        #expect(frames.compactMap(\.goAwayFields).map(\.1) == [.protocolError])
        #expect(!pair.server.isActive)
        #expect(pair.serverDelegate.events == [.sessionClosed(failed: true)])
        #expect((pair.serverDelegate.closeError as? HTTP2EngineError)?.code == .protocolError)
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 0x4, 0, 0, 0, 0, 0]

    @Test(
        "a malformed frame after the preface makes nghttp2 send GOAWAY and close",
        arguments: [
            // HEADERS on stream 1 whose HPACK block indexes a table entry that does not exist.
            ([0, 0, 5, 0x1, 0x5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f], HTTP2ErrorCode.compressionError),
            // DATA on stream 0.
            ([0, 0, 1, 0x0, 0x0, 0, 0, 0, 0, 0x41], HTTP2ErrorCode.protocolError),
            // SETTINGS whose length is not a multiple of 6.
            ([0, 0, 5, 0x4, 0x0, 0, 0, 0, 0, 0, 0, 0, 0, 0], HTTP2ErrorCode.frameSizeError),
        ] as [([UInt8], HTTP2ErrorCode)]
    )
    func malformedFrame(frame: [UInt8], expected: HTTP2ErrorCode) throws {
        let pair = try ConnectionPair()
        _ = try pair.server.readAllOutbound()
        try pair.server.writeInbound(ByteBuffer(bytes: Self.preface + frame))

        let frames = FrameHeader.parse(try pair.server.readAllOutbound())
        #expect(frames.compactMap(\.goAwayFields).map(\.1) == [expected])
        #expect(!pair.server.isActive)
        #expect((pair.serverDelegate.closeError as? HTTP2EngineError)?.http2ErrorCode == expected)
    }

    @Test(
        "a stream open when the peer's connection error ends the connection is closed with the reason known: the peer's fault and its GOAWAY code",
        arguments: [
            // DATA on stream 0: libnghttp2's own GOAWAY.
            ([0, 0, 1, 0x0, 0x0, 0, 0, 0, 0, 0x41], HTTP2ErrorCode.protocolError),
            // SETTINGS whose length is not a multiple of 6.
            ([0, 0, 5, 0x4, 0x0, 0, 0, 0, 0, 0, 0, 0, 0, 0], HTTP2ErrorCode.frameSizeError),
        ] as [([UInt8], HTTP2ErrorCode)]
    )
    func peerFaultKnownAtStreamClose(frame: [UInt8], expected: HTTP2ErrorCode) throws {
        let pair = try ConnectionPair()
        _ = try pair.server.readAllOutbound()
        var atClose: [(Int32, HTTP2ErrorCode?)] = []
        pair.serverDelegate.onClosed = { session, stream, _ in
            atClose.append((stream.rawValue, (session.closeReason as? HTTP2EngineError)?.peerFaultCode))
        }
        // A request whose body never comes (stream 1 stays open), then the broken frame.
        try pair.server.writeInbound(ByteBuffer(bytes: Self.preface + RapidResetTests.headers(stream: 1)))
        #expect(pair.serverSession.closeReason == nil, "nothing went wrong yet")
        try pair.server.writeInbound(ByteBuffer(bytes: frame))
        _ = try pair.server.readAllOutbound()
        #expect(!pair.server.isActive)
        #expect(atClose.count == 1)
        #expect(atClose.first?.0 == 1)
        #expect(atClose.first?.1 == expected)
    }

    @Test("endings that are not the peer's fault have no peer fault code")
    func noPeerFault() {
        #expect(HTTP2EngineError(.connectionClosed, "gone").peerFaultCode == nil)
        #expect(HTTP2EngineError(.timedOut, "slow", http2ErrorCode: .settingsTimeout).peerFaultCode == nil)
        #expect(HTTP2EngineError(.internalError, "bug").peerFaultCode == nil)
        #expect(HTTP2EngineError(.protocolError, "bad preface").peerFaultCode == .protocolError)
        #expect(HTTP2EngineError(.excessiveLoad, "rapid reset").peerFaultCode == .enhanceYourCalm)
        #expect(HTTP2EngineError(.headerBlockTooLarge, "continuations").peerFaultCode == .enhanceYourCalm)
        #expect(HTTP2EngineError(.controlFrameFlood, "pings").peerFaultCode == .enhanceYourCalm)
        #expect(
            HTTP2EngineError(.goAwaySent, "sent GOAWAY", http2ErrorCode: .compressionError).peerFaultCode
                == .compressionError)
    }

    @Test("a server told the preface was swallowed accepts frames without it")
    func prefaceAlreadyConsumed() throws {
        var server = HTTP2SessionConfiguration.defaults
        server.expectsClientPreface = false
        let pair = try ConnectionPair(server: server)
        pair.serveEcho()
        // Drop the client's 24 preface bytes, as a sniffer that does not re-fire them would.
        var first = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        #expect(first.readString(length: 24) == "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try pair.server.writeInbound(first)
        let stream = try pair.startRequest(body: "no preface")
        try pair.interact()
        #expect(pair.clientDelegate.body(stream.rawValue) == "no preface")
    }
}
