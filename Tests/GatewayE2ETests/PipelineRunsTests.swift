import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// Instill's `ListPipelineRuns` (the SDK's `list_pipeline_runs`, which `os._exit(1)`ed on UNIMPLEMENTED before):
/// over gRPC (grpcio stubs of protos/, the unmodified SDK) and REST (curl), on the embedded SQLite store and on
/// PostgreSQL. Runs are made over REST by two principals: completed, failed, running and queued ones (the pool
/// takes one call at a time, so a run behind a long one stays queued).
@Suite("Instill ListPipelineRuns: gRPC, REST and the SDK, on SQLite and PostgreSQL", .serialized)
struct PipelineRunsTests {
    enum Store: String, CaseIterable, Sendable { case sqlite, postgres }

    static func yaml(_ store: Store) -> String? {
        var storeLine = "store: {max_attempts: 1}"
        if store == .postgres {
            let environment = ProcessInfo.processInfo.environment
            guard let url = environment["TG_POSTGRES_URL"], !url.isEmpty else {
                if environment["TG_ALLOW_NO_POSTGRES"] != "1" {
                    Issue.record("TG_POSTGRES_URL is not set: run under scripts/with-postgres.sh")
                }
                return nil
            }
            let prefix = "runs\(UUID().uuidString.prefix(8).lowercased())_"
            storeLine =
                "store: {kind: postgres, url: \"\(url)\", table_prefix: \(prefix), max_attempts: 1, poll_interval: 50ms}"
        }
        return """
            auth: tokens
            tokens:
              - {name: alice, token: alice-token}
              - {name: bob, token: bob-token}
            pools:
              - {name: demo, transport: inprocess, max_concurrency: 1}
            routes:
              - {namespace: demo, pipeline: "*", pool: demo}
            \(storeLine)
            """
    }

