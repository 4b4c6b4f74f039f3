import Foundation
import GatewayApp
import GatewayServer
import Observability
import GatewayTestSupport
import NIOCore
import Testing

/// Review 24, M1: `limits.max_buffered_request_bytes`, the request-body bytes the whole gateway holds at once,
/// over real sockets (curl, grpcio, a raw HTTP/1.1 socket, an HTTP/2 client); and every way a request ends gives
/// its bytes back (`trigger_gateway_request_buffer_bytes` returns to 0).
@Suite("Request buffer budget: limits.max_buffered_request_bytes")
struct RequestBufferTests {
    static let budget = 1 << 20
    static let trigger = "/v1beta/namespaces/demo/pipelines/echo/trigger"

    /// Posts `body` with curl; the status and the body.
    static func curlPost(port: Int, body: ByteBuffer, path: String = trigger) async throws -> (Int, String) {
        let curl = try #require(TestProcess.which("curl"))
        let out = try await TestProcess.run(
            curl,
            [
                "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", "-H", "content-type: application/json",
                "--data-binary", "@-", "http://127.0.0.1:\(port)\(path)",
            ], stdin: Data(body.readableBytesView))
        let text = out.stdoutString
        let split = text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
        return (Int(text[split...]) ?? -1, String(text[..<split]))
    }

    static func metricsText(_ gateway: TestGateway) -> String {
        String(decoding: gateway.app.metrics.scrape(), as: UTF8.self)
    }

    static func drained(_ gateway: TestGateway) async -> Bool {
        await eventually(within: .seconds(10)) { gateway.app.requestBuffer.bufferedBytes == 0 }
    }

    @Test(
        "curl: a body of exactly the budget passes; one byte more is 503 in API.md's shape, logged and counted",
        arguments: [(budget, 200), (budget + 1, 503)])
    func restEdge(size: Int, status: Int) async throws {
        let log = RecordedLog()
        try await withTestGateway(yaml: "limits: {max_buffered_request_bytes: \(Self.budget)}\n", log: log) {
            gateway in
            let (answered, body) = try await Self.curlPost(port: gateway.port, body: paddedBody(size: size))
            #expect(answered == status, "\(body.prefix(300))")
            let metrics = Self.metricsText(gateway)
            if status == 503 {
                let error = try json(ByteBuffer(string: body))
                #expect(error["code"] as? Int == 8, "\(body)")
                #expect((error["message"] as? String)?.contains("limits.max_buffered_request_bytes") == true, "\(body)")
                #expect(metrics.contains(#"trigger_gateway_requests_refused_total{reason="request_buffer"} 1"#))
                let warning = log.lines.first { $0.message == "request body refused" }
                #expect(warning?.metadata["reason"] == "request_buffer", "\(log.lines)")
                #expect(warning?.metadata["peer.address"]?.hasPrefix("127.0.0.1:") == true, "\(log.lines)")
            } else {
                #expect(metrics.contains(#"trigger_gateway_requests_refused_total{reason="request_buffer"} 0"#))
            }
            #expect(await Self.drained(gateway))
            #expect(Self.metricsText(gateway).contains("trigger_gateway_request_buffer_bytes 0"))
            #expect(Self.metricsText(gateway).contains("trigger_gateway_request_buffer_limit_bytes \(Self.budget)"))
        }
    }

    @Test(
        "grpcio: a message of exactly the budget passes; one byte more is RESOURCE_EXHAUSTED",
        arguments: [(budget, nil), (budget + 1, "RESOURCE_EXHAUSTED")] as [(Int, String?)])
    func grpcEdge(size: Int, code: String?) async throws {
        try await withTestGateway(yaml: "limits: {max_buffered_request_bytes: \(Self.budget)}\n") { gateway in
            let answer = try await Peers.grpcio("sized", port: gateway.port, [String(size)])
            #expect(answer["code"] as? String == code, "\(answer)")
            if code != nil {
                #expect((answer["details"] as? String)?.contains("limits.max_buffered_request_bytes") == true)
            }
            #expect(await Self.drained(gateway))
        }
    }

