import Foundation
import GatewayConfig
import GatewayTestSupport
import NIOCore
import Testing

/// Review 27, H1: one queued operation whose stored input file is gone (a data directory restored from a copy taken
/// in the wrong order, a file removed by hand) made every claim fail as "store unavailable", which stopped the whole
/// SQLite queue while readiness stayed SERVING; GET and cancel of it answered 503 "retry later". Now it fails alone
/// with DATA_LOSS, and the operations behind it run.
@Suite("an operation whose stored input file is missing fails alone (DATA_LOSS); the queue runs on", .serialized)
struct LostInputTests {
    static let yaml = """
        pools:
          - {name: demo, transport: inprocess, max_concurrency: 1}
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}
        store: {max_attempts: 1}
        """

    static func start(_ client: TestHTTPClient, _ variables: String) async throws -> String {
        let response = try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger-async", headers: jsonHeaders,
            body: ByteBuffer(string: #"{"data":[{"variable":\#(variables)}]}"#))
        let name = (try json(response.body)["operation"] as? [String: Any])?["name"] as? String
        return String(try #require(name, "\(response.bodyString)").dropFirst("operations/".count))
    }

    static func operation(_ client: TestHTTPClient, _ id: String) async throws -> (status: Int, body: [String: Any]) {
        let response = try await client.request("GET", "/v1beta/operations/\(id)")
        return (response.status, try json(response.body))
    }

    static func state(_ body: [String: Any]) -> String? {
        ((body["operation"] as? [String: Any])?["metadata"] as? [String: Any])?["state"] as? String
    }

    @Test(
        "a queued operation's blob directory removed: GET answers it, its claim fails it with DATA_LOSS, the next runs")
    func lostInputFailsAlone() async throws {
        let log = RecordedLog()
        try await withTestGateway(yaml: Self.yaml, log: log) { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            // The pool's one slot is held, so what comes after waits in the queue, unclaimed.
            let holder = try await Self.start(client, #"{"ms":60000}"#)
            _ = try await eventually(within: .seconds(20), interval: .milliseconds(20)) {
                Self.state(try await Self.operation(client, holder).body) == "running"
            }
            // 100 KB of bytes: over the 64 KiB inline limit, so stored as a file under blobs/<id>/.
            let payload = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).base64EncodedString()
            let broken = try await Self.start(
                client, #"{"ms":0,"file":"data:application/octet-stream;base64,\#(payload)"}"#)
            let after = try await Self.start(client, #"{"ms":0,"n":1}"#)
            let directory = "\(gateway.configuration.dataDir)/blobs/\(broken)"
            #expect(FileManager.default.fileExists(atPath: directory), "the input was not spilled to a file")
            try FileManager.default.removeItem(atPath: directory)

            // Readable while queued: 200, not 503 "retry later".
            let queued = try await Self.operation(client, broken)
            #expect(queued.status == 200, "\(queued.body)")
            #expect(Self.state(queued.body) == "queued", "\(queued.body)")

            // The slot frees; the broken operation is claimed first (oldest) and fails alone, the next one runs.
            _ = try await client.request("POST", "/v1beta/operations/\(holder):cancel")
            _ = try await eventually(within: .seconds(20), interval: .milliseconds(20)) {
                Self.state(try await Self.operation(client, after).body) == "succeeded"
            }
            let failed = try await Self.operation(client, broken)
            #expect(failed.status == 200, "\(failed.body)")
            #expect(Self.state(failed.body) == "failed", "\(failed.body)")
            let error = (failed.body["operation"] as? [String: Any])?["error"] as? [String: Any]
            #expect(error?["code"] as? Int == 15, "\(failed.body)")  // DATA_LOSS
            #expect((error?["message"] as? String)?.contains("is missing") == true, "\(failed.body)")
            // No runner was called for it: its attempt is taken back.
            let metadata = (failed.body["operation"] as? [String: Any])?["metadata"] as? [String: Any]
            #expect(metadata?["attempts"] as? Int == 0, "\(failed.body)")
            let warnings = log.lines.filter { $0.message == "operation failed: its stored input is missing" }
            #expect(warnings.count == 1, "\(log.lines)")
            #expect(warnings.first?.metadata["operation.id"] == broken, "\(warnings)")
        }
    }

    @Test("a queued operation whose input file is gone can be cancelled")
    func lostInputCancellable() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            let holder = try await Self.start(client, #"{"ms":60000}"#)
            _ = try await eventually(within: .seconds(20), interval: .milliseconds(20)) {
                Self.state(try await Self.operation(client, holder).body) == "running"
            }
            let payload = Data(repeating: 7, count: 100_000).base64EncodedString()
            let broken = try await Self.start(
                client, #"{"ms":0,"file":"data:application/octet-stream;base64,\#(payload)"}"#)
            try FileManager.default.removeItem(atPath: "\(gateway.configuration.dataDir)/blobs/\(broken)")
            let cancelled = try await client.request("POST", "/v1beta/operations/\(broken):cancel")
            #expect(cancelled.status == 200, "\(cancelled.bodyString)")
            #expect(Self.state(try await Self.operation(client, broken).body) == "cancelled")
            _ = try await client.request("POST", "/v1beta/operations/\(holder):cancel")
        }
    }
}