    /// Starts an async run of demo/sleep with `variables` as `token`; returns its operation id.
    static func start(_ client: TestHTTPClient, token: String, _ variables: String) async throws -> String {
        let response = try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger-async",
            headers: [("authorization", "Bearer \(token)"), ("content-type", "application/json")],
            body: ByteBuffer(string: #"{"data":[{"variable":\#(variables)}]}"#))
        let name = (try json(response.body)["operation"] as? [String: Any])?["name"] as? String
        return String(try #require(name, "\(response.bodyString)").dropFirst("operations/".count))
    }

    /// The operation's state once it is `until` (or the wait ends).
    static func wait(
        _ client: TestHTTPClient, token: String, _ id: String, until states: Set<String>
    ) async throws -> String {
        var state = ""
        _ = try await eventually(within: .seconds(20), interval: .milliseconds(20)) {
            let response = try await client.request(
                "GET", "/v1beta/operations/\(id)", headers: [("authorization", "Bearer \(token)")])
            let operation = try json(response.body)["operation"] as? [String: Any]
            state = ((operation?["metadata"] as? [String: Any])?["state"] as? String) ?? ""
            return states.contains(state)
        }
        return state
    }

    static func curl(_ port: Int, _ pathAndQuery: String, token: String = "alice-token") async throws -> (
        status: Int, body: [String: Any]
    ) {
        let curl = try #require(TestProcess.which("curl"))
        let output = try await TestProcess.run(
            curl,
            [
                "-sS", "-w", "\n%{http_code}", "-H", "authorization: Bearer \(token)",
                "http://127.0.0.1:\(port)\(pathAndQuery)",
            ])
        let text = output.stdoutString
        let cut = try #require(text.lastIndex(of: "\n"), "\(text) \(output.stderr)")
        let body = try JSONSerialization.jsonObject(with: Data(text[..<cut].utf8)) as? [String: Any] ?? [:]
        return (Int(text[text.index(after: cut)...]) ?? 0, body)
    }

    @Test(
        "runs newest first, by number, with status, times, error and values; another principal's never shown",
        arguments: Store.allCases)
    func listRuns(store: Store) async throws {
        guard let yaml = Self.yaml(store) else { return }
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            // alice: 11 completed runs, then a failed one; bob: one completed run.
            var completed: [String] = []
            for n in 0..<11 {
                completed.append(try await Self.start(client, token: "alice-token", #"{"ms":0,"n":\#(n)}"#))
            }
            let failed = try await Self.start(client, token: "alice-token", #"{"ms":"soon"}"#)
            let bobs = try await Self.start(client, token: "bob-token", #"{"ms":0}"#)
            for id in completed {
                #expect(try await Self.wait(client, token: "alice-token", id, until: ["succeeded"]) == "succeeded")
            }
            #expect(try await Self.wait(client, token: "alice-token", failed, until: ["failed"]) == "failed")
            #expect(try await Self.wait(client, token: "bob-token", bobs, until: ["succeeded"]) == "succeeded")
            // A long run holds the pool's one slot; the run after it stays queued.
            let running = try await Self.start(client, token: "alice-token", #"{"ms":60000}"#)
            #expect(try await Self.wait(client, token: "alice-token", running, until: ["running"]) == "running")
            let queued = try await Self.start(client, token: "alice-token", #"{"ms":0}"#)

            // gRPC (grpcio, stubs of protos/): page 0 of 10, then page 1 with the rest.
            let first = try await Peers.instillGenerations(
                "list_runs", port: gateway.port, ["demo", "sleep", "0", "10"], token: "alice-token")
            let runs = try #require(first["pipelineRuns"] as? [[String: Any]], "\(first)")
            #expect(
                runs.map { $0["pipelineRunUid"] as? String } == [queued, running, failed]
                    + completed.reversed()[0..<7].map { $0 })
            #expect(first["totalSize"] as? Int == 14)
            #expect(first["page"] as? Int == 0)
            #expect(first["pageSize"] as? Int == 10)
            #expect(
                runs.map { $0["status"] as? String } == [
                    "RUN_STATUS_QUEUED", "RUN_STATUS_PROCESSING", "RUN_STATUS_FAILED",
                ] + Array(repeating: "RUN_STATUS_COMPLETED", count: 7))
            let failedRun = runs[2]
            #expect((failedRun["error"] as? String)?.contains("ms") == true, "\(failedRun)")
            #expect(failedRun["completeTime"] as? String != nil)
            #expect((runs[0]["completeTime"] as? String) == nil || (runs[0]["completeTime"] as? String) == "")
            let done = runs[3]
            #expect(done["source"] as? String == "RUN_SOURCE_API")
            #expect(done["requesterId"] as? String == "alice")
            #expect(done["runnerId"] as? String == "alice")
            #expect(done["pipelineId"] as? String == "sleep")
            #expect(done["pipelineNamespaceId"] as? String == "demo")
            #expect(done["pipelineVersion"] as? String == "latest")
            #expect((done["inputs"] as? [[String: Any]])?.first?["n"] as? Double == 10, "\(done)")
            #expect((done["outputs"] as? [[String: Any]])?.first?["n"] as? Double == 10, "\(done)")
            #expect((done["startTime"] as? String)?.hasSuffix("Z") == true)
            let second = try await Peers.instillGenerations(
                "list_runs", port: gateway.port, ["demo", "sleep", "1", "10"], token: "alice-token")
            #expect(
                (second["pipelineRuns"] as? [[String: Any]])?.map { $0["pipelineRunUid"] as? String }
                    == completed.reversed()[7...].map { $0 })
            #expect(second["totalSize"] as? Int == 14)
            // bob sees his one run only; a refused order is INVALID_ARGUMENT naming it.
            let bob = try await Peers.instillGenerations(
                "list_runs", port: gateway.port, ["demo", "sleep"], token: "bob-token")
            #expect((bob["pipelineRuns"] as? [[String: Any]])?.map { $0["pipelineRunUid"] as? String } == [bobs])
            #expect(bob["totalSize"] as? Int == 1)
            let refused = try await Peers.instillGenerations(
                "list_runs", port: gateway.port, ["demo", "sleep", "0", "10", "", "create_time asc"],
                token: "alice-token")
            #expect(refused["code"] as? String == "INVALID_ARGUMENT", "\(refused)")
            #expect((refused["details"] as? String)?.contains("create_time asc") == true, "\(refused)")

            // REST (curl): the same pages, the same refusals as 400.
            let rest = try await Self.curl(
                gateway.port, "/v1beta/namespaces/demo/pipelines/sleep/runs?page=1&pageSize=10")
            #expect(rest.status == 200, "\(rest.body)")
            #expect(
                (rest.body["pipelineRuns"] as? [[String: Any]])?.map { $0["pipelineRunUid"] as? String }
                    == completed.reversed()[7...].map { $0 })
            #expect(rest.body["totalSize"] as? Int == 14)
            #expect(rest.body["page"] as? Int == 1)
            let restFirst = try await Self.curl(
                gateway.port, "/v1beta/users/demo/pipelines/sleep/runs?order_by=create_time%20desc")
            let restRuns = try #require(restFirst.body["pipelineRuns"] as? [[String: Any]], "\(restFirst.body)")
            #expect(restRuns.count == 10)
            #expect(restRuns[2]["status"] as? String == "RUN_STATUS_FAILED")
            #expect(restRuns[2]["error"] as? String == failedRun["error"] as? String)
            #expect(restRuns[0]["status"] as? String == "RUN_STATUS_QUEUED")
            #expect(restRuns[0]["completeTime"] == nil)
            #expect(restRuns[3]["totalDuration"] as? Int != nil || restRuns[3]["completeTime"] as? String != nil)
            for (query, named) in [
                ("filter=status%3D%22RUN_STATUS_FAILED%22", "filter"),
                ("order_by=create_time%20asc", "create_time asc"),
                ("page=-1", "page"), ("page_size=x", "page_size"), ("view=FULL", "view"),
            ] {
                let bad = try await Self.curl(gateway.port, "/v1beta/namespaces/demo/pipelines/sleep/runs?\(query)")
                #expect(bad.status == 400, "\(query): \(bad.body)")
                #expect((bad.body["message"] as? String)?.contains(named) == true, "\(query): \(bad.body)")
            }
            let bobREST = try await Self.curl(
                gateway.port, "/v1beta/namespaces/demo/pipelines/sleep/runs", token: "bob-token")
            #expect(bobREST.body["totalSize"] as? Int == 1)

            // The unmodified SDK: list_pipeline_runs answers (it os._exit(1)ed on UNIMPLEMENTED), fields readable.
            let sdk = try await Peers.instillSDK(
                "list_pipeline_runs", port: gateway.port, ["demo", "sleep", "0", "5"], token: "alice-token")
            #expect(sdk.status == 0, "\(sdk.output)")
            let result = try #require(sdk.result, "\(sdk.output)")
            #expect(result["totalSize"] as? Int == 14)
            #expect(result["pageSize"] as? Int == 5)
            let read = try #require(result["read"] as? [[String: Any]])
            #expect(read.map { $0["uid"] as? String } == [queued, running, failed, completed[10], completed[9]])
            #expect(read.map { $0["status"] as? Int } == [4, 1, 3, 2, 2])
            #expect(read[0]["complete"] is NSNull)
            #expect(read[2]["complete"] as? String != nil)
            #expect(read[3]["requester"] as? String == "alice")
            #expect((read[3]["inputs"] as? [[String: Any]])?.first?["n"] as? Double == 10)

            // The long run is cancelled so the gateway stops at once.
            _ = try await client.request(
                "POST", "/v1beta/operations/\(running):cancel", headers: [("authorization", "Bearer alice-token")])
        }
    }
    @Test("a pipeline no route matches: NOT_FOUND over gRPC, 404 over REST, after authentication (as a trigger of it)")
    func unroutedPipelineNotFound() async throws {
        guard let yaml = Self.yaml(.sqlite) else { return }
        try await withTestGateway(yaml: yaml) { gateway in
            let grpc = try await Peers.instillGenerations(
                "list_runs", port: gateway.port, ["elsewhere", "sleep"], token: "alice-token")
            #expect(grpc["code"] as? String == "NOT_FOUND", "\(grpc)")
            #expect((grpc["details"] as? String)?.contains("elsewhere/sleep") == true, "\(grpc)")
            let rest = try await Self.curl(gateway.port, "/v1beta/namespaces/elsewhere/pipelines/sleep/runs")
            #expect(rest.status == 404, "\(rest.body)")
            #expect((rest.body["message"] as? String)?.contains("no route matches") == true, "\(rest.body)")
            // Without a valid token the caller learns nothing of which pipelines exist.
            let anonymous = try await Self.curl(
                gateway.port, "/v1beta/namespaces/elsewhere/pipelines/sleep/runs", token: "wrong")
            #expect(anonymous.status == 401, "\(anonymous.body)")
            // A routed pipeline with no runs yet is an empty page, not NOT_FOUND.
            let empty = try await Self.curl(gateway.port, "/v1beta/namespaces/demo/pipelines/new/runs")
            #expect(empty.status == 200, "\(empty.body)")
            #expect(empty.body["totalSize"] as? Int == 0, "\(empty.body)")
        }
    }
}
