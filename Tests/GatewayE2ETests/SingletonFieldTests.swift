import GatewayTestSupport
import NIOCore
import Testing

/// Review 24, I5 and I3: singleton fields a second reader could read otherwise (RFC 9110 §5.3) are refused with 400 /
/// INVALID_ARGUMENT, as two `Authorization` fields are (``AuthTests``): two `Content-Type` fields (the gateway read
/// `application/grpc` then `application/grpc+json` as protobuf), and over h2 a `Host` that names another host than
/// `:authority` (RFC 9113 §8.3.1), or two `Host` fields.
@Suite("singleton request fields: Content-Type, Host/:authority")
struct SingletonFieldTests {
    static let body = #"{"data":[{"variable":{}}]}"#
    static let restPath = "/v1beta/namespaces/demo/pipelines/echo/trigger"

    @Test("HTTP/1.1: two Content-Type fields are 400 INVALID_ARGUMENT; one is served")
    func twoContentTypesH1() async throws {
        try await withTestGateway(yaml: "{}\n") { gateway in
            let client = try await gateway.client()
            let two = try await client.request(
                "POST", Self.restPath,
                headers: [("content-type", "application/json"), ("content-type", "text/plain")],
                body: ByteBuffer(string: Self.body))
            #expect(two.status == 400, "\(two.bodyString)")
            #expect(try json(two.body)["code"] as? Int == 3)
            #expect(two.bodyString.contains("more than one Content-Type"), "\(two.bodyString)")
            let one = try await client.request(
                "POST", Self.restPath, headers: jsonHeaders, body: ByteBuffer(string: Self.body))
            #expect(one.status == 200, "\(one.bodyString)")
            await client.close()
        }
    }

    @Test("h2: two content-type fields are 400 on REST and INVALID_ARGUMENT on gRPC (grpc then grpc+json)")
    func twoContentTypesH2() async throws {
        try await withTestGateway(yaml: "{}\n") { gateway in
            let client = try await H2TestClient.connect(port: gateway.port)
            let pseudo = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost")]
            let rest = try await client.request(
                pseudo + [
                    (":path", Self.restPath), ("content-type", "application/json"), ("content-type", "text/plain"),
                ],
                body: Array(Self.body.utf8))
            let grpc = try await client.request(
                pseudo + [
                    (":path", GRPCDetailsTests.path), ("content-type", "application/grpc"),
                    ("content-type", "application/grpc+json"), ("te", "trailers"),
                ],
                body: GRPCDetailsTests.framed(GRPCDetailsTests.echoRequest, flag: 0))
            let plain = try await client.request(
                pseudo + [(":path", GRPCDetailsTests.path), ("content-type", "application/grpc"), ("te", "trailers")],
                body: GRPCDetailsTests.framed(GRPCDetailsTests.echoRequest, flag: 0))
            let snapshot = try await client.wait(timeout: .seconds(10)) {
                $0.streams[rest]?.endStream == true && $0.streams[grpc]?.grpcStatus != nil
                    && $0.streams[plain]?.grpcStatus != nil
            }
            #expect(snapshot.streams[rest]?.status == "400", "\(snapshot.streams[rest]?.bodyString ?? "")")
            #expect(snapshot.streams[rest]?.bodyString.contains("more than one Content-Type") == true)
            #expect(snapshot.streams[grpc]?.grpcStatus == "3")
            #expect(snapshot.streams[plain]?.grpcStatus == "0")
            await client.close()
        }
    }

    /// Two `host` fields never reach the gateway: libnghttp2 resets the stream as malformed (PROTOCOL_ERROR, RFC
    /// 9113 §8.1.1), as it does any repeated field it validates; a `host` beside `:authority` is the gateway's rule.
    @Test(
        "h2 REST: a Host naming another host than :authority is 400, two Host fields are reset; the same host (any case) is served",
        arguments: [
            (["other.example"], 400), (["LOCALHOST"], 200), (["localhost"], 200), ([], 200),
            (["localhost", "localhost"], nil),
        ] as [([String], Int?)])
    func hostAndAuthority(hosts: [String], status: Int?) async throws {
        try await withTestGateway(yaml: "{}\n") { gateway in
            let client = try await H2TestClient.connect(port: gateway.port)
            let stream = try await client.request(
                [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", Self.restPath)]
                    + jsonHeaders + hosts.map { ("host", $0) },
                body: Array(Self.body.utf8))
            let snapshot = try await client.wait(timeout: .seconds(10)) {
                $0.streams[stream]?.endStream == true || $0.streams[stream]?.closedWith != nil
            }
            let record = snapshot.streams[stream]
            let body = record?.bodyString ?? ""
            if let status {
                #expect(record?.status == String(status), "\(body)")
                if status == 400 { #expect(body.contains("more than one host"), "\(body)") }
            } else {
                #expect(record?.status == nil, "\(body)")
                #expect(record?.closedWith == 1)
            }
            await client.close()
        }
    }
}
