import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TriggerModel

/// Failures the gateway makes on a backend's behalf, as an operator sees them on the real executable: the access
/// line's `response_flags` (Envoy's `UF`, `UT`, `UC`, `UO`, `UPE`; `-` for none) and `peer.address`, and
/// `trigger_gateway_backend_failures_total{pool,endpoint,reason}` counting each failed try.
@Suite("Backend failures: response flags in the access log, counted by reason", .serialized)
struct BackendFailureFlagsTests {
    static let body = ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#)

    /// A gateway whose pool `p` goes to `endpoint`, with `extra` pool keys; `body` gets it and a client.
    /// `transport`: the pool's; `ejecting`: outlier detection as by default (3 failures eject) rather than off.
    static func withGateway(
        endpoint: String, transport: String = "http", ejecting: Bool = false, extra: String = "",
        logFormat: String? = nil,
        _ body: (TestProcess.Server, TestHTTPClient) async throws -> Void
    ) async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-flags-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let detection = ejecting ? "" : ", outlier_detection: {consecutive_failures: 0}"
        try """
        pools:
          - {name: p, transport: \(transport), endpoints: ["\(endpoint)"], connect_timeout: 1s\
        \(detection)\(extra)}
        routes: [{namespace: demo, pipeline: "*", pool: p}]
        """.write(to: file, atomically: true, encoding: .utf8)
        let arguments = ["--config", file.path] + (logFormat.map { ["--log-format", $0] } ?? [])
        try await ProcessTests.withGatewayProcess(arguments) { server in
            let client = try await TestHTTPClient.connect(port: server.port)
            do {
                try await body(server, client)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
        }
    }

