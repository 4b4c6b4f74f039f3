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

    // MARK: ListNamespacePipelineReleases

    /// 101 releases of `upper` (a pipeline the demo runner has) (`r000` … `r100`), one past Instill's page cap of 100, and the two of `blob-info`.
    static let manyReleasesYAML =
        yaml + "\n"
        + (0...100).map {
            "  - {namespace: demo, pipeline: upper, release: r\(String(format: "%03d", $0)), pool: demo}"
        }
        .joined(separator: "\n") + "\n"

    static func ids(_ answer: [String: Any]?) -> [String]? {
        (answer?["releases"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
    }

    @Test("the SDK's list_pipeline_releases: pages of total_size, next_page_token, NOT_FOUND, INVALID_ARGUMENT")
    func sdkListReleases() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            func list(_ args: [String]) async throws -> Peers.InstillSDKRun {
                try await Peers.instillSDK("list_pipeline_releases", port: gateway.port, args, token: "alice-token")
            }
            // The SDK's default total_size (10): both, no further page.
            var run = try await list(["demo", "blob-info"])
            #expect(run.status == 0, "\(run.output)")
            #expect(Self.ids(run.result) == ["v1", "v2"], "\(run.output)")
            #expect(run.result?["nextPageToken"] as? String == "" && run.result?["totalSize"] as? Int == 2)
            let first = try #require((run.result?["releases"] as? [[String: Any]])?.first)
            #expect(first["name"] as? String == "namespaces/demo/pipelines/blob-info/releases/v1")
            #expect(UUID(uuidString: first["uid"] as? String ?? "") != nil)

            // One per page: v1 and a token, then v2 and none.
            run = try await list(["demo", "blob-info", "1"])
            #expect(Self.ids(run.result) == ["v1"], "\(run.output)")
            let token = try #require(run.result?["nextPageToken"] as? String, "\(run.output)")
            #expect(!token.isEmpty && run.result?["totalSize"] as? Int == 2)
            run = try await list(["demo", "blob-info", "1", token])
            #expect(Self.ids(run.result) == ["v2"], "\(run.output)")
            #expect(run.result?["nextPageToken"] as? String == "", "\(run.output)")

            // A pipeline without releases: an empty list; an unknown one: NOT_FOUND (the SDK exits 1).
            run = try await list(["demo", "echo"])
            #expect(Self.ids(run.result) == [] && run.result?["totalSize"] as? Int == 0, "\(run.output)")
            run = try await list(["demo", "no-such"])
            #expect(run.status != 0 && run.output.contains("NOT_FOUND"), "\(run.output)")
            run = try await list(["demo", "blob-info", "-1"])
            #expect(run.status != 0 && run.output.contains("INVALID_ARGUMENT"), "\(run.output)")
            run = try await list(["demo", "blob-info", "1", "not-a-token"])
            #expect(run.status != 0 && run.output.contains("invalid page_token"), "\(run.output)")
        }
    }

    @Test("grpcio, all three generations: page_size 0, 100, 101 (coerced to 100) and the page after; errors")
    func grpcioListReleases() async throws {
        try await withTestGateway(yaml: Self.manyReleasesYAML) { gateway in
            let all = (0...100).map { "r" + String(format: "%03d", $0) }
            for generation in ["vdp", "namespaced", "named"] {
                func list(_ pipeline: String, _ page: [String] = []) async throws -> [String: Any] {
                    try await Peers.instillGenerations(
                        "list_releases", port: gateway.port, [generation, "demo", pipeline] + page,
                        token: "alice-token")
                }
                var answer = try await list("upper", ["0"])
                #expect(Self.ids(answer) == Array(all.prefix(10)), "\(generation): \(answer)")
                #expect(answer["totalSize"] as? Int == 101, "\(generation)")
                for size in ["100", "101"] {
                    answer = try await list("upper", [size])
                    #expect(Self.ids(answer) == Array(all.prefix(100)), "\(generation) page_size \(size)")
                    let token = try #require(answer["nextPageToken"] as? String, "\(answer)")
                    #expect(!token.isEmpty)
                    let rest = try await list("upper", [size, token])
                    #expect(Self.ids(rest) == ["r100"], "\(generation): \(rest)")
                    #expect(rest["nextPageToken"] as? String == "", "\(generation): \(rest)")
                }
                answer = try await list("blob-info", ["1"])
                #expect(Self.ids(answer) == ["v1"], "\(generation): \(answer)")
                #expect(
                    (answer["releases"] as? [[String: Any]])?.first?["name"] as? String
                        == "namespaces/demo/pipelines/blob-info/releases/v1")

                for (page, code) in [
                    (["-1"], "INVALID_ARGUMENT"), (["1", "zz"], "INVALID_ARGUMENT"),
                    (["1", "", "id=\"v1\""], "INVALID_ARGUMENT"),
                ] {
                    answer = try await list("blob-info", page)
                    #expect(answer["code"] as? String == code, "\(generation) \(page): \(answer)")
                }
                answer = try await list("no-such")
                #expect(answer["code"] as? String == "NOT_FOUND", "\(generation): \(answer)")
            }
            let anonymous = try await Peers.instillGenerations(
                "list_releases", port: gateway.port, ["namespaced", "demo", "blob-info"])
            #expect(anonymous["code"] as? String == "UNAUTHENTICATED", "\(anonymous)")
        }
    }

    @Test("grpcurl through reflection alone (no -proto): ListNamespacePipelineReleases and ListPipelineReleases")
    func grpcurlListReleases() async throws {
        try await withTestGateway(yaml: Self.yaml) { gateway in
            let address = "127.0.0.1:\(gateway.port)"
            let auth = ["-H", "authorization: Bearer alice-token"]
            for (method, request) in [
                (
                    "pipeline.pipeline.v1beta.PipelinePublicService/ListNamespacePipelineReleases",
                    #"{"namespace_id":"demo","pipeline_id":"blob-info","page_size":1}"#
                ),
                (
                    "vdp.pipeline.v1beta.PipelinePublicService/ListNamespacePipelineReleases",
                    #"{"namespace_id":"demo","pipeline_id":"blob-info","page_size":1}"#
                ),
                (
                    "pipeline.v1beta.PipelinePublicService/ListPipelineReleases",
                    #"{"parent":"namespaces/demo/pipelines/blob-info","page_size":1}"#
                ),
            ] {
                let first = try await ReflectionTests.grpcurl(auth + ["-d", request, address, method])
                #expect(first.status == 0, "\(method): \(first.stderr)")
                let page = try JSONSerialization.jsonObject(with: first.stdout) as? [String: Any]
                #expect(Self.ids(page) == ["v1"], "\(method): \(first.stdoutString)")
                #expect(page?["totalSize"] as? Int == 2, "\(method): \(first.stdoutString)")
                let token = try #require(page?["nextPageToken"] as? String, "\(first.stdoutString)")
                var next = try #require(
                    try JSONSerialization.jsonObject(with: Data(request.utf8)) as? [String: Any])
                next["page_token"] = token
                let body = String(decoding: try JSONSerialization.data(withJSONObject: next), as: UTF8.self)
                let second = try await ReflectionTests.grpcurl(auth + ["-d", body, address, method])
                let rest = try JSONSerialization.jsonObject(with: second.stdout) as? [String: Any]
                #expect(Self.ids(rest) == ["v2"] && rest?["nextPageToken"] == nil, "\(method): \(second.stdoutString)")
            }
        }
    }

    @Test("REST: GET /v1beta/{ns-kind}/{ns}/pipelines/{id}/releases with curl, page_size and page_token edges")
    func restListReleases() async throws {
        try await withTestGateway(yaml: Self.manyReleasesYAML) { gateway in
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
            let base = "/v1beta/namespaces/demo/pipelines/upper/releases"
            var answer = try await get(base)
            #expect(answer.status == 200 && Self.ids(answer.json)?.count == 10, "\(answer)")
            #expect(answer.json["totalSize"] as? Int == 101)
            answer = try await get(base + "?page_size=101")
            #expect(Self.ids(answer.json)?.count == 100, "\(answer)")
            let token = try #require(answer.json["nextPageToken"] as? String)
            answer = try await get(base + "?pageSize=100&pageToken=\(token)")
            #expect(Self.ids(answer.json) == ["r100"] && answer.json["nextPageToken"] as? String == "", "\(answer)")
            answer = try await get("/v1beta/users/demo/pipelines/blob-info/releases?page_size=1&view=VIEW_FULL")
            #expect(Self.ids(answer.json) == ["v1"], "\(answer)")
            let release = try #require((answer.json["releases"] as? [[String: Any]])?.first)
            #expect(release["name"] as? String == "namespaces/demo/pipelines/blob-info/releases/v1")

            for query in ["page_size=-1", "page_size=x", "page_token=zz", "filter=a", "page=2"] {
                answer = try await get(base + "?" + query)
                #expect(answer.status == 400, "\(query): \(answer)")
                #expect((answer.json["message"] as? String)?.isEmpty == false, "\(query): \(answer)")
            }
            #expect(try await get("/v1beta/namespaces/demo/pipelines/no-such/releases").status == 404)
            #expect(try await get("/v1beta/namespaces/elsewhere/pipelines/upper/releases").status == 404)
            #expect(try await get(base, token: false).status == 401)
        }
    }

    // MARK: ListNamespacePipelines

    /// Pipelines routes name in `demo` (and a `*` route, which names none), and one in `other`.
    static let namedPipelinesYAML = """
        auth: tokens
        tokens:
          - {name: alice, token: alice-token}
        pools:
          - {name: demo, transport: inprocess}
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}
          - {namespace: demo, pipeline: upper, pool: demo}
          - {namespace: demo, pipeline: echo, pool: demo}
          - {namespace: demo, pipeline: blob-info, release: v2, pool: demo}
          - {namespace: demo, pipeline: blob-info, release: v1, pool: demo}
          - {namespace: other, pipeline: sleep, pool: demo}
        """

    static func pipelineIDs(_ answer: [String: Any]?) -> [String]? {
        (answer?["pipelines"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
    }

    @Test(
        "the SDK's list_pipelines(namespace_id): the pipelines routes name, paged by total_size/next_page_token; NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED"
    )
    func sdkListPipelines() async throws {
        try await withTestGateway(yaml: Self.namedPipelinesYAML) { gateway in
            func list(_ args: [String], token: String = "alice-token") async throws -> Peers.InstillSDKRun {
                try await Peers.instillSDK("list_pipelines", port: gateway.port, args, token: token)
            }
            // The SDK's default total_size (100): all three, sorted by id, no further page.
            var run = try await list(["demo"])
            #expect(run.status == 0, "\(run.output)")
            #expect(Self.pipelineIDs(run.result) == ["blob-info", "echo", "upper"], "\(run.output)")
            #expect(run.result?["nextPageToken"] as? String == "" && run.result?["totalSize"] as? Int == 3)
            let first = try #require((run.result?["pipelines"] as? [[String: Any]])?.first)
            #expect(first["name"] as? String == "namespaces/demo/pipelines/blob-info")
            #expect(first["ownerName"] as? String == "organizations/demo")
            #expect(UUID(uuidString: first["uid"] as? String ?? "") != nil)
            #expect((first["releases"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["v1", "v2"])
            // The same uid as get_pipeline gives: one resource, whichever call names it.
            let got = try await Peers.instillSDK(
                "get_pipeline", port: gateway.port, ["demo", "blob-info"], token: "alice-token")
            #expect((got.result?["pipeline"] as? [String: Any])?["uid"] as? String == first["uid"] as? String)
            // A list asks no runner: no schemas.
            #expect(first["dataSpecification"] == nil, "\(first)")

            // Two per page: blob-info, echo and a token; then upper and none.
            run = try await list(["demo", "2"])
            #expect(Self.pipelineIDs(run.result) == ["blob-info", "echo"], "\(run.output)")
            let token = try #require(run.result?["nextPageToken"] as? String, "\(run.output)")
            #expect(!token.isEmpty && run.result?["totalSize"] as? Int == 3)
            run = try await list(["demo", "2", token])
            #expect(Self.pipelineIDs(run.result) == ["upper"] && run.result?["nextPageToken"] as? String == "")

            run = try await list(["other"])
            #expect(Self.pipelineIDs(run.result) == ["sleep"], "\(run.output)")
            // An unknown namespace: NOT_FOUND, which the SDK turns into exit status 1.
            run = try await list(["nowhere"])
            #expect(run.status != 0 && run.output.contains("NOT_FOUND"), "\(run.output)")
            run = try await list(["demo", "-1"])
            #expect(run.status != 0 && run.output.contains("INVALID_ARGUMENT"), "\(run.output)")
            // A releases list's token is not this list's.
            let releaseToken = "r" + Array("a".utf8).map { String($0, radix: 16) }.joined()
            for bad in ["not-a-token", releaseToken] {
                run = try await list(["demo", "2", bad])
                #expect(run.status != 0 && run.output.contains("invalid page_token"), "\(bad): \(run.output)")
            }
            run = try await list(["demo"], token: "wrong")
            #expect(run.status != 0 && run.output.contains("UNAUTHENTICATED"), "\(run.output)")
        }
    }

    @Test("REST: GET /v1beta/{ns-kind}/{ns}/pipelines with curl: pages, refusals, 404 and 401")
    func restListPipelines() async throws {
        try await withTestGateway(yaml: Self.namedPipelinesYAML) { gateway in
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
            let base = "/v1beta/namespaces/demo/pipelines"
            var answer = try await get(base)
            #expect(answer.status == 200, "\(answer)")
            #expect(Self.pipelineIDs(answer.json) == ["blob-info", "echo", "upper"], "\(answer)")
            #expect(answer.json["totalSize"] as? Int == 3 && answer.json["nextPageToken"] as? String == "")
            let echo = (answer.json["pipelines"] as? [[String: Any]])?.first { $0["id"] as? String == "echo" }
            #expect(echo?["name"] as? String == "namespaces/demo/pipelines/echo" && echo?["releases"] == nil)
            answer = try await get(base + "?page_size=1&view=VIEW_RECIPE&visibility=VISIBILITY_PUBLIC&orderBy=")
            #expect(Self.pipelineIDs(answer.json) == ["blob-info"], "\(answer)")
            let token = try #require(answer.json["nextPageToken"] as? String)
            answer = try await get("/v1beta/users/demo/pipelines?pageSize=1&pageToken=\(token)")
            #expect(Self.pipelineIDs(answer.json) == ["echo"], "\(answer)")

            for query in [
                "page_size=-1", "page_size=x", "page_token=zz", "filter=a", "page=2", "page_size=1&pageSize=1",
            ] {
                answer = try await get(base + "?" + query)
                #expect(answer.status == 400, "\(query): \(answer)")
                #expect((answer.json["message"] as? String)?.isEmpty == false, "\(query): \(answer)")
            }
            #expect(try await get("/v1beta/namespaces/nowhere/pipelines").status == 404)
            #expect(try await get(base, token: false).status == 401)
        }
    }
}
