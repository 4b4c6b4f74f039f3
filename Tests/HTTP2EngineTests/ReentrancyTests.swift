import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// Operations called from inside delegate callbacks run while libnghttp2 is on the stack; the session must
/// queue them (a direct call would re-enter nghttp2, which the engine traps with a precondition).
@Suite("HTTP/2 re-entrancy from delegate callbacks")
struct ReentrancyTests {
    @Test("each stream's close callback starts the next request", arguments: [nil, 1] as [Int?])
    func requestChainFromCloseCallbacks(chunkSize: Int?) throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        var started: [HTTP2StreamID] = []
        pair.clientDelegate.onClosed = { session, stream, code in
            #expect(code == .noError)
            guard started.count < 5 else { return }
            // Runs inside on_stream_close, i.e. inside nghttp2_session_mem_recv.
            let next = try! session.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
            session.sendData(stream: next, ByteBuffer(string: "after \(stream)"), endStream: true)
            started.append(next)
        }
        started.append(try pair.startRequest(body: "first"))
        try pair.interact(chunkSize: chunkSize)

        #expect(started.map(\.rawValue) == [1, 3, 5, 7, 9])
        #expect(pair.clientDelegate.body(1) == "first")
        #expect(pair.clientDelegate.body(9) == "after 7")
        #expect(pair.clientDelegate.events.filter { if case .closed = $0 { true } else { false } }.count == 5)
    }

    @Test("operations from every server callback, including on a stream that just closed")
    func everyCallbackCallsBack() throws {
        let pair = try ConnectionPair()
        let server = pair.serverDelegate
        server.autoConsume = false
        server.onHeaders = { session, stream, _, _ in
            session.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
            session.sendData(stream: stream, ByteBuffer(string: "ack;"), endStream: false)
        }
        server.onData = { session, stream, data, endStream in
            session.consume(stream: stream, bytes: data.readableBytes)
            session.sendData(stream: stream, data, endStream: false)
            if endStream { session.sendTrailers(stream: stream, ["grpc-status": "0"]) }
        }
        var afterClose = 0
        server.onClosed = { session, stream, _ in
            // The stream is gone: these must be ignored, not crash or reach nghttp2.
            session.sendData(stream: stream, ByteBuffer(string: "late"), endStream: true)
            session.resetStream(stream, errorCode: .cancel)
            session.consume(stream: stream, bytes: 10)
            afterClose += 1
        }
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "one;"), endStream: false)
        try pair.interact()
        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "two"), endStream: true)
        try pair.interact(chunkSize: 3)

        #expect(pair.clientDelegate.body(1) == "ack;one;two")
        #expect(
            pair.clientDelegate.events(for: 1).suffix(2) == [.trailers(1, ["grpc-status": "0"]), .closed(1, .noError)]
        )
        #expect(afterClose == 1)
        #expect(pair.server.isActive)
    }

    @Test("a client resets a sibling stream from inside another stream's headers callback")
    func resetSiblingFromCallback() throws {
        let pair = try ConnectionPair()
        pair.serverDelegate.onHeaders = { session, stream, _, _ in
            session.sendResponseHeaders(stream: stream, headers: [":status": "200"], endStream: false)
        }
        let first = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        let second = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientDelegate.onHeaders = { session, stream, _, _ in
            if stream == first {
                session.resetStream(second, errorCode: .cancel)
                session.sendData(stream: first, ByteBuffer(), endStream: true)
            }
        }
        try pair.interact()
        #expect(pair.clientDelegate.events(for: second.rawValue).last == .closed(second.rawValue, .cancel))
        #expect(pair.serverDelegate.events(for: second.rawValue).last == .closed(second.rawValue, .cancel))
        #expect(pair.serverDelegate.events(for: first.rawValue).contains(.data(first.rawValue, "", endStream: true)))
    }

    @Test("callbacks on channel close may call operations; they are refused or ignored")
    func reentryOnInactive() throws {
        let pair = try ConnectionPair()
        try pair.interact()
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        try pair.interact()
        var refused: (any Error)?
        pair.clientDelegate.onClosed = { session, closed, _ in
            do {
                _ = try session.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
            } catch {
                refused = error
            }
            session.sendData(stream: closed, ByteBuffer(string: "x"), endStream: true)
            session.consume(stream: closed, bytes: 1)
        }
        pair.clientDelegate.onSessionClosed = { session in
            session.initiateGracefulShutdown()
        }
        try pair.client.close().wait()

        #expect(pair.clientDelegate.events == [.closed(stream.rawValue, .cancel), .sessionClosed(failed: true)])
        #expect((refused as? HTTP2EngineError)?.code == .sessionClosing)
        #expect((pair.clientDelegate.closeError as? HTTP2EngineError)?.code == .connectionClosed)
    }
}
