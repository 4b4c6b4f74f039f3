/// A parsed cron expression: when a schedule fires (`schedules[i].cron`).
///
/// Why our own parser: neither the package mirror (see `env`'s machine notes) nor Debian ships a Swift
/// cron library, and the grammar is small. It follows Vixie cron / cronie (`crontab(5)`), the dialect
/// Kubernetes CronJobs and most operators know, with the two common extensions of robfig/cron (Temporal,
/// many Go schedulers):
///
/// - 5 fields `minute hour day-of-month month day-of-week`, or 6 with a leading `second` field;
/// - each field a comma list of `*`, `N`, `A-B`, `*/S`, `A-B/S` or `A/S` (A to the field's maximum, step S);
///   `?` is `*` in the two day fields (Quartz habit);
/// - month names `JAN`…`DEC` and day names `SUN`…`SAT` (any case), day-of-week 0–7 with 0 and 7 both Sunday;
/// - day-of-month and day-of-week combine as in Vixie cron: when either field starts with `*` (or `?`) a
///   day must match both, otherwise either (`0 0 1,15 * MON` runs on the 1st, the 15th and every Monday);
/// - macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`;
/// - `@every <duration>` (`@every 1s`, `@every 1m30s`; whole seconds, at least 1 s).
///
/// The field ranges are those of `crontab(5)`: second and minute 0–59, hour 0–23, day-of-month 1–31, month
/// 1–12, day-of-week 0–7. Errors name the field and the offending text.
package struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// What to match, per wall-clock field: bit `n` set = value `n` matches.
    struct Fields: Sendable, Equatable {
        var seconds: UInt64
        var minutes: UInt64
        var hours: UInt64
        /// Bits 1…31.
        var daysOfMonth: UInt64
        /// Bits 1…12.
        var months: UInt64
        /// Bits 0…6, Sunday = 0.
        var daysOfWeek: UInt64
        /// The day-of-month or day-of-week field starts with `*` or `?` (Vixie's DOM_STAR / DOW_STAR): days must
        /// then match both fields, otherwise either.
        var dayFieldStarred: Bool
    }

    enum Kind: Sendable, Equatable {
        case fields(Fields)
        /// Fires every `seconds`, on the multiples of it since 1970-01-01T00:00:00Z.
        case every(seconds: Int64)
    }

    /// The text as written.
    package let text: String
    let kind: Kind
    /// Vixie cron's "fixed-time" job: neither the second (when given), minute nor hour field starts with `*`.
    /// Decides the daylight-saving rule (see `nextFire(after:in:)`).
    package let isFixedTime: Bool

    package var description: String { text }

    /// Parses `text`; throws `CronExpression.ParseError` saying what is wrong and where.
    package init(parsing text: String) throws(ParseError) {
        self.text = text
        let trimmed = text.trimmingWhitespace()
        if trimmed.hasPrefix("@") {
            let words = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let macro = words[0].lowercased()
            if macro == "@every" {
                guard words.count == 2 else {
                    throw ParseError("@every takes one duration, such as \"@every 30s\" or \"@every 1m30s\"")
                }
                kind = .every(seconds: try Self.parseEvery(String(words[1])))
                isFixedTime = false
                return
            }
            guard words.count == 1 else { throw ParseError("\(words[0]) takes no arguments") }
            guard let expansion = Self.macros[macro] else {
                if macro == "@reboot" { throw ParseError("@reboot is not supported: the gateway has no boot event") }
                let known = Self.macros.keys.sorted().joined(separator: ", ")
                throw ParseError("unknown macro \(words[0]); expected one of \(known), or @every <duration>")
            }
            let parsed = try Self.parseFields(expansion)
            kind = .fields(parsed.fields)
            isFixedTime = parsed.fixedTime
            return
        }
        let parsed = try Self.parseFields(trimmed)
        kind = .fields(parsed.fields)
        isFixedTime = parsed.fixedTime
    }

    /// Why an expression was refused; `description` is the reason alone (the config loader adds the path).
    package struct ParseError: Error, Equatable, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }

    static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// One field's range and names, for parsing and messages.
    private struct FieldSpec {
        var name: String
        var low: Int
        var high: Int
        var names: [String: Int] = [:]
    }

    private static let monthNames = [
        "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
        "nov": 11, "dec": 12,
    ]
    private static let dayNames = ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]

    private static let second = FieldSpec(name: "second", low: 0, high: 59)
    private static let minute = FieldSpec(name: "minute", low: 0, high: 59)
    private static let hour = FieldSpec(name: "hour", low: 0, high: 23)
    private static let dayOfMonth = FieldSpec(name: "day-of-month", low: 1, high: 31)
    private static let month = FieldSpec(name: "month", low: 1, high: 12, names: monthNames)
    private static let dayOfWeek = FieldSpec(name: "day-of-week", low: 0, high: 7, names: dayNames)

    private static func parseFields(_ text: String) throws(ParseError) -> (fields: Fields, fixedTime: Bool) {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let withSeconds: Bool
        switch parts.count {
        case 5: withSeconds = false
        case 6: withSeconds = true
        default:
            throw ParseError(
                "expected 5 fields (minute hour day-of-month month day-of-week), 6 with a leading second field, "
                    + "a macro such as @daily, or @every <duration>; "
                    + "got \(parts.count) field\(parts.count == 1 ? "" : "s")"
            )
        }
        let offset = withSeconds ? 1 : 0
        let seconds = withSeconds ? try parseField(parts[0], second) : 1
        let minutes = try parseField(parts[offset], minute)
        let hours = try parseField(parts[offset + 1], hour)
        let domText = parts[offset + 2]
        let dowText = parts[offset + 4]
        let doms = try parseField(domText, dayOfMonth, allowsQuestionMark: true)
        let months = try parseField(parts[offset + 3], month)
        var dows = try parseField(dowText, dayOfWeek, allowsQuestionMark: true)
        // 7 is Sunday too (crontab(5)).
        if dows & (1 << 7) != 0 { dows = (dows & ~(1 << 7)) | 1 }
        func starred(_ field: String) -> Bool { field.hasPrefix("*") || field.hasPrefix("?") }
        let fields = Fields(
            seconds: seconds,
            minutes: minutes,
            hours: hours,
            daysOfMonth: doms,
            months: months,
            daysOfWeek: dows,
            dayFieldStarred: starred(domText) || starred(dowText)
        )
        let timeFields = (withSeconds ? [parts[0]] : []) + [parts[offset], parts[offset + 1]]
        return (fields, !timeFields.contains { $0.hasPrefix("*") })
    }

    /// A comma list of items; returns the bit set of matching values.
    private static func parseField(
        _ text: String,
        _ spec: FieldSpec,
        allowsQuestionMark: Bool = false
    ) throws(ParseError) -> UInt64 {
        var bits: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw ParseError("\(spec.name) field \"\(text)\": empty list item") }
            bits |= try parseItem(String(item), spec, allowsQuestionMark: allowsQuestionMark, field: text)
        }
        return bits
    }

    private static func parseItem(
        _ item: String,
        _ spec: FieldSpec,
        allowsQuestionMark: Bool,
        field: String
    ) throws(ParseError) -> UInt64 {
        func fail(_ reason: String) -> ParseError {
            ParseError("\(spec.name) field \"\(field)\": \(reason)")
        }
        let stepParts = item.split(separator: "/", omittingEmptySubsequences: false)
        guard stepParts.count <= 2 else { throw fail("more than one \"/\" in \"\(item)\"") }
        var step = 1
        if stepParts.count == 2 {
            guard let parsed = Int(stepParts[1]), parsed > 0 else {
                throw fail("step \"\(stepParts[1])\" is not a positive number")
            }
            step = parsed
        }
        let base = String(stepParts[0])
        var low: Int
        var high: Int
        if base == "*" || (base == "?" && allowsQuestionMark) {
            guard base == "*" || stepParts.count == 1 else { throw fail("\"?\" takes no step") }
            (low, high) = (spec.low, spec.high)
        } else if base == "?" {
            throw fail("\"?\" is only allowed in the day-of-month and day-of-week fields")
        } else {
            let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2 else { throw fail("\"\(base)\" is not a value or a range A-B") }
            low = try value(String(bounds[0]), spec, fail)
            if bounds.count == 2 {
                high = try value(String(bounds[1]), spec, fail)
                guard low <= high else { throw fail("range \(base) runs backwards (\(low) > \(high))") }
            } else {
                // `A/S` runs from A to the field's maximum (cronie, robfig/cron).
                high = stepParts.count == 2 ? spec.high : low
            }
        }
        var bits: UInt64 = 0
        for value in stride(from: low, through: high, by: step) { bits |= 1 << UInt64(value) }
        return bits
    }

    private static func value(
        _ text: String,
        _ spec: FieldSpec,
        _ fail: (String) -> ParseError
    ) throws(ParseError) -> Int {
        if let number = Int(text), text.allSatisfy(\.isASCIIDigitCharacter) {
            guard number >= spec.low, number <= spec.high else {
                throw fail("\(number) is out of range \(spec.low)-\(spec.high)")
            }
            return number
        }
        if let named = spec.names[text.lowercased()] { return named }
        if spec.names.isEmpty { throw fail("\"\(text)\" is not a number") }
        let examples = spec.names.sorted { $0.value < $1.value }.prefix(3).map { $0.key.uppercased() }
        throw fail("\"\(text)\" is not a number or a name (\(examples.joined(separator: ", ")), …)")
    }

    /// `@every` durations: the config's duration grammar (`ConfigUnits.parseDuration`), in whole seconds.
    private static func parseEvery(_ text: String) throws(ParseError) -> Int64 {
        guard let duration = ConfigUnits.parseDuration(text) else {
            throw ParseError("@every \(text): not a duration (expected e.g. 30s, 5m, 1h30m)")
        }
        let (seconds, attoseconds) = duration.components
        guard attoseconds == 0 else { throw ParseError("@every \(text): must be a whole number of seconds") }
        guard seconds >= 1 else { throw ParseError("@every \(text): must be at least 1s") }
        return seconds
    }
}

extension Character {
    fileprivate var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
