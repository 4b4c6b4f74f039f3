import GatewayTestSupport
import Logging
import NIOCore
import Observability
import Synchronization
import Testing

@Suite("FailureLogLimiter: one line per key per interval, with the count held back")
struct FailureLogLimiterTests {
    @Test("first at once; held back until the interval's edge; the line at the edge carries the count")
    func edges() {
        let clock = ManualDeadlineClock()
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

    /// A wall clock the test sets: milliseconds since 1970.
    final class ManualWallClock: Sendable {
        let milliseconds = Mutex<Int64>(1_764_683_822_118)  // 2025-12-02T13:57:02.118Z
        var now: Int64 { milliseconds.withLock { $0 } }
        func advance(_ amount: TimeAmount) { milliseconds.withLock { $0 += amount.nanoseconds / 1_000_000 } }
    }

    @Test(
        "the line after held-back ones says when the first of them happened, however long after its window it comes"
    )
    func heldBackSince() {
        let clock = ManualDeadlineClock()
        let wall = ManualWallClock()
        let limiter = FailureLogLimiter(interval: .seconds(10), now: { clock.now }, wallClock: { wall.now })
        let key = "bad/127.0.0.1:1/UC"
        #expect(
            limiter.admitLine(key) == FailureLogLimiter.HeldBack(count: 0, sinceMilliseconds: nil),
            "the first: nothing held back")
        clock.advance(.seconds(1))
        wall.advance(.seconds(1))
        // The first held back sets the time; later ones in the window do not move it.
        let firstHeldBack = wall.now
        #expect(limiter.admitLine(key) == nil)
        clock.advance(.seconds(2))
        wall.advance(.seconds(2))
        #expect(limiter.admitLine(key) == nil)

        // Just before the window's end: still held back. Then three minutes pass with nothing (review 26, L1: the
        // summary came minutes later, reading as "in the last 10 s").
        clock.advance(.seconds(7) - .nanoseconds(1))
        #expect(limiter.admitLine(key) == nil)
        clock.advance(.minutes(3))
        wall.advance(.minutes(3))
        let line = limiter.admitLine(key)
        #expect(line == FailureLogLimiter.HeldBack(count: 3, sinceMilliseconds: firstHeldBack))
        #expect(line?.since == "2025-12-02T13:57:03.118Z")
        var metadata: Logger.Metadata = [:]
        line?.annotate(&metadata, countKey: "backend.failures_held_back")
        #expect(metadata["backend.failures_held_back"]?.description == "3")
        #expect(metadata["backend.failures_held_back_since"]?.description == "2025-12-02T13:57:03.118Z")

        // The count starts again: the next held back sets a new time.
        clock.advance(.seconds(1))
        wall.advance(.seconds(1))
        #expect(limiter.admitLine(key) == nil)
        clock.advance(.seconds(9))
        #expect(limiter.admitLine(key)?.sinceMilliseconds == firstHeldBack + 183_000, "at the window's edge")

        // Nothing held back: no `_since` (and no count) in the line.
        clock.advance(.seconds(60))
        let quiet = limiter.admitLine(key)
        #expect(quiet == FailureLogLimiter.HeldBack(count: 0, sinceMilliseconds: nil))
        var none: Logger.Metadata = [:]
        quiet?.annotate(&none, countKey: "backend.failures_held_back")
        #expect(none.isEmpty)
    }

    @Test("keys that differ only by the failure's flag are limited apart (review 26, L2)")
    func flagsApart() {
        let clock = ManualDeadlineClock()
        let limiter = FailureLogLimiter(interval: .seconds(10), now: { clock.now })
        #expect(limiter.admit("bad/127.0.0.1:1/UC") == 0)
        #expect(limiter.admit("bad/127.0.0.1:1/UC") == nil)
        #expect(limiter.admit("bad/127.0.0.1:1/UPE") == 0, "a new kind of failure inside the window is told of")
    }

    @Test("many keys: idle ones are pruned, a key holding back a count is kept")
    func pruning() {
        let clock = ManualDeadlineClock()
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
