import Foundation
import GatewayTestSupport
import Testing

/// A stream's backend waits (review 10 #1 and #7), with real clients (curl) against a real gateway: a runner
/// that accepts and never answers ends a stream at the pool's `request_timeout` with the pool's 504, before any
/// byte, freeing the stream's slot; a client that leaves a stream is not logged as the runner's failure.
@Suite("Stream mode: the wait for a runner's first event, and a client leaving", .serialized)
struct StreamTimeoutTests {
    static let body = #"{"data":[{"variable":{"prompt":"a"}}]}"#

    @Test(
        "a stream to a runner that accepts and never answers: the pool's 504 at request_timeout, its slot back",
        arguments: ["http", "grpc"], [false, true])
    func hungRunner(transport: String, http2: Bool) async throws {
        let silent = try SilentListener()
        let yaml = """
            pools:
              - name: hung
                transport: \(transport)
                endpoints: ["127.0.0.1:\(silent.port)"]
                request_timeout: 500ms
                connect_timeout: 10s
                max_concurrency: 1
                max_queue: 0
            routes:
              - {namespace: demo, pipeline: "*", pool: hung}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let url = "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/x/trigger-stream"
            // The second stream finds the first one's slot free again (max_concurrency 1, no queue): 504, not 503.
            for attempt in 1...2 {
                let clock = ContinuousClock()
                let started = clock.now
                let answer = try await StreamSSETests().curlBeforeStart(url, http2: http2, body: Self.body)
                let took = clock.now - started
                #expect(answer.status == 504, "attempt \(attempt): \(answer.headers)\(answer.body)")
                #expect(!answer.body.contains("event:"), "no SSE event: \(answer.body)")
                #expect(answer.json?["code"] as? Int == 4, "DEADLINE_EXCEEDED: \(answer.body)")
                let message = answer.json?["message"] as? String ?? ""
                #expect(message.contains(#"backend pool "hung" did not answer within 500ms"#), "\(answer.body)")
                #expect(took >= .milliseconds(500), "answered before the pool's request_timeout: \(took)")
                #expect(took < .seconds(5), "the wait for the first event was not bounded by it: \(took)")
            }
        }
    }

    @Test("a client that leaves an SSE stream is not logged as a failure of the runner (no endpoint warning)")
    func clientLeavingIsNotARunnerFailure() async throws {
        let runner = try await TestProcess.Server.start(
            TestProcess.productsDirectory.appendingPathComponent("demo-runner").path,
            ["--listen", "127.0.0.1:0", "--transport", "http"])
        defer { Task { await runner.stop() } }
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("tg-leave-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: config) }
        try """
        pools:
          - {name: runner, transport: http, endpoints: ["127.0.0.1:\(runner.port)"]}
        routes:
          - {namespace: demo, pipeline: "*", pool: runner}
        """.write(to: config, atomically: true, encoding: .utf8)
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-leave-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let gateway = try await TestProcess.Server.start(
            TestProcess.productsDirectory.appendingPathComponent("trigger-gateway").path,
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir.path, "--config", config.path])
        defer { Task { await gateway.stop() } }
        let curl = try #require(TestProcess.which("curl"))
        // Words 3 s apart: the first token comes at once, then curl gives up at 1 s, mid-wait.
        let leaving = #"{"data":[{"variable":{"prompt":"a b c","delay_ms":3000}}]}"#
        for _ in 1...3 {
            let out = try await TestProcess.run(
                curl,
                [
                    "-sN", "--max-time", "1", "-H", "content-type: application/json", "-d", leaving,
                    "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/tokens/trigger-stream",
                ])
            #expect(out.stdoutString.contains("PIPELINE_OUTPUT_UPDATED"), "the stream began: \(out.stdoutString)")
        }
        #expect(
            await gateway.logOccurrences(of: "response_flags=DC", atLeast: 3, timeout: .seconds(10)) == 3,
            "each hang-up is logged as the client's: \(gateway.logged)")
        // The runner's side of each hang-up (its connection closed by the gateway) has had time to surface.
        #expect(
            await gateway.logOccurrences(of: "backend endpoint failed", timeout: .seconds(2)) == 0, "\(gateway.logged)")
    }
}
