/// The unit grammars of the config file: durations (`500ms`, `30s`, `1m30s`) and byte sizes (`32MiB`).
///
/// Both parse exactly in integer arithmetic (no `Double` rounding, so `0.1s` is 100 ms, not 99.99…) and
/// reject overflow rather than wrapping. They are `package` so the command line (`--wait 30s`) and the
/// REST layer (`?wait=30s`) can share the grammar.
package enum ConfigUnits {
    /// The longest duration any setting accepts; anything longer is almost surely a unit mistake.
    package static let maxDuration = Duration.seconds(366 * 24 * 3600)

    /// Parses `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"1.5s"`, compounds such as `"1m30s"` (Go's syntax), and a bare
    /// number of seconds (`"30"`, `"0.25"`). Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. Negative values,
    /// empty text and durations over `maxDuration` give nil.
    package static func parseDuration(_ text: String) -> Duration? {
        guard case .nanoseconds(let nanos)? = scanDuration(text) else { return nil }
        let duration = Duration.nanoseconds(nanos)
        return duration <= maxDuration ? duration : nil
    }

    /// ``parseDuration(_:)``'s grammar, with a duration past `maxDuration` (or past what an `Int` of nanoseconds
    /// holds) read as `maxDuration`; nil only for text that is not a duration. For waits the server caps anyway
    /// (`?wait=`, at `store.max_wait`): a long one asks to wait as long as allowed; refusing `99999999999s` as "not
    /// a duration" while `1h` is quietly capped was inconsistent (review 12, finding 9).
    package static func parseDurationCapped(_ text: String) -> Duration? {
        switch scanDuration(text) {
        case nil: nil
        case .tooLong?: maxDuration
        case .nanoseconds(let nanos)?: min(Duration.nanoseconds(nanos), maxDuration)
        }
    }

    private enum ScannedDuration {
        case nanoseconds(Int)
        /// Valid text whose value overflows an `Int` of nanoseconds (292 years).
        case tooLong
    }

    /// The duration grammar; nil when `text` is not in it.
    private static func scanDuration(_ text: String) -> ScannedDuration? {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty else { return nil }
        var index = 0
        var totalNanos = 0
        var overflowed = false
        var sawComponent = false
        while index < utf8.count {
            guard let (scaled, next) = parseDecimal(utf8, from: index) else { return nil }
            index = next
            let unitStart = index
            while index < utf8.count, !isDigit(utf8[index]), utf8[index] != UInt8(ascii: ".") { index += 1 }
            let unit = String(decoding: utf8[unitStart..<index], as: UTF8.self)
            let nanosPerUnit: Int
            switch unit {
            case "" where !sawComponent && index == utf8.count: nanosPerUnit = 1_000_000_000
            case "ns": nanosPerUnit = 1
            case "us", "µs": nanosPerUnit = 1_000
            case "ms": nanosPerUnit = 1_000_000
            case "s": nanosPerUnit = 1_000_000_000
            case "m": nanosPerUnit = 60_000_000_000
            case "h": nanosPerUnit = 3_600_000_000_000
            default: return nil
            }
            sawComponent = true
            guard let nanos = scaled.times(nanosPerUnit) else {
                overflowed = true
                continue
            }
            let (sum, overflow) = totalNanos.addingReportingOverflow(nanos)
            if overflow { overflowed = true }
            totalNanos = sum
        }
        return overflowed ? .tooLong : .nanoseconds(totalNanos)
    }

    /// Parses a byte count: a plain integer, or an integer with a unit. `KiB`/`MiB`/`GiB` (and the
    /// shorthands `K`/`M`/`G`) are powers of 1024; `KB`/`MB`/`GB` are powers of 1000 as their SI names
    /// say; `B` is bytes. Units are case-insensitive and may follow a space. Fractions are refused
    /// because a fractional byte count is always a mistake somewhere.
    package static func parseByteSize(_ text: String) -> Int? {
        let utf8 = Array(text.utf8)
        var index = 0
        var value = 0
        while index < utf8.count, isDigit(utf8[index]) {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(utf8[index] - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
            index += 1
        }
        guard index > 0 else { return nil }
        while index < utf8.count, utf8[index] == UInt8(ascii: " ") { index += 1 }
        let unit = String(decoding: utf8[index...], as: UTF8.self).lowercased()
        let multiplier: Int
        switch unit {
        case "", "b": multiplier = 1
        case "k", "kib": multiplier = 1 << 10
        case "m", "mib": multiplier = 1 << 20
        case "g", "gib": multiplier = 1 << 30
        case "kb": multiplier = 1_000
        case "mb": multiplier = 1_000_000
        case "gb": multiplier = 1_000_000_000
        default: return nil
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// The bytes `text` would be with its SI suffix read as binary (`32MB` → 32 MiB = 33554432); nil when `text`
    /// has no SI suffix (`KB`, `MB`, `GB`, any case) or does not parse. For the notice an SI size gets.
    package static func binaryReading(ofSISize text: String) -> Int? {
        guard let binary = siSuffix(of: text) else { return nil }
        return parseByteSize(String(text.dropLast(2)) + binary)
    }

    /// `text` with its SI suffix spelled as the binary one (`32MB` → `32MiB`); `text` when it has none.
    package static func binarySpelling(ofSISize text: String) -> String {
        guard let binary = siSuffix(of: text) else { return text }
        return String(text.dropLast(2)) + binary
    }

    /// The binary suffix matching `text`'s SI one (`MB` → `MiB`), nil when it has none.
    private static func siSuffix(of text: String) -> String? {
        switch text.suffix(2).lowercased() {
        case "kb": "KiB"
        case "mb": "MiB"
        case "gb": "GiB"
        default: nil
        }
    }

    /// `Duration` in the shortest exact config spelling (`1m30s` → "90s", 500 ms → "500ms"), for messages.
    package static func format(_ duration: Duration) -> String {
        let (seconds, attos) = duration.components
        if attos == 0 { return "\(seconds)s" }
        let nanos = seconds * 1_000_000_000 + attos / 1_000_000_000
        if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
        return "\(nanos)ns"
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// A decimal number `123` or `1.25` read as a fixed-point value, returned with the index after it.
    private static func parseDecimal(_ utf8: [UInt8], from start: Int) -> (FixedPoint, Int)? {
        var index = start
        var integer = 0
        var fraction = 0
        var fractionDigits = 0
        var digits = 0
        var overflowed = false
        while index < utf8.count, isDigit(utf8[index]) {
            let (times10, o1) = integer.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(utf8[index] - UInt8(ascii: "0")))
            // Read on to the end of the number (the text may still not be a duration), then `times` says overflow.
            if o1 || o2 { overflowed = true }
            integer = sum
            index += 1
            digits += 1
        }
        if index < utf8.count, utf8[index] == UInt8(ascii: ".") {
            index += 1
            while index < utf8.count, isDigit(utf8[index]) {
                // Digits past nanosecond precision of the smallest unit cannot matter; drop them.
                if fractionDigits < 9 {
                    fraction = fraction * 10 + Int(utf8[index] - UInt8(ascii: "0"))
                    fractionDigits += 1
                }
                index += 1
                digits += 1
            }
        }
        guard digits > 0 else { return nil }
        return (
            FixedPoint(integer: integer, fraction: fraction, fractionDigits: fractionDigits, overflowed: overflowed),
            index
        )
    }

    private struct FixedPoint {
        var integer: Int
        var fraction: Int
        var fractionDigits: Int
        /// The integer part did not fit an `Int`.
        var overflowed = false

        /// `self × unit`, truncated to an integer, or nil on overflow.
        func times(_ unit: Int) -> Int? {
            if overflowed { return nil }
            let (whole, overflow) = integer.multipliedReportingOverflow(by: unit)
            guard !overflow else { return nil }
            var scale = 1
            for _ in 0..<fractionDigits { scale *= 10 }
            // fraction < 10^9 and unit ≤ 3.6e12 could overflow Int64 when multiplied directly, so split the
            // unit into its quotient and remainder by the scale (each product then stays below 10^18).
            let part = (unit / scale) * fraction + ((unit % scale) * fraction) / scale
            let (sum, o2) = whole.addingReportingOverflow(part)
            return o2 ? nil : sum
        }
    }
}