    static func trigger(_ client: TestHTTPClient, id: String) async throws -> TestHTTPClient.Response {
        try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
            headers: jsonHeaders + [("request-id", id)], body: body)
    }

    /// The value of `trigger_gateway_backend_failures_total` for `endpoint` and `reason` in pool `p` (0 when
    /// absent), whatever order the labels are written in.
    static func failures(_ client: TestHTTPClient, endpoint: String, reason: String) async throws -> Double {
        let scrape = Exposition(try await client.request("GET", "/metrics").bodyString)
        let wanted = [#"pool="p""#, #"endpoint="\#(endpoint)""#, #"reason="\#(reason)""#]
        let series = scrape.samples.filter { key, _ in
            key.hasPrefix("trigger_gateway_backend_failures_total{") && wanted.allSatisfy { key.contains($0) }
        }
        #expect(series.count <= 1, "\(series)")
        return series.first?.value ?? 0
    }

    /// The access line of request `id` (logfmt), once written.
    /// The warning-level lines of `message` (logfmt) the server has written so far, in order.
    static func warnings(_ server: TestProcess.Server, _ message: String) -> [Substring] {
        server.logged.split(separator: "\n").filter {
            $0.contains("msg=\"\(message)\"") && $0.contains("level=warning")
        }
    }

    static func accessLine(_ server: TestProcess.Server, id: String) async throws -> [String: String] {
        try await accessLines(server, containing: "request_id=\(id)", message: "msg=request")
    }

    /// The lines with `needle` and `message`, waiting up to 5 s for one: a failed trigger's warning carries the
    /// same request id and comes first.
    static func accessLines(
        _ server: TestProcess.Server, containing needle: String, message: String
    ) async throws -> [String: String] {
        var lines: [Substring] = []
        for _ in 0..<250 {
            lines = server.logged.split(separator: "\n").filter { $0.contains(needle) && $0.contains(message) }
            if !lines.isEmpty { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(lines.count == 1, "\(server.logged)")
        return AccessLogTests.logfmt(try #require(lines.first))
    }

    @Test("a refused port: 502, UF with the client's address, counted per try")
    func refusedIsUF() async throws {
        // Port 1 on loopback: refused at once.
        try await Self.withGateway(endpoint: "127.0.0.1:1") { server, client in
            let response = try await Self.trigger(client, id: "flags-uf")
            #expect(response.status == 502, "\(response.bodyString)")
            let line = try await Self.accessLine(server, id: "flags-uf")
            #expect(line["response_flags"] == "UF", "\(line)")
            #expect(line["status"] == "502", "\(line)")
            #expect(line["peer.address"]?.hasPrefix("127.0.0.1:") == true, "\(line)")
            #expect(line["peer.address"] != "127.0.0.1:\(server.port)", "the client's port, not the listener's")
            #expect(try await Self.failures(client, endpoint: "127.0.0.1:1", reason: "UF") >= 1)
            #expect(try await Self.failures(client, endpoint: "127.0.0.1:1", reason: "UC") == 0)
            // A request with no failure: `-`.
            _ = try await client.request("GET", "/metrics", headers: [("request-id", "flags-none")])
            let plain = try await Self.accessLine(server, id: "flags-none")
            #expect(plain["response_flags"] == "-", "\(plain)")
        }
    }

    @Test("the same in JSON: response_flags and peer.address keys")
    func refusedInJSON() async throws {
        try await Self.withGateway(endpoint: "127.0.0.1:1", logFormat: "json") { server, client in
            _ = try await Self.trigger(client, id: "flags-json")
            _ = await server.logOccurrences(of: #""request_id":"flags-json""#, atLeast: 2, timeout: .seconds(5))
            let line = try #require(
                server.logged.split(separator: "\n").first {
                    $0.contains(#""request_id":"flags-json""#) && $0.contains(#""msg":"request""#)
                }, "\(server.logged)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["response_flags"] as? String == "UF", "\(line)")
            #expect((object["peer.address"] as? String)?.hasPrefix("127.0.0.1:") == true, "\(line)")
        }
    }

    @Test("a runner that closes mid-answer: 502, UC, counted")
    func closedMidAnswerIsUC() async throws {
        let cut = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"outputs\""
        try await withCannedBackend(reply: cut) { port in
            try await Self.withGateway(endpoint: "127.0.0.1:\(port)") { server, client in
                let response = try await Self.trigger(client, id: "flags-uc")
                #expect(response.status == 502, "\(response.bodyString)")
                #expect(try await Self.accessLine(server, id: "flags-uc")["response_flags"] == "UC")
                #expect(try await Self.failures(client, endpoint: "127.0.0.1:\(port)", reason: "UC") == 1)
            }
        }
    }

    @Test("a 2xx that is not JSON: a clear 502, UPE, the warning names pool, endpoint and the body's start")
    func nonJSONSuccessIsUPE() async throws {
        let page = "<html><body>maintenance at secret-host.internal</body></html>"
        let reply =
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: \(page.utf8.count)\r\n"
            + "connection: close\r\n\r\n\(page)"
        try await withCannedBackend(reply: reply) { port in
            try await Self.withGateway(endpoint: "127.0.0.1:\(port)") { server, client in
                let response = try await Self.trigger(client, id: "flags-upe")
                #expect(response.status == 502, "\(response.bodyString)")
                let message = try #require(try json(response.body)["message"] as? String)
                #expect(message.hasPrefix(#"backend pool "p": an endpoint's HTTP 200 answer is not a runner result"#))
                #expect(!message.contains("secret-host"), "the body stays in the log: \(message)")
                #expect(try await Self.accessLine(server, id: "flags-upe")["response_flags"] == "UPE")
                #expect(try await Self.failures(client, endpoint: "127.0.0.1:\(port)", reason: "UPE") == 1)
                let warning = try #require(
                    Self.warnings(server, "backend endpoint failed").first, "\(server.logged)")
                #expect(warning.contains("backend.pool=p"), "\(warning)")
                #expect(warning.contains("backend.endpoint=127.0.0.1:\(port)"), "\(warning)")
                #expect(warning.contains("secret-host.internal"), "\(warning)")
            }
        }
    }

    /// A grpc runner that fails every call with a bare grpc-status UNAVAILABLE, no `RunResponse` (an overloaded
    /// or broken runner; review 26's `grpc_unavail.py`): the runner failed, not the pipeline.
    struct UnavailableRunner: TriggerRunner {
        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            throw GatewayError(.unavailable, "runner overloaded (test)")
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unavailable, "runner overloaded (test)")) }
        }
    }

    /// Review 26 M1: a grpc runner's UNAVAILABLE ejected its endpoint with no failure counted or flagged
    /// (`response_flags=-`, `backend_failures_total` 0, no `backend endpoint failed`). Each such answer is now a
    /// `UPE` (answered outside the runner protocol, as an http runner's non-JSON 5xx), so the three tries that
    /// eject the endpoint are three counted, flagged, warned failures.
    @Test("a grpc runner answering UNAVAILABLE: 502 with its message, UPE, counted per try, warned; three eject it")
    func grpcUnavailableIsUPE() async throws {
        try await withGRPCBackend(runner: UnavailableRunner()) { port in
            let endpoint = "127.0.0.1:\(port)"
            try await Self.withGateway(endpoint: endpoint, transport: "grpc", ejecting: true) { server, client in
                for n in 0..<3 {
                    let response = try await Self.trigger(client, id: "flags-grpc14-\(n)")
                    #expect(response.status == 502, "\(response.bodyString)")
                    #expect(try json(response.body)["message"] as? String == "runner overloaded (test)")
                    let line = try await Self.accessLine(server, id: "flags-grpc14-\(n)")
                    #expect(line["response_flags"] == "UPE", "\(line)")
                    #expect(line["endpoint"] == endpoint, "\(line)")
                }
                #expect(try await Self.failures(client, endpoint: endpoint, reason: "UPE") == 3)
                let scrape = Exposition(try await client.request("GET", "/metrics").bodyString)
                #expect(
                    scrape.samples[#"trigger_gateway_pool_ejections_total{pool="p",endpoint="\#(endpoint)"}"#] == 1,
                    "\(scrape.text)")
                #expect(await server.logOccurrences(of: "backend endpoint ejected", timeout: .seconds(5)) == 1)
                let warning = try #require(
                    Self.warnings(server, "backend endpoint failed").first, "\(server.logged)")
                #expect(warning.contains("backend.endpoint=\(endpoint)"), "\(warning)")
                #expect(warning.contains("grpc-status 14 (UNAVAILABLE)"), "\(warning)")
                #expect(warning.contains("runner overloaded (test)"), "\(warning)")
            }
        }
    }

    /// A grpc runner that answers UNAVAILABLE (as ``UnavailableRunner``) while ``failing``, then echoes.
    final class RecoveringRunner: TriggerRunner, Sendable {
        let failing = Atomic(true)

        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            if failing.load(ordering: .sequentiallyConsistent) {
                throw GatewayError(.unavailable, "runner overloaded (test)")
            }
            return TriggerResult(outputs: [["ok": .bool(true)]])
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "not streamed here")) }
        }
    }

    /// Review 26 L4 and M6: when an ejected endpoint answers again one info line says so, with how long it was
    /// out (Envoy's outlier `uneject` event), and its `pool_endpoint_available` reads 1 again once the ejection
    /// under way ends. (That it reads 0 past an ejection's end until an answer: `EndpointBalancerTests`, on the
    /// injected clock.)
    @Test("an ejected grpc endpoint that answers again: one `backend endpoint available again` line; available 1")
    func availableAgainLogged() async throws {
        let runner = RecoveringRunner()
        try await withGRPCBackend(runner: runner) { port in
            let endpoint = "127.0.0.1:\(port)"
            let available = #"trigger_gateway_pool_endpoint_available{pool="p",endpoint="\#(endpoint)"}"#
            try await Self.withGateway(endpoint: endpoint, transport: "grpc", ejecting: true) { server, client in
                for n in 0..<3 {
                    #expect(try await Self.trigger(client, id: "back-\(n)").status == 502)
                }
                #expect(await server.logOccurrences(of: "backend endpoint ejected", timeout: .seconds(5)) == 1)
                let scrape = Exposition(try await client.request("GET", "/metrics").bodyString)
                #expect(scrape.samples[available] == 0, "\(scrape.text)")
                #expect(!server.logged.contains("backend endpoint available again"), "\(server.logged)")
                // The runner recovers; its only endpoint is still called while ejected (panic mode).
                runner.failing.store(false, ordering: .sequentiallyConsistent)
                #expect(try await Self.trigger(client, id: "back-ok").status == 200)
                #expect(try await Self.trigger(client, id: "back-ok2").status == 200)
                #expect(await server.logOccurrences(of: "backend endpoint available again", timeout: .seconds(5)) == 1)
                let line = try #require(
                    server.logged.split(separator: "\n").first { $0.contains("backend endpoint available again") })
                let fields = AccessLogTests.logfmt(line)
                #expect(fields["level"] == "info", "\(line)")
                #expect(fields["backend.pool"] == "p" && fields["backend.endpoint"] == endpoint, "\(line)")
                // Out from the ejection to the answer: a duration (`850ms`, `1.2s`), under the test's minute.
                let out = try #require(fields["out_for"], "\(line)")
                #expect(out.hasSuffix("ms") || (out.hasSuffix("s") && (Double(out.dropLast()) ?? 60) < 60), "\(line)")
                // 1 once the ejection under way (1 s from the third failure) ends; the unit tests step that clock.
                let back = try await eventually(within: .seconds(10)) {
                    Exposition(try await client.request("GET", "/metrics").bodyString).samples[available] == 1
                }
                #expect(back)
            }
        }
    }

    @Test("a runner's NaN and infinities (Python's json.dumps default): 200 with null, no failure, no ejection")
    func nonFiniteAnswerIsNoFailure() async throws {
        // The bytes `json.dumps({"outputs": [{"score": float("nan"), ...}], "metadata": {}})` writes.
        let answer = #"{"outputs": [{"score": NaN, "hi": Infinity, "lo": -Infinity, "n": 1}], "metadata": {}}"#
        let reply =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(answer.utf8.count)\r\n"
            + "connection: close\r\n\r\n\(answer)"
        try await withCannedBackend(reply: reply) { port in
            // Outlier detection as by default: three failures would eject the endpoint.
            try await Self.withGateway(endpoint: "127.0.0.1:\(port)", ejecting: true) { server, client in
                for n in 1...4 {
                    let response = try await Self.trigger(client, id: "nan-\(n)")
                    #expect(response.status == 200, "\(response.bodyString)")
                    #expect(
                        response.bodyString
                            == #"{"outputs":[{"score":null,"hi":null,"lo":null,"n":1}],"metadata":{}}"#)
                    #expect(try await Self.accessLine(server, id: "nan-\(n)")["response_flags"] == "-")
                }
                #expect(try await Self.failures(client, endpoint: "127.0.0.1:\(port)", reason: "UPE") == 0)
                #expect(Self.warnings(server, "backend endpoint failed").isEmpty, "\(server.logged)")
            }
        }
    }

    @Test(
        "a runner that cuts an answer, then answers non-JSON within 10 s: a warning for each kind (UC, UPE), not one")
    func changeOfFailureNotHidden() async throws {
        let cut = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"outputs\""
        let page = "<html>maintenance</html>"
        let html =
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: \(page.utf8.count)\r\n"
            + "connection: close\r\n\r\n\(page)"
        try await withCannedBackend(replies: [cut, cut, html]) { port in
            try await Self.withGateway(endpoint: "127.0.0.1:\(port)") { server, client in
                for (id, flag) in [("l2-uc-1", "UC"), ("l2-uc-2", "UC"), ("l2-upe", "UPE")] {
                    let response = try await Self.trigger(client, id: id)
                    #expect(response.status == 502)
                    let line = try await Self.accessLine(server, id: id)
                    #expect(line["response_flags"] == flag)
                }
                let warnings = { (message: String) in Self.warnings(server, message) }
                // The second cut is held back (same endpoint, same flag); the non-JSON answer is not hidden by it.
                let endpoint = warnings("backend endpoint failed")
                #expect(endpoint.count == 2, "\(server.logged)")
                #expect(endpoint.last?.contains("not a runner result") == true, "\(endpoint)")
                let trigger = warnings("trigger failed")
                #expect(trigger.count == 2, "\(server.logged)")
                #expect(trigger.last?.contains("request_id=l2-upe") == true, "\(trigger)")
            }
        }
    }

    @Test("a runner that never answers, one slot and no queue: the second call UO, the first UT; both counted")
    func overflowAndTimeout() async throws {
        try await withSilentBackend { port in
            try await Self.withGateway(
                endpoint: "127.0.0.1:\(port)", extra: ", request_timeout: 3s, max_concurrency: 1, max_queue: 0"
            ) { server, client in
                let first = Task {
                    let other = try await TestHTTPClient.connect(port: server.port)
                    defer { Task { await other.close() } }
                    return try await Self.trigger(other, id: "flags-ut")
                }
                // The first call holds the only slot once the pool says so.
                var inFlight = 0.0
                for _ in 0..<100 where inFlight < 1 {
                    let scrape = Exposition(try await client.request("GET", "/metrics").bodyString)
                    inFlight = scrape.samples[#"trigger_gateway_pool_in_flight{pool="p"}"#] ?? 0
                    if inFlight < 1 { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(inFlight == 1)
                let refused = try await Self.trigger(client, id: "flags-uo")
                #expect(refused.status == 503, "\(refused.bodyString)")
                #expect(try await Self.accessLine(server, id: "flags-uo")["response_flags"] == "UO")
                #expect(try await Self.failures(client, endpoint: "", reason: "UO") == 1)
                let timedOut = try await first.value
                #expect(timedOut.status == 504, "\(timedOut.bodyString)")
                #expect(try await Self.accessLine(server, id: "flags-ut")["response_flags"] == "UT")
                #expect(try await Self.failures(client, endpoint: "127.0.0.1:\(port)", reason: "UT") == 1)
                // The try the pool's deadline cut is timed as `UT` too, not as an answer or a client's cancel
                // (review 26 L5); it ends just after the answer, once the gateway closed its connection.
                let tries =
                    #"trigger_gateway_backend_request_duration_seconds_count{pool="p",endpoint="127.0.0.1:\#(port)","#
                let timed = try await eventually(within: .seconds(10)) {
                    let scrape = Exposition(try await client.request("GET", "/metrics").bodyString)
                    return scrape.samples[tries + #"outcome="UT"}"#] == 1
                }
                let scrape = Exposition(try await client.request("GET", "/metrics").bodyString)
                #expect(
                    timed,
                    "\(scrape.samples.filter { $0.key.hasPrefix("trigger_gateway_backend_request_duration_seconds_count") })"
                )
                #expect(
                    scrape.samples[tries + #"outcome="ok"}"#] == 0
                        && scrape.samples[tries + #"outcome="cancelled"}"#] == 0)
            }
        }
    }
}

/// A backend that accepts connections and reads what comes, never answering (a hung runner).
func withSilentBackend<T>(_ body: (Int) async throws -> T) async throws -> T {
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    do {
        let result = try await body(server.localAddress!.port!)
        try? await server.close()
        return result
    } catch {
        try? await server.close()
        throw error
    }
}
