@testable import Backends
import NIOCore
import NIOEmbedded
import Testing

/// ``LoopDeadlineQueue`` on an `EmbeddedEventLoop`: virtual time, moved only by `advanceTime`. Each entry is told
/// at its deadline exactly (not one nanosecond before), in order, behind one NIO timer that is never cancelled.
@Suite("LoopDeadlineQueue: one event loop's deadlines in arrival order behind one timer")
struct LoopDeadlineQueueTests {
    /// Records the order its entries are told in.
    final class Log {
        var fired: [String] = []
    }

    final class Entry: LoopDeadlineEntry, @unchecked Sendable {
        let name: String
        let log: Log
        var onFire: (() -> Void)?

        init(_ name: String, _ log: Log) {
            self.name = name
            self.log = log
        }

        override func deadlinePassed() {
            log.fired.append(name)
            onFire?()
        }
    }

    @Test("each entry is told at its deadline, not one nanosecond before, in order; one timer, re-armed as it fires")
    func firesAtEachDeadline() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let (a, b, c) = (Entry("a", log), Entry("b", log), Entry("c", log))
        #expect(try queue.append(a, deadline: start + .seconds(10)))
        #expect(try queue.append(b, deadline: start + .seconds(20)))
        #expect(try queue.append(c, deadline: start + .seconds(20)))
        #expect(queue.timerDeadline == start + .seconds(10), "one timer, for the head")

        loop.advanceTime(to: start + .seconds(10) - .nanoseconds(1))
        #expect(log.fired.isEmpty)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["a"])
        #expect(queue.timerDeadline == start + .seconds(20), "re-armed for the new head")

        loop.advanceTime(to: start + .seconds(20) - .nanoseconds(1))
        #expect(log.fired == ["a"])
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["a", "b", "c"], "entries with the same deadline, in arrival order")
        #expect(queue.isEmpty)
        #expect(queue.timerDeadline == nil, "nothing armed once empty")
        // Told once: removing a fired entry does nothing, and time moving on tells no one again.
        queue.remove(a)
        loop.advanceTime(by: .hours(1))
        #expect(log.fired == ["a", "b", "c"])
    }

    @Test("removed entries (head, middle, tail) are never told; the timer is not cancelled, it fires and re-arms")
    func removedEntriesAreNotTold() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let entries = (1...5).map { Entry("\($0)", log) }
        for (index, entry) in entries.enumerated() {
            #expect(try queue.append(entry, deadline: start + .seconds(Int64(10 * (index + 1)))))
        }
        queue.remove(entries[2])  // middle
        queue.remove(entries[0])  // head
        queue.remove(entries[4])  // tail
        queue.remove(entries[4])  // again: nothing
        #expect(queue.timerDeadline == start + .seconds(10), "removing the head leaves its timer armed")

        loop.advanceTime(to: start + .seconds(10))
        #expect(log.fired.isEmpty, "the timer fired for nothing")
        #expect(queue.timerDeadline == start + .seconds(20), "and was armed for the new head")
        loop.advanceTime(to: start + .seconds(40))
        #expect(log.fired == ["2", "4"])
        #expect(queue.isEmpty)

        // The tail's links were cut: it goes in again, at the end.
        #expect(try queue.append(entries[4], deadline: start + .seconds(60)))
        loop.advanceTime(to: start + .seconds(60) - .nanoseconds(1))
        #expect(log.fired == ["2", "4"])
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["2", "4", "5"])
    }

    @Test("an earlier deadline than the last entry's does not go in (the caller arms its own); an equal one does")
    func outOfOrderIsRefused() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let (a, b, c) = (Entry("a", log), Entry("b", log), Entry("c", log))
        #expect(try queue.append(a, deadline: start + .seconds(10)))
        #expect(try !queue.append(b, deadline: start + .seconds(10) - .nanoseconds(1)))
        #expect(b.queue == nil)
        #expect(try queue.append(c, deadline: start + .seconds(10)))
        loop.advanceTime(to: start + .seconds(10))
        #expect(log.fired == ["a", "c"])
    }

    @Test("an empty queue whose timer is armed later than a new deadline arms one for it; the later fires for nothing")
    func earlierDeadlineOnAnEmptyQueue() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let (a, b) = (Entry("a", log), Entry("b", log))
        #expect(try queue.append(a, deadline: start + .seconds(30)))
        queue.remove(a)
        #expect(try queue.append(b, deadline: start + .seconds(10)))
        #expect(queue.timerDeadline == start + .seconds(10))
        loop.advanceTime(to: start + .seconds(10) - .nanoseconds(1))
        #expect(log.fired.isEmpty)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["b"])
        loop.advanceTime(to: start + .seconds(30))
        #expect(log.fired == ["b"])
        #expect(queue.timerDeadline == nil)
    }

    @Test("an entry's callback may remove the next entry or append a new one: each is told at its own deadline")
    func callbacksMayChangeTheQueue() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let (a, b, c, d) = (Entry("a", log), Entry("b", log), Entry("c", log), Entry("d", log))
        #expect(try queue.append(a, deadline: start + .seconds(10)))
        #expect(try queue.append(b, deadline: start + .seconds(10)))
        #expect(try queue.append(c, deadline: start + .seconds(20)))
        a.onFire = {
            queue.remove(b)
            // Appended while the timer fires: armed by the append or by the re-arm, whichever comes first.
            _ = try? queue.append(d, deadline: start + .seconds(25))
        }
        loop.advanceTime(to: start + .seconds(10))
        #expect(log.fired == ["a"])
        loop.advanceTime(to: start + .seconds(20))
        #expect(log.fired == ["a", "c"])
        loop.advanceTime(to: start + .seconds(25) - .nanoseconds(1))
        #expect(log.fired == ["a", "c"])
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["a", "c", "d"])
    }

    @Test("many calls in flight: arm and cancel leave the first timer alone until it fires (no NIO cancel per call)")
    func manyInFlight() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        var entries: [Entry] = []
        // 1000 calls a millisecond apart, each with a 5 s timeout; all but every 100th answered in time.
        for index in 0..<1000 {
            let entry = Entry("\(index)", log)
            entries.append(entry)
            #expect(try queue.append(entry, deadline: start + .milliseconds(Int64(index)) + .seconds(5)))
            if index >= 10 && index % 100 != 10 { queue.remove(entries[index - 10]) }
        }
        #expect(queue.timerDeadline == start + .seconds(5), "still the first call's timer")
        loop.advanceTime(to: start + .seconds(5) + .milliseconds(999))
        #expect(
            log.fired == ["0"] + (0..<10).map { "\(100 * $0 + 100)" }.filter { $0 != "1000" }
                + (990..<1000).map { "\($0)" })
        #expect(queue.isEmpty)
    }
}
