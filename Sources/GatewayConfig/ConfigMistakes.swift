/// The mistakes found in one configuration file, collected so that a single `check-config`, start or reload
/// reports every independent one (as promtool's and Envoy's validators do) instead of stopping at the first.
///
/// The rule every section and list item follows: a check runs inside `collect`, which records the
/// `ConfigError` it throws and returns nil, and the reading goes on with the next independent check (the next
/// key of the top-level mapping, the next item of a list). A check whose input comes from a check that failed
/// is skipped rather than run on a half-read value (`any(under:)` tells), so one mistake is reported once and
/// not again as its consequences (a pool that failed to read, then every route naming it "unknown pool").
/// Inside one mapping (a section, or one list item) the checks stay sequential: its first mistake ends it,
/// because its later keys are read in the light of the earlier ones (a pool's endpoints by its transport).
///
/// `error()` gives the mistakes as one `ConfigError`: the first in file order, carrying the rest in `further`.
/// A reference type: the reader is passed by value through the parse and every copy records into one list.
package final class ConfigMistakes {
    /// The mistakes in the order they were recorded (the order of the checks, not yet of the file).
    package private(set) var list: [ConfigError] = []

    /// The line each top-level section's value starts on (`tls` → 12), so that a mistake with no line of its
    /// own (a file a key names that does not load, found after the YAML is read) takes its section's place
    /// in file order.
    var sectionLines: [String: Int] = [:]

    /// Whether the file has the top-level key `key` (whatever its value).
    package func hasSection(_ key: String) -> Bool { sectionLines[key] != nil }

    package init() {}

    /// Records `mistake` (the file will be refused).
    package func record(_ mistake: ConfigError) {
        list.append(mistake)
    }

    /// Runs `check`; a `ConfigError` it throws is recorded and nil returned, so the caller goes on with the next
    /// independent check and skips what depended on this one.
    @discardableResult
    package func collect<T>(_ check: () throws(ConfigError) -> T) -> T? {
        do {
            return try check()
        } catch {
            record(error)
            return nil
        }
    }

    /// Whether a mistake was recorded at `path` or inside it: `pools` covers `pools`, `pools[1].name` and
    /// `pools.x`, not `pools_extra`. The empty path covers every mistake.
    package func any(under path: String) -> Bool {
        list.contains { mistake in
            guard mistake.path.hasPrefix(path) else { return false }
            let rest = mistake.path.dropFirst(path.count)
            return path.isEmpty || rest.isEmpty || rest.first == "." || rest.first == "["
        }
    }

    /// The recorded mistakes in file order (by YAML line; one with no line by its top-level section's line, or
    /// after the rest; ties in check order) as one `ConfigError`; nil when there are none.
    package func error() -> ConfigError? {
        func line(_ mistake: ConfigError) -> Int {
            if let line = mistake.line { return line }
            let section = mistake.path.prefix { $0 != "." && $0 != "[" }
            return sectionLines[String(section)] ?? .max
        }
        let ordered = list.enumerated().sorted { a, b in
            (line(a.element), a.offset) < (line(b.element), b.offset)
        }.map(\.element)
        guard var first = ordered.first else { return nil }
        first.further = Array(ordered.dropFirst())
        return first
    }

    /// Throws `error()` when a mistake was recorded.
    package func throwIfAny() throws(ConfigError) {
        if let error = error() { throw error }
    }
}
