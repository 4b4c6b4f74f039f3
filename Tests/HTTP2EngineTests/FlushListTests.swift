import Dispatch
import Foundation
import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// Runs `body` on a thread made for it and returns what it returns. A thread's flush list belongs to the first
/// event loop that asks for it there (``HTTP2FlushList/forLoop(_:)``), and the suites' threads are shared with
/// other tests' loops: a test of which loop gets the list starts on a thread no other test has used.
private func onFreshThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
    let outcome = ThreadOutcome<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        outcome.result = Result { try body() }
        done.signal()
    }
    thread.start()
    done.wait()
    return try outcome.result!.get()
}

/// An event loop that keeps the tasks it is given until told: ``dropTasks()`` lets go of them unrun, as a loop shut
/// down with work pending does (an `EmbeddedEventLoop` with a pending task is never freed: it cannot show it), and
/// ``runTasks()`` runs them.
private final class HoldingEventLoop: EventLoop, @unchecked Sendable {
    private var tasks: [@Sendable () -> Void] = []
    var inEventLoop: Bool { true }
    func execute(_ task: @escaping @Sendable () -> Void) { self.tasks.append(task) }
    func dropTasks() { self.tasks.removeAll() }
    func runTasks() {
        let tasks = self.tasks
        self.tasks.removeAll()
        for task in tasks { task() }
    }
    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        fatalError("not used by the flush list")
    }
    func scheduleTask<T>(in: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        fatalError("not used by the flush list")
    }
    func preconditionInEventLoop(file: StaticString, line: UInt) {}
    func preconditionNotInEventLoop(file: StaticString, line: UInt) {}
    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        callback(nil)
    }
}

/// What ``onFreshThread(_:)``'s thread returned: written before the semaphore's signal, read after its wait (the
/// semaphore orders the two).
private final class ThreadOutcome<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

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

@Suite("HTTP/2 flush list: one per event loop, never shared by loops that share a thread")
struct FlushListOwnerTests {
    @Test("a thread's list is the first loop's to ask; another loop on the thread gets none")
    func firstLoopOwnsTheThreadsList() throws {
        let (sameForOwner, otherGetsNone) = try onFreshThread {
            let owner = EmbeddedEventLoop()
            let other = EmbeddedEventLoop()
            let list = HTTP2FlushList.forLoop(owner)
            return (list != nil && HTTP2FlushList.forLoop(owner) === list, HTTP2FlushList.forLoop(other) == nil)
        }
        #expect(sameForOwner)
        #expect(otherGetsNone)
    }

    @Test(
        "a tick task let go of unrun: the next write schedules another, which flushes both; the list stays its loop's"
    )
    func droppedTickTask() throws {
        let (flushesAfterDrop, flushesAfterNext, otherGetsNone) = try onFreshThread {
            let first = FakeConnection()
            let second = FakeConnection()
            let owner = HoldingEventLoop()
            let other = EmbeddedEventLoop()
            let list = HTTP2FlushList.forLoop(owner)!
            list.written(first, on: owner)
            owner.dropTasks()  // the tick's task (and its token) let go of, unrun
            let afterDrop = first.flushes
            list.written(second, on: owner)
            owner.runTasks()
            return ([afterDrop], [first.flushes, second.flushes], HTTP2FlushList.forLoop(other) == nil)
        }
        #expect(flushesAfterDrop == [0])
        #expect(flushesAfterNext == [1, 1])
        #expect(otherGetsNone)
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
        let (body, trailed) = try onFreshThread {
            let pair = try ConnectionPair(server: Self.tickConfiguration)
            pair.serveEcho()
            pair.server.embeddedEventLoop.run()  // the server's SETTINGS (written outside a read)
            try pair.interact()
            try pair.startRequest(body: "ping")
            // The server's loop does not run: only the end of the read that carried the request flushes the answer.
            try pair.interact()
            return (
                pair.clientDelegate.body(1),
                pair.clientDelegate.events(for: 1).contains(.trailers(1, ["grpc-status": "0"]))
            )
        }
        #expect(body == "ping")
        #expect(trailed)
    }

