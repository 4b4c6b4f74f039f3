import TriggerModel

/// The verbs of `POST /v1beta/schedules/{name}:<verb>` (API.md §4c).
enum ScheduleAction: String, Equatable, CaseIterable {
    case pause
    case resume
    /// Run now.
    case trigger
}

extension RESTPath {
    /// `{name}:<verb>` as sent (still percent-encoded): the verb is matched before decoding, like `:cancel`.
    static func scheduleAction(_ segment: Substring) -> RESTPath? {
        guard let colon = segment.lastIndex(of: ":"),
            let action = ScheduleAction(rawValue: String(segment[segment.index(after: colon)...])),
            let name = PercentDecoding.decodeStrictly(segment[..<colon].utf8), !name.isEmpty
        else { return nil }
        return .scheduleAction(name: name, action)
    }
}
