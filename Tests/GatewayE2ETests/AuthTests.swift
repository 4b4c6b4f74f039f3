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
}
