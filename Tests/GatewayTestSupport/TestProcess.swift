package import Foundation
import Synchronization

/// Runs the project's executables and independent peers (curl, nghttp, python) from tests.
package enum TestProcess {
    package struct Output: Sendable {
        package var status: Int32
        package var stdout: Data
        package var stderr: String
        package var stdoutString: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Directory holding the built products (`demo-runner`, `trigger-gateway`) next to the test bundle.
    package static var productsDirectory: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("demo-runner").path) { return url }
        }
        fatalError("cannot find built products near \(CommandLine.arguments[0])")
    }

    /// `PATH` lookup, so tests can skip a peer only when it is genuinely absent (the test script installs
    /// them, so in CI they never are).
    package static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs to completion and collects output.
    package static func run(
        _ executable: String,
        _ arguments: [String],
        stdin: Data? = nil,
        environment: [String: String]? = nil
    ) async throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            try input.fileHandleForWriting.write(contentsOf: stdin)
            try input.fileHandleForWriting.close()
        }
        // Read both pipes concurrently so a chatty child cannot fill one and block.
        async let stdoutData = blocking { out.fileHandleForReading.readDataToEndOfFile() }
        async let stderrData = blocking { err.fileHandleForReading.readDataToEndOfFile() }
        let (o, e) = try await (stdoutData, stderrData)
        try await blocking { process.waitUntilExit() }
        return Output(status: process.terminationStatus, stdout: o, stderr: String(decoding: e, as: UTF8.self))
    }

    /// A long-running child (demo-runner, a gateway) that prints `listening on HOST:PORT` when ready.
    package final class Server: Sendable {
        package let process: Process
        package let port: Int
        /// The stdout line the port was read from (`listening on 127.0.0.1:PORT`, or its JSON log line).
        package let readyLine: String
        /// The admin listener's port, from the `admin listener on HOST:PORT` line printed before the ready line;
        /// nil when the gateway has no admin listener.
        package let adminPort: Int?
        private let stderrPipe: Pipe

        /// Everything the child printed on stdout after its `listening on` line (it is drained continuously).
        private let output = Mutex("")
        /// Everything the child wrote on stderr (its log), drained continuously. The drain reads and appends
        /// under this lock, so that holding it, a byte the child wrote is either still in the pipe or here.
        private let errors = Mutex("")

        private init(process: Process, port: Int, readyLine: String, adminPort: Int?, stderrPipe: Pipe) {
            self.adminPort = adminPort
            self.process = process
            self.port = port
            self.readyLine = readyLine
            self.stderrPipe = stderrPipe
        }

        /// What the child printed on stdout since it started listening.
        package var printed: String { output.withLock { $0 } }

        /// What the child logged on stderr so far.
        package var logged: String { errors.withLock { $0 } }

        /// Waits up to `timeout` until the log contains `text` `atLeast` times; returns the count seen.
        package func logOccurrences(of text: String, atLeast: Int = 1, timeout: Duration) async -> Int {
            func count() -> Int { logged.components(separatedBy: text).count - 1 }
            _ = await eventually(within: timeout) { count() >= atLeast }
            return count()
        }

        /// What the child wrote to stderr (its log) so far (the same as `logged`).
        package var printedErrors: String { logged }

        /// How many times `text` occurs in what the child printed, waiting up to `timeout` for at least
        /// `atLeast` of them (polled: the output arrives from another thread).
        package func occurrences(of text: String, atLeast: Int = 1, timeout: Duration) async -> Int {
            func count() -> Int { printed.components(separatedBy: text).count - 1 }
            _ = await eventually(within: timeout) { count() >= atLeast }
            return count()
        }

        /// `environment`: variables added to this process's own for the child (`NOTIFY_SOCKET`, say).
        package static func start(
            _ executable: String, _ arguments: [String], environment: [String: String] = [:]
        ) async throws -> Server {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            }
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let (port, readyLine, adminPort): (Int, String, Int?) = try await blocking {
                var seen = Data()
                while true {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { throw CocoaError(.fileReadUnknown) }
                    seen.append(chunk)
                    let text = String(decoding: seen, as: UTF8.self)
                    if let range = text.range(of: "listening on ") {
                        let rest = text[range.upperBound...]
                        guard let newline = rest.firstIndex(of: "\n") else { continue }
                        // Plain (`listening on 127.0.0.1:8080`) or a JSON log line with `--log-format json`.
                        let lineEnd = rest.firstIndex(where: { $0 == "\n" || $0 == " " || $0 == "\"" }) ?? newline
                        let address = rest[..<lineEnd]
                        let lineStart = text[..<range.lowerBound].lastIndex(of: "\n").map(text.index(after:))
                        if let colon = address.lastIndex(of: ":"),
                            let port = Int(address[address.index(after: colon)...])
                        {
                            return (
                                port, String(text[(lineStart ?? text.startIndex)..<newline]),
                                Self.port(after: "admin listener on ", in: text[..<range.lowerBound])
                            )
                        }
                    }
                }
            }
            // Keep draining stdout so the child never blocks on a full pipe.
            let server = Server(
                process: process, port: port, readyLine: readyLine, adminPort: adminPort, stderrPipe: err)
            out.fileHandleForReading.readabilityHandler = { [weak server] handle in
                let data = handle.availableData
                guard let server, !data.isEmpty else { return }
                server.output.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
            err.fileHandleForReading.readabilityHandler = { [weak server] handle in
                guard let server else { return }
                let ended = server.errors.withLock { errors in
                    let data = handle.availableData
                    errors += String(decoding: data, as: UTF8.self)
                    return data.isEmpty
                }
                if ended { handle.readabilityHandler = nil }
            }
            return server
        }

        /// The port of the first `<prefix>HOST:PORT` in `text` (plain, or inside a JSON log line).
        static func port(after prefix: String, in text: Substring) -> Int? {
            guard let range = text.range(of: prefix) else { return nil }
            let rest = text[range.upperBound...]
            let address = rest.prefix { $0 != "\n" && $0 != " " && $0 != "\"" }
            guard let colon = address.lastIndex(of: ":") else { return nil }
            return Int(address[address.index(after: colon)...])
        }

        package var pid: Int32 { process.processIdentifier }

        package func signal(_ signal: Int32) {
            kill(process.processIdentifier, signal)
        }

        /// Sends SIGTERM (or `signal`) and waits for exit; returns the exit status.
        @discardableResult
        package func stop(signal: Int32 = SIGTERM) async -> Int32 {
            if process.isRunning { kill(process.processIdentifier, signal) }
            let process = self.process
            _ = try? await blocking { process.waitUntilExit() }
            return process.terminationStatus
        }

        /// Stops the child (``stop(signal:)``) and waits until its stderr pipe holds no unread byte, so that
        /// `logged` then holds every line it wrote: how a test shows a line was NOT logged without sleeping.
        /// Returns whether the pipe was drained (bounded by 10 s).
        package func stopAndReadLog(signal: Int32 = SIGTERM) async -> Bool {
            await stop(signal: signal)
            let descriptor = stderrPipe.fileHandleForReading.fileDescriptor
            return await eventually(within: .seconds(10), interval: .milliseconds(5)) {
                // Under the drain's lock no read is in flight: no POLLIN (only POLLHUP once the child is gone)
                // means every byte it wrote is in `errors`.
                errors.withLock { _ in
                    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                    return poll(&entry, 1, 0) >= 0 && entry.revents & Int16(POLLIN) == 0
                }
            }
        }
    }
}
