import Foundation
import GatewayTestSupport
import NIOCore
import ProtoCodec
import Testing
import TriggerModel

/// gRPC on the shared port, exercised by grpcio (Python) with stubs generated from our protos.
@Suite("gRPC frontend with a grpcio client")
struct GRPCInteropTests {
    @Test("grpcToInProcessSync: TriggerNamespacePipeline and the Release variant run the pipeline")
    func triggerAndRelease() async throws {
        try await withTestGateway { gateway in
            var answer = try await Peers.grpcio("trigger", port: gateway.port, ["upper", #"[{"p":"hi","n":[1,"x"]}]"#])
            let outputs = answer["outputs"] as? [[String: Any]]
            #expect(outputs?.first?["p"] as? String == "HI", "\(answer)")
            #expect(outputs?.first?["n"] as? [AnyHashable] == [1, "X"])
            answer = try await Peers.grpcio("release", port: gateway.port, ["echo", "v7", #"[{"a":"b"},{"c":true}]"#])
            #expect((answer["outputs"] as? [[String: Any]])?.count == 2, "\(answer)")
        }
    }

    /// SDK review 56, M2: a NaN reached an http runner as null; an in-process echo's Infinity made the Instill SDK's
    /// own `MessageToDict` fail.
    @Test(
        "a NaN or infinite number_value is INVALID_ARGUMENT naming it, at any depth", arguments: ["NaN", "-Infinity"])
    func nonFiniteNumbers(literal: String) async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.grpcio(
                "trigger", port: gateway.port, ["echo", #"[{"ok":1,"l":[{"x":\#(literal)}]}]"#])
            #expect(answer["code"] as? String == "INVALID_ARGUMENT", "\(answer)")
            #expect((answer["details"] as? String)?.contains("no such number") == true, "\(answer)")
        }
    }

    @Test("the exact bytes the Instill SDK sends for {\"prompt\":\"hello world\"} to ns1/pipe1 decode and route")
    func instillSDKBytes() async throws {
        try await withGatewayOverBackend(EchoAnyRunner(), pool: "anything", namespace: "ns1", pipeline: "pipe1") {
            gateway in
            let answer = try await Peers.grpcio("sdk-bytes", port: gateway.port)
            #expect(
                (answer["outputs"] as? [[String: Any]])?.first?["prompt"] as? String == "hello world", "\(answer)")
        }
    }

    @Test("Readiness and Liveness (pipeline and mgmt) and grpc.health.v1 answer SERVING")
    func health() async throws {
        try await withTestGateway(yaml: "tokens:\n  - {name: a, token: t0k}\n") { gateway in
            // No token: health checks are open, as the SDK and load balancers call them first.
            let answer = try await Peers.grpcio("health", port: gateway.port)
            for key in ["pipeline_readiness", "mgmt_readiness", "pipeline_liveness", "grpc_health"] {
                #expect(answer[key] as? Int == 1, "\(key): \(answer)")
            }
        }
    }

    @Test("unknown methods are UNIMPLEMENTED")
    func unknownMethod() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.grpcio("unknown", port: gateway.port)
            #expect(answer["code"] as? String == "UNIMPLEMENTED", "\(answer)")
        }
    }

    @Test(
        "with tokens configured: no token is UNAUTHENTICATED, a Bearer token passes",
        arguments: [
            (nil, "UNAUTHENTICATED"), ("wrong", "UNAUTHENTICATED"), ("t0k", nil),
        ] as [(String?, String?)])
    func auth(token: String?, code: String?) async throws {
        try await withTestGateway(yaml: "tokens:\n  - {name: a, token: t0k}\n") { gateway in
            let answer = try await Peers.grpcio("trigger", port: gateway.port, ["echo", #"[{"x":1}]"#], token: token)
            #expect(answer["code"] as? String == code, "\(answer)")
        }
    }

    @Test("grpc-timeout is honoured: DEADLINE_EXCEEDED when it passes")
    func deadline() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.grpcio("deadline", port: gateway.port, ["0.5"])
            #expect(answer["code"] as? String == "DEADLINE_EXCEEDED", "\(answer)")
        }
    }

    @Test(
        "max message = the body cap: a message at the cap passes, one byte over is RESOURCE_EXHAUSTED",
        arguments: [(65_536, nil), (65_537, "RESOURCE_EXHAUSTED")] as [(Int, String?)])
    func messageCap(size: Int, code: String?) async throws {
        try await withTestGateway(yaml: "limits:\n  max_body_bytes: 65536\n") { gateway in
            let answer = try await Peers.grpcio("sized", port: gateway.port, [String(size)])
            #expect(answer["code"] as? String == code, "\(answer)")
            if code == nil { #expect(answer["size"] as? Int == size) }
        }
    }

    /// Answers every call with one output, `{"blob": "xxx…"}` of `size` characters.
    struct SizedAnswerRunner: TriggerRunner {
        let size: Int

        static func result(size: Int) -> TriggerResult {
            TriggerResult(outputs: [["blob": .string(String(repeating: "x", count: size))]])
        }

        func run(_ request: TriggerRequest) async throws -> TriggerResult { Self.result(size: size) }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "not streamed here")) }
        }
    }

    /// Review 17, finding 4: a runner's answer over the cap reached gRPC clients, whose receive limit is that cap
    /// (instill-sdk: 32 MiB), and they failed it themselves while the gateway logged `grpc_status=0`.
    @Test(
        "a response message at the cap passes, one byte over is RESOURCE_EXHAUSTED from the gateway, naming both sizes",
        arguments: [0, 1])
    func responseMessageCap(over: Int) async throws {
        let cap = 65_536
        // The output size whose TriggerResponse message is exactly `cap` bytes (the Instill encoding the gateway
        // answers with), then one more character.
        let atCap = try #require(
            (cap - 100...cap).first {
                InstillCodec.encodeTriggerResponse(SizedAnswerRunner.result(size: $0)).readableBytes == cap
            })
        try await withBackend("http", runner: SizedAnswerRunner(size: atCap + over)) { port in
            let yaml = """
                limits: {max_body_bytes: \(cap)}
                pools: [{name: sized, transport: http, endpoints: ["127.0.0.1:\(port)"]}]
                routes: [{namespace: demo, pipeline: "*", pool: sized}]
                """
            try await withTestGateway(yaml: yaml) { gateway in
                let answer = try await Peers.grpcio("trigger", port: gateway.port, ["echo", #"[{"a":1}]"#])
                if over == 0 {
                    let blob = (answer["outputs"] as? [[String: Any]])?.first?["blob"] as? String
                    #expect(blob?.count == atCap, "\(answer.keys)")
                } else {
                    #expect(answer["code"] as? String == "RESOURCE_EXHAUSTED", "\(answer)")
                    let details = answer["details"] as? String ?? ""
                    #expect(details.contains("\(cap + 1) bytes") && details.contains("\(cap) bytes"), "\(answer)")
                }
            }
        }
    }

    @Test(
        "metadata under max_header_bytes passes; over it is RESOURCE_EXHAUSTED (as gRPC core answers), not INTERNAL",
        arguments: [(3000, nil), (6000, "RESOURCE_EXHAUSTED")] as [(Int, String?)])
    func metadataCap(padding: Int, code: String?) async throws {
        try await withTestGateway(yaml: "limits:\n  max_header_bytes: 4096\n") { gateway in
            let answer = try await Peers.grpcio("metadata-sized", port: gateway.port, [String(padding)])
            #expect(answer["code"] as? String == code, "\(answer)")
            if code != nil {
                #expect((answer["details"] as? String)?.contains("metadata size exceeds") == true, "\(answer)")
            }
        }
    }

    @Test("a data URI in a Struct is a binary: blob-info reports the sender's sha256")
    func blob() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.grpcio("blob", port: gateway.port, ["300000"])
            let info = (answer["outputs"] as? [[String: Any]])?.first?["f"] as? [String: Any]
            // Both sides required: an `==` of two optionals would pass with neither there.
            let sent = try #require(answer["sha256"] as? String, "\(answer)")
            #expect(info?["sha256"] as? String == sent, "\(answer)")
            #expect(info?["size"] as? Double == 300_000)
        }
    }

    @Test("server streaming: one message per token, then the joined text")
    func stream() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.grpcio("stream", port: gateway.port, ["one two three"])
            let messages = answer["messages"] as? [[[String: Any]]] ?? []
            #expect(
                messages.map { $0.first?["token"] as? String ?? $0.first?["text"] as? String } == [
                    "one", "two", "three", "one two three",
                ], "\(answer)")
        }
    }

    @Test("100 concurrent calls multiplexed on one connection all complete")
    func multiplexed() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.grpcio("many", port: gateway.port, ["100"])
            #expect(answer["outputs"] as? [String] == (0..<100).map(String.init), "\(answer)")
        }
    }

    @Test("a malformed request errors on its own stream; other streams on the connection are unaffected")
    func streamScopedError() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.grpcio("mixed", port: gateway.port)
            #expect((answer["bad"] as? [String: Any])?["code"] as? String == "INVALID_ARGUMENT", "\(answer)")
            #expect(answer["good"] as? [String] == ["X0", "X1", "X2", "X3", "X4"])
        }
    }
}

@Suite("gRPC frontend with grpcurl")
struct GRPCURLInteropTests {
    @Test("grpcurl (grpc-go) triggers a pipeline from our .proto files")
    func grpcurl() async throws {
        let grpcurl = Peers.repositoryRoot.appendingPathComponent(".venv/bin/grpcurl").path
        try #require(FileManager.default.isExecutableFile(atPath: grpcurl), "scripts/test installs grpcurl into .venv")
        try await withTestGateway { gateway in
            let protos = Peers.repositoryRoot.appendingPathComponent("protos").path
            let out = try await TestProcess.run(
                grpcurl,
                [
                    "-plaintext", "-import-path", protos, "-import-path", "/usr/include",
                    "-proto", "pipeline/pipeline/v1beta/pipeline_public_service.proto",
                    "-d", #"{"namespace_id":"demo","pipeline_id":"upper","data":[{"variable":{"prompt":"hello"}}]}"#,
                    "127.0.0.1:\(gateway.port)",
                    "pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
                ])
            #expect(out.status == 0, "\(out.stderr)")
            let answer = try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any]
            #expect(
                (answer?["outputs"] as? [[String: Any]])?.first?["prompt"] as? String == "HELLO", "\(out.stdoutString)")
        }
    }
}
