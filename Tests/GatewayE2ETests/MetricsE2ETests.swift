import DemoRunner
import Foundation
import GatewayApp
import GatewayConfig
import GatewayServer
import GatewayTestSupport
import NIOCore
import NIOPosix
import Observability
import Testing

/// `/metrics` of a real gateway over real sockets (issue 16 item 1): after a known sequence of calls the scrape
/// shows exactly the expected values, and promtool accepts it.
@Suite("metrics: /metrics over real sockets")
struct MetricsE2ETests {
    static func config(backendPort: Int, pool: String = "runner", limits: String = "") -> String {
        """
        pools:
          - {name: \(pool), transport: http, endpoints: ["127.0.0.1:\(backendPort)"]\(limits)}
        routes:
          - {namespace: demo, pipeline: "*", pool: \(pool)}

        """
    }

    static func scrape(_ client: TestHTTPClient) async throws -> Exposition {
        let response = try await client.request("GET", "/metrics")
        #expect(response.status == 200)
        #expect(response.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return Exposition(response.bodyString)
    }

    /// Scrapes until `condition` holds (levels set after a response was sent: a run's end, a closed
    /// connection), for up to 10 s; the last scrape.
    static func scrape(
        _ client: TestHTTPClient,
        until condition: (Exposition) -> Bool
    ) async throws -> Exposition {
        var last = try await scrape(client)
        _ = try await eventually(within: .seconds(10), interval: .milliseconds(50)) {
            last = try await scrape(client)
            return condition(last)
        }
        return last
    }

    /// Review 18 F2: a single-endpoint pool whose runner was down reported `pool_endpoint_available 1` and no
    /// ejection (`max_ejected_percent` kept the last endpoint in). It is ejected now, as in Envoy, and calls still go
    /// to it (panic mode): once a runner listens again, the next call succeeds, ejection or not. The ejection's clock
    /// is the unit tests' (`EndpointBalancerTests.singleEndpointEjection`); here its end is waited for (1 s, then 2 s
    /// for the re-ejection on probation, at most 5 s).
    @Test(
        "a pool's only endpoint, its runner down: ejected (available 0, ejections 1), still called, available again",
        .timeLimit(.minutes(1)))
    func singleEndpointEjected() async throws {
        let down = try ReservedPort()
        defer { withExtendedLifetime(down) {} }
        let port = down.port
        try await withTestGateway(yaml: Self.config(backendPort: port)) { gateway in
            let client = try await gateway.client()
            let async = AsyncClient(client: client)
            let endpoint = #"pool="runner",endpoint="127.0.0.1:\#(port)""#
            let available = "trigger_gateway_pool_endpoint_available{\(endpoint)}"
            let ejections = "trigger_gateway_pool_ejections_total{\(endpoint)}"
            let refused = "trigger_gateway_backend_failures_total{\(endpoint),reason=\"UF\"}"
            #expect(try await Self.scrape(client).samples[available] == 1)
            // `consecutive_failures` (3) refused tries eject it: one call's retries, or up to three calls.
            var scrape = try await Self.scrape(client)
            for n in 0..<3 where scrape.samples[ejections] != 1 {
                #expect(try await async.trigger("echo", ["n": n], verb: "trigger").status == 502)
                scrape = try await Self.scrape(client)
            }
            #expect(scrape.samples[ejections] == 1, "\(scrape.text)")
            #expect(scrape.samples[available] == 0, "\(scrape.text)")
            let failures = try #require(scrape.samples[refused])
            // Ejected, yet called (no "no healthy endpoint" answer): its refusals are counted.
            #expect(try await async.trigger("echo", ["n": 2], verb: "trigger").status == 502)
            scrape = try await Self.scrape(client)
            #expect(try #require(scrape.samples[refused]) > failures, "\(scrape.text)")
            #expect(scrape.samples[available] == 0, "\(scrape.text)")
            // A runner listens again: the next call reaches it while the endpoint is still ejected.
            let runner = try await DemoHTTPServer.bind(
                host: "127.0.0.1", port: port, runner: DemoPipelines(), group: MultiThreadedEventLoopGroup.singleton)
            let back = try await async.trigger("echo", ["n": 3], verb: "trigger")
            #expect(back.status == 200, "\(back.json)")
            // And the gauge says 1 once the ejection under way ends.
            scrape = try await Self.scrape(client) { $0.samples[available] == 1 }
            #expect(scrape.samples[available] == 1, "\(scrape.text)")
            try? await runner.close()
            await client.close()
        }
    }

