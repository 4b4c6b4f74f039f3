import Backends
import Foundation
import GatewayApp
import GatewayTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TriggerModel
import WireCodecs

/// Pools of real `demo-runner` processes losing an endpoint, and pipelines failing on purpose: what Envoy and
/// nghttpx operators expect (issue 13).
@Suite("backend pools: dead endpoints, safe retries, pipeline failures")
struct PoolResilienceTests {
    static let transports = ["http", "grpc"]

    static func config(transport: String, ports: [Int], store: String = "") -> String {
        let endpoints = ports.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ")
        return """
            pools:
              - {name: runner, transport: \(transport), endpoints: [\(endpoints)], request_timeout: 20s}
            routes:
              - {namespace: demo, pipeline: "*", pool: runner}
            \(store)
            """
    }

    static func startRunner(_ transport: String, port: Int = 0) async throws -> TestProcess.Server {
        try await TestProcess.Server.start(
            TestProcess.productsDirectory.appendingPathComponent("demo-runner").path,
            ["--listen", "127.0.0.1:\(port)", "--transport", transport]
        )
    }

    /// Sockets a process holds: its listener plus one per accepted connection (Linux /proc).
    static func socketCount(_ pid: Int32) -> Int {
        let dir = "/proc/\(pid)/fd"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return fds.filter { fd in
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(fd)")
            return target?.hasPrefix("socket:") == true
        }.count
    }

    /// How long the endpoint killed in `deadEndpoint` stays down.
    static let outage = Duration.seconds(3)