    @Test("a server whose loop does not own its thread's list still flushes once per tick, by a task of its own")
    func loopWithoutTheListFlushesAtTheTick() throws {
        let (beforeTick, afterTick) = try onFreshThread {
            let other = EmbeddedEventLoop()  // owns this thread's list (kept alive: a new loop could take its address)
            _ = HTTP2FlushList.forLoop(other)
            defer { withExtendedLifetime(other) {} }
            let pair = try ConnectionPair(server: Self.tickConfiguration)
            pair.serveEcho()
            pair.server.embeddedEventLoop.run()
            try pair.interact()
            try pair.startRequest(body: "ping")
            try pair.interact()
            let beforeTick = pair.clientDelegate.body(1)
            pair.server.embeddedEventLoop.run()
            try pair.interact()
            return (beforeTick, pair.clientDelegate.body(1))
        }
        #expect(beforeTick == "")
        #expect(afterTick == "ping")
    }

    @Test("a connection with other streams open when the read ends waits for the tick's flush")
    func busyConnectionWaitsForTheTick() throws {
        let (beforeTick, afterTick) = try onFreshThread {
            // Two requests whose bodies have not ended keep two streams open on the server (1 and 3).
            let pair = try Self.busyEchoPair()
            try pair.startRequest(body: "ping")
            try pair.interact()
            let beforeTick = pair.clientDelegate.body(5)
            pair.server.embeddedEventLoop.run()
            try pair.interact()
            return (beforeTick, pair.clientDelegate.body(5))
        }
        #expect(beforeTick == "")
        #expect(afterTick == "ping")
    }

    /// An echo server flushing once per tick, settled with its client, with two open streams (1 and 3) that keep its
    /// connection busy, so its answers wait for the tick; `outbound`, if any, sits next to the server's head.
    private static func busyEchoPair(outbound: (any ChannelOutboundHandler)? = nil) throws -> ConnectionPair {
        let pair = try ConnectionPair(server: Self.tickConfiguration)
        if let outbound { try pair.server.pipeline.syncOperations.addHandler(outbound, position: .first) }
        pair.serveEcho()
        pair.server.embeddedEventLoop.run()
        try pair.interact()
        for _ in 0..<2 {
            _ = try pair.clientSession.startRequest(
                headers: ConnectionPair.requestHeaders(path: "/pkg.Service/Open"), endStream: false)
        }
        try pair.interact()
        return pair
    }

    @Test("a busy connection's answers to several reads of one tick leave in one write, at the tick's flush")
    func busyConnectionWritesOncePerTick() throws {
        let (clientWrites, tickWrites, bodies) = try onFreshThread {
            let pair = try Self.busyEchoPair()
            // Three requests, each in client writes of its own and so in reads of its own on the server, answered there.
            var clientWrites = 0
            for body in ["a", "b", "c"] {
                try pair.startRequest(body: body)
                clientWrites += try pair.interact().client
            }
            pair.server.embeddedEventLoop.run()
            let tick = try pair.interact().server
            return (clientWrites, tick, [5, 7, 9].map { pair.clientDelegate.body($0) })
        }
        #expect(clientWrites >= 3)  // each a read of the server (HEADERS and DATA may be two)
        // One write for the three drains (their answers, WINDOW_UPDATEs and acknowledgements): the session kept
        // what each drain produced for the connection's flush.
        #expect(tickWrites == 1)
        #expect(bodies == ["a", "b", "c"])
    }

