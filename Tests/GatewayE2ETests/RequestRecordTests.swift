import Backends
import DemoRunner
import Foundation
import GatewayApp
import GatewayTestSupport
import NIOCore
import Observability
import Testing
import TriggerModel

/// One `RequestRecord` per request on every frontend (issue 11/16), whatever the outcome, with the fields the
/// access log and the request metrics read.
@Suite("Request records: one per request, on every frontend")
struct RequestRecordTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let traceParent = "00-\(traceID)-00f067aa0ba902b7-01"

    /// How long `only` watches for a second record that must not come (no event marks its absence).
    static let strayRecordWindow = Duration.milliseconds(50)

    /// Waits a moment for stray records (there must be none), then returns the one record of `id`.
    static func only(_ id: String, in observer: RecordingObserver) async throws -> RequestRecord {
        let found = try await observer.records(of: id)
        try await Task.sleep(for: strayRecordWindow)
        let all = observer.all.filter { $0.requestID == id }
        #expect(all.count == 1, "\(id): \(all.count) records")
        return try #require(found.first, "no record for \(id)")
    }

    @Test("REST over HTTP/1.1: a sync trigger, a 404, a 405 and a body over the cap")
    func restHTTP1() async throws {
        let observer = RecordingObserver()
        try await withTestGateway(yaml: "limits: {max_body_bytes: 1KiB}", requestObservers: [observer]) { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            let body = #"{"data":[{"prompt":"hi"}]}"#
            let response = try await client.request(
                "POST", "/v1beta/users/demo/pipelines/echo/trigger?x=1",
                headers: [("request-id", "rec-sync"), ("traceparent", Self.traceParent)],
                body: ByteBuffer(string: body)
            )
            #expect(response.status == 200)
            let sync = try await Self.only("rec-sync", in: observer)
            #expect(sync.frontend == .rest)
            #expect(sync.httpVersion == "HTTP/1.1")
            #expect(sync.method == "POST")
            #expect(sync.path == "/v1beta/users/demo/pipelines/echo/trigger")
            #expect(sync.operation == "triggerPipeline")
            #expect(sync.route == "demo/*")
            #expect(sync.pool == "demo")
            #expect(sync.endpoint == nil)  // the in-process runner has no endpoints
            #expect(sync.namespace == "demo")
            #expect(sync.pipeline == "echo")
            #expect(sync.mode == "sync")
            #expect(sync.status == 200)
            #expect(sync.grpcStatus == nil)
            #expect(sync.bytesIn == body.utf8.count)
            #expect(sync.bytesOut == response.body.readableBytes)
            #expect(sync.traceID.map(String.init) == Self.traceID)
            #expect(sync.durationNanoseconds > 0)

            let missing = try await client.request("GET", "/no/such/thing", headers: [("request-id", "rec-404")])
            #expect(missing.status == 404)
            let notFound = try await Self.only("rec-404", in: observer)
            #expect(notFound.operation == "unmatched")
            #expect(notFound.status == 404)
            #expect(notFound.route == nil)
            #expect(notFound.bytesOut == missing.body.readableBytes)

            let wrongMethod = try await client.request(
                "GET", "/v1beta/users/demo/pipelines/echo/trigger",
                headers: [("request-id", "rec-405")])
            #expect(wrongMethod.status == 405)
            #expect(try await Self.only("rec-405", in: observer).status == 405)

            let unrouted = try await client.request(
                "POST", "/v1beta/users/nowhere/pipelines/echo/trigger", headers: [("request-id", "rec-unrouted")],
                body: ByteBuffer(string: body))
            #expect(unrouted.status == 404)
            let unroutedRecord = try await Self.only("rec-unrouted", in: observer)
            #expect(unroutedRecord.operation == "triggerPipeline")
            #expect(unroutedRecord.namespace == "nowhere")
            #expect(unroutedRecord.route == nil)
            #expect(unroutedRecord.status == 404)

            let big = try await client.request(
                "POST", "/v1beta/users/demo/pipelines/echo/trigger", headers: [("request-id", "rec-413")],
                chunks: [ByteBuffer(string: String(repeating: "x", count: 2048))])
            #expect(big.status == 413)
            #expect(try await Self.only("rec-413", in: observer).status == 413)
        }
    }

    @Test("a client that closes the connection mid-call is recorded once, as 499")
    func restClientGone() async throws {
        let observer = RecordingObserver()
        try await withTestGateway(requestObservers: [observer]) { gateway in
            let client = try await gateway.client()
            let call = Task {
                try await client.request(
                    "POST", "/v1beta/users/demo/pipelines/sleep/trigger", headers: [("request-id", "rec-gone")],
                    body: ByteBuffer(string: #"{"data":[{"variable":{"ms":5000}}]}"#))
            }
            // Close once the call holds its pool slot (it is then mid-call), not after a fixed time.
            let running = await eventually(within: .seconds(10)) { gateway.app.pools["demo"]?.slotsInUse == 1 }
            #expect(running, "the call never reached the pool")
            await client.close()
            _ = try? await call.value
            let gone = try await Self.only("rec-gone", in: observer)
            #expect(gone.status == 499)
            #expect(gone.mode == "sync")
            #expect(gone.pipeline == "sleep")
        }
    }

    @Test("gRPC: a sync trigger, an unknown method, a deadline; REST over h2")
    func grpcAndH2() async throws {
        let observer = RecordingObserver()
        try await withTestGateway(requestObservers: [observer]) { gateway in
            let client = try await H2TestClient.connect(port: gateway.port)
            defer { Task { await client.close() } }
            func grpc(_ path: String, id: String, message: [UInt8], extra: [(String, String)] = []) async throws
                -> Int32
            {
                try await client.request(
                    [
                        (":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", path),
                        ("content-type", "application/grpc"), ("te", "trailers"), ("request-id", id),
                        ("traceparent", Self.traceParent),
                    ] + extra,
                    body: GRPCDetailsTests.framed(message, flag: 0)
                )
            }
            let sync = try await grpc(GRPCDetailsTests.path, id: "rec-grpc", message: GRPCDetailsTests.echoRequest)
            let done = try await client.wait(timeout: .seconds(5)) { $0.streams[sync]?.grpcStatus != nil }
            #expect(done.streams[sync]?.grpcStatus == "0")
            let record = try await Self.only("rec-grpc", in: observer)
            #expect(record.frontend == .grpc)
            #expect(record.httpVersion == "HTTP/2")
            #expect(record.operation == GRPCDetailsTests.path)
            #expect(record.path == GRPCDetailsTests.path)
            #expect(record.route == "demo/*")
            #expect(record.pool == "demo")
            #expect(record.mode == "sync")
            #expect(record.namespace == "demo")
            #expect(record.pipeline == "echo")
            #expect(record.status == 200)
            #expect(record.grpcStatus == 0)
            #expect(record.bytesIn == GRPCDetailsTests.echoRequest.count + 5)
            #expect(record.bytesOut == done.streams[sync]?.receivedBytes)
            #expect(record.traceID.map(String.init) == Self.traceID)

            let unknownPath = "/pipeline.pipeline.v1beta.PipelinePublicService/NoSuchMethod"
            _ = try await grpc(unknownPath, id: "rec-grpc-unknown", message: [])
            let unknown = try await Self.only("rec-grpc-unknown", in: observer)
            #expect(unknown.operation == "unmatched")
            #expect(unknown.path == unknownPath)
            #expect(unknown.grpcStatus == 12)

            // TriggerNamespacePipelineRequest{namespace_id: "demo", pipeline_id: "sleep", data: [{ms: 3000}]}.
            let sleep = GRPCDetailsTests.hex(
                "0a0464656d6f" + "1205736c656570" + "22130a110a0f" + "0a026d73" + "1209" + "11000000000070a740")
            _ = try await grpc(
                GRPCDetailsTests.path, id: "rec-grpc-deadline", message: sleep, extra: [("grpc-timeout", "100m")])
            let deadline = try await Self.only("rec-grpc-deadline", in: observer)
            #expect(deadline.grpcStatus == 4)
            #expect(deadline.pipeline == "sleep")

            let health = try await client.request(
                [
                    (":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/healthz"),
                    ("request-id", "rec-h2"),
                ], body: [])
            _ = try await client.wait(timeout: .seconds(5)) { $0.streams[health]?.endStream == true }
            let rest = try await Self.only("rec-h2", in: observer)
            #expect(rest.frontend == .rest)
            #expect(rest.httpVersion == "HTTP/2")
            #expect(rest.operation == "liveness")
            #expect(rest.status == 200)
            #expect(rest.bytesOut > 0)
        }
    }

    /// Review 18 F4: a gRPC call that hit its client's own `grpc-timeout` is flagged `DT` and counted in
    /// `requests_cut_total{frontend="grpc",response_flags="DT"}`; one the gateway timed out (the pool's
    /// `request_timeout`, 300 ms) before the client's deadline is DEADLINE_EXCEEDED without it. Real socket, the
    /// engine's HTTP/2 client; `sleep` runs 3 s.
    @Test(
        "gRPC DEADLINE_EXCEEDED: the client's own grpc-timeout is DT and counted in requests_cut_total; the gateway's pool timeout before it is not"
    )
    func grpcClientDeadlineIsDT() async throws {
        let observer = RecordingObserver()
        let yaml = """
            pools: [{name: demo, transport: inprocess, request_timeout: 300ms}]
            routes: [{namespace: demo, pipeline: "*", pool: demo}]
            """
        try await withTestGateway(yaml: yaml, requestObservers: [observer]) { gateway in
            let client = try await H2TestClient.connect(port: gateway.port)
            defer { Task { await client.close() } }
            // TriggerNamespacePipelineRequest{namespace_id: "demo", pipeline_id: "sleep", data: [{ms: 3000}]}.
            let sleep = GRPCDetailsTests.hex(
                "0a0464656d6f" + "1205736c656570" + "22130a110a0f" + "0a026d73" + "1209" + "11000000000070a740")
            func call(id: String, timeout: String) async throws -> RequestRecord {
                _ = try await client.request(
                    [
                        (":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                        (":path", GRPCDetailsTests.path), ("content-type", "application/grpc"), ("te", "trailers"),
                        ("request-id", id), ("grpc-timeout", timeout),
                    ],
                    body: GRPCDetailsTests.framed(sleep, flag: 0))
                return try await Self.only(id, in: observer)
            }
            // The client's 100 ms pass first.
            let clients = try await call(id: "dt-client", timeout: "100m")
            #expect(clients.grpcStatus == 4)
            #expect(clients.termination == .downstreamDeadline)
            #expect(clients.responseFlags.split(separator: ",").contains("DT"), "\(clients.responseFlags)")
            // The pool's 300 ms pass first; the client would wait 5 s.
            let gateways = try await call(id: "dt-gateway", timeout: "5S")
            #expect(gateways.grpcStatus == 4)
            #expect(gateways.termination == nil)
            #expect(gateways.responseFlags == "UT")

            let metrics = try await gateway.client()
            let scrape = try await metrics.request("GET", "/metrics")
            await metrics.close()
            let samples = Exposition(scrape.bodyString).samples
            #expect(samples[#"trigger_gateway_requests_cut_total{frontend="grpc",response_flags="DT"}"#] == 1)
            #expect(samples[#"trigger_gateway_requests_cut_total{frontend="rest",response_flags="DT"}"#] == nil)
            let labels = #"frontend="grpc",operation="\#(GRPCDetailsTests.path)",route="demo/*",mode="sync""#
            #expect(samples["trigger_gateway_requests_total{\(labels),code=\"DEADLINE_EXCEEDED\"}"] == 2)
            #expect(try promtoolFindings(scrape.bodyString) == "")
        }
    }

    @Test("the endpoint that answered: an http pool's endpoint, sync and SSE")
    func endpointOfHTTPPool() async throws {
        let observer = RecordingObserver()
        try await withHTTPBackend(runner: DemoPipelines()) { port in
            let yaml = """
                pools:
                  - {name: remote, transport: http, endpoints: ["127.0.0.1:\(port)"]}
                routes:
                  - {namespace: demo, pipeline: echo, pool: remote}
                """
            try await withTestGateway(yaml: yaml, requestObservers: [observer]) { gateway in
                let client = try await gateway.client()
                defer { Task { await client.close() } }
                let response = try await client.request(
                    "POST", "/v1beta/users/demo/pipelines/echo/trigger", headers: [("request-id", "rec-remote")],
                    body: ByteBuffer(string: #"{"data":[{"prompt":"hi"}]}"#))
                #expect(response.status == 200)
                let record = try await Self.only("rec-remote", in: observer)
                #expect(record.route == "demo/echo")
                #expect(record.pool == "remote")
                #expect(record.endpoint?.contains("127.0.0.1:\(port)") == true, "\(record.endpoint ?? "nil")")
                let events = try await client.request(
                    "POST", "/v1beta/users/demo/pipelines/echo/trigger-stream",
                    headers: [("request-id", "rec-remote-sse"), ("accept", "text/event-stream")],
                    body: ByteBuffer(string: #"{"data":[{"prompt":"hi"}]}"#))
                #expect(events.status == 200)
                let stream = try await Self.only("rec-remote-sse", in: observer)
                #expect(stream.mode == "stream")
                #expect(stream.endpoint?.contains("127.0.0.1:\(port)") == true, "\(stream.endpoint ?? "nil")")
            }
        }
    }

    @Test(
        "upstream detail (review 26 M2): a retry after a refused endpoint is 2 attempts; the runner's status, the last try's duration, the wait for a slot, the user agent"
    )
    func upstreamDetail() async throws {
        let observer = RecordingObserver()
        let reserved = try ReservedPort()  // nothing listens: a connect there is refused
        defer { withExtendedLifetime(reserved) {} }
        try await withHTTPBackend(runner: DemoPipelines()) { port in
            let yaml = """
                pools:
                  - {name: remote, transport: http, endpoints: ["127.0.0.1:\(reserved.port)", "127.0.0.1:\(port)"],
                     max_concurrency: 1, max_queue: 4, outlier_detection: {consecutive_failures: 0}}
                routes:
                  - {namespace: demo, pipeline: "*", pool: remote}
                """
            try await withTestGateway(yaml: yaml, requestObservers: [observer]) { gateway in
                let client = try await gateway.client()
                defer { Task { await client.close() } }
                // Over the two endpoints, some call is picked on the refused endpoint first and retried on the other.
                // The pick is random (power of two choices, a tie goes to the first drawn): each call has an even
                // chance, so calls go on until one was retried, at most 40 (a 2^-40 chance of none; a fixed four
                // left 1 in 16, and failed a CI run).
                var records: [RequestRecord] = []
                for n in 1...40 where !records.contains(where: { $0.upstream.attempts == 2 }) {
                    let response = try await client.request(
                        "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                        headers: [("request-id", "up-\(n)"), ("user-agent", #"up-test/1.0 ("q")"#)],
                        body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"hi"}}]}"#))
                    #expect(response.status == 200, "\(response.bodyString)")
                    records.append(try await Self.only("up-\(n)", in: observer))
                }
                #expect(records.contains { $0.upstream.attempts == 2 }, "\(records.map(\.upstream))")
                #expect(records.allSatisfy { [1, 2].contains($0.upstream.attempts) }, "\(records.map(\.upstream))")
                for record in records {
                    #expect(record.upstream.status == 200, "\(record.upstream)")
                    #expect(record.endpoint == "127.0.0.1:\(port)", "the last try's: \(record)")
                    let last = try #require(record.upstream.lastTryNanoseconds)
                    #expect(last > 0 && last <= record.durationNanoseconds, "\(record.upstream) \(record)")
                    #expect(record.upstream.queueNanoseconds == nil, "a free slot: \(record.upstream)")
                    #expect(record.userAgent == #"up-test/1.0 ("q")"#)
                }
                // Two calls at once on one slot: the second waits for the first's 300 ms.
                let second = try await gateway.client()
                defer { Task { await second.close() } }
                async let a = client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger", headers: [("request-id", "up-q1")],
                    body: ByteBuffer(string: #"{"data":[{"variable":{"ms":300}}]}"#))
                async let b = second.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger", headers: [("request-id", "up-q2")],
                    body: ByteBuffer(string: #"{"data":[{"variable":{"ms":300}}]}"#))
                let (ra, rb) = try await (a, b)
                #expect(ra.status == 200 && rb.status == 200, "\(ra.bodyString) \(rb.bodyString)")
                let waits = [try await Self.only("up-q1", in: observer), try await Self.only("up-q2", in: observer)]
                    .map(\.upstream.queueNanoseconds)
                #expect(waits.filter { $0 == nil }.count == 1, "one found the slot free: \(waits)")
                let waited = try #require(waits.compactMap { $0 }.first, "\(waits)")
                #expect(waited >= 200_000_000, "it waited for the other's 300 ms: \(waited) ns")
            }
        }
    }

    @Test("upstream detail over a grpc pool: grpc-status 0, one attempt; gRPC's own user-agent")
    func upstreamDetailGRPC() async throws {
        let observer = RecordingObserver()
        try await withGatewayOverBackend(DemoPipelines(), transport: "grpc", requestObservers: [observer]) { gateway in
            let answer = try await Peers.grpcio("trigger", port: gateway.port, ["echo", #"[{"prompt":"hello"}]"#])
            #expect(answer["code"] == nil || answer["code"] as? String == "OK", "\(answer)")
            _ = await eventually(within: .seconds(5)) { observer.all.contains { $0.frontend == .grpc } }
            let record = try #require(observer.all.first { $0.frontend == .grpc }, "\(observer.all)")
            #expect(record.upstream.status == 0 && record.upstream.attempts == 1, "\(record.upstream)")
            #expect(record.upstream.lastTryNanoseconds != nil, "\(record.upstream)")
            #expect(record.userAgent?.hasPrefix("grpc-python/") == true, "\(record)")
        }
    }

    @Test("the principal of an authenticated request; a 401 is recorded without one")
    func principal() async throws {
        let observer = RecordingObserver()
        let yaml = "tokens: [{name: alice, token: s3cret-token}]"
        try await withTestGateway(yaml: yaml, requestObservers: [observer]) { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            let body = ByteBuffer(string: #"{"data":[{"variable":{"prompt":"hi"}}]}"#)
            let ok = try await client.request(
                "POST", "/v1beta/users/demo/pipelines/echo/trigger",
                headers: [("request-id", "rec-alice"), ("authorization", "Bearer s3cret-token")], body: body)
            #expect(ok.status == 200)
            #expect(try await Self.only("rec-alice", in: observer).principal == "alice")
            let refused = try await client.request(
                "POST", "/v1beta/users/demo/pipelines/echo/trigger", headers: [("request-id", "rec-anon")], body: body)
            #expect(refused.status == 401)
            let anonymous = try await Self.only("rec-anon", in: observer)
            #expect(anonymous.status == 401)
            #expect(anonymous.principal == nil)
            #expect(anonymous.operation == "triggerPipeline")
            let operations = try await client.request(
                "GET", "/v1beta/operations",
                headers: [("request-id", "rec-ops"), ("authorization", "Bearer s3cret-token")])
            #expect(operations.status == 200, "\(operations.bodyString)")
            let listed = try await Self.only("rec-ops", in: observer)
            #expect(listed.operation == "listOperations")
            #expect(listed.principal == "alice")
        }
    }

    @Test(
        "the principal of the Abacus.AI and Craft AI surfaces' callers (apiKey, SDK token, access token, endpoint token)"
    )
    func surfacePrincipal() async throws {
        let observer = RecordingObserver()
        let yaml = "tokens: [{name: alice, token: s3cret-token}, {name: bob, token: b0b-token}]"
        try await withTestGateway(yaml: yaml, requestObservers: [observer]) { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            let abacus = try await client.request(
                "POST", "/api/v0/describePipeline",
                headers: [
                    ("request-id", "rec-abacus"), ("apikey", "s3cret-token"), ("content-type", "application/json"),
                ],
                body: ByteBuffer(string: #"{"pipelineId":"echo"}"#))
            #expect(abacus.status == 200, "\(abacus.bodyString)")
            let abacusRecord = try await Self.only("rec-abacus", in: observer)
            #expect(abacusRecord.principal == "alice")
            #expect(abacusRecord.pipeline == "echo", "the pipeline is still named")

            let refresh = try await client.request(
                "POST", "/api/v1/auth/refresh",
                headers: [("request-id", "rec-refresh"), ("content-type", "application/json")],
                body: ByteBuffer(string: #"{"refresh_token":"b0b-token"}"#))
            #expect(refresh.status == 200, "\(refresh.bodyString)")
            #expect(try await Self.only("rec-refresh", in: observer).principal == "bob")
            let token = try #require(try json(refresh.body)["access_token"] as? String)
            let pipeline = try await client.request(
                "GET", "/api/v1/pipelines/echo",
                headers: [("request-id", "rec-craft"), ("authorization", "Bearer \(token)")])
            #expect(pipeline.status == 200, "\(pipeline.bodyString)")
            let craftRecord = try await Self.only("rec-craft", in: observer)
            #expect(craftRecord.principal == "bob")
            #expect(craftRecord.pipeline == "echo")

            let endpoint = try await client.request(
                "POST", "/endpoints/echo",
                headers: [
                    ("request-id", "rec-endpoint"), ("authorization", "EndpointToken s3cret-token"),
                    ("content-type", "application/json"),
                ],
                body: ByteBuffer(string: #"{"prompt":"hi"}"#))
            #expect(endpoint.status == 200, "\(endpoint.bodyString)")
            #expect(try await Self.only("rec-endpoint", in: observer).principal == "alice")

            // A refused key names no one.
            let refused = try await client.request(
                "POST", "/api/v0/describePipeline",
                headers: [("request-id", "rec-abacus-bad"), ("apikey", "wrong"), ("content-type", "application/json")],
                body: ByteBuffer(string: #"{"pipelineId":"echo"}"#))
            #expect(refused.status == 401, "\(refused.bodyString)")
            #expect(try await Self.only("rec-abacus-bad", in: observer).principal == nil)
        }
    }

    @Test("the endpoint of a stream over a grpc pool: SSE and gRPC server streaming")
    func endpointOfGRPCStream() async throws {
        let observer = RecordingObserver()
        try await withGRPCBackend(runner: DemoPipelines()) { port in
            let yaml = """
                pools:
                  - {name: remote, transport: grpc, endpoints: ["127.0.0.1:\(port)"]}
                routes:
                  - {namespace: demo, pool: remote}
                """
            try await withTestGateway(yaml: yaml, requestObservers: [observer]) { gateway in
                let client = try await gateway.client()
                defer { Task { await client.close() } }
                let response = try await client.request(
                    "POST", "/v1beta/users/demo/pipelines/tokens/trigger-stream",
                    headers: [("request-id", "rec-sse"), ("accept", "text/event-stream")],
                    body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"a b c"}}]}"#))
                #expect(response.status == 200)
                let record = try await Self.only("rec-sse", in: observer)
                #expect(record.mode == "stream")
                #expect(record.operation == "triggerPipelineStream")
                #expect(record.route == "demo/*")
                #expect(record.status == 200)
                #expect(record.bytesOut == response.body.readableBytes)
                #expect(record.endpoint?.contains("127.0.0.1:\(port)") == true, "\(record.endpoint ?? "nil")")
            }
        }
    }

    @Test("a body that stops is answered 408 by the timeout handler: the request's record says 408")
    func bodyTimeout() async throws {
        let observer = RecordingObserver()
        try await withTestGateway(yaml: "timeouts: {body_progress: 300ms, idle: 5s}", requestObservers: [observer]) {
            gateway in
            let socket = try await SlowSocket.connect(port: gateway.port)
            let head =
                "POST /v1beta/users/demo/pipelines/echo/trigger HTTP/1.1\r\nhost: localhost\r\n"
                + "content-type: application/json\r\ncontent-length: 100\r\nrequest-id: rec-408\r\n\r\n"
            socket.send(Array(head.utf8) + Array(#"{"data":[{"#.utf8))
            let outcome = try await socket.waitForClose(timeout: .seconds(5))
            #expect(outcome.text.hasPrefix("HTTP/1.1 408"), "\(outcome.text.prefix(200))")
            let record = try await Self.only("rec-408", in: observer)
            #expect(record.status == 408)
            #expect(record.bytesIn == 10)
            #expect(record.operation == "triggerPipeline")
        }
    }

    @Test(
        "an HTTP/2 request body that stops is answered 408 at body_progress, then RST_STREAM NO_ERROR: the record says 408, as over HTTP/1.1"
    )
    func h2BodyTimeout() async throws {
        let observer = RecordingObserver()
        try await withTestGateway(yaml: "timeouts: {body_progress: 300ms, idle: 5s}", requestObservers: [observer]) {
            gateway in
            let client = try await H2TestClient.connect(port: gateway.port)
            let stream = try await client.request(
                [
                    (":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                    (":path", "/v1beta/users/demo/pipelines/echo/trigger"), ("content-type", "application/json"),
                    ("request-id", "rec-h2-stall"),
                ],
                body: Array(#"{"data":[{"#.utf8), endStream: false)
            let seen = try await client.wait(timeout: .seconds(5)) { $0.streams[stream]?.closedWith != nil }
            // RFC 9113 §8.1: a complete answer before the request was, then the stream reset with NO_ERROR
            // (review 18, F11); the record is the HTTP/1.1 408's, no gateway-ended flag.
            #expect(seen.streams[stream]?.status == "408")
            #expect(seen.streams[stream]?.closedWith == 0, "RST_STREAM NO_ERROR")
            let record = try await Self.only("rec-h2-stall", in: observer)
            #expect(record.status == 408 && record.termination == nil, "\(record)")
            await client.close()
        }
    }
}
