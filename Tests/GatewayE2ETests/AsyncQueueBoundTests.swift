import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// `pools[].max_async_queued` (review 26 I2) on a real gateway process: async triggers past a pool's queue bound
/// are refused as the pool's overflow (503 + `Retry-After`), up to the bound they are accepted.
@Suite("a pool's async queue bound, with a real gateway process", .serialized)
struct AsyncQueueBoundTests {
    static let queued = #"trigger_gateway_async_queued{pool="demo"}"#

    @Test(
        """
        max_async_queued 2: with 2 queued the next trigger is refused (503, Retry-After, the bound named) and nothing \
        is stored; once one leaves the queue, one more is accepted and the next refused
        """,
        .timeLimit(.minutes(2)))
    func boundAtItsEdge() async throws {
        let dataDir = AsyncDurabilityTests.temporaryPath("tg-queue-bound")
        let config = AsyncDurabilityTests.temporaryPath("tg-queue-bound") + ".yaml"
        // One worker: the first `sleep` runs for a minute and every later one stays queued behind it.
        try """
        store: {poll_interval: 100ms, workers: 1}
        pools: [{name: demo, transport: inprocess, max_async_queued: 2}]
        routes: [{namespace: demo, pool: demo}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: dataDir)
            try? FileManager.default.removeItem(atPath: config)
        }
        let server = try await AsyncDurabilityTests.startGateway(dataDir: dataDir, config: config)
        defer { Task { await server.stop() } }
        let client = try await AsyncClient.connect(port: server.port)
        func trigger() async throws -> (status: Int, json: [String: Any]) {
            try await client.trigger("sleep", ["ms": 60_000])
        }
        func queuedNow() async throws -> Double? {
            try await AsyncDurabilityTests.scrape(port: server.port).samples[Self.queued]
        }
        let (first, running) = try await trigger()
        try #require(first == 200, "\(running)")
        #expect(
            try await eventually(within: .seconds(20)) {
                let operation = try await client.get("/v1beta/\(running.operationName ?? "")").json["operation"]
                return (operation as? [String: Any])?.metadataState == "running"
            })
        // Two queued behind it. A trigger can be refused while the count read last still holds one admitted
        // before it (the bound is the count plus the admissions since): each is tried until accepted.
        var names: [String] = []
        for _ in 0..<2 {
            var name: String?
            #expect(
                try await eventually(within: .seconds(20)) {
                    let (status, body) = try await trigger()
                    name = body.operationName
                    return status == 200
                })
            names.append(try #require(name))
        }
        #expect(try await eventually(within: .seconds(20)) { try await queuedNow() == 2 })

        // At the bound: refused, and refused again (a refusal admits nothing).
        for _ in 0..<2 {
            let refused = try await client.client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger-async", headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["ms": 60_000]]]]))
            #expect(refused.status == 503, "\(refused.bodyString)")
            #expect(refused.header("retry-after") != nil)
            #expect(refused.bodyString.contains("2 operations queued, at most 2"), "\(refused.bodyString)")
        }
        let listed = try await client.get("/v1beta/operations?page_size=100").json
        #expect((listed["operations"] as? [Any])?.count == 3, "the refused triggers stored nothing: \(listed)")

        // One leaves the queue (cancelled): one more fits, the next does not.
        let (cancelled, _) = try await client.post("/v1beta/\(names[1]):cancel")
        #expect(cancelled == 200)
        #expect(try await eventually(within: .seconds(20)) { try await queuedNow() == 1 })
        #expect(try await trigger().status == 200)
        #expect(try await trigger().status == 503)
        await client.client.close()
        await server.stop()
    }
}
