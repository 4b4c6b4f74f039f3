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
        #expect(try queue.insert(a, deadline: start + .seconds(10)))
        #expect(try queue.insert(b, deadline: start + .seconds(20)))
        #expect(try queue.insert(c, deadline: start + .seconds(20)))
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
            #expect(try queue.insert(entry, deadline: start + .seconds(Int64(10 * (index + 1)))))
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
        #expect(try queue.insert(entries[4], deadline: start + .seconds(60)))
        loop.advanceTime(to: start + .seconds(60) - .nanoseconds(1))
        #expect(log.fired == ["2", "4"])
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["2", "4", "5"])
    }

    @Test(
        "an earlier deadline goes in its place up to maxStepsBack entries from the end, first if need be; not further")
    func outOfOrderGoesInPlace() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let steps = LoopDeadlineQueue.maxStepsBack
        // Entries 1...steps+1 due at 10 s, 20 s, ...
        let entries = (1...steps + 1).map { Entry("\($0)", log) }
        for (index, entry) in entries.enumerated() {
            #expect(try queue.insert(entry, deadline: start + .seconds(Int64(10 * (index + 1)))))
        }
        // Before the last: one step back.
        let beforeLast = Entry("before-last", log)
        let last = Int64(10 * (steps + 1))
        #expect(try queue.insert(beforeLast, deadline: start + .seconds(last) - .nanoseconds(1)))
        // Equal to an entry's: after it.
        let equal = Entry("equal", log)
        #expect(try queue.insert(equal, deadline: start + .seconds(last - 10)))
        // Before the first of steps + 3 entries: refused.
        let tooFar = Entry("too-far", log)
        #expect(try !queue.insert(tooFar, deadline: start + .seconds(5)))
        #expect(tooFar.queue == nil)
        // After removing three, `steps` entries are left: it goes in first, and the timer is armed for it.
        queue.remove(entries[steps - 1])
        queue.remove(entries[steps - 2])
        queue.remove(entries[steps - 3])
        #expect(try queue.insert(tooFar, deadline: start + .seconds(5)))
        #expect(queue.timerDeadline == start + .seconds(5))

        loop.advanceTime(to: start + .seconds(5) - .nanoseconds(1))
        #expect(log.fired.isEmpty)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["too-far"])
        loop.advanceTime(to: start + .seconds(last) - .nanoseconds(1))
        let expected = ["too-far"] + (1...steps - 3).map { "\($0)" } + ["equal", "before-last"]
        #expect(log.fired == expected)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == expected + ["\(steps + 1)"])
        #expect(queue.isEmpty)
    }

    @Test("an empty queue whose timer is armed later than a new deadline arms one for it; the later fires for nothing")
    func earlierDeadlineOnAnEmptyQueue() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let (a, b) = (Entry("a", log), Entry("b", log))
        #expect(try queue.insert(a, deadline: start + .seconds(30)))
        queue.remove(a)
        #expect(try queue.insert(b, deadline: start + .seconds(10)))
        #expect(queue.timerDeadline == start + .seconds(10))
        loop.advanceTime(to: start + .seconds(10) - .nanoseconds(1))
        #expect(log.fired.isEmpty)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(log.fired == ["b"])
        loop.advanceTime(to: start + .seconds(30))
        #expect(log.fired == ["b"])
        #expect(queue.timerDeadline == nil)
    }

    @Test("an entry's callback may remove the next entry or insert a new one: each is told at its own deadline")
    func callbacksMayChangeTheQueue() throws {
        let loop = EmbeddedEventLoop()
        let queue = LoopDeadlineQueue(eventLoop: loop)
        let log = Log()
        let start = loop.now
        let (a, b, c, d) = (Entry("a", log), Entry("b", log), Entry("c", log), Entry("d", log))
        #expect(try queue.insert(a, deadline: start + .seconds(10)))
        #expect(try queue.insert(b, deadline: start + .seconds(10)))
        #expect(try queue.insert(c, deadline: start + .seconds(20)))
        a.onFire = {
            queue.remove(b)
            // Inserted while the timer fires: armed by the insert or by the re-arm, whichever comes first.
            _ = try? queue.insert(d, deadline: start + .seconds(25))
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
            #expect(try queue.insert(entry, deadline: start + .milliseconds(Int64(index)) + .seconds(5)))
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
