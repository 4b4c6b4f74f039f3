/// A configuration problem, located: which file, which key path (`routes[2].pool`), and what is wrong; and,
/// when the file holds more than one independent mistake, the others (`further`), so that `check-config`, a
/// start and a reload report every mistake of a file at once rather than one per run (see `ConfigMistakes`).
///
/// The description is what `check-config` prints and `serve` refuses to start with: one line per mistake,
/// `config.yaml: routes[2].pool: unknown pool "gpu"`, in file order, then, when there is more than one, the
/// count: `3 mistakes in config.yaml`. A single mistake is the one line alone. The YAML line, when known, is
/// kept apart so the message format stays stable for tests and scripts.
package struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file name as given to `load(path:)`, or the `source` passed to `parse(yaml:source:)`.
    package var source: String
    /// The key path inside the document, e.g. `pools[0].endpoints[1]`; empty for whole-document problems.
    package var path: String
    package var message: String
    /// 1-based line in the YAML text, when the problem is tied to a node.
    package var line: Int?
    /// The other independent mistakes of the same file, in file order after this one (empty: this is the only
    /// one). Each has an empty `further` itself.
    package var further: [ConfigError] = []

    package init(source: String, path: String, message: String, line: Int? = nil) {
        self.source = source
        self.path = path
        self.message = message
        self.line = line
    }

    /// Every mistake, in file order: this one (without `further`), then `further`.
    package var mistakes: [ConfigError] {
        var first = self
        first.further = []
        return [first] + further
    }

    /// What `description` joins: `<source>: <path>: <message>` per mistake (`<source>: <message>` when the
    /// path is empty), and, with more than one mistake, the count last (`3 mistakes in <source>`).
    package var lines: [String] {
        let each = mistakes.map {
            $0.path.isEmpty ? "\($0.source): \($0.message)" : "\($0.source): \($0.path): \($0.message)"
        }
        return further.isEmpty ? each : each + ["\(each.count) mistakes in \(source)"]
    }

    package var description: String { lines.joined(separator: "\n") }
}
