import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

@Suite("HTTP/2 graceful shutdown")
struct GracefulShutdownTests {
    @Test("server: notice, then GOAWAY with the last stream; open streams finish, then the connection closes")
    func serverShutdown() throws {
        let pair = try ConnectionPair()
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        try pair.interact()
        #expect(pair.serverSession.openStreamCount == 1)

        pair.serverSession.initiateGracefulShutdown()
        try pair.interact()
        #expect(
            pair.clientDelegate.events == [.goAway(Int32.max, .noError), .goAway(stream.rawValue, .noError)]
        )
        #expect(pair.server.isActive && pair.client.isActive)
        #expect(!pair.clientSession.canStartRequests)
        #expect(throws: HTTP2EngineError.self) {
            try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        }

        pair.serverSession.sendResponseHeaders(stream: stream, headers: [":status": "204"], endStream: true)
        try pair.interact()
        #expect(pair.clientDelegate.events(for: stream.rawValue).last == .closed(stream.rawValue, .noError))
        #expect(!pair.server.isActive)
        #expect(!pair.client.isActive)
        #expect(pair.serverDelegate.events.last == .sessionClosed(failed: false))
        #expect(pair.clientDelegate.events.last == .sessionClosed(failed: false))
    }

    @Test("an idle client closes on the shutdown notice itself; the server sees an orderly end")
    func idleServerShutdown() throws {
        let pair = try ConnectionPair()
        try pair.interact()
        pair.serverSession.initiateGracefulShutdown()
        try pair.interact()
        // nghttp2 clients are done once any GOAWAY arrived and no stream is open.
        #expect(pair.clientDelegate.events == [.goAway(Int32.max, .noError), .sessionClosed(failed: false)])
        #expect(!pair.client.isActive && !pair.server.isActive)
        #expect(pair.serverDelegate.events == [.sessionClosed(failed: false)])
    }

    @Test("client: GOAWAY, no new requests, the open one completes, then the connection closes")
    func clientShutdown() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        try pair.interact()
        pair.clientSession.initiateGracefulShutdown()
        #expect(throws: HTTP2EngineError.self) {
            try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        }
        try pair.interact()
        #expect(pair.serverDelegate.events.contains(.goAway(0, .noError)))
        #expect(pair.client.isActive)

        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "last"), endStream: true)
        try pair.interact()
        #expect(pair.clientDelegate.body(stream.rawValue) == "last")
        #expect(pair.clientDelegate.events(for: stream.rawValue).last == .closed(stream.rawValue, .noError))
        #expect(!pair.client.isActive)
        #expect(!pair.server.isActive)
    }
}
