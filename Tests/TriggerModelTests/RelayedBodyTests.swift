import NIOCore
import Synchronization
import Testing
import TriggerModel
import TestScheduling

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

    /// A client sending its file a few bytes per segment: the queue's memory follows its bytes, not its chunks.
    @Test(
        "small chunks are joined into buffers of at most the coalescing size; a large chunk is queued as it is",
        .cpuBound)
    func smallChunksJoined() {
        let woken = Wakes()
        let body = RelayedBody(count: 1_000_000, head: ByteBuffer(string: "{"))
        var expected = "{"
        for n in 0..<20_000 {
            let text = String(n % 9_000 + 1000)  // 4 bytes
            body.append(ByteBuffer(string: text))
            expected += text
        }
        #expect(body.queuedBytes == expected.utf8.count)
        let large = ByteBuffer(repeating: UInt8(ascii: "z"), count: RelayedBody.coalescingBytes)
        let largeAddress = large.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        body.append(large)
        body.append(ByteBuffer(string: "end"))
        expected += String(repeating: "z", count: RelayedBody.coalescingBytes) + "end"
        var buffers: [ByteBuffer] = []
        while case .bytes(let bytes) = body.next(whenReady: woken.wake) { buffers.append(bytes) }
        #expect(buffers.map { String(buffer: $0) }.joined() == expected)
        // 80 001 bytes of 4-byte chunks in buffers of up to 16 KiB (plus the chunk that crossed it): 5, not 20 000.
        #expect(buffers.count == 5 + 2, "\(buffers.map(\.readableBytes))")
        #expect(buffers.dropLast(2).allSatisfy { $0.readableBytes < 2 * RelayedBody.coalescingBytes })
        // The large chunk went out as it came (not copied), and what followed it was not written into it.
        #expect(buffers[buffers.count - 2].withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == largeAddress)
        #expect(String(buffer: buffers[buffers.count - 1]) == "end")
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
        // Chunks of the coalescing size, so that each is queued (and taken) as its own buffer.
        let c = RelayedBody.coalescingBytes
        let body = RelayedBody(count: 3 * c, head: ByteBuffer(repeating: 0x30, count: c))
        body.append(ByteBuffer(repeating: 0x31, count: c))
        body.append(ByteBuffer(string: "89"))
        #expect(!body.whenDrained(to: 2 * c + 2, resumed.wake), "2c + 2 queued: at the mark already, no wait")
        #expect(body.whenDrained(to: 2, resumed.wake))
        _ = body.next(whenReady: {})
        #expect(resumed.value == 0, "c + 2 queued, over 2")
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
