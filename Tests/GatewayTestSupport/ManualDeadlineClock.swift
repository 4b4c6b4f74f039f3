package import NIOCore
import Synchronization

/// A monotonic clock (NIO's `NIODeadline`) a test moves by hand, for what takes an injectable `now` (a
/// `FailureLogLimiter`'s window, `GatewayApp`'s `warningClock`). Starts one second past zero.
package final class ManualDeadlineClock: Sendable {
    private let nanoseconds = Mutex<Int64>(1_000_000_000)

    package init() {}

    package var now: NIODeadline { NIODeadline.uptimeNanoseconds(UInt64(nanoseconds.withLock { $0 })) }

    package func advance(_ amount: TimeAmount) { nanoseconds.withLock { $0 += amount.nanoseconds } }
}
