import Foundation
import TriggerModel
import Yams

extension GatewayConfiguration {
    /// Reads `schedules:` (see `ScheduleConfiguration`), each item checked on its own (`ConfigMistakes`; the
    /// ones with a mistake are left out). Run after routes, limits and tokens are read: a schedule must name a
    /// pipeline one of `routes` serves, its batch obeys `maxBatch` (`limits.max_batch`), and its `operators` name
    /// `tokens`; each is nil when its section had a mistake, and then that check is skipped. `authRequired`: a
    /// schedule without `operators` is warned about (no caller may control it).
    static func readSchedules(
        _ node: Node,
        routes: [RouteConfiguration]?,
        maxBatch: Int?,
        tokens: [TokenConfiguration]?,
        authRequired: Bool,
        _ reader: ConfigNodeReader
    ) -> [ScheduleConfiguration] {
        var schedules: [ScheduleConfiguration] = []
        reader.forEachItem(node, at: "schedules") { (i, item) throws(ConfigError) in
            let m = try reader.mapping(
                item,
                at: "schedules[\(i)]",
                allowed: [
                    "name", "cron", "timezone", "route", "inputs", "overlap", "catchup_window", "paused", "operators",
                ]
            )
            guard let nameNode = m["name"] else { throw reader.error(m.path("name"), m.node, "missing (required)") }
            let name = try reader.nonEmptyString(nameNode, at: m.path("name"))
            guard name.utf8.count <= 128, name.utf8.allSatisfy(Self.isScheduleNameByte) else {
                throw reader.error(
                    m.path("name"),
                    nameNode,
                    "schedule names are 1 to 128 letters, digits, \".\", \"_\" and \"-\""
                )
            }
            if let first = schedules.firstIndex(where: { $0.name == name }) {
                throw reader.error(
                    m.path("name"),
                    nameNode,
                    "duplicate schedule name \"\(name)\" (also schedules[\(first)].name)"
                )
            }
            let (cron, timeZone, timeZoneName) = try readCronAndZone(m, cronKey: "cron", reader)
            guard let routeNode = m["route"] else { throw reader.error(m.path("route"), m.node, "missing (required)") }
            let ref = try readScheduleRoute(routeNode, at: m.path("route"), routes: routes, reader)
            var schedule = ScheduleConfiguration(
                name: name,
                cron: cron,
                timeZone: timeZone,
                timeZoneName: timeZoneName,
                ref: ref
            )
            if let n = m["inputs"] {
                let items = try reader.sequence(n, at: m.path("inputs"))
                if let maxBatch, items.count > maxBatch {
                    throw reader.error(
                        m.path("inputs"),
                        n,
                        "\(items.count) inputs exceed limits.max_batch (\(maxBatch))"
                    )
                }
                schedule.inputs = []
                for (j, itemNode) in items.enumerated() {
                    let path = "\(m.path("inputs"))[\(j)]"
                    guard case .object(let variables) = try configValue(itemNode, at: path, reader) else {
                        throw reader.error(path, itemNode, "expected a mapping of input names to values")
                    }
                    schedule.inputs.append(TriggerInput(variables: variables))
                }
            }
            try readScheduleOptions(m, into: &schedule, tokens: tokens, authRequired: authRequired, reader)
            schedules.append(schedule)
        }
        return schedules
    }

