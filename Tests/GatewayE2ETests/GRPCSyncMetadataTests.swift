import Foundation
import GatewayTestSupport
import Testing
import TriggerModel

/// gRPC sync triggers carry the same request context as REST ones (issue 11): `idempotency-key` reaches the
/// backend, and `instill-return-traces: true` asks it for traces.
@Suite("gRPC sync: idempotency-key and instill-return-traces reach the backend")
struct GRPCSyncMetadataTests {
    /// Answers with what it received of the request context, as the outputs of one item.
    struct ContextEchoRunner: TriggerRunner {
        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            var out = ValueObject()
            out["prompt"] = .string(request.idempotencyKey ?? "no key")
            out["traces"] = .string(request.returnTraces ? "traces-on" : "traces-off")
            return TriggerResult(outputs: [out])
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "not streamed here")) }
        }
    }

    /// `curl --http2-prior-knowledge` of the Instill sync method; the response's message bytes, in text.
    static func call(port: Int, headers: [String]) async throws -> String {
        let curl = try #require(TestProcess.which("curl"))
        let body = GRPCDetailsTests.framed(GRPCDetailsTests.echoRequest, flag: 0)
        let args =
            ["-sS", "--http2-prior-knowledge", "-o", "-", "-H", "content-type: application/grpc", "-H", "te: trailers"]
            + headers.flatMap { ["-H", $0] }
            + ["--data-binary", "@-", "http://127.0.0.1:\(port)\(GRPCDetailsTests.path)"]
        let out = try await TestProcess.run(curl, args, stdin: Data(body))
        #expect(out.status == 0, "\(out.stderr)")
        return String(decoding: out.stdout, as: UTF8.self)
    }

    @Test("with the metadata: the key and return-traces reach the backend; without it: neither")
    func metadataReachesBackend() async throws {
        try await withGatewayOverBackend(ContextEchoRunner(), pool: "context", pipeline: "echo") { gateway in
            let with = try await Self.call(
                port: gateway.port, headers: ["idempotency-key: key-42", "instill-return-traces: true"]
            )
            #expect(with.contains("key-42"), "\(with)")
            #expect(with.contains("traces-on"), "\(with)")
            let without = try await Self.call(port: gateway.port, headers: [])
            #expect(without.contains("no key"), "\(without)")
            #expect(without.contains("traces-off"), "\(without)")
        }
    }

    /// The async method reads the metadata like every frontend (one RequestContext): `instill-return-traces`
    /// reaches the run of the operation (the gRPC async builder once dropped it).
    @Test("gRPC async: instill-return-traces reaches the operation's run")
    func asyncCarriesReturnTraces() async throws {
        try await withGatewayOverBackend(ContextEchoRunner(), pool: "context", pipeline: "echo") { gateway in
            let curl = try #require(TestProcess.which("curl"))
            let body = GRPCDetailsTests.framed(GRPCDetailsTests.echoRequest, flag: 0)
            let out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http2-prior-knowledge", "-o", "-", "-H", "content-type: application/grpc",
                    "-H", "te: trailers", "-H", "instill-return-traces: true", "--data-binary", "@-",
                    "http://127.0.0.1:\(gateway.port)/pipeline.pipeline.v1beta.PipelinePublicService/"
                        + "TriggerAsyncNamespacePipeline",
                ],
                stdin: Data(body))
            let text = String(decoding: out.stdout, as: UTF8.self)
            let name = try #require(text.firstMatch(of: /operations\/[0-9A-Za-z_-]+/), "\(text)")
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            let done = try await client.request("GET", "/v1beta/\(name.output)?wait=20s")
            #expect(done.status == 200, "\(done.bodyString)")
            #expect(done.bodyString.contains("traces-on"), "\(done.bodyString)")
        }
    }
}