    /// What a body holds is what it sent, not what it declared: a client that declares 600 000 bytes and sends a
    /// few holds one step (16 KiB), so declarations alone cannot fill the budget.
    @Test("a body held unfinished holds what it sent; a second that does not fit is refused until it ends")
    func heldBodyRefusesTheNext() async throws {
        try await withTestGateway(yaml: "limits: {max_buffered_request_bytes: \(Self.budget)}\n") { gateway in
            let declaredOnly = try await SlowSocket.connect(port: gateway.port)
            declaredOnly.send(
                "POST \(Self.trigger) HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                    + "content-length: 600000\r\n\r\n" + #"{"data":[{"variable":{"s":""#)
            #expect(await eventually(within: .seconds(5)) { gateway.app.requestBuffer.bufferedBytes == 16 << 10 })
            declaredOnly.shutdown()
            #expect(await Self.drained(gateway))
            let held = try await SlowSocket.connect(port: gateway.port)
            held.send(
                "POST \(Self.trigger) HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                    + "content-length: 600000\r\n\r\n" + #"{"data":[{"variable":{"s":""#
                    + String(repeating: "a", count: 590_000))
            #expect(await eventually(within: .seconds(5)) { gateway.app.requestBuffer.bufferedBytes >= 590_000 })
            // HTTP/1.1 (curl) and HTTP/2 alike.
            let (status, body) = try await Self.curlPost(port: gateway.port, body: paddedBody(size: 600_000))
            #expect(status == 503, "\(body)")
            let h2 = try await H2TestClient.connect(port: gateway.port)
            let stream = try await h2.request(
                [
                    (":method", "POST"), (":scheme", "http"), (":path", Self.trigger), (":authority", "127.0.0.1"),
                    ("content-type", "application/json"), ("content-length", "600000"),
                ], body: Array(paddedBody(size: 600_000).readableBytesView.prefix(590_000)), endStream: false)
            let seen = try await h2.wait(timeout: .seconds(5)) { $0.streams[stream]?.status != nil }
            #expect(seen.streams[stream]?.status == "503")
            await h2.close()
            // What fits next to it is served.
            let (small, _) = try await Self.curlPost(port: gateway.port, body: paddedBody(size: 100_000))
            #expect(small == 200)
            // The held client goes away: its bytes come back, and the large body is served.
            held.shutdown()
            #expect(await Self.drained(gateway))
            let (after, _) = try await Self.curlPost(port: gateway.port, body: paddedBody(size: 600_000))
            #expect(after == 200)
            #expect(await Self.drained(gateway))
        }
    }

    @Test("a reload changes both limits for the requests that start after it")
    func reload() async throws {
        try await withTestGateway(yaml: "limits: {max_buffered_request_bytes: \(Self.budget)}\n") { gateway in
            let (before, _) = try await Self.curlPost(port: gateway.port, body: paddedBody(size: 1_500_000))
            #expect(before == 503)
            try gateway.reload(yaml: "limits: {max_buffered_request_bytes: 2MiB, max_decompressed_bytes: 65536}\n")
            let (after, _) = try await Self.curlPost(port: gateway.port, body: paddedBody(size: 1_500_000))
            #expect(after == 200)
            #expect(Self.metricsText(gateway).contains("trigger_gateway_request_buffer_limit_bytes 2097152"))
            let answer = try await Peers.grpcio("sized", port: gateway.port, ["65537", "gzip"])
            #expect(answer["code"] as? String == "RESOURCE_EXHAUSTED", "\(answer)")
            #expect(await Self.drained(gateway))
        }
    }

    /// The claim returns its bytes on every path a request body can end on.
    @Test("every way a body ends returns its bytes: success, client abort, timeout, 413, RST_STREAM")
    func everyPathReturnsToZero() async throws {
        let yaml = """
            limits: {max_buffered_request_bytes: 8MiB, max_body_bytes: 1MiB}
            timeouts: {body_progress: 1s}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let budget = gateway.app.requestBuffer
            let head =
                "POST \(Self.trigger) HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 300000\r\n\r\n"
                + #"{"data":[{"variable":{"s":""#
            // Success.
            let (ok, _) = try await Self.curlPost(port: gateway.port, body: paddedBody(size: 300_000))
            #expect(ok == 200)
            #expect(await Self.drained(gateway), "success")
            // HTTP/1.1: the client aborts mid-body.
            let aborted = try await SlowSocket.connect(port: gateway.port)
            aborted.send(head)
            #expect(await eventually(within: .seconds(5)) { budget.bufferedBytes > 0 })
            aborted.shutdown()
            #expect(await Self.drained(gateway), "HTTP/1.1 client abort")
            // HTTP/1.1: the body stalls past body_progress: 408.
            let stalled = try await SlowSocket.connect(port: gateway.port)
            stalled.send(head)
            #expect(await eventually(within: .seconds(5)) { budget.bufferedBytes > 0 })
            let outcome = try await stalled.waitForClose(timeout: .seconds(10))
            #expect(outcome.text.hasPrefix("HTTP/1.1 408"), "\(outcome.text.prefix(200))")
            #expect(await Self.drained(gateway), "HTTP/1.1 timeout")
            // HTTP/1.1: a chunked body past max_body_bytes: 413 while it streams.
            let client = try await gateway.client()
            var big = paddedBody(size: (1 << 20) + 50_000)
            var chunks: [ByteBuffer] = []
            while big.readableBytes > 0 { chunks.append(big.readSlice(length: min(60_000, big.readableBytes))!) }
            let tooLarge = try await client.request("POST", Self.trigger, headers: jsonHeaders, chunks: chunks)
            #expect(tooLarge.status == 413)
            await client.close()
            #expect(await Self.drained(gateway), "413")
            // HTTP/2: REST and gRPC bodies reset mid-way, and a REST body that stalls (408).
            let h2 = try await H2TestClient.connect(port: gateway.port)
            let rest: [(String, String)] = [
                (":method", "POST"), (":scheme", "http"), (":path", Self.trigger), (":authority", "127.0.0.1"),
                ("content-type", "application/json"), ("content-length", "300000"),
            ]
            let partial = Array(paddedBody(size: 300_000).readableBytesView.prefix(16_000))
            let reset = try await h2.request(rest, body: partial, endStream: false)
            #expect(await eventually(within: .seconds(5)) { budget.bufferedBytes > 0 })
            try await h2.reset(stream: reset)
            #expect(await Self.drained(gateway), "HTTP/2 REST RST_STREAM")
            let grpc: [(String, String)] = [
                (":method", "POST"), (":scheme", "http"),
                (":path", "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline"),
                (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers"),
            ]
            // A message prefix declaring 300 000 bytes, and the first 10 000 of them.
            let framed = [0, 0x00, 0x04, 0x93, 0xE0] + [UInt8](repeating: 0, count: 10_000)
            let grpcReset = try await h2.request(grpc, body: framed, endStream: false)
            #expect(await eventually(within: .seconds(5)) { budget.bufferedBytes > 0 })
            try await h2.reset(stream: grpcReset)
            #expect(await Self.drained(gateway), "gRPC RST_STREAM")
            let stalledH2 = try await h2.request(rest, body: partial, endStream: false)
            let timedOut = try await h2.wait(timeout: .seconds(10)) { $0.streams[stalledH2]?.status != nil }
            #expect(timedOut.streams[stalledH2]?.status == "408")
            #expect(await Self.drained(gateway), "HTTP/2 timeout")
            await h2.close()
            #expect(Self.metricsText(gateway).contains("trigger_gateway_request_buffer_bytes 0"))
        }
    }
}
