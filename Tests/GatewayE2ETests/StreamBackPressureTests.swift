import Foundation
import GatewayTestSupport
import Synchronization
import Testing

/// Back-pressure end to end (issue 5, item 2): a backend that can produce 200 MiB as fast as it is asked,
/// a client that reads slowly, and a gateway — a separate `trigger-gateway serve` process, so its RSS is its
/// own — whose memory must not follow the backend.
@Suite("Stream mode: back-pressure", .serialized)
struct StreamBackPressureTests {
    static let total = 200 << 20
    static let allowedGrowth = 32 << 20

    @Test(
        "200 MiB streamed to a slow reader keeps the gateway's RSS growth under 32 MiB",
        arguments: [StreamBackend.http, .grpc])
    func slowReader(backend: StreamBackend) async throws {
        let runner = try await TestProcess.Server.start(
            TestProcess.productsDirectory.appendingPathComponent("demo-runner").path,
            ["--listen", "127.0.0.1:0", "--transport", backend.rawValue]
        )
        do {
            try await run(backend: backend, runnerPort: runner.port)
            await runner.stop()
        } catch {
            await runner.stop()
            throw error
        }
    }

    private func run(backend: StreamBackend, runnerPort: Int) async throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("tg-bp-\(UUID().uuidString).yaml")
        try """
        pools:
          - name: runner
            transport: \(backend.rawValue)
            endpoints: ["127.0.0.1:\(runnerPort)"]
        routes:
          - {namespace: demo, pipeline: "*", pool: runner}
        """.write(to: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: config) }
        try await ProcessTests.withGatewayProcess(["--config", config.path]) { gateway in
            let path = "/v1beta/namespaces/demo/pipelines/flood/trigger"
            // Warm up (connections, allocator arenas, lazily loaded code) with a small fast stream.
            let warm = try await RawSSEClient.slowRead(
                port: gateway.port, path: path, json: #"{"data":[{"variable":{"bytes":4194304}}]}"#,
                stall: .zero, sip: 1 << 20, pause: .zero
            )
            #expect(warm.tailString.contains(#""bytes":4194304"#), "\(warm.tailString.suffix(300))")
            let baseline = try #require(residentBytes(pid: gateway.pid))

            let peak = Mutex(baseline)
            let sampling = Task {
                while !Task.isCancelled {
                    if let rss = residentBytes(pid: gateway.pid) { peak.withLock { $0 = max($0, rss) } }
                    // The sampling period of the RSS peak, not a wait for an event.
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            // Reads nothing for 3 s (the backend could fill any unbounded buffer meanwhile), then 16 KiB sips
            // with a pause: far slower than the backend produces.
            let outcome = try await RawSSEClient.slowRead(
                port: gateway.port, path: path,
                json: #"{"data":[{"variable":{"bytes":\#(Self.total),"chunk":65536}}]}"#,
                stall: .seconds(3), sip: 16 << 10, pause: .microseconds(200)
            )
            sampling.cancel()
            let growth = peak.withLock { $0 } - baseline
            #expect(outcome.headString.contains("text/event-stream"), "\(outcome.headString.prefix(300))")
            #expect(outcome.received > Self.total, "\(outcome.received) bytes")
            #expect(outcome.tailString.contains(#""bytes":\#(Self.total)"#), "\(outcome.tailString.suffix(300))")
            #expect(
                growth < Self.allowedGrowth, "gateway RSS grew by \(growth >> 20) MiB (baseline \(baseline >> 20) MiB)")
        }
    }
}
