package import NIOCore
import ThreadLocals

/// What ``HTTP2FlushList`` needs of a connection: where it is listed, whether it may be flushed as soon as the read
/// that wrote to it ends, and the flush itself.
package protocol HTTP2FlushListMember: AnyObject {
    /// Set and cleared by the list only: whether the connection waits in one of its lists.
    var flushListing: HTTP2FlushList.Listing { get set }
    /// Whether the connection has nothing another read of this tick could add to its flush (it carries at most
    /// one stream); asked when the read that wrote to it ends.
    var flushesAtReadEnd: Bool { get }
    /// Writes what the connection holds for its flush and flushes what was written (nothing once it is closed).
    func flushListedWrites()
}

/// The HTTP/2 connections of one event loop with writes waiting for a flush, and when each gets it: one flush per
/// connection and tick, as ``HTTP2SessionConfiguration/flushesOncePerTick`` promises, without a task per connection
/// written to (issue 11: `execute` cost ~560 instructions to enqueue and ~1.5 k to run, twice per proxied gRPC
/// call, one for each connection the call wrote to).
///
/// - A connection written to during an HTTP/2 connection's read (``readStarted()``/``readEnded()``: a frontend's
///   read starting a backend call, a backend's read answering frontend streams) waits for the end of that read.
///   Then, if it carries at most one stream, it is flushed at once: no other stream's frames could join the
///   flush, as Nagle's algorithm sends at once when nothing is outstanding (RFC 896); a proxied call one at a
///   time needs no task. A busier connection waits for the end of the tick, so that several reads of the tick
///   share its flush (bench/run's load rows: many frontend connections' requests to one backend connection
///   leave in one `writev`).
/// - A connection written to outside any read (a timer, a task, an HTTP/1.1 backend's answer) waits for the end of
///   the tick.
/// - The end of the tick is ONE task for the loop, scheduled by the first connection that needs it; the others only
///   append themselves. NIO runs tasks after the tick's I/O, and a task scheduled by a task in the same tick.
///
/// One per event loop (``forLoop(_:)``), kept per thread: a `MultiThreadedEventLoopGroup`'s loop is one thread for
/// its whole life, so the thread's list is the loop's. A connection takes it when its handler is added and leaves it
/// (``remove(_:)``) when the handler is removed, so no reference to a connection outlives its channel.
///
/// Loops that share a thread or move between threads (`EmbeddedEventLoop`, and `NIOAsyncTestingEventLoop`, whose
/// work runs on any thread of Dispatch's pool: tests) must not share a list: a list flushes its connections from
/// the loop that runs its task, and flushing another loop's channel there is a data race (NIO's debug builds stop
/// it with `dispatch_assert_queue`: the twenty-seventh session's CI crash). So a thread's list belongs to the first
/// loop that asks for it on that thread; any other loop asking there gets nil, and its connections schedule a tick
/// flush each, as before the list. The owner's connections may use the list from other threads: only the owner's
/// work, which a loop runs one job at a time, ever touches it.
package final class HTTP2FlushList {
    /// Where a connection waits.
    package enum Listing {
        case none
        case readEnd
        case tickEnd
    }

    private static let perThread = ThreadLocalObject<HTTP2FlushList>()

    /// `loop`'s list, called on `loop`: the calling thread's list when it is `loop`'s (or no loop's yet, when it
    /// becomes `loop`'s), nil when another loop owns it (loops sharing threads: tests; see the type's comment).
    package static func forLoop(_ loop: any EventLoop) -> HTTP2FlushList? {
        let loopID = ObjectIdentifier(loop)
        return Self.perThread.withValue(makingWith: HTTP2FlushList.init) { list in
            if list.owner == nil { list.owner = loopID }
            return list.owner == loopID ? list : nil
        }
    }

    /// The loop this list belongs to (an identity: see ``tickFlushLoop``), set by ``forLoop(_:)``.
    private var owner: ObjectIdentifier?

    /// HTTP/2 connections' reads on the stack (a read may, through an `EmbeddedChannel`, cause another).
    private var readDepth = 0
    private var atReadEnd: [any HTTP2FlushListMember] = []
    private var atTickEnd: [any HTTP2FlushListMember] = []
    /// The loop whose task flushes ``atTickEnd`` while one is scheduled, and that task's token. An identity, not a
    /// reference: a weak reference gave every event loop a side table, and each of its many retains and releases
    /// took the slow path (+2.7 k instructions per proxied gRPC call). Compared with the writer's loop because
    /// several `EmbeddedEventLoop`s share a thread in tests: one that never runs its task must not leave the others
    /// waiting for it. The token's deinit clears both when a loop is dropped with its task never run, so that a new
    /// loop at the same address is not taken for it. On a `MultiThreadedEventLoopGroup` it is this thread's loop.
    private var tickFlushLoop: ObjectIdentifier?
    private var tickFlushToken: ObjectIdentifier?

    /// Lives as long as the tick task that holds it (run, or dropped with its loop unrun).
    private final class TickFlushToken {
        let list: HTTP2FlushList
        init(list: HTTP2FlushList) { self.list = list }
        deinit {
            // Still the list's token: its task was dropped unrun (a loop shut down, a test's loop letting go of
            // it). The next write schedules a new task, which flushes what waited too. The owner stays: the loop's
            // handlers may still hold the list, so no other loop may take it (and this may run on any thread).
            if self.list.tickFlushToken == ObjectIdentifier(self) {
                self.list.tickFlushLoop = nil
                self.list.tickFlushToken = nil
            }
        }
    }

    package init() {}

    /// Whether the list holds no connection (for tests).
    package var isEmpty: Bool { self.atReadEnd.isEmpty && self.atTickEnd.isEmpty }

    /// An HTTP/2 connection's read starts.
    package func readStarted() {
        self.readDepth += 1
    }

    /// An HTTP/2 connection's read ended: at the outermost read's end, every connection written to during it is
    /// flushed now, or moved to the tick's flush when it is busy.
    package func readEnded(on loop: any EventLoop) {
        self.readDepth -= 1
        guard self.readDepth == 0, !self.atReadEnd.isEmpty else { return }
        // Taken out first: a flush may close a connection, whose streams' ends write to others (they join the
        // tick's list, since no read is on the stack any more).
        var written: [any HTTP2FlushListMember] = []
        swap(&written, &self.atReadEnd)
        defer { Self.giveBack(&written, to: &self.atReadEnd) }
        for member in written where member.flushListing == .readEnd {
            if member.flushesAtReadEnd {
                member.flushListing = .none
                member.flushListedWrites()
            } else {
                member.flushListing = .tickEnd
                self.atTickEnd.append(member)
                self.scheduleTickFlush(on: loop)
            }
        }
    }

    /// `member` was written to and wants a flush; a connection already listed is not listed again.
    package func written(_ member: any HTTP2FlushListMember, on loop: any EventLoop) {
        guard member.flushListing == .none else { return }
        if self.readDepth > 0 {
            member.flushListing = .readEnd
            self.atReadEnd.append(member)
        } else {
            member.flushListing = .tickEnd
            self.atTickEnd.append(member)
            self.scheduleTickFlush(on: loop)
        }
    }

    /// Takes `member` off the list without flushing it (its channel is closing or its handler removed).
    package func remove(_ member: any HTTP2FlushListMember) {
        switch member.flushListing {
        case .none: return
        case .readEnd: self.atReadEnd.removeAll { $0 === member }
        case .tickEnd: self.atTickEnd.removeAll { $0 === member }
        }
        member.flushListing = .none
    }

    private func scheduleTickFlush(on loop: any EventLoop) {
        let loopID = ObjectIdentifier(loop)
        if self.tickFlushLoop == loopID { return }
        let token = TickFlushToken(list: self)
        self.tickFlushLoop = loopID
        self.tickFlushToken = ObjectIdentifier(token)
        loop.assumeIsolated().execute {
            if token.list.tickFlushToken == ObjectIdentifier(token) {
                token.list.tickFlushLoop = nil
                token.list.tickFlushToken = nil
            }
            token.list.flushTickEnd()
        }
    }

    private func flushTickEnd() {
        // Taken out first: a connection written to by another's flush (a close's stream ends) is listed anew, and
        // a new task flushes it in this same tick.
        var written: [any HTTP2FlushListMember] = []
        swap(&written, &self.atTickEnd)
        defer { Self.giveBack(&written, to: &self.atTickEnd) }
        for member in written where member.flushListing == .tickEnd {
            member.flushListing = .none
            member.flushListedWrites()
        }
    }

    /// Empties `taken` and makes its storage `list`'s again when nothing was listed meanwhile: the lists allocate
    /// nothing after their first use.
    private static func giveBack(_ taken: inout [any HTTP2FlushListMember], to list: inout [any HTTP2FlushListMember]) {
        taken.removeAll(keepingCapacity: true)
        if list.isEmpty { swap(&taken, &list) }
    }
}

@available(*, unavailable)
extension HTTP2FlushList: Sendable {}
