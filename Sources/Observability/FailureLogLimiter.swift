#if canImport(Glibc)
    import Glibc
#endif
package import Logging
package import NIOCore
import Synchronization
import TriggerModel

/// Decides which repeats of one kind of log line are written: the first at once, then at most one per
/// `interval` with the number held back in between (Envoy's and nginx's answer to an upstream that is down).
///
/// An endpoint that is down fails every try of every call and every claim of a queued async operation: 3 tries
/// per call, thousands of queued operations, one identical warning each, thousands of lines a second (review 8,
/// finding 4). The `backend_*` metrics still count every failure; the log says that it started and how often
/// it goes on. Keys are what the line is about (`pool/endpoint/flag`), bounded by the configuration.
///
/// The held-back count is told by the key's next line, which may come long after the window that held them back
/// closed (minutes, when the failures stopped and came back): so that line also says when the first of them
/// happened (``HeldBack/since``, `…_held_back_since`), and reads as "14 since 13:57:02", not "14 in the last
/// 10 s" (review 26, L1). Held-back occurrences are not flushed on a timer: the limiter owns no event loop, and
/// a summary nobody asked for would outlive the failure it counts.
package final class FailureLogLimiter: Sendable {
    /// At most one line per key per this long, after the first.
    package let interval: TimeAmount
    private let now: @Sendable () -> NIODeadline
    private let wallClock: @Sendable () -> Int64
    private let state = Mutex<[String: Entry]>([:])

    private struct Entry {
        var lastLogged: NIODeadline
        var heldBack: Int
        /// Wall-clock milliseconds since 1970 of the first occurrence held back since the last line (when
        /// `heldBack` > 0).
        var heldBackSince: Int64 = 0
    }

    /// What a line let through says of the occurrences of its key held back before it.
    package struct HeldBack: Sendable, Equatable {
        /// How many were held back since the key's last line: 0 for the first line, or after a quiet interval.
        package var count: Int
        /// When the first of them happened, in wall-clock milliseconds since 1970 (UTC); nil when `count` is 0.
        package var sinceMilliseconds: Int64?

        package init(count: Int, sinceMilliseconds: Int64?) {
            self.count = count
            self.sinceMilliseconds = sinceMilliseconds
        }

        /// ``sinceMilliseconds`` in RFC 3339 (UTC, milliseconds: `2026-12-02T13:57:02.118Z`), as the log's `ts`.
        package var since: String? { sinceMilliseconds.map { RFC3339.format(milliseconds: $0) } }

        /// Adds the count to `metadata` under `countKey` (`backend.failures_held_back`) and when the first of them
        /// happened under `countKey` + `_since` (`backend.failures_held_back_since`), when any were held back.
        package func annotate(_ metadata: inout Logger.Metadata, countKey: String) {
            guard count > 0 else { return }
            metadata[countKey] = .stringConvertible(count)
            if let since { metadata[countKey + "_since"] = .string(since) }
        }
    }

    /// Past this many keys, those idle for an interval are dropped (endpoints removed by reloads).
    private static let pruneAbove = 256

    /// - Parameters:
    ///   - interval: the least time between two lines of one key (10 s for endpoint failures).
    ///   - now: the monotonic clock the interval is counted on; tests pass a manual one.
    ///   - wallClock: milliseconds since 1970 (UTC), for ``HeldBack/since``; `CLOCK_REALTIME` unless a test
    ///     passes its own.
    package init(
        interval: TimeAmount,
        now: @escaping @Sendable () -> NIODeadline = { .now() },
        wallClock: @escaping @Sendable () -> Int64 = FailureLogLimiter.realtimeMilliseconds
    ) {
        self.interval = interval
        self.now = now
        self.wallClock = wallClock
    }

    /// Records one occurrence of `key`. Returns nil when its line is held back, else how many occurrences were
    /// held back since the key's last line (0 for the first line, or after a quiet interval).
    package func admit(_ key: String) -> Int? {
        admitLine(key)?.count
    }

    /// Records one occurrence of `key`. Returns nil when its line is held back, else what that line should say of
    /// the occurrences held back since the key's last line (``HeldBack/annotate(_:countKey:)``).
    package func admitLine(_ key: String) -> HeldBack? {
        let now = now()
        let entry = state.withLock { entries -> Entry? in
            if var entry = entries[key] {
                guard now - entry.lastLogged >= interval else {
                    if entry.heldBack == 0 { entry.heldBackSince = wallClock() }
                    entry.heldBack += 1
                    entries[key] = entry
                    return nil
                }
                entries[key] = Entry(lastLogged: now, heldBack: 0)
                return entry
            }
            if entries.count >= Self.pruneAbove {
                let interval = self.interval
                entries = entries.filter { now - $0.value.lastLogged < interval || $0.value.heldBack > 0 }
            }
            entries[key] = Entry(lastLogged: now, heldBack: 0)
            return Entry(lastLogged: now, heldBack: 0)
        }
        guard let entry else { return nil }
        return HeldBack(count: entry.heldBack, sinceMilliseconds: entry.heldBack > 0 ? entry.heldBackSince : nil)
    }

    /// Wall-clock milliseconds since 1970 now (`clock_gettime(CLOCK_REALTIME)`, no Foundation).
    package static func realtimeMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