    @Test("output held for the flush is written to the channel at once from 64 KiB on, so its pending bytes count it")
    func deferredOutputPastTheLimitIsWritten() throws {
        let (firstWrites, secondWrites, tickWrites, bodies) = try onFreshThread {
            let writes = WriteCounter()
            let pair = try Self.busyEchoPair(outbound: writes)
            pair.server.embeddedEventLoop.run()
            try pair.interact()
            writes.count = 0
            // Answers of 40 000 bytes each: the first waits for the flush (under the limit), the second's drain takes
            // what waits past 64 KiB (65 536) and writes it to the channel during its read (flushed at the tick).
            let first = String(repeating: "x", count: 40_000)
            let second = String(repeating: "y", count: 40_000)
            try pair.startRequest(body: first)
            try pair.interact()
            let firstWrites = writes.count
            try pair.startRequest(body: second)
            try pair.interact()
            let secondWrites = writes.count
            pair.server.embeddedEventLoop.run()
            try pair.interact()
            return (
                firstWrites, secondWrites, writes.count,
                [5, 7].map { pair.clientDelegate.body($0) == ($0 == 5 ? first : second) }
            )
        }
        #expect(firstWrites == 0)
        #expect(secondWrites == 1)
        #expect(tickWrites == 1)
        #expect(bodies == [true, true])
    }

    @Test("a handler removed from a live channel writes and flushes the output waiting for its flush")
    func removedHandlerWritesWhatWaits() throws {
        let (beforeRemoval, afterRemoval) = try onFreshThread {
            let pair = try Self.busyEchoPair()
            try pair.startRequest(body: "ping")
            try pair.interact()
            let beforeRemoval = pair.clientDelegate.body(5)
            // The tick's flush never runs: only the removal can send the answer.
            let handler = try pair.server.pipeline.syncOperations.handler(type: HTTP2ConnectionHandler.self)
            try pair.server.pipeline.syncOperations.removeHandler(handler).wait()
            try pair.interact()
            return (beforeRemoval, pair.clientDelegate.body(5))
        }
        #expect(beforeRemoval == "")
        #expect(afterRemoval == "ping")
    }

    @Test("a busy connection failed while its output waits for the flush still sends its GOAWAY before it closes")
    func goAwayOfAFailedBusyConnection() throws {
        let (frames, active) = try onFreshThread {
            // As NIO's socket channel does when a write crosses its high watermark: a writability event from inside
            // the write, which drains the session again (and, the connection being done, closes it again); and its
            // close fails what was not flushed.
            let pair = try Self.busyEchoPair(outbound: SocketLikeOutbound())
            // DATA on stream 0: a connection error, answered with GOAWAY(PROTOCOL_ERROR) and a close.
            try pair.server.writeInbound(ByteBuffer(bytes: [0, 0, 1, 0x0, 0x0, 0, 0, 0, 0, 0x41]))
            return (FrameHeader.parse(try pair.server.readAllOutbound()), pair.server.isActive)
        }
        #expect(frames.compactMap(\.goAwayFields).map(\.1) == [.protocolError])
        #expect(!active)
    }
}

/// A socket channel's outbound side in front of an `EmbeddedChannel` (added first, next to the head): writes wait
/// for a flush, a close drops (fails) the writes not flushed yet, and every write fires a writability change from
/// inside it, as NIO's socket channel does when a write takes its pending bytes over the high watermark.
/// (`EmbeddedChannel` alone keeps unflushed writes across a close and has no watermarks.) The channel itself stays
/// writable, where NIO's would report it unwritable: the drain the event causes then sends too, which only adds
/// output; what the test needs is the event from inside the write, and the close it leads to.
private final class SocketLikeOutbound: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    private var pending: [(NIOAny, EventLoopPromise<Void>?)] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.pending.append((data, promise))
        context.pipeline.fireChannelWritabilityChanged()
    }

    func flush(context: ChannelHandlerContext) {
        let pending = self.pending
        self.pending.removeAll()
        for (data, promise) in pending { context.write(data, promise: promise) }
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        let dropped = self.pending
        self.pending.removeAll()
        for (_, promise) in dropped { promise?.fail(ChannelError.ioOnClosedChannel) }
        context.close(mode: mode, promise: promise)
    }
}

/// Counts the writes that pass it toward the channel (added first, next to the head).
private final class WriteCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var count = 0
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.count += 1
        context.write(data, promise: promise)
    }
}
