import Foundation
import GatewayConfig
import Testing

/// The cron grammar (one test per feature) and its fire times: a table of expressions and their next fire
/// times, month ends, leap years, and daylight saving in real IANA zones.
@Suite("Cron expressions")
struct CronExpressionTests {
    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text)!
    }

    static func format(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }

    /// The next `count` fire times after `after`, as UTC RFC 3339 strings.
    static func next(_ expression: String, after: String, zone: String = "UTC", count: Int = 3) throws -> [String] {
        let cron = try CronExpression(parsing: expression)
        let timeZone = try #require(TimeZone(identifier: zone))
        var times: [String] = []
        var cursor = date(after)
        while times.count < count, let time = cron.nextFire(after: cursor, in: timeZone) {
            times.append(format(time))
            cursor = time
        }
        return times
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var feature: String
        var expression: String
        var after: String
        var expected: [String]
        var testDescription: String { "\(feature): \(expression)" }
    }

    // 2026-01-01 is a Thursday.
    static let grammar: [Case] = [
        Case(
            feature: "step over *", expression: "*/15 * * * *", after: "2026-01-01T00:07:00Z",
            expected: ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z"]),
        Case(
            feature: "range", expression: "0 9-11 * * *", after: "2026-01-01T10:30:00Z",
            expected: ["2026-01-01T11:00:00Z", "2026-01-02T09:00:00Z", "2026-01-02T10:00:00Z"]),
        Case(
            feature: "list", expression: "0 0 1,15 * *", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-15T00:00:00Z"]),
        Case(
            feature: "range with step", expression: "10-30/10 * * * *", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z", "2026-01-01T00:30:00Z"]),
        Case(
            feature: "start with step (A/S)", expression: "5/20 * * * *", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z"]),
        Case(
            feature: "month names, any case", expression: "0 0 1 JAN,jul *", after: "2026-01-01T00:00:00Z",
            expected: ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"]),
        Case(
            feature: "day names in a range", expression: "0 12 * * MON-FRI", after: "2026-01-02T12:00:00Z",
            expected: ["2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z", "2026-01-07T12:00:00Z"]),
        Case(
            feature: "day-of-week 7 is Sunday", expression: "0 0 * * 7", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-18T00:00:00Z"]),
        Case(
            feature: "both day fields restricted: either matches", expression: "0 0 13 * FRI",
            after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"]),
        Case(
            feature: "a day field starting with *: both must match", expression: "0 0 */2 * MON",
            after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z"]),
        Case(
            feature: "? in a day field", expression: "0 0 ? * MON", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z", "2026-01-19T00:00:00Z"]),
        Case(
            feature: "leading seconds field", expression: "*/20 * * * * *", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]),
        Case(
            feature: "fixed seconds", expression: "30 0 12 * * *", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z", "2026-01-03T12:00:30Z"]),
        Case(
            feature: "@hourly", expression: "@hourly", after: "2026-01-01T00:30:00Z",
            expected: ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"]),
        Case(
            feature: "@daily", expression: "@daily", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]),
        Case(
            feature: "@midnight", expression: "@midnight", after: "2026-01-01T23:59:59Z",
            expected: ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]),
        Case(
            feature: "@weekly (Sundays)", expression: "@weekly", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-18T00:00:00Z"]),
        Case(
            feature: "@monthly", expression: "@monthly", after: "2026-01-01T00:00:00Z",
            expected: ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"]),
        Case(
            feature: "@yearly", expression: "@yearly", after: "2026-01-01T00:00:00Z",
            expected: ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"]),
        Case(
            feature: "@annually", expression: "@ANNUALLY", after: "2026-06-01T00:00:00Z",
            expected: ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"]),
        Case(
            feature: "@every, anchored on the epoch", expression: "@every 90s", after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z", "2026-01-01T00:04:30Z"]),
        Case(
            feature: "@every with a compound duration", expression: "@every 1m30s", after: "2026-01-01T00:00:10Z",
            expected: ["2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z", "2026-01-01T00:04:30Z"]),
        Case(
            feature: "31st: months without one are skipped", expression: "0 0 31 * *", after: "2026-01-31T00:00:00Z",
            expected: ["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"]),
        Case(
            feature: "Feb 29: leap years only", expression: "0 0 29 2 *", after: "2026-01-01T00:00:00Z",
            expected: ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]),
        Case(
            feature: "Feb 29 across a century that is not leap", expression: "0 0 29 2 *",
            after: "2096-03-01T00:00:00Z",
            expected: ["2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z", "2112-02-29T00:00:00Z"]),
        Case(
            feature: "year end", expression: "59 23 31 12 *", after: "2026-06-01T00:00:00Z",
            expected: ["2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z", "2028-12-31T23:59:00Z"]),
        Case(
            feature: "whitespace around and tabs between fields", expression: "  0\t0 * * *  ",
            after: "2026-01-01T00:00:00Z",
            expected: ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]),
    ]

    @Test("grammar features and their next fire times", arguments: grammar)
    func grammarTable(_ c: Case) throws {
        #expect(try Self.next(c.expression, after: c.after) == c.expected)
    }

    @Test("fire times are strictly after the given instant, also from a fractional second")
    func strictlyAfter() throws {
        let cron = try CronExpression(parsing: "@every 1s")
        let utc = TimeZone(identifier: "UTC")!
        let t = Self.date("2026-01-01T00:00:10Z")
        #expect(cron.nextFire(after: t, in: utc) == t.addingTimeInterval(1))
        #expect(cron.nextFire(after: t.addingTimeInterval(0.5), in: utc) == t.addingTimeInterval(1))
        let minutely = try CronExpression(parsing: "* * * * *")
        #expect(minutely.nextFire(after: t, in: utc) == Self.date("2026-01-01T00:01:00Z"))
    }

    @Test("an expression that never matches has no next fire time")
    func neverFires() throws {
        let cron = try CronExpression(parsing: "0 0 30 2 *")
        #expect(cron.nextFire(after: Self.date("2026-01-01T00:00:00Z"), in: TimeZone(identifier: "UTC")!) == nil)
    }

    @Test("a zone with a half-hour offset and no DST")
    func halfHourOffset() throws {
        #expect(
            try Self.next("0 9 * * *", after: "2026-01-01T00:00:00Z", zone: "Asia/Kolkata", count: 2)
                == ["2026-01-01T03:30:00Z", "2026-01-02T03:30:00Z"]
        )
    }

    // MARK: Daylight saving (the rule in `CronExpression.nextFire(after:in:)`)

    // America/New_York 2026: 2026-03-08 02:00 EST → 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT → 01:00 EST (06:00Z).
    // Europe/Berlin 2026: 2026-03-29 02:00 CET → 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST → 02:00 CET (01:00Z).
    static let daylightSaving: [Case] = [
        Case(
            feature: "spring forward, fixed time in the gap fires once when the gap ends (New York)",
            expression: "30 2 * * *", after: "2026-03-07T12:00:00Z",
            expected: ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]),
        Case(
            feature: "spring forward, a gap time and the gap's end time fire once together",
            expression: "0 2,3 * * *", after: "2026-03-08T05:00:00Z",
            expected: ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T07:00:00Z"]),
        Case(
            feature: "spring forward, wildcard hour skips the missing local time",
            expression: "30 * * * *", after: "2026-03-08T05:00:00Z",
            expected: ["2026-03-08T05:30:00Z", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"]),
        Case(
            feature: "spring forward, hourly stays one real hour apart",
            expression: "@hourly", after: "2026-03-08T05:30:00Z",
            expected: ["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]),
        Case(
            feature: "fall back, fixed time in the repeated hour fires only the first time (New York)",
            expression: "30 1 * * *", after: "2026-10-31T12:00:00Z",
            expected: ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]),
        Case(
            feature: "fall back, hourly fires in both occurrences of the repeated hour",
            expression: "0 * * * *", after: "2026-11-01T04:30:00Z",
            expected: ["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"]),
        Case(
            feature: "fall back, wildcard minutes in a fixed hour follow real time",
            expression: "*/30 1 * * *", after: "2026-11-01T04:30:00Z",
            expected: ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z"]),
    ]

    @Test("daylight saving in America/New_York", arguments: daylightSaving)
    func newYork(_ c: Case) throws {
        #expect(try Self.next(c.expression, after: c.after, zone: "America/New_York") == c.expected)
    }

    @Test("daylight saving in Europe/Berlin: the gap fires at 03:00 CEST, the repeated 02:30 once")
    func berlin() throws {
        #expect(
            try Self.next("30 2 * * *", after: "2026-03-28T12:00:00Z", zone: "Europe/Berlin")
                == ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]
        )
        #expect(
            try Self.next("30 2 * * *", after: "2026-10-24T12:00:00Z", zone: "Europe/Berlin")
                == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"]
        )
    }

    @Test("the fixed-time rule follows Vixie cron: no * at the start of the second, minute or hour field")
    func fixedTime() throws {
        #expect(try CronExpression(parsing: "30 2 * * *").isFixedTime)
        #expect(try CronExpression(parsing: "@daily").isFixedTime)
        #expect(try CronExpression(parsing: "0 30 2 * * *").isFixedTime)
        #expect(try !CronExpression(parsing: "*/5 30 2 * * *").isFixedTime)
        #expect(try !CronExpression(parsing: "@hourly").isFixedTime)
        #expect(try !CronExpression(parsing: "*/15 2 * * *").isFixedTime)
        #expect(try !CronExpression(parsing: "@every 1h").isFixedTime)
    }

    // MARK: Errors

    static let errors: [(String, String)] = [
        ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), 6 with a leading second field"),
        ("* * * * * * *", "got 7 fields"),
        ("60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
        ("* 24 * * *", "hour field \"24\": 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field \"0\": 0 is out of range 1-31"),
        ("* * * 13 *", "month field \"13\": 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week field \"8\": 8 is out of range 0-7"),
        ("60 * * * * *", "second field \"60\": 60 is out of range 0-59"),
        ("5-2 * * * *", "minute field \"5-2\": range 5-2 runs backwards (5 > 2)"),
        ("*/0 * * * *", "minute field \"*/0\": step \"0\" is not a positive number"),
        ("1-2-3 * * * *", "is not a value or a range A-B"),
        ("*/2/3 * * * *", "more than one \"/\""),
        ("* * * FOO *", "month field \"FOO\": \"FOO\" is not a number or a name (JAN, FEB, MAR, …)"),
        ("x * * * *", "minute field \"x\": \"x\" is not a number"),
        ("? * * * *", "\"?\" is only allowed in the day-of-month and day-of-week fields"),
        ("1,,2 * * * *", "minute field \"1,,2\": empty list item"),
        ("@every", "@every takes one duration"),
        ("@every soon", "@every soon: not a duration"),
        ("@every 999ms", "@every 999ms: must be a whole number of seconds"),
        ("@every 0s", "@every 0s: must be at least 1s"),
        ("@fortnightly", "unknown macro @fortnightly"),
        ("@reboot", "@reboot is not supported"),
        ("@daily 5", "@daily takes no arguments"),
    ]

    @Test("bad expressions are refused with the field and the reason", arguments: errors)
    func refused(_ expression: String, _ reason: String) {
        #expect {
            _ = try CronExpression(parsing: expression)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test("@every: 1s is the shortest interval (edge accepted, just below refused)")
    func everyEdge() throws {
        _ = try CronExpression(parsing: "@every 1s")
        #expect(throws: CronExpression.ParseError.self) { try CronExpression(parsing: "@every 999ms") }
    }

    // MARK: Catch-up

    @Test("without a catch-up window only the latest missed tick fires")
    func latestMissedOnly() throws {
        let cron = try CronExpression(parsing: "@hourly")
        let due = cron.dueTicks(
            after: Self.date("2026-01-01T00:00:00Z"),
            through: Self.date("2026-01-01T05:30:00Z"),
            in: TimeZone(identifier: "UTC")!,
            catchupWindow: nil
        )
        #expect(due.fire.map(Self.format) == ["2026-01-01T05:00:00Z"])
        #expect(due.latest.map(Self.format) == "2026-01-01T05:00:00Z")
        let none = cron.dueTicks(
            after: Self.date("2026-01-01T05:00:00Z"),
            through: Self.date("2026-01-01T05:59:59Z"),
            in: TimeZone(identifier: "UTC")!,
            catchupWindow: nil
        )
        #expect(none.fire.isEmpty && none.latest == nil)
    }

    /// The scheduler counts `tickCount - fire.count` ticks as missed (cluster review 59, M2).
    @Test("tickCount: the ticks in (start, end], a tick at start excluded and at end included; capped at limit")
    func tickCount() throws {
        let utc = TimeZone(identifier: "UTC")!
        let hourly = try CronExpression(parsing: "@hourly")
        let start = Self.date("2026-01-01T00:00:00Z")
        #expect(hourly.tickCount(after: start, through: Self.date("2026-01-01T05:30:00Z"), in: utc) == 5)
        #expect(hourly.tickCount(after: start, through: Self.date("2026-01-01T05:00:00Z"), in: utc) == 5)
        #expect(hourly.tickCount(after: start, through: Self.date("2026-01-01T00:59:59Z"), in: utc) == 0)
        #expect(hourly.tickCount(after: start, through: start, in: utc) == 0)
        #expect(hourly.tickCount(after: start, through: Self.date("2026-01-02T00:00:00Z"), in: utc, limit: 10) == 10)
        let every = try CronExpression(parsing: "@every 10s")
        #expect(every.tickCount(after: start, through: start.addingTimeInterval(55), in: utc) == 5)
        #expect(
            every.tickCount(after: start.addingTimeInterval(10), through: start.addingTimeInterval(50), in: utc) == 4)
        #expect(
            every.tickCount(after: start.addingTimeInterval(9.5), through: start.addingTimeInterval(10.2), in: utc) == 1
        )
        #expect(every.tickCount(after: start, through: start.addingTimeInterval(86_400), in: utc, limit: 100) == 100)
        // What dueTicks fires is among what tickCount counts.
        let due = hourly.dueTicks(after: start, through: Self.date("2026-01-01T05:30:00Z"), in: utc, catchupWindow: nil)
        #expect(due.fire.count == 1)
    }

    @Test("the latest missed tick is found after a long outage")
    func latestAfterLongOutage() throws {
        let cron = try CronExpression(parsing: "0 0 29 2 *")
        let due = cron.dueTicks(
            after: Self.date("2019-01-01T00:00:00Z"),
            through: Self.date("2026-06-01T00:00:00Z"),
            in: TimeZone(identifier: "UTC")!,
            catchupWindow: nil
        )
        #expect(due.fire.map(Self.format) == ["2024-02-29T00:00:00Z"])
    }

    @Test("a catch-up window fires every due tick at most that old (edge included, just past excluded)")
    func catchupWindowEdge() throws {
        let cron = try CronExpression(parsing: "@every 10s")
        let utc = TimeZone(identifier: "UTC")!
        let base = Self.date("2026-01-01T00:00:00Z")
        let now = base.addingTimeInterval(100)
        let thirty = cron.dueTicks(after: base, through: now, in: utc, catchupWindow: .seconds(30))
        #expect(thirty.fire == [70, 80, 90, 100].map { base.addingTimeInterval($0) })
        let justUnder = cron.dueTicks(after: base, through: now, in: utc, catchupWindow: .seconds(29))
        #expect(justUnder.fire == [80, 90, 100].map { base.addingTimeInterval($0) })
        // Handled ticks never fire again, whatever the window.
        let handled = cron.dueTicks(
            after: base.addingTimeInterval(80), through: now, in: utc, catchupWindow: .seconds(60))
        #expect(handled.fire == [90, 100].map { base.addingTimeInterval($0) })
    }

    @Test(
        "one catch-up fires at most maximumCatchupTicks ticks, the latest ones",
        arguments: ["@every 1s", "* * * * * *"]
    )
    func catchupLimit(_ expression: String) throws {
        let cron = try CronExpression(parsing: expression)
        let utc = TimeZone(identifier: "UTC")!
        let base = Self.date("2026-01-01T00:00:00Z")
        let limit = CronExpression.maximumCatchupTicks
        let atLimit = cron.dueTicks(
            after: base, through: base.addingTimeInterval(Double(limit)), in: utc, catchupWindow: .seconds(3600))
        #expect(atLimit.fire.count == limit)
        #expect(atLimit.fire.first == base.addingTimeInterval(1))
        let pastLimit = cron.dueTicks(
            after: base, through: base.addingTimeInterval(Double(limit + 1)), in: utc, catchupWindow: .seconds(3600))
        #expect(pastLimit.fire.count == limit)
        #expect(pastLimit.fire.first == base.addingTimeInterval(2))
        #expect(pastLimit.fire.last == base.addingTimeInterval(Double(limit + 1)))
    }
}
