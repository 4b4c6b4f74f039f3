import NIOCore
import Synchronization
import Testing
import TriggerModel

/// The body of a runner request relayed while the client's body arrives (issue 12): bytes in order, a wait
/// woken by the producer's next step, an end only after `complete`, a failure that drops what was queued.
@Suite("RelayedBody")
struct RelayedBodyTests {
    /// How often a body woke its consumer.
    final class Wakes: Sendable {
        private let count = Mutex(0)
        func wake() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }
    }

    static func take(_ body: RelayedBody, woken: Wakes) -> String {
        var taken = ""
        while case .bytes(let bytes) = body.next(whenReady: woken.wake) {
            taken += String(buffer: bytes)
        }
        return taken
    }

    @Test("bytes in order; waits until the producer appends or completes; ends after the tail")
    func order() {
        let woken = Wakes()
        let body = RelayedBody(count: 10, head: ByteBuffer(string: "{a"))
        #expect(body.claim())
        #expect(Self.take(body, woken: woken) == "{a")
        guard case .wait = body.next(whenReady: woken.wake) else {
            Issue.record("expected a wait")
            return
        }
        body.append(ByteBuffer(string: "bcd"))
        #expect(woken.value == 1, "the waiting consumer is woken once")
        body.append(ByteBuffer(string: "ef"))
        #expect(woken.value == 1, "no second wake without a second wait")
        #expect(body.queuedBytes == 5)
        #expect(Self.take(body, woken: woken) == "bcdef")
        body.complete(tail: ByteBuffer(string: "g}!"))
        #expect(woken.value == 2)
        #expect(Self.take(body, woken: woken) == "g}!")
        guard case .end = body.next(whenReady: {}) else {
            Issue.record("expected the end")
            return
        }
        body.fail()
        guard case .end = body.next(whenReady: {}) else {
            Issue.record("a failure after the end changes nothing")
            return
        }
    }

    @Test("a failure drops what was queued and wakes the consumer; appends after it are ignored")
    func failure() {
        let woken = Wakes()
        let body = RelayedBody(count: 100, head: ByteBuffer(string: "{"))
        #expect(Self.take(body, woken: woken) == "{")
        body.append(ByteBuffer(string: "abc"))
        body.fail()
        body.append(ByteBuffer(string: "def"))
        #expect(woken.value == 1)
        #expect(body.isEnded && body.queuedBytes == 0)
        guard case .failed(let error) = body.next(whenReady: {}) else {
            Issue.record("expected the failure")
            return
        }
        #expect(error as? RelayedBody.Failure == .aborted)
    }

    @Test("one consumer: a second claim (a retry) is refused")
    func oneConsumer() {
        let body = RelayedBody(count: 1, head: ByteBuffer(string: "x"))
        #expect(body.claim())
        #expect(!body.claim())
    }

    @Test("back-pressure: the wait resumes at its low-water mark, not before, and when the body fails or completes")
    func drainedAtMark() {
        let resumed = Wakes()
        let body = RelayedBody(count: 100, head: ByteBuffer(string: "0123"))
        body.append(ByteBuffer(string: "4567"))
        body.append(ByteBuffer(string: "89"))
        #expect(!body.whenDrained(to: 10, resumed.wake), "10 queued: at the mark already, no wait")
        #expect(body.whenDrained(to: 2, resumed.wake))
        _ = body.next(whenReady: {})
        #expect(resumed.value == 0, "6 queued, over 2")
        _ = body.next(whenReady: {})
        #expect(resumed.value == 1, "2 queued: at the mark")
        _ = body.next(whenReady: {})
        #expect(resumed.value == 1, "once")

        let failing = RelayedBody(count: 100, head: ByteBuffer(string: "0123"))
        #expect(failing.whenDrained(to: 0, resumed.wake))
        failing.fail()
        #expect(resumed.value == 2, "a failed body resumes its producer (the ordinary path reads the rest)")
        #expect(!failing.whenDrained(to: 0, resumed.wake), "no wait on an ended body")

        let completing = RelayedBody(count: 8, head: ByteBuffer(string: "0123"))
        #expect(completing.whenDrained(to: 0, resumed.wake))
        completing.complete(tail: ByteBuffer(string: "4567"))
        #expect(resumed.value == 3)
    }
}
