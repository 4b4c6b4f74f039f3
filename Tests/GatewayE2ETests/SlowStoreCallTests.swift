import GatewayApp
import GatewayTestSupport
import Logging
import NIOCore
import Observability
import OperationStore
import Synchronization
import Testing

/// `operation store call slow` (review 18, F3): a store call over the threshold is logged, the first at once and
/// then at most one per 10 s per store method with the count held back. Time is scripted: the measured store
/// reads its instants from a list, the limiter its deadlines from a variable.
@Suite("A slow operation store call is logged, held back per method")
struct SlowStoreCallTests {
    final class Script: Sendable {
        let origin = ContinuousClock.now
        /// Each store call reads two instants: its start and its end.
        let instants = Mutex<[ContinuousClock.Instant]>([])
        let limiterNow = Mutex(NIODeadline.uptimeNanoseconds(1_000_000_000))
        /// The limiter's wall clock, milliseconds since 1970 (for `…_held_back_since`).
        let wallMilliseconds = Mutex<Int64>(1_764_683_822_118)

        /// The next call takes `duration`.
        func nextCall(takes duration: Duration) {
            instants.withLock { $0 += [origin, origin + duration] }
        }

        func now() -> ContinuousClock.Instant { instants.withLock { $0.removeFirst() } }
    }

    @Test("at the threshold nothing is said; past it one warning; repeats within 10 s held back, then counted")
    func slowCallsLogged() async throws {
        let script = Script()
        let log = RecordedLog()
        let slowCalls = SlowCallLog(
            logger: Logger(label: "test") { _ in log }, storeName: "sqlite test",
            limiter: FailureLogLimiter(
                interval: .seconds(10), now: { script.limiterNow.withLock { $0 } },
                wallClock: { script.wallMilliseconds.withLock { $0 } }))
        let store = MeasuredOperationStore.measuring(
            UnavailableStore(), metrics: GatewayMetrics().store, slowCalls: slowCalls, now: { script.now() })
        func warnings() -> [RecordedLog.Line] { log.lines.filter { $0.message == "operation store call slow" } }

        script.nextCall(takes: SlowCallLog.defaultThreshold)
        _ = try? await store.get(id: "a")
        #expect(warnings().isEmpty, "a call of exactly the threshold is not slow")

        script.nextCall(takes: SlowCallLog.defaultThreshold + .milliseconds(1))
        _ = try? await store.get(id: "a")
        #expect(warnings().count == 1)
        let first = try #require(warnings().first)
        #expect(first.level == .warning)
        #expect(first.metadata["store.operation"] == "get" && first.metadata["duration"] == "1001ms")
        #expect(first.metadata["store.call_failed"] == "true" && first.metadata["store"] == "sqlite test")

        // Another method is its own story; the same one within the interval is held back.
        script.nextCall(takes: .seconds(3))
        _ = try? await store.queuedCount()
        script.wallMilliseconds.withLock { $0 += 1500 }
        script.nextCall(takes: .seconds(2))
        _ = try? await store.get(id: "a")
        #expect(warnings().map { $0.metadata["store.operation"] } == ["get", "queued_count"])

        script.limiterNow.withLock { $0 = $0 + .seconds(10) }
        script.nextCall(takes: .seconds(2))
        _ = try? await store.get(id: "a")
        #expect(warnings().count == 3)
        #expect(warnings().last?.metadata["store.slow_calls_held_back"] == "1")
        #expect(warnings().last?.metadata["store.slow_calls_held_back_since"] == "2025-12-02T13:57:03.618Z")
    }
}