    @Test(
        "pools, async, store, connections and reloads: exact values after a known sequence; promtool accepts the scrape",
        .timeLimit(.minutes(1))
    )
    func nonRequestMetrics() async throws {
        try await withHTTPBackend(runner: DemoPipelines()) { backendPort in
            try await withTestGateway(yaml: Self.config(backendPort: backendPort)) { gateway in
                let client = try await gateway.client()
                let async = AsyncClient(client: client)
                for i in 0..<3 {
                    let sync = try await async.trigger("echo", ["n": i], verb: "trigger")
                    #expect(sync.status == 200, "\(sync.json)")
                }
                var names: [String] = []
                for i in 0..<2 {
                    let accepted = try await async.trigger("echo", ["n": i])
                    #expect(accepted.status == 200, "\(accepted.json)")
                    names.append(try #require(accepted.json.operationName))
                }
                for name in names { #expect(try await async.waitDone(name)["done"] as? Bool == true) }

                let endpoint = #"pool="runner",endpoint="127.0.0.1:\#(backendPort)""#
                let scrape = try await Self.scrape(client) {
                    $0.samples[#"trigger_gateway_async_finished_total{state="succeeded"}"#] == 2
                        && $0.samples["trigger_gateway_async_running"] == 0
                }
                // Three sync calls and two async runs, each one try on the one endpoint, each answered.
                let tries = "trigger_gateway_backend_request_duration_seconds_count{\(endpoint)"
                #expect(scrape.samples[tries + #",outcome="ok"}"#] == 5)
                for outcome in ["UF", "UT", "UC", "UPE", "UO", "cancelled"] {
                    #expect(scrape.samples[tries + #",outcome="\#(outcome)"}"#] == 0, "made up front: \(outcome)")
                }
                #expect(scrape.samples["trigger_gateway_pool_ejections_total{\(endpoint)}"] == 0)
                #expect(scrape.samples["trigger_gateway_pool_retries_total{\(endpoint)}"] == 0)
                #expect(scrape.samples["trigger_gateway_pool_endpoint_available{\(endpoint)}"] == 1)
                #expect(scrape.samples["trigger_gateway_pool_endpoint_in_flight{\(endpoint)}"] == 0)
                #expect(scrape.samples[#"trigger_gateway_pool_in_flight{pool="runner"}"#] == 0)
                #expect(scrape.samples[#"trigger_gateway_pool_queued{pool="runner"}"#] == 0)
                #expect(scrape.samples[#"trigger_gateway_pool_rejected_total{pool="runner"}"#] == 0)
                #expect(scrape.samples["trigger_gateway_async_accepted_total"] == 2)
                #expect(scrape.samples["trigger_gateway_async_attempts_total"] == 2)
                #expect(scrape.samples[#"trigger_gateway_async_queued{pool="runner"}"#] == 0)
                #expect(scrape.samples["trigger_gateway_async_dispatch_lag_seconds_count"] == 2)
                #expect(scrape.samples[#"trigger_gateway_async_finished_total{state="failed"}"#] == 0)
                #expect(
                    scrape.samples[#"trigger_gateway_store_operation_duration_seconds_count{operation="enqueue"}"#] == 2
                )
                #expect(
                    scrape.samples[#"trigger_gateway_store_operation_duration_seconds_count{operation="complete"}"#]
                        == 2)
                #expect(scrape.samples[#"trigger_gateway_store_errors_total{operation="enqueue"}"#] == 0)
                // This test's one keep-alive connection is the only one open.
                #expect(scrape.samples[#"trigger_gateway_connections_open{protocol="http1",tls="false"}"#] == 1)
                #expect(scrape.samples[#"trigger_gateway_connections_open{protocol="http2",tls="false"}"#] == 0)
                // Review 18 F4: which build runs here, and whether the file is wholly in force (a start: it is).
                let build =
                    #"trigger_gateway_build_info{version="\#(GatewayBuild.version)",revision="\#(GatewayBuild.revision)"}"#
                #expect(scrape.samples[build] == 1, "\(scrape.text)")
                #expect(scrape.samples["trigger_gateway_config_restart_required"] == 0)
                #expect(try promtoolFindings(scrape.text) == "", "\(scrape.text)")

                // Each connection the listener accepts counts once, however many requests it then carries: two
                // more, each with two requests (curl over HTTP/1.1 keep-alive; nghttp over h2c, as curl 7.88 fails
                // to reuse a prior-knowledge connection: curl/curl#10634).
                let acceptedBefore = try #require(scrape.samples["trigger_gateway_connections_accepted_total"])
                #expect(acceptedBefore >= 1)
                let twice = try await Self.curl(
                    ["http://127.0.0.1:PORT/healthz", "http://127.0.0.1:PORT/readyz"], port: gateway.port)
                #expect(twice.status == 200)
                let h2c = try await TestProcess.run(
                    "/usr/bin/nghttp",
                    ["-n", "-s", "http://127.0.0.1:\(gateway.port)/healthz", "http://127.0.0.1:\(gateway.port)/readyz"])
                #expect(h2c.status == 0, "\(h2c.stderr)")
                #expect(
                    h2c.stdoutString.components(separatedBy: "\n").filter { $0.contains(" 200 ") }.count == 2,
                    "\(h2c.stdoutString)")
                let afterTwo = try await Self.scrape(client)
                #expect(afterTwo.samples["trigger_gateway_connections_accepted_total"] == acceptedBefore + 2)

                // A refused reload, then one that renames the pool: the old pool's series go (no call in
                // flight on it), the new one's are there.
                let file = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "tg-metrics-\(UUID().uuidString).yaml")
                defer { try? FileManager.default.removeItem(at: file) }
                try "routes: [{namespace: demo, pool: nope}]\n".write(to: file, atomically: true, encoding: .utf8)
                let listen = gateway.configuration.listen
                let dataDir = gateway.configuration.dataDir
                #expect(gateway.app.reload(fromFile: file.path, listen: listen, dataDir: dataDir) == .refused)
                try Self.config(backendPort: backendPort, pool: "runner2").write(
                    to: file, atomically: true, encoding: .utf8)
                #expect(gateway.app.reload(fromFile: file.path, listen: listen, dataDir: dataDir) == .applied)
                #expect(try await async.trigger("echo", ["n": 9], verb: "trigger").status == 200)
                let reloaded = try await Self.scrape(client)
                #expect(reloaded.samples[#"trigger_gateway_config_reloads_total{outcome="applied"}"#] == 1)
                #expect(reloaded.samples[#"trigger_gateway_config_reloads_total{outcome="refused"}"#] == 1)
                #expect(reloaded.samples["trigger_gateway_config_last_reload_successful"] == 1)
                #expect(
                    reloaded.samples.keys.allSatisfy { !$0.contains(#"pool="runner""#) }, "\(reloaded.text)")
                let renamed = #"pool="runner2",endpoint="127.0.0.1:\#(backendPort)""#
                #expect(
                    reloaded.samples[
                        #"trigger_gateway_backend_request_duration_seconds_count{\#(renamed),outcome="ok"}"#]
                        == 1)
                #expect(reloaded.samples["trigger_gateway_config_restart_required"] == 0)
                #expect(try promtoolFindings(reloaded.text) == "", "\(reloaded.text)")

                // A file that changes a key only a restart applies: applied, config_info shows its digest, and
                // restart_required says the file is not wholly in force; a refused reload keeps that; a file
                // back at the running value ends it.
                let restartFile =
                    Self.config(backendPort: backendPort, pool: "runner2") + "limits: {max_connections: 123}\n"
                try restartFile.write(to: file, atomically: true, encoding: .utf8)
                #expect(gateway.app.reload(fromFile: file.path, listen: listen, dataDir: dataDir) == .applied)
                #expect(gateway.app.configStatus.snapshot.restartRequired == ["limits.max_connections"])
                #expect(try await Self.scrape(client).samples["trigger_gateway_config_restart_required"] == 1)
                try "routes: [{namespace: demo, pool: nope}]\n".write(to: file, atomically: true, encoding: .utf8)
                #expect(gateway.app.reload(fromFile: file.path, listen: listen, dataDir: dataDir) == .refused)
                let pending = try await Self.scrape(client)
                #expect(pending.samples["trigger_gateway_config_restart_required"] == 1)
                #expect(try promtoolFindings(pending.text) == "", "\(pending.text)")
                try Self.config(backendPort: backendPort, pool: "runner2").write(
                    to: file, atomically: true, encoding: .utf8)
                #expect(gateway.app.reload(fromFile: file.path, listen: listen, dataDir: dataDir) == .applied)
                #expect(try await Self.scrape(client).samples["trigger_gateway_config_restart_required"] == 0)
                await client.close()
            }
        }
    }

    /// Operator review 58, F6: silent connections (no first byte yet) hold slots of `limits.max_connections` that
    /// `connections_open` (counted after the preface sniff) does not show.
    @Test(
        "connections_admitted counts every connection holding a slot of max_connections, silent ones too; connections_limit is the cap"
    )
    func admittedConnections() async throws {
        try await withTestGateway(yaml: "limits: {max_connections: 50}\n") { gateway in
            let observer = try await gateway.client()
            var silent: [SlowSocket] = []
            for _ in 0..<3 { silent.append(try await SlowSocket.connect(port: gateway.port)) }
            #expect(await eventually(within: .seconds(10)) { gateway.openConnections() == 4 })
            let scrape = try await Self.scrape(observer)
            #expect(scrape.samples["trigger_gateway_connections_admitted"] == 4, "\(scrape.text)")
            #expect(scrape.samples["trigger_gateway_connections_limit"] == 50, "\(scrape.text)")
            let open = scrape.samples.filter { $0.key.hasPrefix("trigger_gateway_connections_open{") }.values.reduce(
                0, +)
            #expect(open == 1, "only the scraping connection is past its sniff: \(scrape.text)")
            for socket in silent { socket.shutdown() }
            let after = try await Self.scrape(observer) { $0.samples["trigger_gateway_connections_admitted"] == 1 }
            #expect(after.samples["trigger_gateway_connections_admitted"] == 1, "\(after.text)")
            #expect(try promtoolFindings(after.text) == "", "\(after.text)")
            await observer.close()
        }
    }

    @Test(
        "a pool at max_concurrency with no queue refuses the next call: rejected_total counts it, in_flight shows the one",
        .timeLimit(.minutes(1))
    )
    func rejected() async throws {
        try await withHTTPBackend(runner: DemoPipelines()) { backendPort in
            let yaml = Self.config(backendPort: backendPort, limits: ", max_concurrency: 1, max_queue: 0")
            try await withTestGateway(yaml: yaml) { gateway in
                let observer = try await gateway.client()
                let slow = Task {
                    let client = try await gateway.client()
                    defer { Task { await client.close() } }
                    return try await AsyncClient(client: client).trigger("sleep", ["ms": 2000], verb: "trigger").status
                }
                let busy = try await Self.scrape(observer) {
                    $0.samples[#"trigger_gateway_pool_in_flight{pool="runner"}"#] == 1
                }
                #expect(busy.samples[#"trigger_gateway_pool_in_flight{pool="runner"}"#] == 1, "\(busy.text)")
                let refused = try await AsyncClient(client: observer).trigger("echo", ["n": 1], verb: "trigger")
                #expect(refused.status == 503, "\(refused.json)")
                #expect(try await slow.value == 200)
                let after = try await Self.scrape(observer)
                #expect(after.samples[#"trigger_gateway_pool_rejected_total{pool="runner"}"#] == 1)
                #expect(after.samples[#"trigger_gateway_pool_in_flight{pool="runner"}"#] == 0)
                await observer.close()
            }
        }
    }

    @Test(
        "a reload that removes a pool keeps its series while its call is in flight, and drops them after",
        .timeLimit(.minutes(1))
    )
    func retiredPoolInFlight() async throws {
        try await withHTTPBackend(runner: DemoPipelines()) { backendPort in
            try await withTestGateway(yaml: Self.config(backendPort: backendPort)) { gateway in
                let observer = try await gateway.client()
                let slow = Task {
                    let client = try await gateway.client()
                    defer { Task { await client.close() } }
                    return try await AsyncClient(client: client).trigger("sleep", ["ms": 1500], verb: "trigger").status
                }
                let inFlight = #"trigger_gateway_pool_in_flight{pool="runner"}"#
                #expect(try await Self.scrape(observer) { $0.samples[inFlight] == 1 }.samples[inFlight] == 1)
                try gateway.reload(yaml: Self.config(backendPort: backendPort, pool: "other"))
                let during = try await Self.scrape(observer)
                #expect(during.samples[inFlight] == 1, "the retired pool's call is still running: \(during.text)")
                #expect(during.samples[#"trigger_gateway_pool_in_flight{pool="other"}"#] == 0)
                #expect(try await slow.value == 200)
                let after = try await Self.scrape(observer) { $0.samples[inFlight] == nil }
                #expect(after.samples.keys.allSatisfy { !$0.contains(#"pool="runner""#) }, "\(after.text)")
                await observer.close()
            }
        }
    }

    /// `curl` (HTTP/1.1, a new connection each time): the status, and the body when `body` is true.
    static func curl(_ arguments: [String], port: Int) async throws -> (status: Int, body: String) {
        let output = try await TestProcess.run(
            "/usr/bin/curl",
            ["-sS", "-o", "-", "-w", "\n%{http_code}"]
                + arguments.map { $0.replacingOccurrences(of: "PORT", with: String(port)) })
        #expect(output.status == 0, "\(output.stderr)")
        let text = output.stdoutString
        let cut = text.lastIndex(of: "\n") ?? text.startIndex
        return (Int(text[text.index(after: cut)...]) ?? 0, String(text[..<cut]))
    }

    @Test(
        "requests over real sockets (curl, grpcio): a scrape shows exactly the counts of the known sequence; promtool accepts it",
        .timeLimit(.minutes(1))
    )
    func requestCounts() async throws {
        try await withTestGateway { gateway in
            let port = gateway.port
            let trigger = "http://127.0.0.1:PORT/v1beta/namespaces/demo/pipelines/echo/trigger"
            let json = ["-H", "content-type: application/json", "--data", #"{"data":[{"variable":{"k":"v"}}]}"#]
            for _ in 0..<3 { #expect(try await Self.curl(json + [trigger], port: port).status == 200) }
            #expect(try await Self.curl(["http://127.0.0.1:PORT/no/such/thing"], port: port).status == 404)
            let unrouted = "http://127.0.0.1:PORT/v1beta/namespaces/nowhere/pipelines/echo/trigger"
            for _ in 0..<2 { #expect(try await Self.curl(json + [unrouted], port: port).status == 404) }
            for _ in 0..<2 {
                let answer = try await Peers.grpcio("trigger", port: port, ["echo", #"[{"k": "v"}]"#])
                #expect(answer["outputs"] != nil, "\(answer)")
            }
            let unknown = try await Peers.grpcio("unknown", port: port)
            #expect(unknown["code"] as? String == "UNIMPLEMENTED", "\(unknown)")

            // The first scrape is not counted in itself; the second counts the first.
            let metrics = "http://127.0.0.1:PORT/metrics"
            #expect(try await Self.curl([metrics], port: port).status == 200)
            let (status, text) = try await Self.curl([metrics], port: port)
            #expect(status == 200)
            let scrape = Exposition(text)
            let requests = scrape.samples.filter { $0.key.hasPrefix("trigger_gateway_requests_total{") }
            let grpcMethod = "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline"
            let expected: [String: Double] = [
                #"frontend="rest",operation="triggerPipeline",route="demo/*",mode="sync",code="200""#: 3,
                #"frontend="rest",operation="unmatched",route="none",mode="none",code="404""#: 1,
                #"frontend="rest",operation="triggerPipeline",route="none",mode="sync",code="404""#: 2,
                #"frontend="grpc",operation="\#(grpcMethod)",route="demo/*",mode="sync",code="OK""#: 2,
                #"frontend="grpc",operation="unmatched",route="none",mode="none",code="UNIMPLEMENTED""#: 1,
                #"frontend="rest",operation="metrics",route="none",mode="none",code="200""#: 1,
            ]
            #expect(
                requests
                    == Dictionary(
                        uniqueKeysWithValues: expected.map { ("trigger_gateway_requests_total{\($0.key)}", $0.value) }),
                "\(scrape.text)")
            let restSync = #"frontend="rest",operation="triggerPipeline",route="demo/*",mode="sync""#
            #expect(scrape.samples["trigger_gateway_request_duration_seconds_count{\(restSync)}"] == 3)
            let requestBytes = Double(#"{"data":[{"variable":{"k":"v"}}]}"#.utf8.count)
            #expect(scrape.samples["trigger_gateway_request_size_bytes_sum{\(restSync)}"] == 3 * requestBytes)
            #expect((scrape.samples["trigger_gateway_response_size_bytes_sum{\(restSync)}"] ?? 0) > 0)
            // Only this scrape is in flight while it renders.
            #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="rest"}"#] == 1)
            #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="grpc"}"#] == 0)
            #expect(try promtoolFindings(scrape.text) == "", "\(scrape.text)")
        }
    }

    @Test(
        "the surfaces' requests that name a pipeline carry its route and mode: the abacusai client, craft-ai-sdk, curl (HTTP/1.1 and h2c), GetNamespacePipeline",
        .timeLimit(.minutes(2))
    )
    func surfaceRoutes() async throws {
        try await withTestGateway { gateway in
            let port = gateway.port
            let run = try await Peers.abacus("run", port: port, ["echo", "snake", "[]", "0"])
            #expect((run["started"] as? [String: Any])?["status"] as? String == "PENDING", "\(run)")
            let abacus = ["-H", "content-type: application/json", "http://127.0.0.1:PORT/api/v0/runPipeline", "--data"]
            var answer = try await Self.curl(
                ["--http2-prior-knowledge"] + abacus + [#"{"pipelineId":"upper"}"#], port: port)
            #expect(answer.status == 200, "\(answer.body)")
            answer = try await Self.curl(abacus + [#"{"pipelineId":"nope"}"#], port: port)
            #expect(answer.status == 404, "\(answer.body)")
            let described = try await Peers.abacus("describe_pipeline", port: port, ["echo"])
            #expect(described["pipeline_id"] as? String == "echo", "\(described)")

            let craftRun = try await Peers.craft("run_json", port: port, ["echo", #"{"prompt":"hi"}"#])
            #expect(craftRun["result"] != nil, "\(craftRun)")
            let craftEndpoint = try await Peers.craft(
                "trigger", port: port, ["upper", "EP-TOKEN", #"{"prompt":"hello"}"#, "true"])
            #expect(craftEndpoint["result"] != nil, "\(craftEndpoint)")

            let pipelines = "http://127.0.0.1:PORT/v1beta/namespaces/demo/pipelines/"
            #expect(try await Self.curl([pipelines + "echo"], port: port).status == 200)
            #expect(try await Self.curl([pipelines + "zzz"], port: port).status == 404)

            let (status, text) = try await Self.curl(["http://127.0.0.1:PORT/metrics"], port: port)
            #expect(status == 200)
            let scrape = Exposition(text)
            let expected: [String: Double] = [
                #"frontend="rest",operation="abacusRunPipeline",route="demo/*",mode="async",code="200""#: 2,
                #"frontend="rest",operation="abacusRunPipeline",route="demo/*",mode="async",code="404""#: 1,
                #"frontend="rest",operation="abacusDescribePipeline",route="demo/*",mode="none",code="200""#: 1,
                #"frontend="rest",operation="craftGetPipeline",route="demo/*",mode="none",code="200""#: 1,
                #"frontend="rest",operation="craftRunPipeline",route="demo/*",mode="async",code="200""#: 1,
                #"frontend="rest",operation="craftTriggerEndpoint",route="demo/*",mode="async",code="200""#: 1,
                #"frontend="rest",operation="getNamespacePipeline",route="demo/*",mode="none",code="200""#: 1,
                #"frontend="rest",operation="getNamespacePipeline",route="demo/*",mode="none",code="404""#: 1,
            ]
            for (labels, count) in expected {
                #expect(scrape.samples["trigger_gateway_requests_total{\(labels)}"] == count, "\(labels)\n\(text)")
            }
            for operation in ["abacusRunPipeline", "craftRunPipeline", "craftTriggerEndpoint", "getNamespacePipeline"] {
                let unrouted = scrape.samples.filter {
                    $0.key.hasPrefix("trigger_gateway_requests_total{")
                        && $0.key.contains(#"operation="\#(operation)""#)
                        && $0.key.contains(#"route="none""#)
                }
                #expect(unrouted.isEmpty, "\(operation) without its route: \(unrouted)")
            }
            #expect(try promtoolFindings(scrape.text) == "", "\(scrape.text)")
        }
    }
}