    @Test(
        "one of two endpoints killed under 4 clients: at most one failed call per client, no failed async operation; back, it gets traffic again",
        .timeLimit(.minutes(1)),
        arguments: transports
    )
    func deadEndpoint(transport: String) async throws {
        let runners = try await RunnerPair(transport)
        defer { runners.kill() }
        let (a, b) = (runners.a, runners.b)
        let yaml = Self.config(transport: transport, ports: [a.port, b.port], store: "store: {retry_backoff: 100ms}")
        try await withTestGateway(yaml: yaml) { gateway in
            let stop = StopFlag()
            let body = ByteBuffer(string: #"{"data":[{"variable":{"ms":20}}]}"#)
            let failures = try await withThrowingTaskGroup(of: (calls: Int, failed: [String]).self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let client = try await gateway.client()
                        var failed: [String] = []
                        var calls = 0
                        while !stop.value.load(ordering: .relaxed), calls < 2000 {
                            calls += 1
                            let response = try await client.request(
                                "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger", headers: jsonHeaders,
                                body: body
                            )
                            if response.status != 200 { failed.append("\(response.status) \(response.bodyString)") }
                        }
                        await client.close()
                        return (calls, failed)
                    }
                }
                // Kill `a` once the clients' traffic reaches both endpoints (each holds a connection from the
                // gateway beside its listener), not after a fixed time that a loaded machine may not honour.
                let flowing = await eventually(within: .seconds(10)) {
                    Self.socketCount(a.pid) >= 2 && Self.socketCount(b.pid) >= 2
                }
                #expect(flowing, "the clients' calls did not reach both endpoints")
                a.signal(SIGKILL)
                _ = await a.stop()
                // Async work submitted while the endpoint is down.
                let asyncClient = try await AsyncClient.connect(port: gateway.port)
                var names: [String] = []
                for i in 0..<6 {
                    let (status, json) = try await asyncClient.trigger("echo", ["i": i])
                    #expect(status == 200, "\(json)")
                    if let name = json.operationName { names.append(name) }
                }
                // The outage's length is part of the scenario (clients keep calling through it, the async
                // operations above wait it out), not a synchronisation.
                try await Task.sleep(for: Self.outage)
                let back = try await runners.reviveA()
                // Back: new calls reach it after the ejection backoff (at most 5 s), with no health check.
                let reached = await eventually(within: .seconds(12), interval: .milliseconds(100)) {
                    Self.socketCount(back.pid) >= 2
                }
                #expect(reached, "the revived endpoint got no connection")
                stop.value.store(true, ordering: .relaxed)
                for name in names {
                    let done = try await asyncClient.waitDone(name)
                    #expect(done.metadataState == "succeeded", "\(done)")
                }
                await asyncClient.client.close()
                var all: [(calls: Int, failed: [String])] = []
                for try await client in group { all.append(client) }
                return all
            }
            for client in failures {
                #expect(client.failed.count <= 1, "\(client.failed)")
                #expect(client.calls >= 10, "the client kept calling through the outage")
            }
        }
    }

    @Test(
        "a refused endpoint costs no call: each sync call and each stream goes to the live one",
        .timeLimit(.minutes(1)),
        arguments: transports
    )
    func refusedEndpoint(transport: String) async throws {
        let live = try await Self.startRunner(transport)
        let dead = try await Self.startRunner(transport)
        let deadPort = dead.port
        await dead.stop(signal: SIGKILL)
        defer { live.signal(SIGKILL) }
        try await withTestGateway(yaml: Self.config(transport: transport, ports: [deadPort, live.port])) { gateway in
            let client = try await gateway.client()
            for _ in 0..<20 {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"k":1}}]}"#)
                )
                #expect(response.status == 200, "\(response.bodyString)")
                let stream = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/tokens/trigger-stream",
                    headers: jsonHeaders + [("accept", "text/event-stream")],
                    body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"a b","delay_ms":1}}]}"#)
                )
                #expect(!stream.bodyString.contains("PIPELINE_ERROR_UPDATED"), "\(stream.bodyString)")
                #expect(stream.bodyString.contains("\"text\":\"a b\""), "\(stream.bodyString)")
            }
            // What happened is on /metrics: the dead endpoint was ejected, the calls that found it retried.
            let metrics = try await client.request("GET", "/metrics").bodyString
            func value(_ prefix: String) -> Int? {
                let line = metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }
                // Gauges are written as floating point ("1.0"), counters as integers.
                return line.flatMap { Double($0.split(separator: " ").last!) }.map { Int($0) }
            }
            // Per endpoint: the ejections and the retries away from it are the dead endpoint's.
            let deadLabels = #"{pool="runner",endpoint="127.0.0.1:\#(deadPort)"}"#
            let ejections = value("trigger_gateway_pool_ejections_total" + deadLabels) ?? 0
            let retries = value("trigger_gateway_pool_retries_total" + deadLabels) ?? 0
            #expect(ejections >= 1 && retries >= 1, "\(metrics)")
            let liveLine = #"trigger_gateway_pool_endpoint_available{pool="runner",endpoint="127.0.0.1:\#(live.port)"}"#
            #expect(value(liveLine) == 1, "\(metrics)")
            #expect(value(#"trigger_gateway_pool_in_flight{pool="runner"}"#) != nil, "\(metrics)")
            await client.close()
        }
    }

    @Test("retry.max_tries: 1 turns retries off: with detection off too, calls that pick the refused endpoint fail")
    func retriesOff() async throws {
        let live = try await Self.startRunner("http")
        let dead = try await Self.startRunner("http")
        let deadPort = dead.port
        await dead.stop(signal: SIGKILL)
        defer { live.signal(SIGKILL) }
        let yaml = """
            pools:
              - name: runner
                transport: http
                endpoints: ["127.0.0.1:\(deadPort)", "127.0.0.1:\(live.port)"]
                outlier_detection: {consecutive_failures: 0}
                retry: {max_tries: 1}
            routes:
              - {namespace: demo, pipeline: "*", pool: runner}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            var statuses: [Int] = []
            for _ in 0..<20 {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"k":1}}]}"#)
                )
                statuses.append(response.status)
            }
            #expect(statuses.contains(200) && statuses.contains { $0 >= 502 }, "\(statuses)")
            let metrics = try await client.request("GET", "/metrics").bodyString
            for port in [deadPort, live.port] {
                let line = #"trigger_gateway_pool_retries_total{pool="runner",endpoint="127.0.0.1:\#(port)"} 0"#
                #expect(metrics.contains(line), "\(metrics)")
            }
            await client.close()
        }
    }

    /// (code input, HTTP status, google.rpc code)
    static let failCases: [(String, Int, Int)] = [
        ("FAILED_PRECONDITION", 400, 9), ("5", 404, 5), ("UNAVAILABLE", 503, 14),
    ]

    @Test(
        "fail with a chosen code: that code at REST sync and stream clients and gRPC clients, async attempts 1",
        .timeLimit(.minutes(1)),
        arguments: transports
    )
    func failWithCode(transport: String) async throws {
        let runner = try await Self.startRunner(transport)
        defer { runner.signal(SIGKILL) }
        let yaml = Self.config(
            transport: transport,
            ports: [runner.port],
            store: "store: {max_attempts: 3, retry_backoff: 20ms}"
        )
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            for (code, status, rpc) in Self.failCases {
                let body = try jsonBody(["data": [["variable": ["message": "no \(code)", "code": code]]]])
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/fail/trigger", headers: jsonHeaders, body: body
                )
                #expect(response.status == status, "\(response.bodyString)")
                #expect(try json(response.body)["code"] as? Int == rpc)
                #expect(try json(response.body)["message"] as? String == "no \(code)")

                let sse = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/fail/trigger-stream",
                    headers: jsonHeaders + [("accept", "text/event-stream")], body: body
                )
                #expect(sse.bodyString.contains("PIPELINE_ERROR_UPDATED"), "\(sse.bodyString)")
                #expect(sse.bodyString.contains("\"code\":\(rpc)"), "\(sse.bodyString)")
            }
            await client.close()

            let asyncClient = try await AsyncClient.connect(port: gateway.port)
            let (_, accepted) = try await asyncClient.trigger("fail", ["message": "async no", "code": "ABORTED"])
            let done = try await asyncClient.waitDone(try #require(accepted.operationName))
            #expect(done.metadataState == "failed", "\(done)")
            let error = try #require(done["error"] as? [String: Any])
            #expect(error["code"] as? Int == 10)
            #expect(error["message"] as? String == "async no")
            #expect((done["metadata"] as? [String: Any])?["attempts"] as? Int == 1)
            await asyncClient.client.close()

            let answer = try await Peers.grpcio(
                "trigger", port: gateway.port, ["fail", #"[{"message":"grpc no","code":"OUT_OF_RANGE"}]"#]
            )
            #expect(answer["code"] as? String == "OUT_OF_RANGE", "\(answer)")
        }
    }

    static let tightPool = """
        pools:
          - {name: demo, transport: inprocess, max_concurrency: 1, max_queue: 0}
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}
        store: {max_attempts: 3, retry_backoff: 20ms}
        """

    @Test(
        "a stream holds its slot: over the limit, SSE gets 503 + Retry-After and gRPC UNAVAILABLE before any byte",
        .timeLimit(.minutes(1))
    )
    func streamHoldsSlot() async throws {
        try await withTestGateway(yaml: Self.tightPool) { gateway in
            let long = try await gateway.client()
            let words = (0..<30).map { "w\($0)" }.joined(separator: " ")
            let first = Task {
                try await long.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/tokens/trigger-stream",
                    headers: jsonHeaders + [("accept", "text/event-stream")],
                    body: try jsonBody(["data": [["variable": ["prompt": words, "delay_ms": 100]]]])
                )
            }
            // The stream has its slot once the pool counts it (the refusals below depend on that).
            let holding = await eventually(within: .seconds(10)) { gateway.app.pools["demo"]?.slotsInUse == 1 }
            #expect(holding, "the first stream never took the pool's slot")
            let client = try await gateway.client()
            let refused = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/tokens/trigger-stream",
                headers: jsonHeaders + [("accept", "text/event-stream")],
                body: try jsonBody(["data": [["variable": ["prompt": "a b"]]]])
            )
            #expect(refused.status == 503, "\(refused.bodyString)")
            #expect(refused.header("retry-after") == "1")
            // UNAVAILABLE (14) as Envoy's pool overflow: the body's code agrees with its 503 (review 18, F9).
            #expect(try json(refused.body)["code"] as? Int == 14)
            let sync = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["k": 1]]]])
            )
            #expect(sync.status == 503, "a sync call finds the slot taken by the stream too")
            let answer = try await Peers.grpcio("stream", port: gateway.port, ["a b c"])
            #expect(answer["code"] as? String == "UNAVAILABLE", "\(answer)")

            let streamed = try await first.value
            #expect(streamed.status == 200)
            #expect(streamed.bodyString.contains("w29"))
            // The stream ended: its slot is free again.
            let after = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["k": 1]]]])
            )
            #expect(after.status == 200, "\(after.bodyString)")
            await client.close()
            await long.close()
        }
    }

    @Test(
        "async work waits for capacity: 5 sleeps on a pool of 1 with no queue all succeed after one attempt",
        .timeLimit(.minutes(1))
    )
    func asyncWaitsForCapacity() async throws {
        try await withTestGateway(yaml: Self.tightPool) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            var names: [String] = []
            for _ in 0..<5 {
                let (status, json) = try await client.trigger("sleep", ["ms": 200])
                #expect(status == 200, "\(json)")
                names.append(try #require(json.operationName))
            }
            var runs: [(start: Date, finish: Date)] = []
            for name in names {
                let done = try await client.waitDone(name)
                #expect(done.metadataState == "succeeded", "\(done)")
                let metadata = done["metadata"] as? [String: Any]
                #expect(metadata?["attempts"] as? Int == 1, "\(done)")
                let start = try #require(Self.timestamp(metadata?["startTime"]), "\(done)")
                let finish = try #require(Self.timestamp(metadata?["finishTime"]), "\(done)")
                runs.append((start, finish))
            }
            // Claimed only when the pool had a slot (item 6): the runs follow one another, each starting after
            // the previous one finished, rather than all being claimed (and started) at once and waiting here.
            runs.sort { $0.start < $1.start }
            for (previous, next) in zip(runs, runs.dropFirst()) {
                #expect(next.start >= previous.finish, "\(runs)")
            }
            await client.client.close()
        }
    }

    /// The health-check interval of ``checkedTransport(_:ports:healthCheckClock:)``.
    static let probeInterval = Duration.seconds(1)

    /// The real clock, counting the health checker's waits: it waits once after recording each round, so
    /// `rounds` is the number of probe rounds whose results the balancer has.
    final class RoundCountingClock: Clock, Sendable {
        typealias Instant = ContinuousClock.Instant
        private let base = ContinuousClock()
        private let waits = Atomic<Int>(0)
        var rounds: Int { waits.load(ordering: .acquiring) }
        var now: Instant { base.now }
        var minimumResolution: Duration { base.minimumResolution }
        func sleep(until deadline: Instant, tolerance: Duration?) async throws {
            waits.add(1, ordering: .releasing)
            try await base.sleep(until: deadline, tolerance: tolerance)
        }
    }

    /// A transport of the pool's kind over `ports`, with outlier detection off (so only the health check decides)
    /// and a fast health check waiting on `healthCheckClock`.
    static func checkedTransport(
        _ transport: String,
        ports: [Int],
        healthCheckClock: RoundCountingClock = RoundCountingClock()
    ) -> (any TriggerRunner, EndpointBalancer, () -> Void) {
        let configuration = BackendPoolConfiguration(
            name: "checked",
            transport: transport == "grpc" ? .grpc : .http,
            endpoints: ports.map { .init(host: "127.0.0.1", port: $0) },
            connectTimeout: .milliseconds(500),
            outlierDetection: OutlierDetection(
                consecutiveFailures: 0,
                baseEjection: .seconds(1),
                maxEjection: .seconds(5),
                maxEjectedPercent: 50
            ),
            healthCheck: HealthCheckConfiguration(
                interval: TimeAmount(probeInterval),
                // Generous (the interval, as long as `check-config` allows): a live runner on a loaded machine
                // may answer late, and with a threshold of 1 one late answer (300 ms was too short) took it out.
                // A killed runner refuses the connection at once, so this does not slow the "taken out" step.
                timeout: TimeAmount(probeInterval),
                healthyThreshold: 1,
                unhealthyThreshold: 1
            )
        )
        let group = MultiThreadedEventLoopGroup.singleton
        if transport == "grpc" {
            let grpc = GRPCBackendTransport(
                configuration: configuration, group: group, healthCheckClock: healthCheckClock)
            return (grpc, grpc.balancer, { grpc.close() })
        }
        let http = HTTPBackendTransport(
            configuration: configuration, group: group, codecLimits: .defaults, healthCheckClock: healthCheckClock)
        return (http, http.balancer, { http.retire() })
    }

    /// An operation's RFC 3339 timestamp (`createTime`, `startTime`, `finishTime`), to the millisecond.
    static func timestamp(_ value: Any?) -> Date? {
        guard let text = value as? String else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    @Test(
        "active health checks: demo-runner answers them; a killed endpoint is taken out, and back within one interval",
        .timeLimit(.minutes(2)),
        arguments: transports
    )
    func activeHealthCheck(transport: String) async throws {
        let runners = try await RunnerPair(transport)
        defer { runners.kill() }
        let (a, b) = (runners.a, runners.b)
        let rounds = RoundCountingClock()
        let (runner, balancer, close) = Self.checkedTransport(
            transport, ports: [a.port, b.port], healthCheckClock: rounds)
        defer { close() }
        let request = TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "echo"),
            inputs: [TriggerInput(variables: ["k": .number(1)])]
        )
        // Both answer their probes: after three recorded rounds (threshold 1: one failed probe would take it
        // out) both are still in. Counted on the checker's clock, not slept, so a loaded machine that runs the
        // rounds late still checks three of them.
        let probed = await eventually(within: .seconds(30)) { rounds.rounds >= 3 }
        #expect(probed, "\(rounds.rounds) health-check rounds")
        #expect(balancer.isAvailable(0) && balancer.isAvailable(1))

        a.signal(SIGKILL)
        _ = await a.stop()
        let out = await eventually(within: .seconds(20)) { !balancer.isAvailable(0) }
        #expect(out, "the dead endpoint stays in")
        for _ in 0..<10 { #expect(balancer.pick() == 1) }
        for _ in 0..<5 { _ = try await runner.run(request) }

        _ = try await runners.reviveA()
        let revivedAt = rounds.rounds
        // Back at the first round that starts after the revival: counted in rounds on the checker's clock, not in
        // wall time, so a loaded machine that runs rounds late still checks it. The round in flight at the revival
        // may have probed before it (+1); the observation may trail the recording (+1, and +1 more of slack).
        let back = await eventually(within: .seconds(20)) { balancer.isAvailable(0) }
        #expect(back, "the revived endpoint stays out")
        #expect(rounds.rounds - revivedAt <= 4, "back after \(rounds.rounds - revivedAt) rounds")
        #expect(try await runner.run(request).outputs.first?["k"] == .number(1))
    }
}

/// Two `demo-runner` endpoints, `a` and `b`, for a test that kills `a` and brings it back on its port
/// (``reviveA()``); ``kill()`` ends all of them.
final class RunnerPair: Sendable {
    let transport: String
    let a: TestProcess.Server
    let b: TestProcess.Server
    private let revived = Mutex<TestProcess.Server?>(nil)

    init(_ transport: String) async throws {
        self.transport = transport
        a = try await PoolResilienceTests.startRunner(transport)
        b = try await PoolResilienceTests.startRunner(transport)
    }

    /// `a` started again, listening on the port it had.
    func reviveA() async throws -> TestProcess.Server {
        let server = try await PoolResilienceTests.startRunner(transport, port: a.port)
        revived.withLock { $0 = server }
        return server
    }

    func kill() {
        a.signal(SIGKILL)
        b.signal(SIGKILL)
        revived.withLock { $0?.signal(SIGKILL) }
    }
}

/// Tells the client loops of a test to end.
final class StopFlag: Sendable {
    let value = Atomic(false)
}
