import Foundation
import GatewayTestSupport
import Testing

/// RFC 9113 §8.1: a server that answers a request before the request's body has ended may ask the client to stop
/// sending it with RST_STREAM(NO_ERROR) after the answer, as nghttpx and nginx do at once. The gateway reads and drops
/// such a body up to twice `limits.max_body_bytes` (so curl 7.88, which discards an answer its upload is reset
/// after, shows the 413 of an upload a little over the cap), then asks. Before, it granted window for the dropped
/// bytes without end, until `timeouts.request` (the fifty-third session's protocol review: 2.2 MB in 8 s after a
/// 413). Each client here never ends its side, so its stream closes only by a reset: NO_ERROR (0) is the ask.
@Suite("HTTP/2: a body no one reads is dropped up to twice limits.max_body_bytes, then RST_STREAM(NO_ERROR)")
struct EarlyAnswerResetTests {
    static let pseudo = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost")]
    static let cap = 65_536
    static let yaml = "limits:\n  max_body_bytes: \(cap)\n"
    /// What is dropped before the ask: twice the cap.
    static let allowance = 2 * cap

    /// Sends `headers` with `bodyBytes` of body and no end, and once all of it has left, a whole echo trigger on
    /// the same connection (the server takes frames in order: by that one's answer, the first stream's bytes were
    /// all taken, and a reset they caused was sent). Returns the first stream's record.
    static func send(
        _ headers: [(String, String)], bodyBytes: Int, port: Int
    ) async throws -> H2TestClient.StreamRecord? {
        let client = try await H2TestClient.connect(port: port)
        let stream = try await client.request(
            headers, body: [UInt8](repeating: 0x20, count: bodyBytes), endStream: false)
        // All of it sent (past the first window, as the gateway granted more), before the call that follows.
        #expect(try await client.waitSent(stream: stream))
        let next = try await client.request(
            Self.pseudo + [(":path", "/v1beta/namespaces/demo/pipelines/echo/trigger")] + jsonHeaders,
            body: Array(#"{"data":[{"variable":{"x":1}}]}"#.utf8))
        let seen = try await client.wait(timeout: .seconds(20)) {
            $0.streams[next]?.endStream == true && $0.streams[stream]?.endStream == true
        }
        #expect(seen.streams[next]?.status == "200", "the connection goes on")
        await client.close()
        return seen.streams[stream]
    }

    @Test(
        "REST: a 404 from the head, a 413 for a declared length over the cap: the body taken to the allowance, a byte more reset",
        arguments: [
            ("/v1beta/nowhere", "", "404"), ("/v1beta/namespaces/demo/pipelines/echo/trigger", "99999999999", "413"),
        ])
    func rest(path: String, contentLength: String, status: String) async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            var headers = Self.pseudo + [(":path", path), ("content-type", "application/json")]
            if !contentLength.isEmpty { headers.append(("content-length", contentLength)) }
            let atCap = try await Self.send(headers, bodyBytes: Self.allowance, port: gateway.port)
            #expect(atCap?.status == status)
            #expect(atCap?.closedWith == nil, "reset with \(String(describing: atCap?.closedWith)) at the allowance")
            let past = try await Self.send(headers, bodyBytes: Self.allowance + 1, port: gateway.port)
            #expect(past?.status == status)
            #expect(past?.endStream == true, "the whole answer came before the reset")
            #expect(past?.closedWith == 0, "RST_STREAM NO_ERROR past the allowance")
        }
    }

    @Test("gRPC: a message declared over the size limit gets RESOURCE_EXHAUSTED; what follows past the cap is reset")
    func grpc() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            // A 5-byte prefix declaring 100 MB, answered from it; then the allowance of what follows, and a byte more.
            let prefix: [UInt8] = [0, 0x05, 0xF5, 0xE1, 0x00]
            let client = try await H2TestClient.connect(port: gateway.port)
            let stream = try await client.request(
                Self.pseudo + [
                    (":path", GRPCDetailsTests.path), ("content-type", "application/grpc"), ("te", "trailers"),
                ],
                body: prefix, endStream: false)
            var seen = try await client.wait(timeout: .seconds(20)) { $0.streams[stream]?.grpcStatus != nil }
            #expect(seen.streams[stream]?.grpcStatus == "8", "RESOURCE_EXHAUSTED")
            try await client.send(stream: stream, body: [UInt8](repeating: 1, count: Self.allowance))
            #expect(try await client.waitSent(stream: stream))
            // A second call on the connection: by its answer, the first stream's bytes were all taken.
            let next = try await client.request(
                Self.pseudo + [(":path", "/v1beta/namespaces/demo/pipelines/echo/trigger")] + jsonHeaders,
                body: Array(#"{"data":[{"variable":{"x":1}}]}"#.utf8))
            seen = try await client.wait(timeout: .seconds(20)) { $0.streams[next]?.endStream == true }
            #expect(seen.streams[stream]?.closedWith == nil, "reset at the allowance")
            try await client.send(stream: stream, body: [1])
            seen = try await client.wait(timeout: .seconds(20)) { $0.streams[stream]?.closedWith != nil }
            #expect(seen.streams[stream]?.closedWith == 0, "RST_STREAM NO_ERROR past the allowance")
            await client.close()
        }
    }
}
