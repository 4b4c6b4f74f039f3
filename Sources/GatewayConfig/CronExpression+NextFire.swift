package import Foundation

extension CronExpression {
    /// How far ahead `nextFire` looks before deciding an expression never fires (`0 0 30 2 *`): long enough
    /// for every real pattern (Feb 29 on a Monday recurs within 28 years).
    static let searchYears: Int64 = 60

    /// The first fire time strictly after `instant`, or nil when there is none within `searchYears`.
    ///
    /// Fire times are whole seconds. `@every N` fires on the multiples of N seconds since the Unix epoch, so
    /// every gateway instance computes the same ticks whatever its start time or time zone. Field
    /// expressions match the wall clock of `timeZone` (an IANA zone; Foundation's tz database).
    ///
    /// Daylight saving, the rule of Vixie cron and cronie (`cron(8)`, "Daylight Saving Time"), which is what
    /// cron users expect:
    /// - **Fixed-time** expressions (no `*` at the start of the second, minute or hour field, e.g. `30 2 * * *`,
    ///   `@daily`): a local time skipped by a spring-forward change fires once, at the first instant after the
    ///   gap (02:30 → 03:00 the new time); a local time repeated by a fall-back change fires only the first time.
    /// - **Wildcard** expressions (`*/15 * * * *`, `0 * * * *`, `@hourly`): they follow real time; skipped
    ///   local times do not fire (the next matching time that exists does), and repeated local times fire
    ///   each time they occur.
    ///
    /// Either way a tick never fires twice at one instant, and no day loses a fixed-time tick.
    package func nextFire(after instant: Date, in timeZone: TimeZone) -> Date? {
        let after = Int64(instant.timeIntervalSince1970.rounded(.down))
        switch kind {
        case .every(let seconds):
            return Date(timeIntervalSince1970: Double(after.floorDiv(seconds) * seconds + seconds))
        case .fields(let fields):
            return nextFire(after: after, fields: fields, timeZone: timeZone).map {
                Date(timeIntervalSince1970: Double($0))
            }
        }
    }

    /// The fire times in `(start, end]`, oldest first, at most `limit` of them (the latest ones when more are
    /// due: catch-up keeps the most recent ticks).
    package func fireTimes(after start: Date, through end: Date, in timeZone: TimeZone, limit: Int) -> [Date] {
        var times: [Date] = []
        var cursor = start
        if case .every(let interval) = kind {
            // Only the latest `limit` ticks are kept: start just before them.
            let skip = end.addingTimeInterval(-Double(interval) * Double(limit + 1))
            cursor = max(start, skip)
        }
        while let next = nextFire(after: cursor, in: timeZone), next <= end {
            times.append(next)
            if times.count > limit { times.removeFirst() }
            cursor = next
        }
        return times
    }

    /// The time line is cut into segments of constant UTC offset at the zone's transitions; within one the
    /// wall clock is the instant plus the offset, so matching is plain calendar arithmetic.
    private func nextFire(after: Int64, fields: Fields, timeZone: TimeZone) -> Int64? {
        let limit = after + Self.searchYears * 366 * 86400
        var segment = Segment.containing(after, in: timeZone)
        while segment.start ?? Int64.min <= limit {
            var searchWall = after + Int64(segment.offset)
            if let start = segment.start {
                // Wall times before the segment began belong to the previous segment (or to a gap).
                searchWall = max(searchWall, start + Int64(segment.offset) - 1)
            }
            if let start = segment.start, let previous = segment.previousOffset {
                if segment.offset > previous, isFixedTime, start > after,
                    let skipped = Self.nextWallMatch(after: start + Int64(previous) - 1, fields: fields, limit: limit),
                    skipped < start + Int64(segment.offset)
                {
                    // A fixed time inside the spring-forward gap fires once, when the gap ends.
                    return start
                }
                if segment.offset < previous, isFixedTime {
                    // Local times before `start + previous` already passed once, before the change.
                    searchWall = max(searchWall, start + Int64(previous) - 1)
                }
            }
            guard let wall = Self.nextWallMatch(after: searchWall, fields: fields, limit: limit + 86400) else {
                return nil
            }
            let candidate = wall - Int64(segment.offset)
            guard let end = segment.end else { return candidate }
            if candidate < end { return candidate }
            segment = segment.following(in: timeZone)
        }
        return nil
    }

