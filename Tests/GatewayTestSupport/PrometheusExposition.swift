import Foundation

/// The text exposition of one scrape, read back: each sample's value by its series (`name{labels}` as written),
/// and the `# HELP` / `# TYPE` lines by family.
package struct Exposition: Sendable {
    package var text: String
    package var samples: [String: Double] = [:]
    package var help: [String: String] = [:]
    package var type: [String: String] = [:]

    package init(_ text: String) {
        self.text = text
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                let rest = line.dropFirst(7)
                let name = rest.prefix { $0 != " " }
                help[String(name)] = String(rest.dropFirst(name.count + 1))
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                type[String(parts[0])] = String(parts[1])
            } else if let space = line.lastIndex(of: " ") {
                samples[String(line[..<space])] = Double(line[line.index(after: space)...])
            }
        }
    }

    /// The family a sample belongs to: its name less a histogram's `_bucket`/`_sum`/`_count`.
    package func family(of series: String) -> String {
        let name = String(series.prefix { $0 != "{" })
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if type[base] == "histogram" { return base }
        }
        return name
    }
}

/// `promtool check metrics` (Debian's `prometheus` package, installed by `scripts/setup.sh --test`) over
/// `text`: its findings, empty when it accepts the exposition.
/// Throws when promtool is not installed.
package func promtoolFindings(_ text: String) throws -> String {
    let candidates = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
    guard let promtool = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw PromtoolMissing()
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: promtool)
    process.arguments = ["check", "metrics"]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = output
    try process.run()
    input.fileHandleForWriting.write(Data(text.utf8))
    try input.fileHandleForWriting.close()
    let findings = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let trimmed = findings.trimmingCharacters(in: .whitespacesAndNewlines)
    return process.terminationStatus == 0 ? trimmed : "exit \(process.terminationStatus): \(trimmed)"
}

/// promtool is not on this machine: `scripts/setup.sh --test` installs it (Debian's `prometheus` package).
package struct PromtoolMissing: Error, CustomStringConvertible {
    package var description: String { "promtool is not installed: run scripts/setup.sh --test" }
}
