package import NIOCore
import Synchronization

/// Decides which repeats of one kind of log line are written: the first at once, then at most one per
/// `interval` with the number held back in between (Envoy's and nginx's answer to an upstream that is down).
///
/// An endpoint that is down fails every try of every call and every claim of a queued async operation: 3 tries
/// per call, thousands of queued operations, one identical warning each, thousands of lines a second (review 8,
/// finding 4). The `backend_*` metrics still count every failure; the log says that it started and how often
/// it goes on. Keys are what the line is about (`pool/endpoint`), bounded by the configuration.
package final class FailureLogLimiter: Sendable {
    /// At most one line per key per this long, after the first.
    package let interval: TimeAmount
    private let now: @Sendable () -> NIODeadline
    private let state = Mutex<[String: Entry]>([:])

    private struct Entry {
        var lastLogged: NIODeadline
        var heldBack: Int
    }

    /// Past this many keys, those idle for an interval are dropped (endpoints removed by reloads).
    private static let pruneAbove = 256

    /// - Parameters:
    ///   - interval: the least time between two lines of one key (10 s for endpoint failures).
    ///   - now: the monotonic clock; tests pass a manual one.
    package init(interval: TimeAmount, now: @escaping @Sendable () -> NIODeadline = { .now() }) {
        self.interval = interval
        self.now = now
    }

    /// Records one occurrence of `key`. Returns nil when its line is held back, else how many occurrences were
    /// held back since the key's last line (0 for the first line, or after a quiet interval).
    package func admit(_ key: String) -> Int? {
        let now = now()
        return state.withLock { entries -> Int? in
            if var entry = entries[key] {
                guard now - entry.lastLogged >= interval else {
                    entry.heldBack += 1
                    entries[key] = entry
                    return nil
                }
                entries[key] = Entry(lastLogged: now, heldBack: 0)
                return entry.heldBack
            }
            if entries.count >= Self.pruneAbove {
                let interval = self.interval
                entries = entries.filter { now - $0.value.lastLogged < interval || $0.value.heldBack > 0 }
            }
            entries[key] = Entry(lastLogged: now, heldBack: 0)
            return 0
        }
    }
}