    /// A stretch of time with one UTC offset.
    private struct Segment {
        /// The transition that began it (nil for the first segment looked at, when it began long before).
        var start: Int64?
        /// The offset before `start`.
        var previousOffset: Int?
        var offset: Int
        /// The next transition, nil when the zone has none (UTC, fixed-offset zones, zones that dropped DST).
        var end: Int64?

        static func containing(_ instant: Int64, in timeZone: TimeZone) -> Segment {
            // Foundation gives the next transition only, so look from two days back: enough to see the change a
            // fall-back repetition comes from (they last hours).
            var start: Int64?
            var probe = date(instant - 2 * 86400)
            while let transition = timeZone.nextDaylightSavingTimeTransition(after: probe),
                seconds(transition) <= instant
            {
                start = seconds(transition)
                probe = transition
            }
            return Segment(
                start: start,
                previousOffset: start.map { timeZone.secondsFromGMT(for: date($0 - 1)) },
                offset: timeZone.secondsFromGMT(for: date(instant)),
                end: timeZone.nextDaylightSavingTimeTransition(after: date(instant)).map(seconds)
            )
        }

        func following(in timeZone: TimeZone) -> Segment {
            let start = end!
            return Segment(
                start: start,
                previousOffset: offset,
                offset: timeZone.secondsFromGMT(for: Self.date(start)),
                end: timeZone.nextDaylightSavingTimeTransition(after: Self.date(start)).map(Self.seconds)
            )
        }

        private static func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: Double(seconds)) }
        private static func seconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970.rounded()) }
    }

    /// The first wall-clock second strictly after `wall` (seconds since 1970 on a UTC calendar) that the fields
    /// match, or nil past `limit`.
    static func nextWallMatch(after wall: Int64, fields: Fields, limit: Int64) -> Int64? {
        var t = wall + 1
        while t <= limit {
            let days = t.floorDiv(86400)
            let secondOfDay = Int(t - days * 86400)
            let (year, month, day) = civilDate(days: days)
            if fields.months & (1 << UInt64(month)) == 0 {
                let (nextYear, nextMonth) = month == 12 ? (year + 1, 1) : (year, month + 1)
                t = Self.days(year: nextYear, month: nextMonth, day: 1) * 86400
                continue
            }
            // 1970-01-01 was a Thursday (4).
            if !fields.matchesDay(dayOfMonth: day, dayOfWeek: Int(((days + 4) % 7 + 7) % 7)) {
                t = (days + 1) * 86400
                continue
            }
            let hour = secondOfDay / 3600
            guard let matchedHour = fields.hours.firstSet(from: hour, through: 23) else {
                t = (days + 1) * 86400
                continue
            }
            if matchedHour != hour {
                t = days * 86400 + Int64(matchedHour) * 3600
                continue
            }
            let minute = secondOfDay / 60 % 60
            guard let matchedMinute = fields.minutes.firstSet(from: minute, through: 59) else {
                t = days * 86400 + Int64(hour + 1) * 3600
                continue
            }
            if matchedMinute != minute {
                t = days * 86400 + Int64(hour) * 3600 + Int64(matchedMinute) * 60
                continue
            }
            let second = secondOfDay % 60
            guard let matchedSecond = fields.seconds.firstSet(from: second, through: 59) else {
                t = days * 86400 + Int64(hour) * 3600 + Int64(minute + 1) * 60
                continue
            }
            return days * 86400 + Int64(hour) * 3600 + Int64(minute) * 60 + Int64(matchedSecond)
        }
        return nil
    }

    /// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → proleptic Gregorian date.
    static func civilDate(days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Howard Hinnant's `days_from_civil`.
    static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

extension CronExpression.Fields {
    /// crontab(5): "If both fields are restricted (i.e., do not start with *), the command will be run when
    /// either field matches the current time"; otherwise both must match.
    func matchesDay(dayOfMonth: Int, dayOfWeek: Int) -> Bool {
        let dom = daysOfMonth & (1 << UInt64(dayOfMonth)) != 0
        let dow = daysOfWeek & (1 << UInt64(dayOfWeek)) != 0
        return dayFieldStarred ? dom && dow : dom || dow
    }
}

extension UInt64 {
    /// The lowest set bit in `from...through`.
    fileprivate func firstSet(from low: Int, through high: Int) -> Int? {
        guard low <= high else { return nil }
        let masked = self >> UInt64(low)
        guard masked != 0 else { return nil }
        let bit = low + masked.trailingZeroBitCount
        return bit <= high ? bit : nil
    }
}

extension Int64 {
    fileprivate func floorDiv(_ divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }
}
