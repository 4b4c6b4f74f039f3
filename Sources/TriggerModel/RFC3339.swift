/// RFC 3339 timestamps (§5.6 `date-time`, UTC, `Z`) with milliseconds, as operations, schedules and the
/// Abacus surface show them: `2024-05-01T12:34:56.789Z`.
///
/// Ours rather than Foundation's `Date.ISO8601FormatStyle(includingFractionalSeconds: true)`, for correctness,
/// not speed (bench/README.md "Our code or a library", rows "RFC 3339 format": Foundation formats in about half
/// our time): Foundation formats a `Date`, a binary `Double` of seconds, and truncates its fraction, so about
/// half of all whole-millisecond instants come out one millisecond early (1531627155827 ms is written
/// `…15.826Z`) and a stored `createTime` would not read back as itself; and it switches to the Julian calendar
/// before 1582 (year 1 comes out two days off).
package enum RFC3339 {
    /// `milliseconds` since 1970-01-01T00:00:00Z in the proleptic Gregorian calendar (RFC 3339 §5.6 asks for
    /// four-digit years: 0000–9999 are exact; other years are written with as many digits as they need).
    package static func format(milliseconds: Int64) -> String {
        let ms = Int((milliseconds % 1000 + 1000) % 1000)
        let totalSeconds = (milliseconds - Int64(ms)) / 1000
        var days = Int(floorDivision(totalSeconds, 86400))
        let secondOfDay = Int(totalSeconds - Int64(days) * 86400)
        // Howard Hinnant's civil_from_days (https://howardhinnant.github.io/date_algorithms.html).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(ms, 3))Z"
    }

    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> Int64 {
        let q = value / divisor
        return (value % divisor != 0 && (value < 0) != (divisor < 0)) ? q - 1 : q
    }
}
