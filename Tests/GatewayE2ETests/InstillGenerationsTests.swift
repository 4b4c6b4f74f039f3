import Foundation
import GatewayTestSupport
import Testing

/// Every Instill wire generation on one port (issue 17, item 5): grpcio clients generated from each
/// generation's protos (vdp.pipeline.v1beta 2024, pipeline.pipeline.v1beta 2025, pipeline.v1beta 2026) run sync,
/// release, stream, async + GetOperation and async release against the embedded demo pipelines.
@Suite("Instill wire generations side by side")
struct InstillGenerationsTests {
    static let typeURLs = [
        "vdp": "type.googleapis.com/vdp.pipeline.v1beta.TriggerNamespacePipelineResponse",
        "namespaced": "type.googleapis.com/pipeline.pipeline.v1beta.TriggerNamespacePipelineResponse",
        "named": "type.googleapis.com/pipeline.v1beta.TriggerPipelineResponse",
    ]

    @Test(
        "each generation's client: sync, release, stream, async + GetOperation",
        arguments: ["named", "vdp", "namespaced"])
    func generation(_ name: String) async throws {
        try await withTestGateway { gateway in
            let out = try await Peers.instillGenerations("generation", port: gateway.port, [name])
            #expect(out["code"] == nil, "\(out)")
            #expect(out["sync"] as? [[String: String]] == [["prompt": "hello world"]], "\(out)")
            #expect(out["release"] as? [[String: String]] == [["r": "v1"]], "\(out)")
            // `tokens` streams one message per word, then one with the joined text.
            let stream = try #require(out["stream"] as? [[[String: String]]], "\(out)")
            #expect(stream == [[["token": "a"]], [["token": "b"]], [["token": "c"]], [["text": "a b c"]]], "\(stream)")
            let async = try #require(out["async"] as? [String: Any])
            #expect((async["name"] as? String)?.hasPrefix("operations/") == true)
            #expect(async["done"] as? Bool == false)
            let operation = try #require(out["operation"] as? [String: Any])
            #expect(operation["type_url"] as? String == Self.typeURLs[name], "unpacked with the generation's class")
            #expect(operation["outputs"] as? [[String: String]] == [["prompt": "later"]], "\(operation)")
            let release = try #require(out["async_release"] as? [String: Any])
            #expect(release["outputs"] as? [[String: String]] == [["r": "v2"]], "\(release)")
        }
    }

    @Test("pipeline.v1beta resource names: a malformed one is INVALID_ARGUMENT, an unrouted one NOT_FOUND")
    func resourceNames() async throws {
        try await withTestGateway { gateway in
            for bad in [
                "demo/echo", "namespaces/demo/pipelines/", "namespaces/demo/pipelines/echo/releases/v1",
                "users/demo/pipelines/echo", "namespaces//pipelines/echo",
            ] {
                let out = try await Peers.instillGenerations("bad_name", port: gateway.port, [bad])
                #expect(out["code"] as? String == "INVALID_ARGUMENT", "\(bad): \(out)")
            }
            let unrouted = try await Peers.instillGenerations(
                "bad_name", port: gateway.port, ["namespaces/elsewhere/pipelines/echo"])
            #expect(unrouted["code"] as? String == "NOT_FOUND", "\(unrouted)")
            let good = try await Peers.instillGenerations(
                "bad_name", port: gateway.port, ["namespaces/demo/pipelines/echo"])
            #expect(good["outputs"] as? [[String: String]] == [[:]], "\(good)")
        }
    }

    @Test("grpcurl calls pipeline.v1beta and vdp.pipeline.v1beta from reflection alone")
    func grpcurlNewGenerations() async throws {
        try await withTestGateway { gateway in
            let address = "127.0.0.1:\(gateway.port)"
            let named = try await ReflectionTests.grpcurl([
                "-d", #"{"name": "namespaces/demo/pipelines/upper", "data": [{"variable": {"w": "abc"}}]}"#,
                address, "pipeline.v1beta.PipelinePublicService/TriggerPipeline",
            ])
            #expect(named.status == 0, "\(named.stderr)")
            #expect(named.stdoutString.contains("\"ABC\""), "\(named.stdoutString)")
            let vdp = try await ReflectionTests.grpcurl([
                "-d", #"{"namespace_id": "demo", "pipeline_id": "upper", "data": [{"variable": {"w": "xy"}}]}"#,
                address, "vdp.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
            ])
            #expect(vdp.status == 0, "\(vdp.stderr)")
            #expect(vdp.stdoutString.contains("\"XY\""), "\(vdp.stdoutString)")
        }
    }
}
