import Foundation
import GatewayTestSupport
import NIOCore
import Testing
import TriggerModel

/// Strings through the protobuf hops, on the wire (protocol review 58, L12): protobuf-c gave strings as C strings,
/// so a NUL cut a client's value on its way to a grpc runner and a runner's on its way to a gRPC client, and bytes
/// that were not UTF-8 were repaired with U+FFFD. Values and object keys are now generated as `bytes`
/// (scripts/regen-protos.sh) and carried whole; a gRPC client's string that is not UTF-8 is refused, as protobuf's
/// own parsers refuse it.
@Suite("Strings with NUL and bad UTF-8 through REST, gRPC and grpc runners")
struct ProtoStringE2ETests {
    static func withGateway(_ body: (TestGateway) async throws -> Void) async throws {
        try await withGRPCBackend(runner: RESTRequestPassthroughE2ETests.EchoVariables()) { grpcPort in
            try await withHTTPBackend(runner: RESTRequestPassthroughE2ETests.EchoVariables()) { httpPort in
                let yaml = """
                    pools:
                      - {name: g, transport: grpc, endpoints: ["127.0.0.1:\(grpcPort)"]}
                      - {name: h, transport: http, endpoints: ["127.0.0.1:\(httpPort)"]}
                    routes:
                      - {namespace: demo, pipeline: "*", pool: g}
                      - {namespace: web, pipeline: "*", pool: h}
                    """
                try await withTestGateway(yaml: yaml, body)
            }
        }
    }

    @Test("a NUL in a REST value and key reaches a grpc runner and comes back whole, as through an http runner")
    func restNULThroughGRPCRunner() async throws {
        try await Self.withGateway { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            let body = #"{"data":[{"variable":{"p":"a\u0000b","k\u0000x":1,"l":["\u0000",""]}}]}"#
            for namespace in ["demo", "web"] {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/\(namespace)/pipelines/echo/trigger",
                    headers: [("content-type", "application/json")], body: ByteBuffer(string: body))
                #expect(response.status == 200, "\(response.bodyString)")
                // Before: {"outputs":[{"p":"a","k":1,"l":["",""]}],…} through the grpc runner.
                #expect(
                    response.bodyString
                        == #"{"outputs":[{"p":"a\u0000b","k\u0000x":1,"l":["\u0000",""]}],"metadata":{}}"#,
                    "\(namespace)")
            }
        }
    }

    @Test("a NUL in a gRPC client's value reaches the runner and comes back whole (grpcio)")
    func grpcNULRoundTrip() async throws {
        try await Self.withGateway { gateway in
            let answer = try await Peers.grpcio(
                "trigger", port: gateway.port, ["echo", #"[{"p": "a\u0000b", "k\u0000": ["\u0000"]}]"#])
            let outputs = try #require(answer["outputs"] as? [[String: Any]], "\(answer)")
            #expect(outputs.first?["p"] as? String == "a\u{0}b", "\(answer)")
            #expect(outputs.first?["k\u{0}"] as? [String] == ["\u{0}"], "\(answer)")
        }
    }

    /// The Instill SDK's request (`InstillTriggerRequestTests.sdkHex`, `{"prompt": "hello world"}`) with bytes of
    /// "hello" replaced: a lone 0xFF, and a NUL in `namespace_id` (an id protobuf-c still gives as a C string).
    @Test(
        "a gRPC client's string that is not UTF-8, or an id holding NUL, is INVALID_ARGUMENT naming the field",
        arguments: [
            (
                "0a0464656d6f12046563686f221b0a190a170a0670726f6d7074120d1a0b68656c6cff20776f726c64",
                "a string_value is not valid UTF-8"
            ),
            (
                "0a0564006d6f3112046563686f221b0a190a170a0670726f6d7074120d1a0b68656c6c6f20776f726c64",
                "namespace_id holds a NUL byte"
            ),
        ])
    func grpcBadStringRefused(hex: String, detail: String) async throws {
        try await Self.withGateway { gateway in
            let answer = try await Peers.grpcio("sdk-bytes", port: gateway.port, [hex])
            #expect(answer["code"] as? String == "INVALID_ARGUMENT", "\(answer)")
            #expect((answer["details"] as? String)?.contains(detail) == true, "\(answer)")
        }
    }
}
