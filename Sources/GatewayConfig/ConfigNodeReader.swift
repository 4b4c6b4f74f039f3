import Yams

/// Reads typed values out of a composed YAML tree while tracking the key path, so that every error names
/// the exact place (`pools[1].endpoints[0]`) and the line it is on.
///
/// Working on Yams' `Node` tree rather than `Decodable` is deliberate: the decoder's errors name coding
/// keys, not YAML paths, it cannot report unknown keys, and it would turn `token: 0123` into the number 83.
struct ConfigNodeReader {
    let source: String
    /// The warnings met while reading (``GatewayConfiguration/warnings``), in file order.
    let warnings = Warnings()
    /// The mistakes met while reading, shared by every copy of this reader (see `ConfigMistakes` for the rule).
    let mistakes: ConfigMistakes

    init(source: String, mistakes: ConfigMistakes = ConfigMistakes()) {
        self.source = source
        self.mistakes = mistakes
    }

    /// Shared by the copies of one reader (it is passed by value through the parse).
    final class Warnings {
        var list: [ConfigError] = []
    }

    func error(_ path: String, _ node: Node?, _ message: String) -> ConfigError {
        ConfigError(source: source, path: path, message: message, line: node?.mark?.line)
    }

    /// Records a warning at `path` (the file still loads).
    func warn(_ path: String, _ node: Node?, _ message: String) {
        warnings.list.append(error(path, node, message))
    }

    /// A mapping's entries, after refusing keys outside `allowed` (typos are errors, never ignored).
    /// A null node (`limits:` with nothing after it) reads as an empty mapping.
    ///
    /// `recordingKeyMistakes: false` (a section or a list item): the first unknown or duplicate key is thrown,
    /// since the mapping's other keys are read in the light of it. `true` (the top-level mapping, whose keys are
    /// independent sections): each such key is recorded in `mistakes` and left out, and the rest is returned.
    func mapping(_ node: Node, at path: String, allowed: [String], recordingKeyMistakes: Bool = false)
        throws(ConfigError) -> ConfigMapping
    {
        if isNull(node) { return ConfigMapping(path: path, node: node, entries: []) }
        guard case .mapping(let mapping) = node else {
            throw error(path, node, "expected a mapping, got \(describe(node))")
        }
        var entries: [(key: String, value: Node)] = []
        for (keyNode, value) in mapping {
            let mistake: ConfigError
            guard case .scalar(let scalar) = keyNode else {
                let mistake = error(path, keyNode, "keys must be plain strings, got \(describe(keyNode))")
                guard recordingKeyMistakes else { throw mistake }
                mistakes.record(mistake)
                continue
            }
            let key = scalar.string
            let keyPath = ConfigMapping.join(path, key)
            if !allowed.contains(key) {
                var message = "unknown key"
                if let guess = Self.closest(to: key, in: allowed) { message += " (did you mean \"\(guess)\"?)" }
                message += "; expected one of: " + allowed.joined(separator: ", ")
                mistake = error(keyPath, keyNode, message)
            } else if entries.contains(where: { $0.key == key }) {
                // Yams already refuses duplicate keys; this guards the merge-key (`<<`) case it lets through.
                mistake = error(keyPath, keyNode, "duplicate key")
            } else {
                entries.append((key, value))
                continue
            }
            guard recordingKeyMistakes else { throw mistake }
            mistakes.record(mistake)
        }
        return ConfigMapping(path: path, node: node, entries: entries)
    }

    /// Runs `check` on each element of the list at `path`, in order: a mistake in one element is recorded and
    /// the next is checked all the same (`ConfigMistakes`). A node that is not a list is one mistake.
    func forEachItem(_ node: Node, at path: String, _ check: (Int, Node) throws(ConfigError) -> Void) {
        guard let items = mistakes.collect({ () throws(ConfigError) in try sequence(node, at: path) }) else { return }
        for (i, item) in items.enumerated() {
            mistakes.collect { () throws(ConfigError) in try check(i, item) }
        }
    }

    /// A list's elements; a null node reads as an empty list.
    func sequence(_ node: Node, at path: String) throws(ConfigError) -> [Node] {
        if isNull(node) { return [] }
        guard case .sequence(let sequence) = node else {
            throw error(path, node, "expected a list, got \(describe(node))")
        }
        return Array(sequence)
    }

