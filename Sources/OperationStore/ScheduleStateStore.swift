package import FoundationEssentials

/// What every instance must agree on about a schedule, kept beside its operations: the last tick handled
/// (fired or deliberately skipped), the last run's operation, and a pause or resume made through the API.
///
/// The operations themselves are made exactly once per tick by the idempotency key (`ScheduleRunKey`); this
/// state makes ticks survive restarts (a tick after `lastTick` that was due while every instance was down is
/// caught up on start) and outlive the operations' retention (a tick at or before `lastTick` is never fired
/// again, even once its operation was purged).
package struct ScheduleState: Sendable, Equatable {
    package var name: String
    /// The nominal time of the newest tick handled; ticks at or before it never fire again.
    package var lastTick: Date
    /// The operation of the newest run (a tick or a manual trigger), for overlap and `GET /v1beta/schedules`.
    package var lastOperationID: String?
    /// Set by `:pause` (true) and `:resume` (false); nil follows the configuration's `paused`.
    package var pausedOverride: Bool?

    package init(name: String, lastTick: Date, lastOperationID: String? = nil, pausedOverride: Bool? = nil) {
        self.name = name
        self.lastTick = lastTick
        self.lastOperationID = lastOperationID
        self.pausedOverride = pausedOverride
    }
}

/// The schedule state of a store shared by every instance (the same SQLite file or PostgreSQL database as the
/// operations). Every method commits before it returns; `.unavailable` when the store cannot answer.
package protocol ScheduleStateStore: Sendable {
    /// The state of `name`, creating it with `lastTick = firstTick` when there is none (a schedule seen for the
    /// first time has missed nothing). Concurrent first calls agree: one insert wins, all return its row.
    func scheduleState(name: String, firstTick: Date) async throws -> ScheduleState

    /// Records that `tick` was handled: `lastTick` becomes the later of the two, and `lastOperationID`
    /// becomes `operationID` when one is given and `tick` is not older than the recorded tick. Returns the state
    /// after the change.
    @discardableResult
    func recordScheduleTick(name: String, tick: Date, operationID: String?) async throws -> ScheduleState

    /// Records a manual run (`:trigger`): `lastOperationID` only.
    func recordScheduleRun(name: String, operationID: String) async throws

    /// Sets or clears (`nil`) the API's pause override.
    func setSchedulePaused(name: String, paused: Bool?) async throws
}

/// The idempotency key of a schedule's run: `schedule:<name>@<nominal tick, RFC 3339 UTC>` for a tick (the same
/// on every instance, so the store's unique key makes each tick one operation), with `+manual.<id>` appended
/// for a run started by `:trigger`.
///
/// Clients cannot send keys with this prefix (`AsyncOperations.submit` refuses them), so the key also tells
/// which operations a schedule made, and when their tick was.
package struct ScheduleRunKey: Sendable, Equatable {
    package static let prefix = "schedule:"

    package var schedule: String
    /// Whole seconds.
    package var tick: Date
    /// Set for a manual run.
    package var manualID: String?

    package init(schedule: String, tick: Date, manualID: String? = nil) {
        self.schedule = schedule
        self.tick = Date(timeIntervalSince1970: tick.timeIntervalSince1970.rounded(.down))
        self.manualID = manualID
    }

    package var key: String {
        var text = "\(Self.prefix)\(schedule)@\(Self.format(tick))"
        if let manualID { text += "+manual.\(manualID)" }
        return text
    }

    /// Parses a key made by `key`; nil for any other text.
    package init?(parsing key: String) {
        guard key.hasPrefix(Self.prefix), let at = key.lastIndex(of: "@") else { return nil }
        let name = key[key.index(key.startIndex, offsetBy: Self.prefix.count)..<at]
        var rest = key[key.index(after: at)...]
        var manualID: String?
        if let plus = rest.firstIndex(of: "+") {
            let suffix = rest[rest.index(after: plus)...]
            guard suffix.hasPrefix("manual."), suffix.count > "manual.".count else { return nil }
            manualID = String(suffix.dropFirst("manual.".count))
            rest = rest[..<plus]
        }
        guard !name.isEmpty, let tick = Self.parse(rest) else { return nil }
        self.init(schedule: String(name), tick: tick, manualID: manualID)
    }

    /// `2026-03-08T07:00:00Z` (RFC 3339, UTC, whole seconds).
    package static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }

    /// Only the exact form `format` writes, so a key has one spelling.
    private static func parse(_ text: Substring) -> Date? {
        guard let date = try? Date.ISO8601FormatStyle().parse(String(text)), format(date) == text else { return nil }
        return date
    }
}
