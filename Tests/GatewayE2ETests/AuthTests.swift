import GatewayTestSupport
import NIOCore
import Testing

@Suite("token auth on REST")
struct AuthTests {
    static let config = """
        tokens:
          - {name: alice, token: s3cret-alice}
          - {name: bob, token: s3cret-bob}
        """

    @Test(
        "Bearer and bare tokens pass; missing or wrong tokens are 401 JSON errors",
        arguments: [
            (nil, 401), ("Bearer wrong", 401), ("Bearer s3cret-alice", 200), ("s3cret-bob", 200),
            ("bearer s3cret-bob", 200),
            ("Bearer s3cret-alic", 401), ("Bearer s3cret-alicee", 401),
        ] as [(String?, Int)])
    func tokens(authorization: String?, status: Int) async throws {
        try await withTestGateway(yaml: Self.config) { gateway in
            let client = try await gateway.client()
            var headers = jsonHeaders
            if let authorization { headers.append(("authorization", authorization)) }
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: headers,
                body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#)
            )
            #expect(response.status == status)
            if status == 401 { #expect(try json(response.body)["code"] as? Int == 16) }
            await client.close()
        }
    }

    /// Review 24, L3: two `Authorization` fields are refused (400 / INVALID_ARGUMENT), whichever comes first;
    /// the gateway used the first and ignored the second.
    static let twoTokens: [[String]] = [
        ["Bearer s3cret-alice", "Bearer wrong"], ["Bearer wrong", "Bearer s3cret-alice"],
    ]

    @Test("HTTP/1.1: two Authorization fields are 400 INVALID_ARGUMENT, in either order", arguments: twoTokens)
    func twoAuthorizationFieldsH1(tokens: [String]) async throws {
        try await withTestGateway(yaml: Self.config) { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: jsonHeaders + tokens.map { ("authorization", $0) },
                body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#)
            )
            #expect(response.status == 400, "\(response.bodyString)")
            #expect(try json(response.body)["code"] as? Int == 3)
            #expect(response.bodyString.contains("send exactly one"), "\(response.bodyString)")
            await client.close()
        }
    }

    @Test("HTTP/2: two authorization fields are 400 on REST and INVALID_ARGUMENT on gRPC", arguments: twoTokens)
    func twoAuthorizationFieldsH2(tokens: [String]) async throws {
        try await withTestGateway(yaml: Self.config) { gateway in
            let client = try await H2TestClient.connect(port: gateway.port)
            let pseudo = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost")]
            let rest = try await client.request(
                pseudo + [(":path", "/v1beta/namespaces/demo/pipelines/echo/trigger")] + jsonHeaders
                    + tokens.map { ("authorization", $0) },
                body: Array(#"{"data":[{"variable":{}}]}"#.utf8))
            let grpc = try await client.request(
                pseudo + [(":path", GRPCDetailsTests.path), ("content-type", "application/grpc"), ("te", "trailers")]
                    + tokens.map { ("authorization", $0) },
                body: GRPCDetailsTests.framed(GRPCDetailsTests.echoRequest, flag: 0))
            let snapshot = try await client.wait(timeout: .seconds(10)) {
                $0.streams[rest]?.endStream == true && $0.streams[grpc]?.grpcStatus != nil
            }
            #expect(snapshot.streams[rest]?.status == "400", "\(snapshot.streams[rest]?.bodyString ?? "")")
            #expect(snapshot.streams[rest]?.bodyString.contains("send exactly one") == true)
            #expect(snapshot.streams[grpc]?.grpcStatus == "3")
            await client.close()
        }
    }
}
