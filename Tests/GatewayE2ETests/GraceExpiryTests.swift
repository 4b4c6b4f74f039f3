import AsyncDispatch
import Foundation
import GatewayApp
import GatewayTestSupport
import Logging
import NIOCore
import Observability
import Testing
import TriggerModel

/// The end of the shutdown grace period (issue 9 item 4): a call still in flight gets an answer in its
/// client's protocol before its socket closes. The backend holds every call (a gate never opened), so the
/// grace (300 ms) always runs out.
@Suite("Shutdown grace expiry answers each protocol", .serialized)
struct GraceExpiryTests {
    static func withHeldCalls(
        grace: String = "300ms",
        observers: [any RequestObserver] = [],
        log: RecordedLog? = nil,
        _ body: (TestGateway, GatedRunner) async throws -> Void
    ) async throws {
        let runner = GatedRunner()
        defer { runner.open() }
        try await withHTTPBackend(runner: runner) { port in
            let yaml = """
                timeouts: {shutdown_grace: \(grace)}
                pools: [{name: held, transport: http, endpoints: ["127.0.0.1:\(port)"]}]
                routes: [{namespace: demo, pipeline: "*", pool: held}]
                """
            try await withTestGateway(
                yaml: yaml, requestObservers: observers, log: log, logLevel: log == nil ? .warning : .info
            ) { gateway in
                try await body(gateway, runner)
            }
        }
    }

    static let body = #"{"data":[{"variable":{"prompt":"hello"}}]}"#

