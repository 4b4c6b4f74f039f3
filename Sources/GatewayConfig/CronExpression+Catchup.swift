package import Foundation

extension CronExpression {
    /// The most ticks one catch-up fires: a long outage of a fast schedule with a wide `catchup_window` must not
    /// flood the queue (the latest ones are kept).
    package static let maximumCatchupTicks = 100

    /// What a schedule whose newest handled tick is `lastTick` does at `now`.
    ///
    /// - `latest`: the newest tick in `(lastTick, now]`, nil when none is due; the schedule records it as
    ///   handled whether it fires or not.
    /// - `fire`: the ticks to fire, oldest first. Without a `catchupWindow` only `latest` (cron's and Kubernetes'
    ///   default: one run for any number of missed ticks); with one, every due tick at most `catchupWindow` old
    ///   (Kubernetes' `startingDeadlineSeconds`), at most `maximumCatchupTicks` of them, the latest ones.
    package func dueTicks(
        after lastTick: Date,
        through now: Date,
        in timeZone: TimeZone,
        catchupWindow: Duration?,
        limit: Int = CronExpression.maximumCatchupTicks
    ) -> (fire: [Date], latest: Date?) {
        guard let latest = latestFire(after: lastTick, through: now, in: timeZone) else { return ([], nil) }
        guard let catchupWindow else { return ([latest], latest) }
        let (seconds, attoseconds) = catchupWindow.components
        // A tick exactly `catchupWindow` old still fires: start the half-open walk a millisecond before it.
        let windowStart = now.addingTimeInterval(-(Double(seconds) + Double(attoseconds) / 1e18) - 0.001)
        let start = max(lastTick, windowStart)
        // `fireTimes` walks the window; a window holding many ticks is walked from its latest part only.
        return (fireTimes(after: start, through: now, in: timeZone, limit: limit), latest)
    }

    /// How many ticks fall in `(start, end]`, counted up to `limit`: the ticks a scheduler pass handles, fired or
    /// missed (`dueTicks` fires only some of them). A long outage of a fast cron schedule is not walked tick by
    /// tick past `limit`; `@every` is counted by arithmetic.
    package func tickCount(after start: Date, through end: Date, in timeZone: TimeZone, limit: Int = 10_000) -> Int {
        guard start < end else { return 0 }
        if case .every(let interval) = kind {
            // Ticks are the whole seconds that are multiples of `interval`: those up to `end`, less those up to
            // `start`.
            func multiples(through date: Date) -> Int64 {
                let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
                return seconds >= 0 ? seconds / interval : (seconds - interval + 1) / interval
            }
            return Int(min(Int64(limit), max(0, multiples(through: end) - multiples(through: start))))
        }
        var count = 0
        var cursor = start
        while count < limit, let next = nextFire(after: cursor, in: timeZone), next <= end {
            count += 1
            cursor = next
        }
        return count
    }

    /// The newest fire time in `(start, end]`. Cron has no "previous fire time", so look back from `end` over
    /// growing spans: the first span holding a tick holds the newest one.
    package func latestFire(after start: Date, through end: Date, in timeZone: TimeZone) -> Date? {
        guard start < end else { return nil }
        if case .every(let interval) = kind {
            let endSeconds = Int64(end.timeIntervalSince1970.rounded(.down))
            let remainder = ((endSeconds % interval) + interval) % interval
            let tick = Date(timeIntervalSince1970: Double(endSeconds - remainder))
            return tick > start ? tick : nil
        }
        var lookback: TimeInterval = 3600
        while true {
            let from = max(start, end.addingTimeInterval(-lookback))
            if let tick = fireTimes(after: from, through: end, in: timeZone, limit: 1).last { return tick }
            if from == start { return nil }
            lookback *= 8
        }
    }
}
