import Backends
import Foundation
import GatewayApp
import GatewayConfig
import GatewayServer
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// Config reload (issue 9 item 2): what SIGHUP swaps, for new requests only; what it keeps.
@Suite("Config reload in process: routes, pools, tokens and what needs a restart")
struct ReloadTests {
    static let body = #"{"data":[{"variable":{"prompt":"hello"}}]}"#

    static func trigger(_ client: TestHTTPClient, _ ns: String, headers: [(String, String)] = []) async throws
        -> TestHTTPClient.Response
    {
        try await client.request(
            "POST", "/v1beta/namespaces/\(ns)/pipelines/upper/trigger",
            headers: jsonHeaders + headers, body: ByteBuffer(string: body)
        )
    }

    @Test("a route added by a reload answers at once and a removed one answers 404, on the same connection")
    func routesSwap() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            #expect(try await Self.trigger(client, "demo").status == 200)
            #expect(try await Self.trigger(client, "other").status == 404)
            try gateway.reload(
                yaml: """
                    pools: [{name: local, transport: inprocess}]
                    routes: [{namespace: other, pipeline: "*", pool: local}]
                    """)
            let added = try await Self.trigger(client, "other")
            #expect(added.status == 200, "\(added.bodyString)")
            #expect(try outputs(added.body).first?["prompt"] as? String == "HELLO")
            #expect(try await Self.trigger(client, "demo").status == 404)
            await client.close()
        }
    }

    @Test("a call in flight finishes on the pool it started with after a reload removed that pool")
    func inFlightKeepsItsPool() async throws {
        let runner = GatedRunner()
        try await withHTTPBackend(runner: runner) { port in
            let yaml = """
                pools: [{name: web, transport: http, endpoints: ["127.0.0.1:\(port)"]}]
                routes: [{namespace: demo, pipeline: "*", pool: web}]
                """
            try await withTestGateway(yaml: yaml) { gateway in
                let inFlight = Task {
                    let client = try await gateway.client()
                    defer { Task { await client.close() } }
                    return try await Self.trigger(client, "demo")
                }
                await runner.waitForStarts(1)
                let report = try gateway.reload(
                    yaml: """
                        pools: [{name: local, transport: inprocess}]
                        routes: [{namespace: other, pipeline: "*", pool: local}]
                        """)
                #expect(report.poolsRetired == ["web"])
                #expect(report.poolsAdded == ["local"])
                runner.open()
                let response = try await inFlight.value
                #expect(response.status == 200, "\(response.bodyString)")
                #expect(try outputs(response.body).first?["prompt"] as? String == "hello")
                let client = try await gateway.client()
                #expect(try await Self.trigger(client, "demo").status == 404)
                await client.close()
            }
        }
    }

    @Test("a pool whose settings did not change carries over; a changed one is replaced")
    func poolsCarryOver() async throws {
        let yaml = """
            pools: [{name: a, transport: inprocess}, {name: b, transport: inprocess}]
            routes: [{namespace: demo, pipeline: "*", pool: a}]
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let before = gateway.app.pools
            let report = try gateway.reload(
                yaml: """
                    pools: [{name: a, transport: inprocess}, {name: b, transport: inprocess, request_timeout: 5s}]
                    routes: [{namespace: demo, pipeline: "*", pool: a}, {namespace: x, pipeline: "*", pool: b}]
                    """)
            let after = gateway.app.pools
            #expect(after["a"] === before["a"])
            #expect(after["b"] !== before["b"])
            #expect(report.poolsRetired == ["b"])
            #expect(report.restartRequired.isEmpty)
        }
    }

    @Test("tokens added by a reload are required from the next request on")
    func tokensSwap() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            #expect(try await Self.trigger(client, "demo").status == 200)
            try gateway.reload(
                yaml: """
                    tokens: [{name: alice, token: s3cret}]
                    pools: [{name: demo, transport: inprocess}]
                    routes: [{namespace: demo, pipeline: "*", pool: demo}]
                    """)
            #expect(try await Self.trigger(client, "demo").status == 401)
            let authorized = try await Self.trigger(client, "demo", headers: [("authorization", "Bearer s3cret")])
            #expect(authorized.status == 200, "\(authorized.bodyString)")
            await client.close()
        }
    }

    @Test("limits change for new requests: a body at the new cap passes, one byte over is refused")
    func limitsSwap() async throws {
        try await withTestGateway { gateway in
            try gateway.reload(
                yaml: """
                    limits: {max_body_bytes: 1024}
                    pools: [{name: demo, transport: inprocess}]
                    routes: [{namespace: demo, pipeline: "*", pool: demo}]
                    """)
            let client = try await gateway.client()
            let prefix = #"{"data":[{"variable":{"prompt":""#
            let suffix = #""}}]}"#
            for (size, status) in [(1024, 200), (1025, 413)] {
                let filler = String(repeating: "a", count: size - prefix.utf8.count - suffix.utf8.count)
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                    headers: jsonHeaders, body: ByteBuffer(string: prefix + filler + suffix)
                )
                #expect(response.status == status, "\(size) bytes: \(response.bodyString)")
                if status != 200 { break }
            }
            await client.close()
        }
    }

    /// The start-up warning that the pools' worst case passes the backend connection budget, at a reload too
    /// (`GatewayApp.warnIfPoolsOutgrowBudget`): a reload that adds pools past it warns, one at it does not.
    @Test(
        "a reload whose pools can need one connection more than the backend budget warns as the start does; at the budget it does not"
    )
    func reloadWarnsPastConnectionBudget() async throws {
        let log = RecordedLog()
        // One loop: an http pool of one endpoint keeps at most 2 lists × max_concurrency connections, one more
        // with a health check (`worstCaseConnections`).
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let demo = """
            pools: [{name: demo, transport: inprocess}]
            routes: [{namespace: demo, pipeline: "*", pool: demo}]
            """
        func warnings() -> [RecordedLog.Line] {
            log.lines.filter { $0.message.hasPrefix("the backend pools can need more connections") }
        }
        try await withTestGateway(yaml: demo, eventLoopGroup: group, log: log) { gateway in
            let limit = BackendConnectionBudget.shared.limit
            #expect(warnings().isEmpty, "at start")
            func yaml(needs: Int) -> String {
                let check = needs % 2 == 1 ? ", health_check: {}" : ""
                return """
                    pools:
                      - {name: demo, transport: inprocess}
                      - {name: big, transport: http, endpoints: ["127.0.0.1:1"], max_concurrency: \(needs / 2)\(check)}
                    routes: [{namespace: demo, pipeline: "*", pool: demo}]
                    """
            }
            try gateway.reload(yaml: yaml(needs: limit))
            #expect(warnings().isEmpty, "at the budget (\(limit))")
            try gateway.reload(yaml: yaml(needs: limit + 1))
            #expect(warnings().count == 1, "\(log.lines)")
            #expect(warnings().first?.metadata["backend.connections.worst_case"] == "\(limit + 1)")
            #expect(warnings().first?.metadata["backend.connections.limit"] == "\(limit)")
        }
        try await group.shutdownGracefully()
    }

    @Test("listen, listen_reuse_port, data_dir and store changes are reported as restart required and not applied")
    func restartRequired() async throws {
        try await withTestGateway { gateway in
            var new = gateway.configuration
            new.listen = .init(host: "127.0.0.1", port: 1)
            new.dataDir = "/nonexistent"
            new.store.workers += 1
            new.listenReusePort = true
            let report = try gateway.app.reload(to: new)
            #expect(report.restartRequired == ["listen", "listen_reuse_port", "data_dir", "store"])
            #expect(gateway.app.configuration.listenReusePort == false)
            #expect(gateway.app.configuration.listen == gateway.configuration.listen)
            #expect(gateway.app.configuration.dataDir == gateway.configuration.dataDir)
            let client = try await gateway.client()
            #expect(try await Self.trigger(client, "demo").status == 200)
            await client.close()
        }
    }

    @Test(
        "an inherited socket's address is the listen in force: the file's listen gets a warning, the policy checks the socket"
    )
    func inheritedListen() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-inherit-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let socket = ListenAddress(host: "127.0.0.1", port: 8443)
        // A public listen without tokens is refused on its own; the socket (loopback) is what serves.
        try "listen: 0.0.0.0:8080\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try ConfigFile.load(path: file.path) }
        let loaded = try ConfigFile.load(path: file.path, inheritedListen: socket).configuration
        #expect(loaded.listen == socket)
        #expect(loaded.warnings.map(\.path) == ["listen"])
        #expect(loaded.warnings.first?.message.contains("serving on the inherited socket 127.0.0.1:8443") == true)
        // The same address, or no listen in the file (the default is no choice): no warning.
        try "listen: 127.0.0.1:8443\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try ConfigFile.load(path: file.path, inheritedListen: socket).configuration.warnings.isEmpty)
        try "{}\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try ConfigFile.load(path: file.path, inheritedListen: socket).configuration.warnings.isEmpty)
        // --listen given and different: warned the same way.
        let overridden = try ConfigFile.load(
            path: file.path, listen: .init(host: "127.0.0.1", port: 1), inheritedListen: socket
        ).configuration
        #expect(overridden.warnings.map(\.path) == ["listen"])
        // A public inherited socket without tokens is refused: the policy reads the address that serves.
        let error = #expect(throws: ConfigError.self) {
            try ConfigFile.load(path: file.path, inheritedListen: .init(host: "0.0.0.0", port: 8443))
        }
        #expect(error?.description.contains("refusing to listen on 0.0.0.0:8443") == true)
    }

    @Test("reloading from a file: a broken file is refused and the old config stays; /metrics shows both outcomes")
    func reloadFromFile() async throws {
        try await withTestGateway { gateway in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tg-reload-\(UUID().uuidString).yaml")
            defer { try? FileManager.default.removeItem(at: file) }
            let client = try await gateway.client()

            try "routes: [{namespace: demo, pool: nope}]\n".write(to: file, atomically: true, encoding: .utf8)
            #expect(gateway.app.reload(fromFile: file.path, listen: gateway.configuration.listen) == .refused)
            #expect(try await Self.trigger(client, "demo").status == 200, "the running config stays")

            let good = """
                pools: [{name: local, transport: inprocess}]
                routes: [{namespace: other, pipeline: "*", pool: local}]

                """
            try good.write(to: file, atomically: true, encoding: .utf8)
            #expect(
                gateway.app.reload(
                    fromFile: file.path, listen: gateway.configuration.listen, dataDir: gateway.configuration.dataDir)
                    == .applied
            )
            #expect(try await Self.trigger(client, "other").status == 200)

            let metrics = try await client.request("GET", "/metrics")
            let text = metrics.bodyString
            #expect(text.contains(#"trigger_gateway_config_reloads_total{outcome="applied"} 1"#), "\(text)")
            #expect(text.contains(#"trigger_gateway_config_reloads_total{outcome="refused"} 1"#), "\(text)")
            #expect(text.contains("trigger_gateway_config_last_reload_successful 1"), "\(text)")
            let digest = "sha256:" + (try sha256Hex(Array(good.utf8)))
            #expect(text.contains(#"trigger_gateway_config_info{digest="\#(digest)"} 1"#), "\(text)")
            await client.close()
        }
    }

    @Test("a webhook added to a route by a reload is posted for operations that finish afterwards")
    func webhooksSwap() async throws {
        let receiver = try await WebhookReceiver.start(failFirst: 0)
        defer { Task { await receiver.stop() } }
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (_, before) = try await client.trigger("upper", ["w": "before"])
            _ = try await client.waitDone(try #require(before.operationName))
            try gateway.reload(
                yaml: """
                    pools: [{name: demo, transport: inprocess}]
                    routes:
                      - namespace: demo
                        pipeline: "*"
                        pool: demo
                        webhook: {url: "http://127.0.0.1:\(receiver.port)/hooks", secret: s3cret, backoff: 50ms}
                    """)
            let (_, after) = try await client.trigger("upper", ["w": "after"])
            let name = try #require(after.operationName)
            _ = try await client.waitDone(name)
            _ = await eventually(within: .seconds(10)) { !receiver.requests.isEmpty }
            let requests = receiver.requests
            #expect(requests.count == 1, "only the operation finished after the reload is posted")
            let delivered = try #require(requests.first)
            let operation = try #require(try json(ByteBuffer(bytes: delivered.body))["operation"] as? [String: Any])
            #expect(operation["name"] as? String == name)
        }
    }

    @Test("a request timeout lowered by a reload applies to the next request")
    func timeoutsSwap() async throws {
        try await withTestGateway { gateway in
            try gateway.reload(
                yaml: """
                    timeouts: {request: 300ms}
                    pools: [{name: demo, transport: inprocess}]
                    routes: [{namespace: demo, pipeline: "*", pool: demo}]
                    """)
            let client = try await gateway.client()
            let slow = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{"ms":3000}}]}"#)
            )
            #expect(slow.status == 504, "\(slow.bodyString)")
            await client.close()
        }
    }
}
