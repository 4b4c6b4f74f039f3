import NIOCore
import Observability
import Synchronization
import Testing

@Suite("FailureLogLimiter: one line per key per interval, with the count held back")
struct FailureLogLimiterTests {
    /// A monotonic clock the test moves by hand.
    final class ManualClock: Sendable {
        let nanoseconds = Mutex<Int64>(1_000_000_000)
        var now: NIODeadline { NIODeadline.uptimeNanoseconds(UInt64(nanoseconds.withLock { $0 })) }
        func advance(_ amount: TimeAmount) { nanoseconds.withLock { $0 += amount.nanoseconds } }
    }

    @Test("first at once; held back until the interval's edge; the line at the edge carries the count")
    func edges() {
        let clock = ManualClock()
        let limiter = FailureLogLimiter(interval: .seconds(10), now: { clock.now })
        #expect(limiter.admit("down/127.0.0.1:1") == 0)
        for _ in 0..<5 { #expect(limiter.admit("down/127.0.0.1:1") == nil) }
        // Another endpoint is its own key.
        #expect(limiter.admit("down/127.0.0.1:2") == 0)
        clock.advance(.seconds(10) - .nanoseconds(1))
        #expect(limiter.admit("down/127.0.0.1:1") == nil, "just before the interval: held back")
        clock.advance(.nanoseconds(1))
        #expect(limiter.admit("down/127.0.0.1:1") == 6, "at the interval: logged with the 6 held back")
        #expect(limiter.admit("down/127.0.0.1:1") == nil)
        clock.advance(.seconds(60))
        #expect(limiter.admit("down/127.0.0.1:1") == 1)
        clock.advance(.seconds(60))
        #expect(limiter.admit("down/127.0.0.1:1") == 0, "after a quiet interval: a fresh first line")
    }

    @Test("many keys: idle ones are pruned, a key holding back a count is kept")
    func pruning() {
        let clock = ManualClock()
        let limiter = FailureLogLimiter(interval: .seconds(1), now: { clock.now })
        #expect(limiter.admit("kept") == 0)
        #expect(limiter.admit("kept") == nil)
        for i in 0..<300 { #expect(limiter.admit("k\(i)") == 0) }
        clock.advance(.seconds(2))
        for i in 300..<600 { #expect(limiter.admit("k\(i)") == 0) }
        #expect(limiter.admit("kept") == 1, "its held-back count survived the pruning")
        #expect(limiter.admit("k0") == 0)
    }
}
