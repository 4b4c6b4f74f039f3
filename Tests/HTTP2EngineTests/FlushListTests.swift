import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// A connection as the flush list sees it: how many streams it carries, and how often it was flushed.
private final class FakeConnection: HTTP2FlushListMember {
    var flushListing = HTTP2FlushList.Listing.none
    var streams = 1
    var flushes = 0
    /// Runs inside the flush (a connection whose flush writes to another, as a close's stream ends do).
    var onFlush: (() -> Void)?

    var flushesAtReadEnd: Bool { self.streams <= 1 }

    func flushListedWrites() {
        self.flushes += 1
        self.onFlush?()
    }
}

@Suite("HTTP/2 flush list: one flush per connection, at the read's end or the tick's")
struct FlushListTests {
    @Test("a connection written twice during a read is flushed once, when the read ends")
    func writtenTwiceDuringARead() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let connection = FakeConnection()
        list.readStarted()
        list.written(connection, on: loop)
        list.written(connection, on: loop)
        #expect(connection.flushes == 0)
        list.readEnded(on: loop)
        #expect(connection.flushes == 1)
        loop.run()
        #expect(connection.flushes == 1)
        #expect(list.isEmpty)
    }

    @Test("a connection written twice outside a read is flushed once, by the tick's task")
    func writtenTwiceOutsideARead() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let connection = FakeConnection()
        list.written(connection, on: loop)
        list.written(connection, on: loop)
        #expect(connection.flushes == 0)
        loop.run()
        #expect(connection.flushes == 1)
        #expect(list.isEmpty)
    }

    @Test("a connection removed (closed) before its flush is skipped, at the read's end and at the tick's")
    func removedIsSkipped() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let (closed, open) = (FakeConnection(), FakeConnection())
        list.readStarted()
        list.written(closed, on: loop)
        list.written(open, on: loop)
        list.remove(closed)
        list.readEnded(on: loop)
        #expect(closed.flushes == 0)
        #expect(open.flushes == 1)

        list.written(closed, on: loop)
        list.written(open, on: loop)
        list.remove(closed)
        loop.run()
        #expect(closed.flushes == 0)
        #expect(open.flushes == 2)
        #expect(closed.flushListing == .none)
        #expect(list.isEmpty)
    }

    @Test(
        "one task flushes every connection written outside a read in the tick, those listed after it was scheduled too")
    func oneTaskPerTick() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let (first, second) = (FakeConnection(), FakeConnection())
        list.written(first, on: loop)
        // Queued after the list's task: both connections are flushed by then, so the second scheduled none of its own.
        var flushedBeforeMarker = (first: 0, second: 0)
        loop.execute { flushedBeforeMarker = (first.flushes, second.flushes) }
        list.written(second, on: loop)
        loop.run()
        #expect(flushedBeforeMarker == (1, 1))
        #expect(first.flushes == 1 && second.flushes == 1)
    }

    @Test("a busy connection (two streams) written during reads waits for the tick: several reads share its flush")
    func busyConnectionWaitsForTheTick() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let backend = FakeConnection()
        backend.streams = 2
        let frontend = FakeConnection()
        for _ in 0..<3 {
            list.readStarted()
            list.written(backend, on: loop)
            list.written(frontend, on: loop)
            list.readEnded(on: loop)
        }
        #expect(backend.flushes == 0)
        #expect(frontend.flushes == 3)
        loop.run()
        #expect(backend.flushes == 1)
        #expect(list.isEmpty)
    }

    @Test("a connection's streams are counted when the read ends, not when it was written")
    func streamsCountedAtReadEnd() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let connection = FakeConnection()
        connection.streams = 2
        list.readStarted()
        list.written(connection, on: loop)
        connection.streams = 0  // the read's answers ended both streams
        list.readEnded(on: loop)
        #expect(connection.flushes == 1)
    }

    @Test("a nested read's end flushes nothing; the outermost read's end does")
    func nestedReads() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let connection = FakeConnection()
        list.readStarted()
        list.readStarted()
        list.written(connection, on: loop)
        list.readEnded(on: loop)
        #expect(connection.flushes == 0)
        list.readEnded(on: loop)
        #expect(connection.flushes == 1)
    }

    @Test("a connection written during the tick's flush is flushed in the same tick")
    func writtenDuringTheTickFlush() {
        let loop = EmbeddedEventLoop()
        let list = HTTP2FlushList()
        let (closing, other) = (FakeConnection(), FakeConnection())
        closing.onFlush = { list.written(other, on: loop) }
        list.written(closing, on: loop)
        loop.run()
        #expect(closing.flushes == 1)
        #expect(other.flushes == 1)
        #expect(list.isEmpty)
    }

    @Test("a write on another loop of the thread does not wait for a task the first loop never runs")
    func anotherLoopOfTheThread() {
        let (idle, running) = (EmbeddedEventLoop(), EmbeddedEventLoop())
        let list = HTTP2FlushList()
        let (first, second) = (FakeConnection(), FakeConnection())
        list.written(first, on: idle)
        list.written(second, on: running)
        running.run()
        #expect(first.flushes == 1 && second.flushes == 1)
        idle.run()
        #expect(first.flushes == 1 && second.flushes == 1)
    }
}

@Suite("HTTP/2 connection handler: writes during a read flushed at its end")
struct FlushAtReadEndTests {
    private static var tickConfiguration: HTTP2SessionConfiguration {
        var configuration = HTTP2SessionConfiguration.defaults
        configuration.flushesOncePerTick = true
        return configuration
    }

    @Test("an answer written during the read of its request leaves when the read ends, without the tick's task")
    func answerFlushedAtReadEnd() throws {
        let pair = try ConnectionPair(server: Self.tickConfiguration)
        pair.serveEcho()
        pair.server.embeddedEventLoop.run()  // the server's SETTINGS (written outside a read)
        try pair.interact()
        try pair.startRequest(body: "ping")
        // The server's loop does not run: only the end of the read that carried the request flushes the answer.
        try pair.interact()
        #expect(pair.clientDelegate.body(1) == "ping")
        #expect(pair.clientDelegate.events(for: 1).contains(.trailers(1, ["grpc-status": "0"])))
    }

    @Test("a connection with other streams open when the read ends waits for the tick's flush")
    func busyConnectionWaitsForTheTick() throws {
        let pair = try ConnectionPair(server: Self.tickConfiguration)
        pair.serveEcho()
        pair.server.embeddedEventLoop.run()
        try pair.interact()
        // Two requests whose bodies have not ended keep two streams open on the server (1 and 3).
        for _ in 0..<2 {
            _ = try pair.clientSession.startRequest(
                headers: ConnectionPair.requestHeaders(path: "/pkg.Service/Open"), endStream: false)
        }
        try pair.startRequest(body: "ping")
        try pair.interact()
        #expect(pair.clientDelegate.body(5) == "")
        pair.server.embeddedEventLoop.run()
        try pair.interact()
        #expect(pair.clientDelegate.body(5) == "ping")
    }
}