    /// The cron expression under `cronKey` (required) and the optional `timezone` of a schedule-like mapping
    /// (`schedules[]`, or a periodic `craft.deployments[]` whose expression is under `schedule`). The error
    /// names the key's path and the reason (`schedules[0].cron: invalid cron expression "61 * * * *": …`).
    static func readCronAndZone(_ m: ConfigMapping, cronKey: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> (cron: CronExpression, timeZone: TimeZone, timeZoneName: String)
    {
        guard let cronNode = m[cronKey] else { throw reader.error(m.path(cronKey), m.node, "missing (required)") }
        let cronText = try reader.nonEmptyString(cronNode, at: m.path(cronKey))
        let cron: CronExpression
        do {
            cron = try CronExpression(parsing: cronText)
        } catch {
            throw reader.error(m.path(cronKey), cronNode, "invalid cron expression \"\(cronText)\": \(error)")
        }
        var timeZone = TimeZone(identifier: "UTC")!
        var timeZoneName = "UTC"
        if let n = m["timezone"] {
            let identifier = try reader.nonEmptyString(n, at: m.path("timezone"))
            guard let zone = Self.ianaTimeZone(identifier) else {
                throw reader.error(
                    m.path("timezone"),
                    n,
                    "unknown time zone \"\(identifier)\"; expected an IANA name such as \"Europe/Paris\" or \"UTC\""
                )
            }
            timeZone = zone
            timeZoneName = identifier
        }
        if cron.nextFire(after: Date(), in: timeZone) == nil {
            throw reader.error(
                m.path(cronKey),
                cronNode,
                "cron expression \"\(cronText)\" never fires (no matching date in the next "
                    + "\(CronExpression.searchYears) years)"
            )
        }
        return (cron, timeZone, timeZoneName)
    }

    /// The optional `overlap`, `catchup_window`, `paused` and `operators` of a schedule-like mapping. Each of
    /// `operators` must name one of `tokens` (not checked when nil: `tokens:` had a mistake), as a deployment's
    /// `tokens` must; without the key, and with `authRequired`, a warning says that no caller may control it.
    static func readScheduleOptions(
        _ m: ConfigMapping,
        into schedule: inout ScheduleConfiguration,
        tokens: [TokenConfiguration]?,
        authRequired: Bool,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) {
        if let n = m["overlap"] {
            schedule.overlap = try reader.choice(n, at: m.path("overlap"), as: ScheduleConfiguration.Overlap.self)
        }
        if let n = m["catchup_window"] {
            schedule.catchupWindow = try reader.duration(
                n,
                at: m.path("catchup_window"),
                minimum: ScheduleConfiguration.minimumCatchupWindow
            )
        }
        if let n = m["paused"] {
            let text = try reader.string(n, at: m.path("paused"))
            switch text {
            case "true": schedule.paused = true
            case "false": schedule.paused = false
            default: throw reader.error(m.path("paused"), n, "expected true or false, got \"\(text)\"")
            }
        }
        if let n = m["operators"] {
            var operators: [String] = []
            for (i, item) in try reader.sequence(n, at: m.path("operators")).enumerated() {
                let path = "\(m.path("operators"))[\(i)]"
                let name = try reader.nonEmptyString(item, at: path)
                if let tokens, !tokens.contains(where: { $0.name == name }) {
                    throw reader.error(path, item, "no token named \"\(name)\" in tokens")
                }
                if !operators.contains(name) { operators.append(name) }
            }
            schedule.operators = operators
        } else if authRequired {
            reader.warn(
                m.path("operators"),
                m.node,
                "absent: with tokens required, no caller may pause, resume or trigger schedule \"\(schedule.name)\" "
                    + "or cancel its runs (403); list the names of the tokens that may"
            )
        }
    }

    /// `route: {namespace, pipeline, release?}`: a concrete pipeline (no `*`) that one of `routes` serves
    /// (not looked up when `routes` is nil: `routes:` had a mistake).
    private static func readScheduleRoute(
        _ node: Node,
        at path: String,
        routes: [RouteConfiguration]?,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) -> PipelineRef {
        let m = try reader.mapping(node, at: path, allowed: ["namespace", "pipeline", "release"])
        func name(_ key: String, required: Bool) throws(ConfigError) -> String? {
            guard let n = m[key] else {
                if required { throw reader.error(m.path(key), m.node, "missing (required)") }
                return nil
            }
            let text = try reader.nonEmptyString(n, at: m.path(key))
            guard text != RouteConfiguration.wildcard,
                text.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "*") })
            else {
                throw reader.error(
                    m.path(key),
                    n,
                    "\"\(text)\" must name one \(key): no \"*\", \"/\", spaces or control characters"
                )
            }
            return text
        }
        let ref = PipelineRef(
            namespace: try name("namespace", required: true)!,
            pipeline: try name("pipeline", required: true)!,
            release: try name("release", required: false)
        )
        if let routes, !isServed(ref, by: routes) {
            throw reader.error(path, node, "no route serves \(ref); add one under routes")
        }
        return ref
    }

    /// Whether one of `routes` serves `ref`: the same matching rule as `RouteTable` (API.md §6), `*` matches
    /// any name, and a route without a release serves every release.
    static func isServed(_ ref: PipelineRef, by routes: [RouteConfiguration]) -> Bool {
        routes.contains { route in
            (route.namespace == RouteConfiguration.wildcard || route.namespace == ref.namespace)
                && (route.pipeline == RouteConfiguration.wildcard || route.pipeline == ref.pipeline)
                && (route.release == nil || route.release == ref.release)
        }
    }

    /// A YAML value as a trigger input value: mappings become objects, lists lists, and scalars take the type
    /// Yams' default resolver (YAML 1.1's rules) gives them: `42` a number, `2.0` a number in the float form,
    /// `true` and `yes` bools, `012` octal, `"42"` a string, `~` null (README, "Schedules"). Not YAML 1.2's core
    /// schema, as the settings' own booleans are (`ConfigNodeReader.bool`): inputs configured before keep
    /// their meaning.
    ///
    /// - Throws: a `ConfigError` at the value's path for a float that is not finite (`.inf`, `.nan`, `1e400`: JSON
    ///   has no such number, and a JSON client's `1e400` is refused too; quote it for a string), a value nested
    ///   deeper than `Value.maximumDepth` (libyaml takes 1000 levels; the store would not read it back), a key that
    ///   is not a plain string or is given twice, or an alias.
    static func configValue(_ node: Node, at path: String, _ reader: ConfigNodeReader, depth: Int = 1)
        throws(ConfigError) -> Value
    {
        switch node {
        case .scalar(let scalar):
            switch node.tag.rawValue {
            case Tag.Name.null.rawValue: return .null
            case Tag.Name.bool.rawValue: return node.bool.map(Value.bool) ?? .string(scalar.string)
            case Tag.Name.int.rawValue:
                // Exact, as the JSON codecs keep integers (a decimal past Int64's range keeps its digits).
                return node.int.map { Value.integer(Int64($0)) } ?? Value.integer(text: scalar.string)
                    ?? .string(scalar.string)
            // A YAML float (`2.0`) is one, as a JSON client's `2.0` is (`NumberForm`); schedule runs are stored, and
            // the store keeps the form (`OperationPayloadCodec.numberForms`), so the runner sees `2.0`.
            case Tag.Name.float.rawValue:
                guard let float = node.float else { return .string(scalar.string) }
                guard float.isFinite else {
                    throw reader.error(path, node, "is not a finite number (quote it for a string)")
                }
                return .number(float, form: .float)
            default: return .string(scalar.string)
            }
        case .sequence(let sequence):
            guard depth <= Value.maximumDepth else { throw nestedTooDeep(path, node, reader) }
            var list: [Value] = []
            for (i, element) in sequence.enumerated() {
                list.append(try configValue(element, at: "\(path)[\(i)]", reader, depth: depth + 1))
            }
            return .list(list)
        case .mapping(let mapping):
            guard depth <= Value.maximumDepth else { throw nestedTooDeep(path, node, reader) }
            var object = ValueObject()
            for (keyNode, value) in mapping {
                guard case .scalar(let key) = keyNode else {
                    throw reader.error(path, keyNode, "keys must be plain strings, got \(reader.describe(keyNode))")
                }
                let keyPath = ConfigMapping.join(path, key.string)
                guard object[key.string] == nil else { throw reader.error(keyPath, keyNode, "duplicate key") }
                object[key.string] = try configValue(value, at: keyPath, reader, depth: depth + 1)
            }
            return .object(object)
        case .alias:
            throw reader.error(path, node, "YAML aliases are not supported here")
        }
    }

    private static func nestedTooDeep(_ path: String, _ node: Node, _ reader: ConfigNodeReader) -> ConfigError {
        reader.error(path, node, "nests lists and mappings deeper than \(Value.maximumDepth) levels")
    }

    /// IANA names only: Foundation also takes abbreviations such as "EST", whose meaning is ambiguous.
    static func ianaTimeZone(_ identifier: String) -> TimeZone? {
        if identifier == "UTC" { return TimeZone(identifier: "UTC") }
        guard TimeZone.knownTimeZoneIdentifiers.contains(identifier) else { return nil }
        return TimeZone(identifier: identifier)
    }

    private static func isScheduleNameByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
            || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }
}
