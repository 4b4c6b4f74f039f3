/// A configuration problem, located: which file, which key path (`routes[2].pool`), and what is wrong.
///
/// The description is the one line `check-config` prints and `serve` refuses to start with:
/// `config.yaml: routes[2].pool: unknown pool "gpu"`. The YAML line, when known, is kept apart so the
/// message format stays stable for tests and scripts.
package struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file name as given to `load(path:)`, or the `source` passed to `parse(yaml:source:)`.
    package var source: String
    /// The key path inside the document, e.g. `pools[0].endpoints[1]`; empty for whole-document problems.
    package var path: String
    package var message: String
    /// 1-based line in the YAML text, when the problem is tied to a node.
    package var line: Int?

    package init(source: String, path: String, message: String, line: Int? = nil) {
        self.source = source
        self.path = path
        self.message = message
        self.line = line
    }

    package var description: String {
        path.isEmpty ? "\(source): \(message)" : "\(source): \(path): \(message)"
    }
}
