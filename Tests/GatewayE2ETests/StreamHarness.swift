import DemoRunner
import Foundation
import Synchronization
import GatewayTestSupport
import Observability
import Testing

/// Where a streamed trigger runs: in the gateway process, or in a separate `demo-runner` reached through
/// one of the two backend transports.
enum StreamBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inProcess = "inprocess"
    case http
    case grpc

    var testDescription: String { rawValue }
}

/// What a stream test gets: the gateway, and the means to see cancellations reach the backend.
struct StreamSetup: Sendable {
    let gateway: TestGateway
    let backend: StreamBackend
    /// The separate runner process (http and grpc backends); it prints `cancelled ns/p at <epoch s>`.
    let runner: TestProcess.Server?
    /// Wall-clock times of the in-process runner's cancellations.
    let inProcessCancellations: CancellationLog

    var sseBase: String { "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines" }

    /// Wall-clock times (seconds since 1970) at which the backend saw runs cancelled, in order.
    var cancellationTimes: [Double] {
        guard let runner else { return inProcessCancellations.times }
        return runner.printed.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("cancelled "), let at = line.range(of: " at ") else { return nil }
            return Double(line[at.upperBound...])
        }
    }

    /// The time of the cancellation after the first `count` ones, polling up to `timeout` for it (nil: none
    /// came). The bound asserted by tests is on the returned time, not on this wait.
    func cancellation(after count: Int, timeout: Duration = .seconds(5)) async -> Double? {
        _ = await eventually(within: timeout, interval: .milliseconds(10)) { cancellationTimes.count > count }
        let times = cancellationTimes
        return times.count > count ? times[count] : nil
    }
}

/// Thread-safe list of timestamps, filled by the in-process runner's cancellation probe.
final class CancellationLog: Sendable {
    private let storage = Mutex<[Double]>([])
    var times: [Double] { storage.withLock { $0 } }
    func record() { storage.withLock { $0.append(Date().timeIntervalSince1970) } }
}

var now: Double { Date().timeIntervalSince1970 }

/// Runs `body` against a gateway whose `demo` namespace is served by `backend`; `timeouts` is a YAML
/// mapping body such as `idle: 1s`.
func withStreamSetup<T: Sendable>(
    _ backend: StreamBackend,
    timeouts: String? = nil,
    observers: [any RequestObserver] = [],
    _ body: (StreamSetup) async throws -> T
) async throws -> T {
    let log = CancellationLog()
    let inProcess = DemoPipelines(cancellations: DemoPipelines.CancellationProbe(onRecord: { _ in log.record() }))
    let timeoutsYAML = timeouts.map { "timeouts: {\($0)}\n" } ?? ""
    guard backend != .inProcess else {
        // Only timeouts: the embedded default's pools and routes serve `demo` in-process.
        return try await withTestGateway(
            yaml: timeouts == nil ? nil : timeoutsYAML, inProcessRunner: inProcess, requestObservers: observers
        ) { gateway in
            try await body(StreamSetup(gateway: gateway, backend: backend, runner: nil, inProcessCancellations: log))
        }
    }
    let runner = try await TestProcess.Server.start(
        TestProcess.productsDirectory.appendingPathComponent("demo-runner").path,
        ["--listen", "127.0.0.1:0", "--transport", backend.rawValue]
    )
    do {
        let yaml =
            timeoutsYAML + """
                pools:
                  - name: runner
                    transport: \(backend.rawValue)
                    endpoints: ["127.0.0.1:\(runner.port)"]
                    connect_timeout: 1s
                routes:
                  - {namespace: demo, pipeline: "*", pool: runner}
                """
        let result = try await withTestGateway(yaml: yaml, inProcessRunner: inProcess) { gateway in
            try await body(StreamSetup(gateway: gateway, backend: backend, runner: runner, inProcessCancellations: log))
        }
        await runner.stop()
        return result
    } catch {
        await runner.stop()
        throw error
    }
}

/// One parsed SSE event: its name and its data decoded as JSON.
struct SSEEvent {
    var name: String
    var data: [String: Any]
}

/// Parses an SSE body independently of the gateway's encoder (blank-line separated blocks).
func parseSSE(_ text: String) throws -> [SSEEvent] {
    var events: [SSEEvent] = []
    for block in text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n") {
        var name = "message"
        var data: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("event:") { name = line.dropFirst(6).trimmingCharacters(in: .whitespaces) }
            if line.hasPrefix("data:") { data.append(String(line.dropFirst(5).drop(while: { $0 == " " }))) }
        }
        guard !data.isEmpty else { continue }
        let object = try JSONSerialization.jsonObject(with: Data(data.joined(separator: "\n").utf8)) as? [String: Any]
        events.append(SSEEvent(name: name, data: object ?? [:]))
    }
    return events
}

/// `curl -sN` with `arguments` appended: the response headers (lowercased, from `--dump-header`) and the
/// events of the body. With `outputFile`, curl writes the body there as it arrives (see `fileContains`).
func curlSSE(_ arguments: [String], outputFile: String? = nil) async throws -> (
    headers: String, events: [SSEEvent], raw: String
) {
    let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
    let headerFile = FileManager.default.temporaryDirectory.appendingPathComponent("tg-sse-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: headerFile) }
    let output = outputFile.map { ["--output", $0] } ?? []
    let out = try await TestProcess.run(
        curl, ["-sSN", "--max-time", "30", "--dump-header", headerFile] + output + arguments)
    #expect(out.status == 0, "curl: \(out.stderr)")
    let headers = ((try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? "").lowercased()
    let raw = outputFile.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" } ?? out.stdoutString
    return (headers, try parseSSE(raw), raw)
}

/// Waits (bounded by `limit`) until the file at `path` contains `marker`: a client writing what it receives
/// there as it arrives (`curl -N --output`, grpc_client.py's progress file) has seen it.
func fileContains(_ path: String, _ marker: String, within limit: Duration = .seconds(10)) async -> Bool {
    await eventually(within: limit) {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains(marker)
    }
}
