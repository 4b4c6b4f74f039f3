import NIOCore

/// What a ``LoopDeadlineQueue`` holds: an object with its own links (intrusive: arming a deadline allocates
/// nothing), told once, on the queue's loop, when the loop's clock reaches its deadline. A subclass overrides
/// ``deadlinePassed()``.
///
/// `@unchecked Sendable`: the links are only touched on the loop of the queue the entry is in (see there).
class LoopDeadlineEntry: @unchecked Sendable {
    /// The entry's deadline while it is queued.
    fileprivate(set) var queuedDeadline = NIODeadline.distantFuture
    /// Toward the later deadlines. The queue holds its entries through these (and its head).
    fileprivate var next: LoopDeadlineEntry?
    /// Toward the earlier deadlines: unowned, the entry before is held by its own predecessor or the queue.
    fileprivate unowned(unsafe) var previous: LoopDeadlineEntry?
    /// The queue the entry is in, nil when it is in none (never queued, removed, or its deadline passed).
    fileprivate(set) var queue: LoopDeadlineQueue?

    init() {}

    /// The loop's clock reached the deadline (at it, as NIO runs a task scheduled at `deadline` once `now >=
    /// deadline`); the entry is no longer queued. Called on the queue's loop.
    func deadlinePassed() {}
}

/// The deadlines of one event loop's calls that share a timeout, in arrival order, behind ONE NIO timer: a doubly
/// linked list with O(1) arm (insert at or near the end) and cancel (remove), in place of an entry per call in the
/// loop's timer heap.
///
/// Why: SwiftNIO 2.101's `SelectableEventLoop` keeps its timers in a heap under a lock, and cancels one with a
/// linear scan of that heap (`_scheduledTasks.removeFirst(where:)`): with the calls of a loaded loop in flight each
/// holding a deadline, a call's arm and cancel cost ~3.5 k instructions (callgrind, gRPC at 500 calls in flight;
/// bench/README.md, branch looptimers). Calls that arrive on a loop with the same timeout have deadlines in
/// (about) arrival order, so a FIFO holds them sorted for next to nothing: the design of libev's timer lists as
/// nghttpx uses them and of Envoy's per-worker timers.
///
/// The timer is re-armed lazily: removing the head does not cancel it. It fires at the deadline it was armed for
/// (never later than the head's), ends every entry whose deadline has passed, and is armed again for the new head.
/// An entry whose deadline is earlier than those of more than ``maxStepsBack`` entries at the end does not go in
/// (``insert(_:deadline:)`` returns false): the caller arms a NIO timer of its own for it (a caller's shorter
/// deadline, a call that waited in the queue for a slot).
///
/// Ownership: created for one loop and only touched on it (the caller is on the loop: ``BackendPool`` looks its
/// loop's queue up in a dictionary fixed at its init, which needs no lock). No lock and no atomic. The queue holds
/// its entries strongly until they are removed or their deadline passes, and a queued entry holds its queue (its
/// `queue`): the cycle ends when the entry is removed or told, as a ``BackendPool`` call always is once its
/// transport's call ends. An armed timer holds the queue.
final class LoopDeadlineQueue: @unchecked Sendable {
    let eventLoop: any EventLoop
    private var head: LoopDeadlineEntry?
    private unowned(unsafe) var tail: LoopDeadlineEntry?
    /// The deadline of the timer that guards the head: at or before the head's deadline whenever the queue is not
    /// empty (an older timer with another deadline may still be pending; it finds nothing due, or ends what is).
    private var armedDeadline: NIODeadline?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// How many entries from the end an entry may go in before (those with a later deadline than its): the calls of
    /// a multiplexed connection start a little out of arrival order when their frames interleave (at `h2load -c50
    /// -m10`, ~10 % of gRPC calls under callgrind). Further back, the caller's own NIO timer costs less than the walk.
    static let maxStepsBack = 16

    /// Queues `entry` (not in a queue) to be told at `deadline`: after every entry whose deadline is not later (equal
    /// deadlines are told in the order they went in). Returns false, queuing nothing, when more than
    /// ``maxStepsBack`` entries have a later deadline. Throws what `EventLoop.scheduleCallback` throws (the loop is
    /// shutting down) when the queue's timer has to be armed.
    func insert(_ entry: LoopDeadlineEntry, deadline: NIODeadline) throws -> Bool {
        eventLoop.assertInEventLoop()
        assert(entry.queue == nil, "an entry is in one queue at a time")
        // The entry it goes after; nil: it becomes the head.
        var after = tail
        var steps = 0
        while let candidate = after, deadline < candidate.queuedDeadline {
            guard steps < Self.maxStepsBack else { return false }
            steps += 1
            after = candidate.previous
        }
        // The timer guards the head, which is this entry when it goes first. One is armed for it unless one is armed
        // no later (while the timer fires, none is: an entry's callback may insert).
        let due = after == nil ? deadline : head!.queuedDeadline
        if armedDeadline.map({ due < $0 }) ?? true {
            // A later timer, if any, stays armed; it fires for nothing.
            _ = try eventLoop.scheduleCallback(at: due, handler: Timer(queue: self, deadline: due))
            armedDeadline = due
        }
        entry.queuedDeadline = deadline
        entry.queue = self
        entry.previous = after
        if let after {
            entry.next = after.next
            after.next = entry
        } else {
            entry.next = head
            head = entry
        }
        if let next = entry.next { next.previous = entry } else { tail = entry }
        return true
    }

    /// Takes `entry` out (nothing when it is in no queue: already removed, or its deadline passed). O(1).
    func remove(_ entry: LoopDeadlineEntry) {
        eventLoop.assertInEventLoop()
        guard entry.queue === self else { return }
        let next = entry.next
        if let previous = entry.previous { previous.next = next } else { head = next }
        if let next { next.previous = entry.previous } else { tail = entry.previous }
        entry.next = nil
        entry.previous = nil
        entry.queue = nil
    }

    /// Whether the queue holds no entry.
    var isEmpty: Bool { head == nil }

    /// The deadline the queue's timer is armed for (tests: one timer, re-armed only when it fires).
    var timerDeadline: NIODeadline? { armedDeadline }

    /// A timer of this queue fired: every entry due by the loop's clock is ended, in order; then the timer is armed
    /// for the new head unless an entry's callback already armed it.
    private func timerFired(armedFor deadline: NIODeadline) {
        if armedDeadline == deadline { armedDeadline = nil }
        let now = eventLoop.now
        while let entry = head, entry.queuedDeadline <= now {
            remove(entry)
            entry.deadlinePassed()
        }
        guard let due = head?.queuedDeadline, armedDeadline == nil else { return }
        // Only a loop that is shutting down refuses a timer, and its calls end with it.
        if (try? eventLoop.scheduleCallback(at: due, handler: Timer(queue: self, deadline: due))) != nil {
            armedDeadline = due
        }
    }

    /// The loop cancelled a timer of this queue (it is shutting down): the next insert arms one, or throws.
    private func timerCancelled(armedFor deadline: NIODeadline) {
        if armedDeadline == deadline { armedDeadline = nil }
    }

    /// One armed timer of the queue, known by its deadline (no handle is kept: the queue never cancels its timers).
    private struct Timer: NIOScheduledCallbackHandler, Sendable {
        let queue: LoopDeadlineQueue
        let deadline: NIODeadline

        func handleScheduledCallback(eventLoop: some EventLoop) {
            queue.timerFired(armedFor: deadline)
        }

        func didCancelScheduledCallback(eventLoop: some EventLoop) {
            queue.timerCancelled(armedFor: deadline)
        }
    }
}
