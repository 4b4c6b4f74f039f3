import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

@Suite("HTTP/2 flow control as back-pressure")
struct FlowControlTests {
    @Test("a server that does not consume stops the client after the initial window; consuming resumes it")
    func windowStopsAndResumes() throws {
        let pair = try ConnectionPair()
        pair.serverDelegate.autoConsume = false
        try pair.interact()

        let total = 200_000
        let stream = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(repeating: 0x61, count: total), endStream: true)
        try pair.interact()
        #expect(pair.serverDelegate.bodies[1]?.readableBytes == 65_535)
        #expect(pair.clientSession.bufferedOutboundBytes(stream: stream) == total - 65_535)

        // Without consumption nothing more moves, however often we shuttle.
        try pair.interact()
        #expect(pair.serverDelegate.bodies[1]?.readableBytes == 65_535)

        // Each consumption reopens exactly one window: 65,535 more bytes, the rest in the last round.
        var received: [Int] = []
        while (pair.serverDelegate.bodies[1]?.readableBytes ?? 0) < total, received.count < 10 {
            pair.serverDelegate.consumeAll(pair.serverSession)
            try pair.interact()
            received.append(pair.serverDelegate.bodies[1]?.readableBytes ?? 0)
        }
        #expect(received == [131_070, 196_605, 200_000])
        guard case .data(1, _, endStream: true) = pair.serverDelegate.events(for: 1).last else {
            Issue.record("no end of stream: \(pair.serverDelegate.events(for: 1).suffix(2))")
            return
        }
    }

    @Test("unconsumed bytes of a closed stream are released, so the connection window is not leaked")
    func closedStreamReleasesConnectionWindow() throws {
        var server = HTTP2SessionConfiguration.defaults
        server.connectionWindowSize = 65_535  // no connection WINDOW_UPDATE at start: one stream can fill it
        let pair = try ConnectionPair(server: server)
        pair.serverDelegate.autoConsume = false
        try pair.interact()

        let first = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: first, ByteBuffer(repeating: 0x61, count: 65_535), endStream: false)
        try pair.interact()
        #expect(pair.serverDelegate.bodies[first.rawValue]?.readableBytes == 65_535)

        // The connection window is now empty: a second stream cannot send a byte.
        let second = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: second, ByteBuffer(repeating: 0x62, count: 1_000), endStream: true)
        try pair.interact()
        #expect(pair.serverDelegate.bodies[second.rawValue] == nil)

        // Resetting the first stream without consuming gives its 65,535 bytes back to the connection.
        pair.serverSession.resetStream(first, errorCode: .cancel)
        try pair.interact()
        #expect(pair.clientDelegate.events(for: first.rawValue) == [.closed(first.rawValue, .cancel)])
        #expect(pair.serverDelegate.bodies[second.rawValue]?.readableBytes == 1_000)
    }
    /// The frontend's per-connection bound on buffered bodies holds a stream back by its own window only
    /// (`releaseConnectionWindow`): its bytes return to the connection window at once, so other streams still send.
    @Test("releaseConnectionWindow: the held stream stays shut, the others send; consume then reopens the stream only")
    func connectionWindowReleasedStreamHeld() throws {
        var server = HTTP2SessionConfiguration.defaults
        server.connectionWindowSize = 65_535  // one stream's window fills the connection's
        let pair = try ConnectionPair(server: server)
        pair.serverDelegate.autoConsume = false
        try pair.interact()

        let held = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: held, ByteBuffer(repeating: 0x61, count: 100_000), endStream: true)
        try pair.interact()
        #expect(pair.serverDelegate.bodies[held.rawValue]?.readableBytes == 65_535)

        // Released to the connection only: a second stream sends, the held one does not.
        pair.serverSession.releaseConnectionWindow(stream: held, bytes: 65_535)
        let other = try pair.clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: false)
        pair.clientSession.sendData(stream: other, ByteBuffer(repeating: 0x62, count: 40_000), endStream: true)
        try pair.interact()
        #expect(pair.serverDelegate.bodies[other.rawValue]?.readableBytes == 40_000)
        #expect(pair.serverDelegate.bodies[held.rawValue]?.readableBytes == 65_535)
        // Released twice is released once.
        pair.serverSession.releaseConnectionWindow(stream: held, bytes: 65_535)
        pair.serverSession.consume(stream: other, bytes: 40_000)
        try pair.interact()

        // Consumed: its stream window reopens (its connection share went back already) and the rest arrives.
        pair.serverSession.consume(stream: held, bytes: 65_535)
        try pair.interact()
        #expect(pair.serverDelegate.bodies[held.rawValue]?.readableBytes == 100_000)
        guard case .data(_, _, endStream: true) = pair.serverDelegate.events(for: held.rawValue).last else {
            Issue.record("no end of stream: \(pair.serverDelegate.events(for: held.rawValue).suffix(2))")
            return
        }
    }
}
