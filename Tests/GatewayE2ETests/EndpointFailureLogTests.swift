import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// Review 8, finding 4, on the real executable: an endpoint that is down is one warning, not one per try.
@Suite("a failing endpoint is logged once per interval, every failure still counted", .serialized)
struct EndpointFailureLogTests {
    @Test("20 calls to a refused endpoint: one warning line of each kind; the backend metrics count every try")
    func oneWarningPerInterval() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-down-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        // Port 1 on loopback: connection refused at once. Outlier detection off, so every call tries it.
        try """
        pools:
          - {name: down, transport: http, endpoints: ["127.0.0.1:1"], outlier_detection: {consecutive_failures: 0}}
        routes: [{namespace: down, pipeline: "*", pool: down}]
        """.write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            let client = try await TestHTTPClient.connect(port: server.port)
            let calls = 20
            for _ in 0..<calls {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/down/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#))
                #expect(response.status >= 500, "\(response.bodyString)")
            }
            let metrics = try await client.request("GET", "/metrics").bodyString
            await client.close()
            // Each call tried the endpoint at least once, and the histogram of tries counts them all, as refused
            // (`UF`), none among the answered (review 26 L5: a refusing endpoint improved the pool's quantiles).
            let exposition = Exposition(metrics)
            let tries = #"trigger_gateway_backend_request_duration_seconds_count{pool="down",endpoint="127.0.0.1:1","#
            #expect((exposition.samples[tries + #"outcome="UF"}"#] ?? 0) >= Double(calls), "\(metrics)")
            #expect(exposition.samples[tries + #"outcome="ok"}"#] == 0, "\(metrics)")
            #expect(await server.stopAndReadLog())
            let warnings = server.logged.split(separator: "\n").filter {
                $0.contains(#"msg="backend endpoint failed""#) && $0.contains("level=warning")
            }
            // All 20 calls fall within the 10 s interval of the first failure.
            #expect(warnings.count == 1, "\(warnings.prefix(3))")
            #expect(warnings.first?.contains(#"backend.endpoint=127.0.0.1:1"#) == true, "\(warnings)")
            // Review 10, finding 2: the per-request `trigger failed` warning follows the same rule (the access
            // line of each request still carries its 5xx).
            let lines = server.logged.split(separator: "\n")
            let failed = lines.filter { $0.contains(#"msg="trigger failed""#) && $0.contains("level=warning") }
            #expect(failed.count == 1, "\(failed.prefix(3))")
            #expect(failed.first?.contains("backend.pool=down") == true, "\(failed)")
            #expect(failed.first?.contains("error.code=502") == true, "\(failed)")
            #expect(failed.first?.contains("grpc_status") == false, "\(failed)")
            let fiveHundreds = lines.filter { $0.contains("msg=request ") && $0.contains("status=502") }
            #expect(fiveHundreds.count == calls, "\(fiveHundreds.count)")
        }
    }

    @Test("a gRPC call's `trigger failed` line says the grpc_status its client and access line got, not an HTTP status")
    func grpcTriggerFailedSaysGRPCStatus() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-down-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        pools: [{name: down, transport: http, endpoints: ["127.0.0.1:1"]}]
        routes: [{namespace: down, pipeline: "*", pool: down}]
        """.write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            // grpcio, Instill's namespaced TriggerNamespacePipeline.
            let grpc = try await Peers.instillGenerations("trigger", port: server.port, ["down", "echo"])
            #expect(grpc["code"] as? String == "UNAVAILABLE", "\(grpc)")
            #expect(await server.stopAndReadLog())
            let lines = server.logged.split(separator: "\n")
            let failed = lines.filter { $0.contains(#"msg="trigger failed""#) && $0.contains("level=warning") }
            #expect(failed.count == 1, "\(server.logged)")
            #expect(failed.first?.contains("grpc_status=14") == true, "\(failed)")
            #expect(failed.first?.contains("error.code") == false, "\(failed)")
            let access = lines.filter { $0.contains("msg=request ") && $0.contains("TriggerNamespacePipeline") }
            #expect(access.first?.contains("grpc_status=14") == true, "\(access)")
        }
    }

    @Test("a runner's HTML error page: the client reads the pool and status; the page goes to the endpoint's warning")
    func htmlErrorPageIsLoggedNotSent() async throws {
        try await withCannedBackend(reply: htmlErrorPage) { port in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tg-html-\(UUID().uuidString).yaml")
            defer { try? FileManager.default.removeItem(at: file) }
            try """
            pools: [{name: html, transport: http, endpoints: ["127.0.0.1:\(port)"]}]
            routes: [{namespace: html, pipeline: "*", pool: html}]
            """.write(to: file, atomically: true, encoding: .utf8)
            try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
                let client = try await TestHTTPClient.connect(port: server.port)
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/html/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#))
                await client.close()
                #expect(response.status == 502, "\(response.bodyString)")
                #expect(
                    try json(response.body)["message"] as? String
                        == #"backend pool "html": an endpoint answered HTTP 501 (not the runner protocol's error JSON)"#,
                    "\(response.bodyString)")
                #expect(await server.stopAndReadLog())
                let warning = server.logged.split(separator: "\n").first {
                    $0.contains(#"msg="backend endpoint failed""#) && $0.contains("level=warning")
                }
                #expect(warning?.contains("backend.endpoint=127.0.0.1:\(port)") == true, "\(server.logged)")
                #expect(warning?.contains("secret-host.internal") == true, "\(String(describing: warning))")
            }
        }
    }
}
