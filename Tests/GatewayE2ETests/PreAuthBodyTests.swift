import Foundation
import GatewayApp
import GatewayServer
import GatewayTestSupport
import NIOCore
import Observability
import Testing

/// A request body is read only for a caller whose credential the head carries and the gateway takes (security
/// review 60, H1): the Craft AI and Abacus.AI routes gathered bodies of up to `limits.max_body_bytes` before they
/// looked at the token, so keyless clients filled `limits.max_buffered_request_bytes` (1 GiB with 34 of them) and
/// every authenticated trigger was 503. Each head below declares 30 MB, asks for `100 Continue` and sends no
/// body: the refusal must come at once, with no `100 Continue`, and close the connection (the body held back).
@Suite("Bodies are read only after the head's credential is taken")
struct PreAuthBodyTests {
    static let yaml = "tokens: [{name: alice, token: ALICE}]\n"

    static func head(_ method: String, _ target: String, _ headers: [String]) -> [UInt8] {
        Array(
            HTTPSemanticsTests.request(
                method, target,
                headers: [
                    "host: x", "content-type: application/json", "content-length: 30000000", "expect: 100-continue",
                ]
                    + headers
            ).utf8)
    }

    @Test(
        "Craft AI and Abacus.AI refuse a body-carrying request without a credential at its head, before any byte of it",
        arguments: [
            ("/api/v1/pipelines/echo/run", [], 401),
            ("/api/v1/pipelines/echo/run", ["authorization: Bearer ALICE"], 401),
            ("/endpoints/echo", [], 401),
            ("/endpoints/echo", ["authorization: EndpointToken NOPE"], 401),
            ("/api/v0/runPipeline", [], 401),
            ("/api/v0/runPipeline", ["apikey: NOPE"], 401),
            ("/api/v0/listPipelineVersions", [], 401),
            ("/api/v0/noSuchMethod", ["apikey: ALICE"], 404),
        ] as [(String, [String], Int)]
    )
    func refusedAtHead(target: String, headers: [String], status: Int) async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            let clock = ContinuousClock()
            let started = clock.now
            let reply = try await RawTCPClient.exchange(
                port: gateway.port, sending: [Self.head("POST", target, headers)], timeout: .seconds(10))
            let text = String(decoding: reply, as: UTF8.self)
            let answers = HTTPSemanticsTests.responses(reply)
            try #require(answers.count == 1, "\(text)")
            #expect(answers[0].status == status, "\(text)")
            #expect(answers[0].headers["connection"] == "close", "\(text)")
            #expect(!text.contains("100 Continue"), "\(text)")
            // Answered and closed at once: before, the gateway waited for the 30 MB until the request timeout.
            #expect(started.duration(to: clock.now) < .seconds(5))
        }
    }

    /// Diff review 60, L-3: an endpoint deployment's `tokens` list is checked at the head too: another gateway
    /// token had its body read before its 403.
    @Test(
        "an endpoint deployment's tokens list is checked at the head: another token is 403 at once, the listed one read"
    )
    func deploymentTokensAtHead() async throws {
        let yaml = """
            tokens: [{name: alice, token: ALICE}, {name: bob, token: BOB}]
            craft:
              deployments:
                - {name: alices, pipeline: echo, endpoint_url_path: alices, tokens: [alice]}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            var reply = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [Self.head("POST", "/endpoints/alices", ["authorization: EndpointToken BOB"])],
                timeout: .seconds(10))
            var text = String(decoding: reply, as: UTF8.self)
            #expect(HTTPSemanticsTests.responses(reply).first?.status == 403, "\(text)")
            #expect(!text.contains("100 Continue"), "\(text)")
            reply = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [Self.head("POST", "/endpoints/alices", ["authorization: EndpointToken ALICE"])],
                timeout: .seconds(10), until: { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") })
            text = String(decoding: reply, as: UTF8.self)
            #expect(HTTPSemanticsTests.responses(reply, bodiless: [100]).first?.status == 100, "\(text)")
            // The same deployment through trigger_endpoint's other path, with bob's access token.
            let client = try await gateway.client()
            let bob = try await CraftRESTTests.accessToken(client, sdkToken: "BOB")
            await client.close()
            reply = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [Self.head("POST", "/api/v1/deployments/alices/executions", ["authorization: Bearer \(bob)"])],
                timeout: .seconds(10))
            text = String(decoding: reply, as: UTF8.self)
            #expect(HTTPSemanticsTests.responses(reply).first?.status == 403, "\(text)")
            #expect(!text.contains("100 Continue"), "\(text)")
        }
    }

    @Test("a forged access token, or one whose principal a reload removed, is refused at the head; a valid one is read")
    func forgedAccessToken() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            let client = try await gateway.client()
            let token = try await CraftRESTTests.accessToken(client, sdkToken: "ALICE")
            await client.close()
            // The same header and claims, a signature character changed (not the last: its low bits are
            // padding, RFC 4648 §3.5, and decode to the same bytes).
            var forged = Array(token.utf8)
            let at = forged.count - 10
            forged[at] = forged[at] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let forgedToken = String(decoding: forged, as: UTF8.self)
            var reply = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [Self.head("POST", "/api/v1/pipelines/echo/run", ["authorization: Bearer \(forgedToken)"])],
                timeout: .seconds(10))
            var answers = HTTPSemanticsTests.responses(reply)
            try #require(answers.count == 1, "\(String(decoding: reply, as: UTF8.self))")
            #expect(answers[0].status == 401)
            // The gateway's own token: the head passes, `100 Continue` invites the body.
            reply = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [Self.head("POST", "/api/v1/pipelines/echo/run", ["authorization: Bearer \(token)"])],
                timeout: .seconds(10), until: { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") })
            answers = HTTPSemanticsTests.responses(reply, bodiless: [100])
            #expect(answers.first?.status == 100, "\(String(decoding: reply, as: UTF8.self))")
            // Its principal removed by a reload: the same token, signed here, is refused at the head too, the whole
            // check made there (diff review 60, M-2: the signature alone let a revoked token's body be read).
            try gateway.reload(yaml: "tokens: [{name: bob, token: BOB}]\n")
            reply = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [Self.head("POST", "/api/v1/pipelines/echo/run", ["authorization: Bearer \(token)"])],
                timeout: .seconds(10))
            let text = String(decoding: reply, as: UTF8.self)
            answers = HTTPSemanticsTests.responses(reply)
            #expect(answers.first?.status == 401 && !text.contains("100 Continue"), "\(text)")
            #expect(text.contains("no longer configured"), "\(text)")
        }
    }

    @Test(
        "calls anyone may make read a body of at most 16 KiB: refresh and Abacus version at the cap pass, one byte more is 413",
        arguments: ["/api/v1/auth/refresh", "/api/v0/version"]
    )
    func keylessBodyCap(target: String) async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            for (size, status) in [(16 << 10, 200), ((16 << 10) + 1, 413)] {
                // A JSON object padded with spaces to `size` bytes.
                let json = target.hasSuffix("refresh") ? #"{"refresh_token":"ALICE"}"# : "{}"
                let body = json + String(repeating: " ", count: size - json.utf8.count)
                let client = try await gateway.client()
                let response = try await client.request(
                    "POST", target, headers: [("content-type", "application/json")], body: ByteBuffer(string: body))
                #expect(response.status == status, "\(target) \(size): \(response.bodyString.prefix(300))")
                await client.close()
            }
        }
    }

    /// Diff review 60, H-1: the bodies read before authentication (here `auth/refresh`, over HTTP/2 as the review
    /// sent them) come from a pool of their own, 1/64 of `limits.max_buffered_request_bytes` and at least 1 MiB:
    /// a claim's first step is 16 KiB whatever the body, so streams of one byte each filled the whole budget and
    /// every authenticated body was 503. With a 1 MiB budget the pool holds 64 such streams; the 65th is refused
    /// with `reason="unauthenticated_buffer"`, and a trigger's body is still served from the budget.
    @Test("keyless bodies over HTTP/2 fill only their own pool: the 65th is 503, an authenticated trigger is served")
    func unauthenticatedPool() async throws {
        try await withTestGateway(yaml: "limits: {max_buffered_request_bytes: 1MiB}\n") { gateway in
            let h2 = try await H2TestClient.connect(port: gateway.port)
            let headers = [
                (":method", "POST"), (":scheme", "http"), (":path", "/api/v1/auth/refresh"), (":authority", "gw"),
                ("content-type", "application/json"),
            ]
            var streams: [Int32] = []
            for _ in 0..<64 { streams.append(try await h2.request(headers, body: Array("{".utf8), endStream: false)) }
            let pool = gateway.app.requestBuffer.unauthenticated
            #expect(pool.limit == 1 << 20)
            #expect(await eventually(within: .seconds(5)) { pool.bufferedBytes == 1 << 20 }, "\(pool.bufferedBytes)")
            #expect(gateway.app.requestBuffer.bufferedBytes == 0)
            let refused = try await h2.request(headers, body: Array("{".utf8), endStream: false)
            let seen = try await h2.wait(timeout: .seconds(5)) { $0.streams[refused]?.status != nil }
            #expect(seen.streams[refused]?.status == "503", "\(String(describing: seen.streams[refused]))")
            #expect(streams.allSatisfy { seen.streams[$0]?.status == nil }, "the 64 wait for their bodies")
            let metrics = String(decoding: gateway.app.metrics.scrape(), as: UTF8.self)
            #expect(metrics.contains(#"trigger_gateway_requests_refused_total{reason="unauthenticated_buffer"} 1"#))
            let samples = Exposition(metrics).samples
            #expect(samples["trigger_gateway_request_buffer_unauthenticated_bytes"] == Double(1 << 20), "\(samples)")
            #expect(samples["trigger_gateway_request_buffer_unauthenticated_limit_bytes"] == Double(1 << 20))
            #expect(samples["trigger_gateway_request_buffer_bytes"] == 0)
            // The budget authenticated requests share is untouched: a 200 KB trigger body is served.
            let (status, body) = try await RequestBufferTests.curlPost(
                port: gateway.port, body: paddedBody(size: 200_000))
            #expect(status == 200, "\(body.prefix(300))")
            await h2.close()
            #expect(await eventually(within: .seconds(10)) { pool.bufferedBytes == 0 })
        }
    }
}
