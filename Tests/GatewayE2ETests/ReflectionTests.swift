import Foundation
import GatewayTestSupport
import Testing

/// gRPC server reflection against a real gateway: grpcurl (grpc-go's reflection client; 1.8.6 speaks
/// `grpc.reflection.v1alpha`) and a grpcio client on `v1` and `v1alpha` that builds its messages from the
/// reflected descriptors alone.
@Suite("gRPC server reflection")
struct ReflectionTests {
    static let services = [
        "core.mgmt.v1beta.MgmtPublicService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "pipeline.pipeline.v1beta.PipelinePublicService",
        "pipeline.v1beta.PipelinePublicService",
        "vdp.pipeline.v1beta.PipelinePublicService",
    ]

    static func grpcurl(_ arguments: [String]) async throws -> TestProcess.Output {
        let grpcurl = Peers.repositoryRoot.appendingPathComponent(".venv/bin/grpcurl").path
        try #require(FileManager.default.isExecutableFile(atPath: grpcurl), "scripts/test installs grpcurl into .venv")
        return try await TestProcess.run(grpcurl, ["-plaintext", "-max-time", "30"] + arguments)
    }

    @Test("grpcurl list, describe, and a trigger call without -proto")
    func grpcurlWithoutProtos() async throws {
        try await withTestGateway { gateway in
            let address = "127.0.0.1:\(gateway.port)"
            let list = try await Self.grpcurl([address, "list"])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdoutString.split(separator: "\n").map(String.init) == Self.services)

            let describe = try await Self.grpcurl([
                address, "describe", "pipeline.pipeline.v1beta.PipelinePublicService",
            ])
            #expect(describe.status == 0, "\(describe.stderr)")
            #expect(
                describe.stdoutString.contains(
                    "rpc TriggerNamespacePipeline ( .pipeline.pipeline.v1beta.TriggerNamespacePipelineRequest ) "
                        + "returns ( .pipeline.pipeline.v1beta.TriggerNamespacePipelineResponse );"),
                "\(describe.stdoutString)")
            #expect(describe.stdoutString.contains("returns ( stream .pipeline.pipeline.v1beta."))

            // A message type from an imported file: grpcurl resolves it through the imports it was sent.
            let message = try await Self.grpcurl([address, "describe", "google.protobuf.Struct"])
            #expect(
                message.stdoutString.contains("map<string, .google.protobuf.Value> fields = 1;"), "\(message.stderr)")

            let call = try await Self.grpcurl([
                "-d", #"{"namespace_id":"demo","pipeline_id":"upper","data":[{"variable":{"prompt":"hello"}}]}"#,
                address, "pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
            ])
            #expect(call.status == 0, "\(call.stderr)")
            let answer = try JSONSerialization.jsonObject(with: call.stdout) as? [String: Any]
            #expect(
                (answer?["outputs"] as? [[String: Any]])?.first?["prompt"] as? String == "HELLO", "\(call.stdoutString)"
            )

            // An empty batch is refused as REST refuses `{"data": []}`, not run with no inputs (found by review).
            for method in ["TriggerNamespacePipeline", "TriggerAsyncNamespacePipeline"] {
                let empty = try await Self.grpcurl([
                    "-d", #"{"namespace_id":"demo","pipeline_id":"echo"}"#,
                    address, "pipeline.pipeline.v1beta.PipelinePublicService/\(method)",
                ])
                #expect(empty.status != 0, "\(method): \(empty.stdoutString)")
                #expect(empty.stderr.contains("Code: InvalidArgument"), "\(method): \(empty.stderr)")
                #expect(
                    empty.stderr.contains("data is empty: a trigger needs at least one batch element"),
                    "\(empty.stderr)")
            }

            // A bad instill-requester-uid fails the call it is for, not grpcurl's reflection lookup (review 8).
            let badRequester = try await Self.grpcurl([
                "-H", "instill-requester-uid: not-a-uuid",
                "-d", #"{"namespace_id":"demo","pipeline_id":"upper","data":[{"variable":{"prompt":"x"}}]}"#,
                address, "pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
            ])
            #expect(badRequester.status != 0, "\(badRequester.stdoutString)")
            #expect(!badRequester.stderr.contains("failed to query for service descriptor"), "\(badRequester.stderr)")
            #expect(badRequester.stderr.contains("Code: InvalidArgument"), "\(badRequester.stderr)")
            #expect(
                badRequester.stderr.contains(#"instill-requester-uid "not-a-uuid" is not a UUID"#),
                "\(badRequester.stderr)")

            // grpc.health.v1 through reflection too.
            let health = try await Self.grpcurl([address, "grpc.health.v1.Health/Check"])
            #expect(health.stdoutString.contains("\"SERVING\""), "\(health.stderr)")

            let unknown = try await Self.grpcurl([address, "describe", "pipeline.pipeline.v1beta.Nope"])
            #expect(unknown.status != 0)
            #expect(unknown.stderr.contains("Symbol not found"), "\(unknown.stderr)")
        }
    }

    @Test("with tokens configured, reflection needs one like a trigger; grpcurl -H carries it")
    func reflectionIsAuthenticated() async throws {
        try await withTestGateway(yaml: "tokens:\n  - {name: a, token: t0k}\n") { gateway in
            let address = "127.0.0.1:\(gateway.port)"
            let refused = try await Self.grpcurl([address, "list"])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("Unauthenticated"), "\(refused.stderr)")
            let listed = try await Self.grpcurl(["-H", "authorization: Bearer t0k", address, "list"])
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdoutString.split(separator: "\n").map(String.init) == Self.services)
        }
    }

    @Test(
        "grpcio on v1 and v1alpha: lockstep requests, a call built from reflected descriptors, pipelining",
        arguments: ["v1", "v1alpha"])
    func grpcio(version: String) async throws {
        try await withTestGateway { gateway in
            let script = Peers.repositoryRoot.appendingPathComponent("Tests/InteropClients/reflection_client.py").path
            let env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
            let out = try await TestProcess.run(
                Peers.python, [script, version, String(gateway.port)], environment: env)
            #expect(out.status == 0, "\(out.stderr)")
            let answer = try #require(
                try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any], "\(out.stderr)")
            #expect(answer["services"] as? [String] == Self.services)
            #expect(answer["not_found"] as? Int == 5)
            #expect(answer["empty_request"] as? String == "INVALID_ARGUMENT")
            #expect(answer["left_after_close"] as? Int == 0, "the call ends with OK once the client half-closes")
            let trigger = answer["trigger"] as? [String: Any]
            #expect((trigger?["outputs"] as? [[String: Any]])?.first?["prompt"] as? String == "REFLECTED", "\(answer)")
            #expect(answer["pipelined"] as? Int == 1000)
        }
    }
}