    /// A scalar's text as written (so `0123` stays `"0123"`). Null and collections are refused.
    func string(_ node: Node, at path: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            throw error(path, node, "expected a string, got \(describe(node))")
        }
        return scalar.string
    }

    /// `true` or `false` (YAML 1.2 core schema; `yes`/`no` are strings there, so refused rather than guessed).
    func bool(_ node: Node, at path: String) throws(ConfigError) -> Bool {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            throw error(path, node, "expected true or false, got \(describe(node))")
        }
        switch scalar.string {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw error(path, node, "expected true or false, got \"\(scalar.string)\"")
        }
    }

    /// A non-empty string.
    func nonEmptyString(_ node: Node, at path: String) throws(ConfigError) -> String {
        let text = try string(node, at: path)
        guard !text.isEmpty else { throw error(path, node, "must not be empty") }
        return text
    }

    /// An integer inside `range`.
    func int(_ node: Node, at path: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        // A quoted "32" is accepted too: people quote numbers in YAML out of habit.
        guard case .scalar(let scalar) = node,
            let value = node.tag.rawValue == Tag.Name.int.rawValue ? node.int : Int(scalar.string)
        else {
            throw error(path, node, "expected an integer, got \(describe(node))")
        }
        guard range.contains(value) else { throw error(path, node, "\(value) is out of range \(range)") }
        return value
    }

    /// A byte count (`33554432`, `"32MiB"`, `"512KiB"`) inside `range`.
    func byteSize(_ node: Node, at path: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let value: Int
        if node.tag.rawValue == Tag.Name.int.rawValue, let int = node.int {
            value = int
        } else if case .scalar(let scalar) = node, !isNull(node), let parsed = ConfigUnits.parseByteSize(scalar.string)
        {
            value = parsed
            if let binary = ConfigUnits.binaryReading(ofSISize: scalar.string), binary != parsed {
                // Valid and exact, but the limits this guards (the SDKs' 32 MiB message) are binary: say it.
                warn(
                    path, node,
                    "\(scalar.string) is \(parsed) bytes (an SI suffix: powers of 1000); "
                        + "the binary \(ConfigUnits.binarySpelling(ofSISize: scalar.string)) would be \(binary)")
            }
        } else {
            throw error(path, node, "expected a size such as 1048576, \"512KiB\" or \"32MiB\", got \(describe(node))")
        }
        guard range.contains(value) else {
            throw error(path, node, "\(value) bytes is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// A duration (`"500ms"`, `"30s"`, `"2m"`, `"1h"`, or a number of seconds); at least `minimum`.
    func duration(_ node: Node, at path: String, minimum: Duration) throws(ConfigError) -> Duration {
        let parsed: Duration?
        switch node {
        case .scalar(let scalar) where !isNull(node):
            parsed = ConfigUnits.parseDuration(scalar.string)
        default:
            parsed = nil
        }
        guard let value = parsed else {
            throw error(
                path,
                node,
                "expected a duration such as \"500ms\", \"30s\", \"2m\", \"1h\" or a number of seconds, "
                    + "got \(describe(node))"
            )
        }
        guard value >= minimum else {
            let bound = minimum == .zero ? "must not be negative" : "must be at least \(ConfigUnits.format(minimum))"
            throw error(path, node, "\(ConfigUnits.format(value)) is too short: \(bound)")
        }
        return value
    }

    /// One of an enum's raw values.
    func choice<E: RawRepresentable & CaseIterable>(_ node: Node, at path: String, as _: E.Type) throws(ConfigError)
        -> E where E.RawValue == String
    {
        let text = try string(node, at: path)
        guard let value = E(rawValue: text) else {
            let names = E.allCases.map(\.rawValue).joined(separator: " | ")
            throw error(path, node, "unknown value \"\(text)\"; expected \(names)")
        }
        return value
    }

    func isNull(_ node: Node) -> Bool {
        if case .scalar = node { return node.tag.rawValue == Tag.Name.null.rawValue }
        return false
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): isNull(node) ? "null" : "\"\(scalar.string)\""
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// The allowed key nearest to a typo (edit distance ≤ 2), for the "did you mean" hint.
    static func closest(to key: String, in allowed: [String]) -> String? {
        let target = Array(key.utf8)
        var best: (String, Int)?
        for candidate in allowed {
            let d = editDistance(target, Array(candidate.utf8))
            if d <= 2, d < (best?.1 ?? .max) { best = (candidate, d) }
        }
        return best?.0
    }

    private static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...max(a.count, 1) where !a.isEmpty {
            current[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}

/// A mapping's checked entries plus its path, so lookups can build child paths.
struct ConfigMapping {
    let path: String
    let node: Node
    let entries: [(key: String, value: Node)]

    subscript(key: String) -> Node? { entries.first { $0.key == key }?.value }

    func has(_ key: String) -> Bool { entries.contains { $0.key == key } }

    func path(_ key: String) -> String { Self.join(path, key) }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}
