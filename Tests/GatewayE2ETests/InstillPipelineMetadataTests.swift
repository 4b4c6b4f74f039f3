import Foundation
import GatewayTestSupport
import Testing

/// Pipeline metadata (issue 17, item 4): `GetNamespacePipeline` / `GetNamespacePipelineRelease` over gRPC (the
/// unmodified SDK's `get_pipeline`, grpcio of the 2024 generation) and their REST `GET` paths answer for routed
/// pipelines, with the releases routes name and the fields the runner's `Describe` declares; NOT_FOUND otherwise.
@Suite("Instill pipeline metadata: GetNamespacePipeline[Release], gRPC and REST")
struct InstillPipelineMetadataTests {
    static let yaml = """
        auth: tokens
        tokens:
          - {name: alice, token: alice-token}
        pools:
          - {name: demo, transport: inprocess}
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}
          - {namespace: demo, pipeline: blob-info, release: v2, pool: demo}
          - {namespace: demo, pipeline: blob-info, release: v1, pool: demo}
        """

    static func fileProperty(_ spec: [String: Any]?) -> [String: Any]? {
        let input = spec?["input"] as? [String: Any]
        return (input?["properties"] as? [String: Any])?["file"] as? [String: Any]
    }

    @Test("the SDK's get_pipeline and get_pipeline_release")
    func sdk() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            let run = try await Peers.instillSDK(
                "get_pipeline", port: gateway.port, ["demo", "blob-info"], token: "alice-token")
            #expect(run.status == 0, "\(run.output)")
            let pipeline = try #require(run.result?["pipeline"] as? [String: Any], "\(run.output)")
            #expect(pipeline["name"] as? String == "namespaces/demo/pipelines/blob-info")
            #expect(pipeline["id"] as? String == "blob-info")
            #expect(pipeline["ownerName"] as? String == "organizations/demo")
            #expect(UUID(uuidString: pipeline["uid"] as? String ?? "") != nil)
            let releases = try #require(pipeline["releases"] as? [[String: Any]])
            #expect(releases.map { $0["id"] as? String } == ["v1", "v2"])
            #expect(releases.first?["name"] as? String == "namespaces/demo/pipelines/blob-info/releases/v1")
            let file = Self.fileProperty(pipeline["dataSpecification"] as? [String: Any])
            #expect(file?["instillFormat"] as? String == "file", "\(pipeline)")
            #expect(file?["type"] as? String == "string")

            let release = try await Peers.instillSDK(
                "get_pipeline_release", port: gateway.port, ["demo", "blob-info", "v1"], token: "alice-token")
            #expect(release.status == 0, "\(release.output)")
            let body = try #require(release.result?["release"] as? [String: Any], "\(release.output)")
            #expect(body["name"] as? String == "namespaces/demo/pipelines/blob-info/releases/v1")
            #expect(body["id"] as? String == "v1")
            #expect(Self.fileProperty(body["dataSpecification"] as? [String: Any]) != nil)

