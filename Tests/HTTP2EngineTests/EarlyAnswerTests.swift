import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// The server's two answers around a request body still coming: RST_STREAM(NO_ERROR) after an answer given before
/// the request ended (`resetWhenAnswered`, RFC 9113 §8.1), and an informational 1xx before the final answer
/// (`sendInformational`, RFC 9110 §15.2). Frames are read off the server's side, so their order is what is checked.
@Suite("HTTP/2 early answers: the reset after them, and 1xx before the final one")
struct EarlyAnswerTests {
    /// Moves bytes both ways until neither side writes; returns the frames the server wrote.
    static func exchange(_ pair: ConnectionPair) throws -> [FrameHeader] {
        var frames: [FrameHeader] = []
        var moved = true
        while moved {
            moved = false
            let fromClient = try pair.client.readAllOutbound()
            if fromClient.readableBytes > 0 {
                moved = true
                try pair.server.writeInbound(fromClient)
            }
            let fromServer = try pair.server.readAllOutbound()
            if fromServer.readableBytes > 0 {
                moved = true
                frames += FrameHeader.parse(fromServer)
                try pair.client.writeInbound(fromServer)
            }
        }
        return frames
    }

    /// Answers every request at its head, 404 with a short body, asking for the reset first.
    static func answerAtHead(_ pair: ConnectionPair) {
        pair.serverDelegate.onHeaders = { session, stream, _, _ in
            session.resetWhenAnswered(stream)
            session.sendResponseHeaders(stream: stream, headers: [":status": "404"], endStream: false)
            session.sendData(stream: stream, ByteBuffer(string: "none"), endStream: true)
        }
    }

    /// A request answered at its head, 404 and END_STREAM, whose body still comes; each later DATA frame asks for
    /// the reset. The answer has left when this returns (checked), the request is still open.
    static func answeredWhileTheBodyComes() throws -> (ConnectionPair, HTTP2StreamID) {
        let pair = try ConnectionPair()
        pair.serverDelegate.onHeaders = { session, stream, _, _ in
            session.sendResponseHeaders(stream: stream, headers: [":status": "404"], endStream: true)
        }
        pair.serverDelegate.onData = { session, stream, _, _ in session.resetWhenAnswered(stream) }
        let id = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        let frames = try Self.exchange(pair).filter { $0.streamID == id.rawValue }
        #expect(frames.map(\.type) == [FrameHeader.headers], "answered, not reset: \(frames)")
        return (pair, id)
    }

    @Test("an answer given while the request body still comes is followed by RST_STREAM(NO_ERROR), after its end")
    func resetAfterTheAnswer() throws {
        let pair = try ConnectionPair()
        Self.answerAtHead(pair)
        let id = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: id, ByteBuffer(string: "part of a body"), endStream: false)
        let frames = try Self.exchange(pair).filter { $0.streamID == id.rawValue }
        #expect(frames.map(\.type) == [FrameHeader.headers, FrameHeader.data, FrameHeader.rstStream], "\(frames)")
        #expect(frames.dropLast().last.map { $0.flags & 0x1 != 0 } == true, "the answer ends before the reset")
        #expect(frames.last?.payload.getInteger(at: frames.last!.payload.readerIndex, as: UInt32.self) == 0)
        #expect(pair.clientDelegate.body(id.rawValue) == "none")
        #expect(pair.clientDelegate.events(for: id.rawValue).last == .closed(id.rawValue, .noError))
    }

    @Test("asked for after the answer left, the reset goes at once")
    func resetAfterTheAnswerLeft() throws {
        let (pair, id) = try Self.answeredWhileTheBodyComes()
        pair.clientSession.sendData(stream: id, ByteBuffer(string: "more"), endStream: false)
        let frames = try Self.exchange(pair).filter { $0.streamID == id.rawValue }
        #expect(frames.map(\.type) == [FrameHeader.rstStream], "\(frames)")
        #expect(pair.clientDelegate.events(for: id.rawValue).last == .closed(id.rawValue, .noError))
    }

    /// The review's case: the ask comes from the DATA frame that ends the request (or with it, in one read), after
    /// the answer left. The stream closes in that `mem_recv`, before the queue runs: no RST_STREAM on it (RFC 9113
    /// §5.1), which the reset limiter would also have counted against the client.
    @Test("asked for by the frame that ends the request, after the answer left: no reset on the closed stream")
    func noResetOnTheClosedStream() throws {
        let (pair, id) = try Self.answeredWhileTheBodyComes()
        // Two DATA frames in one read, the second ending the request.
        pair.clientSession.sendData(stream: id, ByteBuffer(string: "more"), endStream: false)
        pair.clientSession.sendData(stream: id, ByteBuffer(string: "last"), endStream: true)
        let frames = try Self.exchange(pair).filter { $0.streamID == id.rawValue }
        #expect(frames.isEmpty, "no frame on the closed stream: \(frames)")
        #expect(pair.clientDelegate.events(for: id.rawValue).last == .closed(id.rawValue, .noError))
    }

    @Test("a request that ended before its answer gets no reset")
    func noResetAfterAWholeRequest() throws {
        let pair = try ConnectionPair()
        Self.answerAtHead(pair)
        let id = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        let frames = try Self.exchange(pair).filter { $0.streamID == id.rawValue }
        #expect(frames.map(\.type) == [FrameHeader.headers, FrameHeader.data], "\(frames)")
        #expect(pair.clientDelegate.events(for: id.rawValue).last == .closed(id.rawValue, .noError))
    }

    @Test("a 1xx goes out as HEADERS without END_STREAM before the final answer, which the client is given alone")
    func informationalFirst() throws {
        let pair = try ConnectionPair()
        pair.serverDelegate.onHeaders = { session, stream, _, _ in
            session.sendInformational(stream: stream, headers: [":status": "100"])
        }
        pair.serverDelegate.onData = { session, stream, _, end in
            guard end else { return }
            session.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: true)
            // After the final answer, a 1xx is not sent.
            session.sendInformational(stream: stream, headers: [":status": "100"])
        }
        let id = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        var frames = try Self.exchange(pair).filter { $0.streamID == id.rawValue }
        #expect(frames.map(\.type) == [FrameHeader.headers], "the 100 before any of the body: \(frames)")
        #expect(frames.first.map { $0.flags & 0x1 == 0 } == true, "a 1xx does not end the stream")
        pair.clientSession.sendData(stream: id, ByteBuffer(string: "body"), endStream: true)
        frames = try Self.exchange(pair).filter { $0.streamID == id.rawValue }
        #expect(frames.map(\.type) == [FrameHeader.headers], "\(frames)")
        #expect(frames.first.map { $0.flags & 0x1 != 0 } == true, "the final answer ends the stream")
        let headers = pair.clientDelegate.events(for: id.rawValue).compactMap { event -> String? in
            if case .headers(_, let block, _) = event { return block.first(name: ":status") }
            return nil
        }
        #expect(headers == ["200"], "the client is given the final answer only")
    }
}
