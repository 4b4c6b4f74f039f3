import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// Security review 60, I4, on the real executable over real sockets: the admin listener (`admin:`) serves
/// `/metrics` and the probes on a port of its own, with its own connection cap; `metrics_on_serving_port: false`
/// takes `/metrics` off the serving port; its address is checked, reported on stdout, kept until a restart.
@Suite("the admin listener: metrics and probes on their own port", .serialized)
struct AdminListenerTests {
    static let routes = "pools: [{name: local, transport: inprocess}]\nroutes: [{namespace: demo, pool: local}]\n"

    /// Runs the gateway with `yaml` (plus the in-process routes) as its file.
    static func withAdminGateway<T>(
        _ yaml: String, arguments: [String] = [], _ body: (TestProcess.Server, URL) async throws -> T
    ) async throws -> T {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-admin-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try (routes + yaml).write(to: file, atomically: true, encoding: .utf8)
        return try await ProcessTests.withGatewayProcess(["--config", file.path] + arguments) { server in
            try await body(server, file)
        }
    }

    static func requestsTotal(_ exposition: Exposition) -> Double {
        exposition.samples.filter { $0.key.hasPrefix("trigger_gateway_requests_total{") }.values.reduce(0, +)
    }

    @Test(
        "GET /metrics, /healthz, /readyz (?component=) and Instill's probes on the admin port; other paths 404; not in requests_total"
    )
    func metricsAndProbesOnTheAdminPort() async throws {
        try await Self.withAdminGateway("admin: {listen: \"127.0.0.1:0\"}\n") { server, _ in
            let adminPort = try #require(server.adminPort, "\(server.readyLine)")
            #expect(adminPort != server.port)
            let admin = try await TestHTTPClient.connect(port: adminPort)
            // One keep-alive connection for every request below.
            let metrics = try await admin.request("GET", "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
            let exposition = Exposition(metrics.bodyString)
            #expect(exposition.samples.keys.contains { $0.hasPrefix("trigger_gateway_build_info{") })
            #expect(try promtoolFindings(metrics.bodyString) == "", "\(metrics.bodyString)")
            #expect(try await admin.request("GET", "/healthz").status == 200)
            let ready = try await admin.request("GET", "/readyz")
            #expect(ready.status == 200)
            #expect(ready.bodyString.hasPrefix(#"{"status":"SERVING","components":{"#), "\(ready.bodyString)")
            #expect(try await admin.request("GET", "/readyz?component=gateway").status == 200)
            let unknown = try await admin.request("GET", "/readyz?component=nope")
            #expect(unknown.status == 404, "\(unknown.bodyString)")
            #expect(try await admin.request("GET", "/v1beta/__liveness").status == 200)
            #expect(try await admin.request("GET", "/v1beta/__readiness").status == 200)
            #expect(try await admin.request("HEAD", "/metrics").status == 200)
            // Nothing else: a trigger, the OpenAPI document, the operations are unknown paths here.
            for (method, path) in [
                ("POST", "/v1beta/namespaces/demo/pipelines/echo/trigger"), ("GET", "/openapi.json"),
                ("GET", "/v1beta/operations"), ("GET", "/"), ("GET", "/metricsx"),
            ] {
                let answer = try await admin.request(
                    method, path, headers: jsonHeaders, body: ByteBuffer(string: #"{"data":[]}"#))
                #expect(answer.status == 404, "\(method) \(path): \(answer.status) \(answer.bodyString)")
                #expect(answer.bodyString.contains("the admin listener serves /metrics"), "\(answer.bodyString)")
            }
            // A method the route does not take: 405 with Allow, as on the serving port.
            let post = try await admin.request("POST", "/metrics")
            #expect(post.status == 405)
            #expect(post.header("allow") == "GET, HEAD")
            // The serving port still serves /metrics (metrics_on_serving_port defaults to true), and its request
            // counters saw none of the admin port's requests.
            let serving = try await TestHTTPClient.connect(port: server.port)
            let servingMetrics = try await serving.request("GET", "/metrics")
            #expect(servingMetrics.status == 200)
            #expect(Self.requestsTotal(Exposition(servingMetrics.bodyString)) == 0, "\(servingMetrics.bodyString)")
            let after = Exposition(try await admin.request("GET", "/metrics").bodyString)
            #expect(Self.requestsTotal(after) == 1, "the serving port's scrape alone")
            // The admin port's connection is in no serving connection gauge: the serving scrape's alone is open.
            #expect(after.samples[#"trigger_gateway_connections_open{protocol="http1",tls="false"}"#] == 1)
            await serving.close()
            await admin.close()
            // Its requests are in the access log, with the admin port's peer.
            #expect(await server.logOccurrences(of: "path=/readyz", timeout: .seconds(5)) >= 1, "\(server.logged)")
            // Graceful stop: the admin listener closes with the rest.
            #expect(await server.stopAndReadLog())
            #expect(server.logged.contains("msg=\"admin listener stopped\""), "\(server.logged)")
            #expect(server.logged.contains("msg=\"admin listening\""), "\(server.logged)")
        }
    }

    @Test(
        "metrics_on_serving_port: false: the serving port's /metrics is 404 (HTTP/1.1 and h2c, any method); the admin port serves it"
    )
    func metricsOffTheServingPort() async throws {
        try await Self.withAdminGateway(
            "admin: {listen: \"127.0.0.1:0\", metrics_on_serving_port: false}\n"
        ) { server, _ in
            let adminPort = try #require(server.adminPort)
            let serving = try await TestHTTPClient.connect(port: server.port)
            for method in ["GET", "HEAD", "POST"] {
                let answer = try await serving.request(method, "/metrics")
                #expect(answer.status == 404, "\(method): \(answer.status)")
                if method != "HEAD" {
                    #expect(answer.bodyString.contains("no endpoint at \(method) /metrics"), "\(answer.bodyString)")
                }
            }
            // The probes stay on the serving port.
            #expect(try await serving.request("GET", "/healthz").status == 200)
            #expect(try await serving.request("GET", "/readyz").status == 200)
            await serving.close()
            // REST over h2c: the same 404, in HTTP/2.
            let h2 = try await H2TestClient.connect(port: server.port)
            let stream = try await h2.request(
                [(":method", "GET"), (":scheme", "http"), (":authority", "gw"), (":path", "/metrics")], body: [])
            let seen = try await h2.wait(timeout: .seconds(5)) { $0.streams[stream]?.endStream == true }
            #expect(seen.streams[stream]?.status == "404")
            await h2.close()
            let admin = try await TestHTTPClient.connect(port: adminPort)
            let metrics = try await admin.request("GET", "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.bodyString.contains("trigger_gateway_requests_total"))
            await admin.close()
        }
    }

    @Test("with limits.max_connections held by clients, the admin port still answers /readyz")
    func adminAnswersWhileServingCapIsFull() async throws {
        try await Self.withAdminGateway(
            "limits: {max_connections: 2}\nadmin: {listen: \"127.0.0.1:0\"}\n"
        ) { server, _ in
            let adminPort = try #require(server.adminPort)
            // Two clients hold the serving port's two slots (each answered: the gateway took them).
            var held: [TestHTTPClient] = []
            for _ in 0..<2 {
                let client = try await TestHTTPClient.connect(port: server.port)
                #expect(try await client.request("GET", "/healthz").status == 200)
                held.append(client)
            }
            // A third on the serving port is closed at accept.
            let over = try await SlowSocket.connect(port: server.port)
            over.send("GET /readyz HTTP/1.1\r\nHost: gw\r\n\r\n")
            let refused = try await over.waitForClose(timeout: .seconds(5), stopAfter: "\r\n\r\n")
            #expect(refused.closedByServer && refused.received.isEmpty, "\(refused.text)")
            // The admin port is not under that cap.
            let admin = try await TestHTTPClient.connect(port: adminPort)
            let ready = try await admin.request("GET", "/readyz")
            #expect(ready.status == 200, "\(ready.bodyString)")
            let metrics = Exposition(try await admin.request("GET", "/metrics").bodyString)
            #expect(metrics.samples[#"trigger_gateway_connections_rejected_total{reason="max_connections"}"#] == 1)
            #expect(metrics.samples["trigger_gateway_connections_admitted"] == 2)
            await admin.close()
            for client in held { await client.close() }
        }
    }

    /// `admin.max_connections: 2`: with one held, the second is served (the edge); with two held, the third is
    /// closed at once (one past it), and logged.
    @Test(
        "admin connections up to admin.max_connections are served; one more is closed at once",
        arguments: [(1, true), (2, false)])
    func adminConnectionCap(held count: Int, served: Bool) async throws {
        try await Self.withAdminGateway("admin: {listen: \"127.0.0.1:0\", max_connections: 2}\n") { server, _ in
            let adminPort = try #require(server.adminPort)
            var held: [TestHTTPClient] = []
            for _ in 0..<count {
                let client = try await TestHTTPClient.connect(port: adminPort)
                #expect(try await client.request("GET", "/healthz").status == 200)
                held.append(client)
            }
            let next = try await SlowSocket.connect(port: adminPort)
            next.send("GET /readyz HTTP/1.1\r\nHost: gw\r\n\r\n")
            let outcome = try await next.waitForClose(timeout: .seconds(5), stopAfter: "\r\n\r\n")
            #expect(outcome.text.hasPrefix("HTTP/1.1 200") == served, "\(outcome.text.prefix(200))")
            if !served {
                #expect(outcome.closedByServer)
                #expect(
                    await server.logOccurrences(of: "admin connection refused", timeout: .seconds(5)) == 1,
                    "\(server.logged)")
            }
            // Not the serving port's refusal: its counter stays 0.
            let serving = try await TestHTTPClient.connect(port: server.port)
            let metrics = Exposition(try await serving.request("GET", "/metrics").bodyString)
            #expect(metrics.samples[#"trigger_gateway_connections_rejected_total{reason="max_connections"}"#] == 0)
            await serving.close()
            next.shutdown()
            for client in held { await client.close() }
        }
    }

    /// The admin listener stops after the serving listener has drained: a probe during the drain reads 503, not a
    /// refused connection; then the process exits 0 with both stopped.
    @Test(
        "SIGTERM with a call in flight: the admin port answers /readyz 503 while the serving port drains, then closes")
    func readinessDuringTheDrain() async throws {
        try await Self.withAdminGateway("timeouts: {shutdown_grace: 20s}\nadmin: {listen: \"127.0.0.1:0\"}\n") {
            server, _ in
            let adminPort = try #require(server.adminPort)
            let admin = try await TestHTTPClient.connect(port: adminPort)
            let serving = try await TestHTTPClient.connect(port: server.port)
            let call = Task {
                try await serving.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"ms":1500}}]}"#))
            }
            // The call holds a slot of its pool: the drain will wait for it.
            #expect(
                try await eventually(within: .seconds(10)) {
                    let metrics = Exposition(try await admin.request("GET", "/metrics").bodyString)
                    return metrics.samples[#"trigger_gateway_pool_in_flight{pool="local"}"#] == 1
                })
            server.signal(SIGTERM)
            // A new admin connection during the drain: accepted, and not ready.
            #expect(
                try await eventually(within: .seconds(5)) {
                    guard let probe = try? await TestHTTPClient.connect(port: adminPort) else { return false }
                    let status = (try? await probe.request("GET", "/readyz"))?.status
                    await probe.close()
                    return status == 503
                })
            #expect(try await call.value.status == 200)
            await admin.close()
            #expect(await server.stopAndReadLog())
            #expect(server.process.terminationStatus == 0)
            #expect(server.logged.contains("msg=\"admin listener stopped\""), "\(server.logged)")
            let stopped = try #require(server.logged.range(of: "msg=\"listener stopped\""), "\(server.logged)")
            let adminStopped = try #require(server.logged.range(of: "msg=\"admin listener stopped\""))
            #expect(stopped.lowerBound < adminStopped.lowerBound, "the admin listener stops after the drain")
        }
    }

    @Test("check-config: a bad admin address, the serving listener's address, an unknown key are clear errors")
    func configErrors() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-admin-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let cases: [(yaml: String, arguments: [String], error: String)] = [
            ("admin: {listen: \"127.0.0.1\"}\n", [], "admin.listen: bad address \"127.0.0.1\""),
            (
                "listen: 127.0.0.1:18080\nadmin: {listen: \"127.0.0.1:18080\"}\n", [],
                "admin.listen: 127.0.0.1:18080 is the serving listener's address (listen: 127.0.0.1:18080): give the "
                    + "admin listener a port of its own"
            ),
            (
                "listen: 127.0.0.1:18080\nadmin: {listen: \"0.0.0.0:18080\"}\n", [],
                "admin.listen: 0.0.0.0:18080 is the serving listener's address"
            ),
            (
                "admin: {listen: \"127.0.0.1:9901\"}\n", ["--listen", "127.0.0.1:9901"],
                "admin.listen: 127.0.0.1:9901 is"
            ),
            ("listen: 127.0.0.1:9901\n", ["--admin-listen", "127.0.0.1:9901"], "--admin-listen: 127.0.0.1:9901 is"),
            ("admin: {lisen: \"127.0.0.1:9901\"}\n", [], "admin.lisen: unknown key (did you mean \"listen\"?)"),
            ("admin: {metrics_on_serving_port: false}\n", [], "admin.listen: missing (required)"),
            (
                "admin: {listen: \"127.0.0.1:9901\", max_connections: 0}\n", [],
                "admin.max_connections: 0 is out of range"
            ),
        ]
        for (yaml, arguments, error) in cases {
            try (Self.routes + yaml).write(to: file, atomically: true, encoding: .utf8)
            let out = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path] + arguments)
            #expect(out.status == 1, "\(yaml): \(out.stdoutString)")
            #expect(out.stderr.contains(error), "\(yaml): \(out.stderr)")
        }
        // Ports apart, and port 0 twice (the kernel picks each): valid.
        for yaml in [
            "listen: 127.0.0.1:18080\nadmin: {listen: \"127.0.0.1:18081\"}\n", "admin: {listen: \"127.0.0.1:0\"}\n",
        ] {
            try (Self.routes + yaml).write(to: file, atomically: true, encoding: .utf8)
            let out = try await TestProcess.run(
                ProcessTests.gatewayPath, ["check-config", file.path, "--listen", "127.0.0.1:0"])
            #expect(out.status == 0, "\(yaml): \(out.stderr)")
        }
    }

    @Test("an admin port already in use: serve exits 1 naming admin.listen and the reason")
    func adminPortInUse() async throws {
        let taken = try SilentListener()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-admin-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Self.routes.write(to: file, atomically: true, encoding: .utf8)
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-data-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let out = try await TestProcess.run(
            ProcessTests.gatewayPath,
            [
                "serve", "--config", file.path, "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--admin-listen",
                "127.0.0.1:\(taken.port)",
            ])
        #expect(out.status == 1)
        #expect(
            out.stderr.contains("cannot listen on 127.0.0.1:\(taken.port) (admin.listen): address already in use"),
            "\(out.stderr)")
        withExtendedLifetime(taken) {}
    }

    @Test("--admin-listen adds an admin listener to a file without one; its port is on stdout before the ready line")
    func adminListenFlag() async throws {
        try await Self.withAdminGateway("", arguments: ["--admin-listen", "127.0.0.1:0"]) { server, _ in
            let adminPort = try #require(server.adminPort, "\(server.readyLine)")
            let admin = try await TestHTTPClient.connect(port: adminPort)
            #expect(try await admin.request("GET", "/readyz").status == 200)
            await admin.close()
        }
    }

    @Test("SIGHUP adding admin: 'restart required', and /metrics stays on the serving port until an admin port runs")
    func reloadAddingAdmin() async throws {
        try await Self.withAdminGateway("") { server, file in
            #expect(server.adminPort == nil)
            try (Self.routes + "admin: {listen: \"127.0.0.1:0\", metrics_on_serving_port: false}\n").write(
                to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "restart required", timeout: .seconds(10)) == 1)
            #expect(server.logged.contains("config.keys=admin\n"), "\(server.logged)")
            let serving = try await TestHTTPClient.connect(port: server.port)
            #expect(try await serving.request("GET", "/metrics").status == 200)
            await serving.close()
        }
    }

    @Test("SIGHUP: a new admin.listen is 'restart required'; metrics_on_serving_port is applied")
    func reload() async throws {
        try await Self.withAdminGateway("admin: {listen: \"127.0.0.1:0\"}\n") { server, file in
            let adminPort = try #require(server.adminPort)
            let serving = try await TestHTTPClient.connect(port: server.port)
            #expect(try await serving.request("GET", "/metrics").status == 200)
            try (Self.routes + "admin: {listen: \"127.0.0.1:0\", metrics_on_serving_port: false}\n").write(
                to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1)
            #expect(!server.logged.contains("restart required"), "\(server.logged)")
            #expect(try await serving.request("GET", "/metrics").status == 404)
            try (Self.routes + "admin: {listen: \"127.0.0.1:1\", metrics_on_serving_port: false}\n").write(
                to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "restart required", timeout: .seconds(10)) == 1)
            #expect(server.logged.contains("config.keys=admin.listen"), "\(server.logged)")
            // The running admin port stays, and serves.
            let admin = try await TestHTTPClient.connect(port: adminPort)
            #expect(try await admin.request("GET", "/metrics").status == 200)
            // A file without `admin:` keeps the running listener (restart required) and /metrics back on the
            // serving port (the key's default).
            try Self.routes.write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "restart required", atLeast: 2, timeout: .seconds(10)) == 2)
            #expect(try await serving.request("GET", "/metrics").status == 200)
            #expect(try await admin.request("GET", "/readyz").status == 200)
            await admin.close()
            await serving.close()
        }
    }
}