            // A pipeline the runner does not have: NOT_FOUND, which the SDK turns into exit status 1.
            let missing = try await Peers.instillSDK(
                "get_pipeline", port: gateway.port, ["demo", "no-such"], token: "alice-token")
            #expect(missing.status != 0)
            #expect(missing.output.contains("NOT_FOUND"), "\(missing.output)")
        }
    }

    @Test("grpcio (2024 and 2025 generations): pipelines without declared fields, NOT_FOUND for unrouted ones")
    func grpcio() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            for generation in ["vdp", "namespaced"] {
                let echo = try await Peers.instillGenerations(
                    "get_pipeline", port: gateway.port, [generation, "demo", "echo"], token: "alice-token")
                let pipeline = try #require(echo["pipeline"] as? [String: Any], "\(echo)")
                #expect(pipeline["name"] as? String == "namespaces/demo/pipelines/echo")
                #expect(pipeline["releases"] == nil, "routes name no release of echo")
                let input = (pipeline["dataSpecification"] as? [String: Any])?["input"] as? [String: Any]
                #expect(input?["additionalProperties"] as? Bool == true, "echo declares no fields: \(pipeline)")
                let unrouted = try await Peers.instillGenerations(
                    "get_pipeline", port: gateway.port, [generation, "elsewhere", "echo"], token: "alice-token")
                #expect(unrouted["code"] as? String == "NOT_FOUND", "\(unrouted)")
                let unknown = try await Peers.instillGenerations(
                    "get_pipeline", port: gateway.port, [generation, "demo", "nope", "v1"], token: "alice-token")
                #expect(unknown["code"] as? String == "NOT_FOUND", "\(unknown)")
            }
            let anonymous = try await Peers.instillGenerations(
                "get_pipeline", port: gateway.port, ["namespaced", "demo", "echo"])
            #expect(anonymous["code"] as? String == "UNAUTHENTICATED")
        }
    }

    @Test("grpcio (2026 generation): GetPipeline and GetPipelineRelease by resource name, 2026 field numbers")
    func grpcioNamed() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            let out = try await Peers.instillGenerations(
                "get_pipeline", port: gateway.port, ["named", "demo", "blob-info"], token: "alice-token")
            let pipeline = try #require(out["pipeline"] as? [String: Any], "\(out)")
            #expect(pipeline["name"] as? String == "namespaces/demo/pipelines/blob-info")
            #expect(pipeline["id"] as? String == "blob-info")
            #expect(pipeline["ownerName"] as? String == "organizations/demo")
            #expect((pipeline["releases"] as? [[String: Any]])?.map { $0["id"] as? String } == ["v1", "v2"])
            #expect(
                Self.fileProperty(pipeline["dataSpecification"] as? [String: Any])?["instillFormat"] as? String
                    == "file")
            let release = try await Peers.instillGenerations(
                "get_pipeline", port: gateway.port, ["named", "demo", "blob-info", "v2"], token: "alice-token")
            #expect(
                (release["release"] as? [String: Any])?["name"] as? String
                    == "namespaces/demo/pipelines/blob-info/releases/v2", "\(release)")
            let unknown = try await Peers.instillGenerations(
                "get_pipeline", port: gateway.port, ["named", "demo", "nope"], token: "alice-token")
            #expect(unknown["code"] as? String == "NOT_FOUND", "\(unknown)")
        }
    }

    @Test("REST: GET /v1beta/{ns-kind}/{ns}/pipelines/{id}[/releases/{r}] with curl")
    func rest() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            let curl = try #require(TestProcess.which("curl"))
            func get(_ path: String, token: Bool = true) async throws -> (status: Int, json: [String: Any]) {
                var args = ["-sS", "-o", "-", "-w", "\n%{http_code}"]
                if token { args += ["-H", "Authorization: Bearer alice-token"] }
                let out = try await TestProcess.run(curl, args + ["http://127.0.0.1:\(gateway.port)\(path)"])
                let lines = out.stdoutString.split(separator: "\n", omittingEmptySubsequences: false)
                let body = lines.dropLast().joined(separator: "\n")
                let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
                return (Int(lines.last ?? "") ?? 0, json)
            }
            let pipeline = try await get("/v1beta/organizations/demo/pipelines/blob-info")
            #expect(pipeline.status == 200)
            let body = try #require(pipeline.json["pipeline"] as? [String: Any], "\(pipeline.json)")
            #expect(body["name"] as? String == "namespaces/demo/pipelines/blob-info")
            #expect((body["releases"] as? [[String: Any]])?.count == 2)
            #expect(
                Self.fileProperty(body["dataSpecification"] as? [String: Any])?["instillFormat"] as? String == "file")
            let release = try await get("/v1beta/namespaces/demo/pipelines/blob-info/releases/v2")
            #expect(release.status == 200)
            #expect((release.json["release"] as? [String: Any])?["id"] as? String == "v2", "\(release.json)")
            #expect(try await get("/v1beta/namespaces/demo/pipelines/nope").status == 404)
            #expect(try await get("/v1beta/namespaces/elsewhere/pipelines/echo").status == 404)
            #expect(try await get("/v1beta/namespaces/demo/pipelines/echo", token: false).status == 401)
        }
    }
}
