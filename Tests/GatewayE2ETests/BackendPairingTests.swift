import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// Every frontend protocol against every backend transport, each with a separate demo-runner process:
/// the model in the middle is what makes the pairings independent.
@Suite("frontend × backend transport pairings")
struct BackendPairingTests {
    static let transports = ["http", "grpc"]

    static func config(transport: String, port: Int) -> String {
        """
        pools:
          - {name: runner, transport: \(transport), endpoints: ["127.0.0.1:\(port)"], request_timeout: 20s}
        routes:
          - {namespace: demo, pipeline: "*", pool: runner}
        """
    }

    @Test("h1JSONTo{HTTP,GRPC}BackendSync: REST reaches the backend, blobs arrive intact", arguments: transports)
    func restToBackend(transport: String) async throws {
        try await withDemoRunnerProcess(transport: transport) { runnerPort in
            try await withTestGateway(yaml: Self.config(transport: transport, port: runnerPort)) { gateway in
                let client = try await gateway.client()
                var response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/upper/releases/r2/trigger", headers: jsonHeaders,
                    body: ByteBuffer(
                        string: #"{"data":[{"variable":{"w":"abc","n":{"k":["x"]}}},{"variable":{"w":"d"}}]}"#)
                )
                #expect(response.status == 200, "\(response.bodyString)")
                let outs = try outputs(response.body)
                #expect(outs.first?["w"] as? String == "ABC")
                #expect((outs.first?["n"] as? [String: Any])?["k"] as? [String] == ["X"])
                #expect(outs.last?["w"] as? String == "D")

                var form = MultipartBody()
                let bytes = randomBytes(1_500_000, seed: 11)
                form.file("variables[0].f", filename: "a.bin", contentType: "image/png", bytes: bytes)
                response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/blob-info/trigger",
                    headers: [("content-type", form.contentType)], body: form.finished()
                )
                let info = try outputs(response.body).first?["f"] as? [String: Any]
                #expect(info?["sha256"] as? String == (try sha256Hex(bytes)), "\(response.bodyString)")
                #expect(info?["content_type"] as? String == "image/png")

                response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/fail/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"message":"kaputt","code":"ABORTED"}}]}"#)
                )
                #expect(response.status == 409)
                #expect(try json(response.body)["code"] as? Int == 10)
                #expect((try json(response.body)["message"] as? String)?.contains("kaputt") == true)
                await client.close()
            }
        }
    }

    @Test("grpcTo{HTTP,GRPC}BackendSync: grpcio reaches the backend, blobs arrive intact", arguments: transports)
    func grpcToBackend(transport: String) async throws {
        try await withDemoRunnerProcess(transport: transport) { runnerPort in
            try await withTestGateway(yaml: Self.config(transport: transport, port: runnerPort)) { gateway in
                var answer = try await Peers.grpcio("trigger", port: gateway.port, ["upper", #"[{"p":"hi"}]"#])
                #expect((answer["outputs"] as? [[String: Any]])?.first?["p"] as? String == "HI", "\(answer)")
                answer = try await Peers.grpcio("blob", port: gateway.port, ["200000"])
                let info = (answer["outputs"] as? [[String: Any]])?.first?["f"] as? [String: Any]
                // Both sides required: an `==` of two optionals would pass with neither there.
                let sent = try #require(answer["sha256"] as? String, "\(answer)")
                #expect(info?["sha256"] as? String == sent, "\(answer)")
                answer = try await Peers.grpcio("deadline", port: gateway.port, ["0.5"])
                #expect(answer["code"] as? String == "DEADLINE_EXCEEDED", "\(answer)")
            }
        }
    }
}