    @Test("HTTP/1.1 sync: 503 with Retry-After and Connection: close, then the socket closes; the record says 503")
    func http1Sync() async throws {
        let observer = RecordingObserver()
        let log = RecordedLog()
        try await Self.withHeldCalls(observers: [observer], log: log) { gateway, runner in
            let client = try await gateway.client()
            let call = Task {
                try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                    headers: jsonHeaders + [("request-id", "held-1")], body: ByteBuffer(string: Self.body)
                )
            }
            try #require(await runner.waitForStart(orEndOf: call), "the call never reached the backend")
            await gateway.beginShutdown()
            let response = try await call.value
            #expect(response.status == 503, "\(response.bodyString)")
            #expect(response.header("retry-after") != nil)
            #expect(response.header("connection")?.lowercased() == "close")
            #expect(response.header("request-id") == "held-1")
            #expect(try json(response.body)["message"] as? String == "the gateway is shutting down; retry the request")
            #expect(await client.waitForClose())
            // The access log and metrics get what the client got (the close that follows the answer once
            // recorded 499, found by review).
            let record = try #require(try await observer.records(of: "held-1").first)
            #expect(record.status == 503)
            #expect(record.bytesOut == response.body.readableBytes)
            #expect(!record.downstreamDisconnected, "the gateway closed after a whole answer: not a client leaving")
            // Not a runner's own 503 (review 26 L3): flagged as the stop's cut, with the endpoint it cut.
            #expect(record.cutAtShutdown, "\(record)")
            #expect(record.endpoint?.hasPrefix("127.0.0.1:") == true, "\(record)")
            #expect(record.upstream.attempts == 1 && record.upstream.status == nil, "\(record.upstream)")
            let line = try #require(
                log.lines.first { $0.message == "request" && $0.metadata["request_id"] == "held-1" })
            #expect(line.metadata["cut_by"] == "shutdown", "\(line)")
        }
        // The drain's summary: the one request the grace cut.
        let stopped = try #require(log.lines.first { $0.message == "listener stopped" }, "\(log.lines)")
        #expect(stopped.metadata["requests.cut"] == "1", "\(stopped)")
    }

    @Test("HTTP/1.1 sync: a call that finishes inside the grace gets its 200, and the record says 200")
    func http1SyncFinishesInGrace() async throws {
        let observer = RecordingObserver()
        try await Self.withHeldCalls(grace: "1h", observers: [observer]) { gateway, runner in
            let client = try await gateway.client()
            let call = Task {
                try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                    headers: jsonHeaders + [("request-id", "held-2")], body: ByteBuffer(string: Self.body)
                )
            }
            try #require(await runner.waitForStart(orEndOf: call), "the call never reached the backend")
            let stopping = Task { await gateway.beginShutdown() }
            runner.open()
            let response = try await call.value
            #expect(response.status == 200, "\(response.bodyString)")
            let record = try #require(try await observer.records(of: "held-2").first)
            #expect(record.status == 200)
            #expect(record.bytesOut == response.body.readableBytes)
            #expect(!record.downstreamDisconnected, "the gateway closed after a whole answer: not a client leaving")
            #expect(!record.cutAtShutdown, "it finished inside the grace: \(record)")
            await stopping.value
        }
    }

    @Test("SSE over HTTP/1.1 before the first event: nothing was sent, so 503 with Retry-After, as sync mode")
    func http1SSEBeforeFirstEvent() async throws {
        try await Self.withHeldCalls { gateway, runner in
            let call = Task {
                let (headers, _, raw) = try await curlSSE([
                    "-H", "content-type: application/json", "-d", Self.body,
                    "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/tokens/trigger-stream",
                ])
                return (headers, raw)
            }
            try #require(await runner.waitForStart(orEndOf: call), "the call never reached the backend")
            await gateway.beginShutdown()
            let (headers, raw) = try await call.value
            #expect(headers.contains("http/1.1 503"), "\(headers)")
            #expect(headers.contains("retry-after:"), "\(headers)")
            #expect(headers.contains("content-type: application/json"), "\(headers)")
            #expect(raw.contains("the gateway is shutting down"), "\(raw)")
            #expect(try parseSSE(raw).isEmpty, "no SSE event: \(raw)")
        }
    }

    @Test("SSE over HTTP/1.1 mid-stream: an error event, then the terminating chunk (curl sees a complete response)")
    func http1SSE() async throws {
        let observer = RecordingObserver()
        try await withStreamSetup(.inProcess, timeouts: "shutdown_grace: 300ms", observers: [observer]) { setup in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-grace-\(UUID().uuidString)")
                .path
            defer { try? FileManager.default.removeItem(atPath: file) }
            async let result = curlSSE(
                [
                    "-H", "content-type: application/json",
                    "-d", #"{"data":[{"variable":{"prompt":"a b c","delay_ms":20000}}]}"#,
                    "\(setup.sseBase)/tokens/trigger-stream",
                ], outputFile: file)
            #expect(await fileContains(file, "PIPELINE_OUTPUT_UPDATED"), "the stream never began")
            await setup.gateway.beginShutdown()
            let (headers, events, raw) = try await result
            #expect(headers.contains("http/1.1 200"), "\(headers)")
            #expect(
                events.map(\.name) == ["PIPELINE_STATUS_UPDATED", "PIPELINE_OUTPUT_UPDATED", "PIPELINE_ERROR_UPDATED"],
                "\(raw)")
            #expect(events.last?.data["code"] as? Int == 14, "\(raw)")
            // The gateway ended the stream, with a complete answer: not a client that went away (review 17, #7:
            // every stream cut at the grace's end was logged DC, inflating client-abort counts at each deploy).
            #expect(await eventually(within: .seconds(5)) { observer.all.contains { $0.mode == "stream" } })
            let record = try #require(observer.all.first { $0.mode == "stream" }, "no record of the stream")
            #expect(record.status == 200)
            #expect(!record.downstreamDisconnected, "\(record)")
        }
    }

    @Test("REST over HTTP/2: 503 with Retry-After (curl --http2-prior-knowledge)")
    func http2REST() async throws {
        let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
        try await Self.withHeldCalls { gateway, runner in
            let call = Task {
                try await TestProcess.run(
                    curl,
                    [
                        "-sS", "--max-time", "20", "--http2-prior-knowledge", "-D", "-", "-H",
                        "content-type: application/json",
                        "-d", Self.body,
                        "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
                    ])
            }
            try #require(await runner.waitForStart(orEndOf: call), "the call never reached the backend")
            await gateway.beginShutdown()
            let out = try await call.value
            #expect(out.status == 0, "\(out.stderr)")
            let text = out.stdoutString.lowercased()
            #expect(text.contains("http/2 503"), "\(text)")
            #expect(text.contains("retry-after:"), "\(text)")
        }
    }

    @Test("HTTP/2: the 503 is followed by GOAWAY naming the last processed stream (nghttp -v)")
    func http2GoAway() async throws {
        let nghttp = try #require(TestProcess.which("nghttp"), "scripts/test installs nghttp2-client")
        try await Self.withHeldCalls { gateway, runner in
            let bodyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tg-grace-\(UUID().uuidString).json")
            try Self.body.write(to: bodyFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: bodyFile) }
            let call = Task {
                try await TestProcess.run(
                    nghttp,
                    [
                        "-v", "-t", "20", "-H", "content-type: application/json", "-d", bodyFile.path,
                        "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
                    ])
            }
            try #require(await runner.waitForStart(orEndOf: call), "the call never reached the backend")
            await gateway.beginShutdown()
            let out = try await call.value.stdoutString
            // nghttp opens its request on stream 13 (after its priority-tree streams); read the id from the answer.
            let answer = try #require(
                out.range(of: #"recv \(stream_id=(\d+)\) :status: 503"#, options: .regularExpression), "\(out)")
            let stream = String(out[answer].drop { !$0.isNumber }.prefix { $0.isNumber })
            let afterAnswer = out[answer.upperBound...]
            #expect(afterAnswer.contains("recv GOAWAY frame"), "a GOAWAY follows the answer: \(out)")
            #expect(afterAnswer.contains("last_stream_id=\(stream),"), "it names stream \(stream): \(out)")
        }
    }

    @Test("gRPC: UNAVAILABLE in the status (grpcio)")
    func grpc() async throws {
        let observer = RecordingObserver()
        let log = RecordedLog()
        try await Self.withHeldCalls(observers: [observer], log: log) { gateway, runner in
            let call = Task {
                let answer = try await Peers.grpcio("trigger", port: gateway.port, ["echo", #"[{"prompt":"hello"}]"#])
                return "\(answer["code"] ?? "")|\(answer["details"] ?? "")"
            }
            try #require(await runner.waitForStart(orEndOf: call), "the call never reached the backend")
            await gateway.beginShutdown()
            let outcome = try await call.value.split(separator: "|", maxSplits: 1).map(String.init)
            let answer: [String: String] = ["code": outcome.first ?? "", "details": outcome.last ?? ""]
            #expect(answer["code"] == "UNAVAILABLE", "\(answer)")
            #expect(answer["details"]?.contains("shutting down") == true, "\(answer)")
            // HTTP/2's cut is flagged too, with its endpoint (review 26 L3).
            _ = await eventually(within: .seconds(5)) { observer.all.contains { $0.frontend == .grpc } }
            let record = try #require(observer.all.first { $0.frontend == .grpc }, "\(observer.all)")
            #expect(record.cutAtShutdown && record.endpoint?.hasPrefix("127.0.0.1:") == true, "\(record)")
            #expect(record.userAgent?.hasPrefix("grpc-python/") == true, "\(record)")
        }
        let stopped = try #require(log.lines.first { $0.message == "listener stopped" }, "\(log.lines)")
        #expect(stopped.metadata["requests.cut"] == "1", "\(stopped)")
    }
}

extension GraceExpiryTests {
    /// Review 8, finding 12: a long-poll is only a wait; at drain start it gets its normal "not done yet"
    /// answer, not the grace's 503 at its end.
    @Test("a long-poll in flight at shutdown is answered at drain start with done:false, not held for the grace")
    func longPollAnsweredAtDrainStart() async throws {
        try await withTestGateway(yaml: "timeouts: {shutdown_grace: 5s}\n") { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (status, accepted) = try await client.trigger("sleep", ["ms": 20_000])
            #expect(status == 200, "\(accepted)")
            let name = try #require(accepted.operationName)
            let waiter = try await AsyncClient.connect(port: gateway.port)
            let clock = ContinuousClock()
            let poll = Task { () async throws -> (Int, Bool?) in
                let (status, body) = try await waiter.get("/v1beta/\(name)?wait=30s")
                return (status, (body["operation"] as? [String: Any])?["done"] as? Bool)
            }
            let operations = try #require(gateway.app.operations)
            #expect(
                await eventually(within: .seconds(10), interval: .milliseconds(5)) {
                    operations.completions.waiterCount >= 1
                }, "the long-poll never started waiting")
            let started = clock.now
            let stopping = Task { await gateway.beginShutdown() }
            let (pollStatus, done) = try await poll.value
            let waited = clock.now - started
            #expect(pollStatus == 200)
            #expect(done == false)
            #expect(waited < .seconds(3), "held \(waited) of the 5 s grace")
            await stopping.value
        }
    }
}
