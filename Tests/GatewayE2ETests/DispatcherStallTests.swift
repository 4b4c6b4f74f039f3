import FoundationEssentials
import GatewayTestSupport
import Logging
import Synchronization
import Testing

/// Review 26 H1 as an operator and a client see it: a claim loop stuck in a store call that never returns turns
/// async readiness NOT_SERVING with its reason, async triggers answer 503 at once, the last-claim gauge stops, and
/// sync traffic and the whole gateway's readiness are untouched. The exact bound is `ClaimLoopWatchTests`' (virtual
/// time); here it is 1 s of real time, and the test waits for the flip by polling.
@Suite("a stalled async dispatcher, over real sockets")
struct DispatcherStallTests {
    static let gauge = "trigger_gateway_async_dispatcher_last_claim_timestamp_seconds"
    static let asyncTrigger = "/v1beta/namespaces/demo/pipelines/upper/trigger-async"

    @Test(
        "h1: a claim that never returns makes /readyz?component=async 503 with its reason and async triggers 503; sync, /readyz and the gauge's stop as expected; all back when the claim returns"
    )
    func stalledClaimLoop() async throws {
        let log = RecordedLog()
        try await WriteFailingStore.withGateway(
            yaml: "store: {health_interval: 100ms, poll_interval: 100ms}\n", log: log, claimStallBound: .seconds(1)
        ) { gateway, store in
            let client = try await gateway.client()
            #expect(try await ReadinessTests.waitForStatus(200, "/readyz?component=async", port: gateway.port) != nil)
            // The gauge is absent until the dispatcher's first step, which readiness does not wait for (an async
            // trigger is accepted and queued before it): wait for it, then an idle loop steps every poll interval.
            var first: Double?
            #expect(
                try await eventually(within: .seconds(20)) {
                    first = try await MetricsE2ETests.scrape(client).samples[Self.gauge]
                    return first != nil
                })
            let firstStep = try #require(first)
            #expect(
                try await eventually(within: .seconds(20)) {
                    try await MetricsE2ETests.scrape(client).samples[Self.gauge] ?? 0 > firstStep
                })

            store.hangsClaims.withLock { $0 = true }
            #expect(try await ReadinessTests.waitForStatus(503, "/readyz?component=async", port: gateway.port) != nil)
            let stopped = try #require(try await MetricsE2ETests.scrape(client).samples[Self.gauge])
            let (status, body) = try await ReadinessTests.readiness(client, "/readyz?component=async")
            #expect(status == 503)
            #expect(body["status"] as? String == "NOT_SERVING")
            let reason = (body["reasons"] as? [String: Any])?["async"] as? String
            #expect(
                reason
                    == "async triggers are unavailable on this instance: its async dispatcher has claimed nothing for 1 s; retry on another instance",
                "\(body)")
            // The whole gateway stays ready: sync and stream triggers do not need the dispatcher.
            let (overall, overallBody) = try await ReadinessTests.readiness(client)
            #expect(overall == 200, "\(overallBody)")
            #expect(try await ReadinessTests.syncTrigger(client) == 200)
            let refused = try await client.request(
                "POST", Self.asyncTrigger, headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["p": "x"]]]]))
            #expect(refused.status == 503)
            #expect(refused.header("retry-after") != nil)
            #expect(
                refused.bodyString.contains("its async dispatcher has claimed nothing for 1 s"), "\(refused.bodyString)"
            )
            let scrape = try await MetricsE2ETests.scrape(client)
            #expect(scrape.samples[ReadinessTests.asyncReady] == 0 && scrape.samples[ReadinessTests.gatewayReady] == 1)
            #expect(scrape.samples[Self.gauge] == stopped, "the gauge moved while the claim hung")
            #expect(try promtoolFindings(scrape.text) == "", "\(scrape.text)")
            #expect(log.lines.contains { $0.level == .warning && $0.message.hasPrefix("async dispatcher stalled") })

            store.hangsClaims.withLock { $0 = false }
            #expect(try await ReadinessTests.waitForStatus(200, "/readyz?component=async", port: gateway.port) != nil)
            let (_, recovered) = try await ReadinessTests.readiness(client, "/readyz?component=async")
            #expect(recovered["reasons"] == nil, "\(recovered)")
            #expect(try await MetricsE2ETests.scrape(client).samples[Self.gauge] ?? 0 > stopped)
            let accepted = try await client.request(
                "POST", Self.asyncTrigger, headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["p": "y"]]]]))
            #expect(accepted.status == 200, "\(accepted.bodyString)")
            await client.close()
        }
    }
}
