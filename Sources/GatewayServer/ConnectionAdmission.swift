import NIOCore
import Synchronization

/// The cap on open client connections (issue 10, item 1): a connection accepted over it is closed at once,
/// logged and counted, so a flood of idle sockets cannot take every file descriptor and starve the backends
/// and the real clients.
///
/// Atomic counters, not the tracker's registry: child channels are initialised on several event loops at
/// once, and "count, then add" there would let a burst overshoot the cap.
final class ConnectionAdmission: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)
    private let rejectedTotal = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Connections refused since start.
    var rejected: Int { rejectedTotal.load(ordering: .relaxed) }

    /// Takes a slot for `channel` until it closes; false (counted) when the cap is reached.
    func admit(_ channel: any Channel) -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(
                expected: current,
                desired: current + 1,
                ordering: .relaxed
            )
            if exchanged {
                channel.closeFuture.whenComplete { [self] _ in open.subtract(1, ordering: .relaxed) }
                return true
            }
            current = original
        }
        rejectedTotal.add(1, ordering: .relaxed)
        return false
    }
}
