import Foundation
import GatewayTestSupport
import OperationStore
import Testing
import TriggerModel

/// The Abacus.AI surface driven by the published client (abacusai 1.4.119, unmodified, in .venv-abacus) against
/// the built gateway over a real socket: the calls of CLIENTS.md §4 on the embedded default's demo pipelines.
@Suite("Abacus.AI surface with the abacusai client")
struct AbacusInteropTests {
    /// The body the client sent in its request to `path`, as the driver recorded it.
    static func sentBody(_ answer: [String: Any], _ path: String) -> String? {
        (answer["requests"] as? [[Any]])?.first { $0[1] as? String == path }?[4] as? String
    }

    @Test("construction is instant: getApiEndpoint then version, once each, answered 200 (no retry loop)")
    func construction() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.abacus("construct", port: gateway.port)
            let requests = try #require(answer["requests"] as? [[Any]], "\(answer)")
            // Without these routes the client retries getApiEndpoint 5 times with 1+2+4+8 s of sleep: more
            // requests than these two, or a 404, is that loop.
            #expect(
                requests.map { "\($0[0]) \($0[1]) \($0[2])" } == [
                    "GET /api/v0/getApiEndpoint 200", "GET /api/v0/version 200",
                ],
                "\(answer)"
            )
            #expect(answer["api_endpoint"] as? String == "http://127.0.0.1:\(gateway.port)")
            #expect(answer["prediction_endpoint"] as? String == "http://127.0.0.1:\(gateway.port)")
            #expect(answer["web_version"] as? String == "1.4.119")
            // Generous for a loaded CI machine; the retry loop's first sleep alone is 1 s, all of them 15 s.
            #expect((answer["elapsed"] as? Double ?? 99) < 5, "\(answer)")
        }
    }

    /// Review 17, finding 10: with `server="http://host/"` the client asks for `//api/v0/...`; the gateway merges
    /// the slashes (nginx's default) instead of answering 404, which cost 15 s of retries and then an exception.
    @Test("construction with a server URL ending in / is instant too: //api/v0/... is routed as /api/v0/...")
    func constructionWithTrailingSlash() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.abacus("construct", port: gateway.port, ["1"])
            let requests = try #require(answer["requests"] as? [[Any]], "\(answer)")
            #expect(requests.count == 2, "\(answer)")
            #expect(requests.first?[1] as? String == "//api/v0/getApiEndpoint", "\(answer)")
            #expect(requests.allSatisfy { $0[2] as? Int == 200 }, "\(answer)")
            #expect(answer["web_version"] as? String == "1.4.119")
            #expect((answer["elapsed"] as? Double ?? 99) < 5, "\(answer)")
        }
    }

    @Test(
        "h1ToInProcessAbacusAsync: run_pipeline (camelCase mappings) → wait_for_pipeline COMPLETE on sleep; outputs readable; visible under /v1beta/operations"
    )
    func runAndWaitCamelCase() async throws {
        try await withTestGateway { gateway in
            let mappings =
                #"[{"name":"ms","variable_type":"INTEGER","value":2500},{"name":"prompt","variable_type":"STRING","value":"hi"}]"#
            let answer = try await Peers.abacus("run", port: gateway.port, ["sleep", "camel", mappings, "1"])
            let started = try #require(answer["started"] as? [String: Any], "\(answer)")
            #expect(started["status"] as? String == "PENDING")
            #expect(started["pipeline_id"] as? String == "sleep")
            let id = try #require(started["pipeline_version"] as? String)
            #expect(id.count == 26)
            // The client sent PythonFunctionArgument objects in camelCase: the wire shows it.
            let sent = try #require(Self.sentBody(answer, "/api/v0/runPipeline"), "\(answer)")
            #expect(sent.contains(#""variableType": "INTEGER""#) && !sent.contains("variable_type"), "\(sent)")
            let final = try #require(answer["final"] as? [String: Any], "\(answer)")
            #expect(final["status"] as? String == "COMPLETE", "\(answer)")
            #expect(final["completed_at"] as? String != nil)
            #expect((answer["waited"] as? Double ?? 0) >= 2, "the sleep pipeline takes 2.5 s: \(answer)")
            let described = try #require(answer["described"] as? [String: Any])
            #expect(described["pipeline_version"] as? String == id)
            let outputs = try #require(answer["outputs"] as? [[String: Any]], "\(answer)")
            #expect(outputs.first { $0["name"] as? String == "ms" }?["value"] as? Int == 2500, "\(outputs)")
            #expect(outputs.first { $0["name"] as? String == "prompt" }?["value"] as? String == "hi")
            #expect(outputs.first { $0["name"] as? String == "ms" }?["variableType"] as? String == "INTEGER")
            let steps = try #require(described["step_versions"] as? [[String: Any]])
            #expect(steps.count == 1 && steps.first?["status"] as? String == "COMPLETE")

            // The same run is a durable async operation of the store, visible on the Instill surface too.
            let stored = try await gateway.store.get(id: id)
            #expect(stored?.state == .succeeded)
            let client = try await gateway.client()
            let operation = try await client.request("GET", "/v1beta/operations/\(id)")
            #expect(operation.status == 200)
            #expect(operation.bodyString.contains(#""state":"succeeded""#), "\(operation.bodyString)")
            #expect(operation.bodyString.contains(#""pipeline":"demo/sleep""#))
            await client.close()
        }
    }

    @Test(
        "run_pipeline with snake_case dicts types each value; an ATTACHMENT data URI reaches the pipeline as a binary"
    )
    func runSnakeCaseTyped() async throws {
        try await withTestGateway { gateway in
            let mappings = """
                [{"name":"n","variable_type":"INTEGER","value":"7"},{"name":"x","variable_type":"FLOAT","value":0.25},
                 {"name":"b","variable_type":"BOOLEAN","value":"true"},{"name":"j","variable_type":"JSON","value":{"k":[1]}},
                 {"name":"l","variable_type":"LIST","value":["a","b"]},{"name":"s","variable_type":"STRING","value":"text"},
                 {"name":"big","variable_type":"INTEGER","value":9007199254740993},
                 {"name":"bigs","variable_type":"INTEGER","value":"-9007199254740993"},
                 {"name":"f","variable_type":"FLOAT","value":2}]
                """
            var answer = try await Peers.abacus("run", port: gateway.port, ["echo", "snake", mappings, "1"])
            let sent = try #require(Self.sentBody(answer, "/api/v0/runPipeline"), "\(answer)")
            #expect(sent.contains(#""variable_type": "INTEGER""#) && !sent.contains("variableType"), "\(sent)")
            var outputs = try #require(answer["outputs"] as? [[String: Any]], "\(answer)")
            func output(_ name: String) -> Any? { outputs.first { $0["name"] as? String == name }?["value"] }
            #expect(output("n") as? Int == 7, "\(outputs)")
            #expect(output("x") as? Double == 0.25)
            #expect(output("b") as? Bool == true)
            #expect((output("j") as? [String: Any])?["k"] as? [Int] == [1])
            #expect(output("l") as? [String] == ["a", "b"])
            #expect(output("s") as? String == "text")
            // Integers past 2^53 go through the run and its stored result exactly, not as the nearest double.
            #expect(output("big") as? Int == 9_007_199_254_740_993, "\(outputs)")
            #expect(output("bigs") as? Int == -9_007_199_254_740_993, "\(outputs)")
            // A FLOAT stays a float through the stored run (`OperationPayloadCodec.numberForms`): the runner and
            // Python read `2.0`, and the described version's mappings say FLOAT, as the started one's did.
            let types = try #require(answer["output_types"] as? [String: String], "\(answer)")
            #expect(types["f"] == "float" && types["x"] == "float" && types["n"] == "int", "\(types)")
            for version in ["started", "described"] {
                let described = (answer[version] as? [String: Any])?["pipeline_variable_mappings"] as? [[String: Any]]
                let f = described?.first { $0["name"] as? String == "f" }
                #expect(f?["variableType"] as? String == "FLOAT", "\(version): \(String(describing: described))")
            }

            // "hello" as a data URI; blob-info describes each binary input it gets.
            let attachment =
                #"[{"name":"file","variable_type":"ATTACHMENT","value":"data:text/plain;filename=h.txt;base64,aGVsbG8="}]"#
            answer = try await Peers.abacus("run", port: gateway.port, ["blob-info", "snake", attachment, "1"])
            outputs = try #require(answer["outputs"] as? [[String: Any]], "\(answer)")
            let info = try #require(output("file") as? [String: Any], "\(outputs)")
            #expect(info["size"] as? Int == 5)
            #expect(info["sha256"] as? String == (try sha256Hex(Array("hello".utf8))))
            #expect(info["content_type"] as? String == "text/plain")
            #expect(info["file_name"] as? String == "h.txt")
        }
    }

    @Test("a failing pipeline ends FAILED with its own error message")
    func failingPipeline() async throws {
        try await withTestGateway { gateway in
            let mappings =
                #"[{"name":"message","variable_type":"STRING","value":"disk on fire"},{"name":"code","variable_type":"STRING","value":"FAILED_PRECONDITION"}]"#
            let answer = try await Peers.abacus("run", port: gateway.port, ["fail", "camel", mappings, "1"])
            let final = try #require(answer["final"] as? [String: Any], "\(answer)")
            #expect(final["status"] as? String == "FAILED", "\(answer)")
            #expect(final["error"] as? String == "disk on fire")
            let step = (final["step_versions"] as? [[String: Any]])?.first
            #expect(step?["status"] as? String == "FAILED")
            #expect(step?["error"] as? String == "disk on fire")
        }
    }

    @Test(
        "list_pipeline_versions: the pipeline's runs newest first, limit honoured; describe_pipeline names the latest"
    )
    func listAndDescribe() async throws {
        try await withTestGateway { gateway in
            var ids: [String] = []
            for word in ["one", "two"] {
                let answer = try await Peers.abacus(
                    "run",
                    port: gateway.port,
                    ["echo", "snake", #"[{"name":"w","variable_type":"STRING","value":"\#(word)"}]"#, "0"]
                )
                ids.append(
                    try #require((answer["started"] as? [String: Any])?["pipeline_version"] as? String, "\(answer)")
                )
            }
            _ = try await Peers.abacus("run", port: gateway.port, ["upper", "snake", "[]", "0"])
            var answer = try await Peers.abacus("list", port: gateway.port, ["echo", "200"])
            let versions = try #require(answer["versions"] as? [[String: Any]], "\(answer)")
            #expect(versions.compactMap { $0["pipeline_version"] as? String } == ids.reversed(), "\(answer)")
            #expect(versions.allSatisfy { $0["pipeline_id"] as? String == "echo" })
            answer = try await Peers.abacus("list", port: gateway.port, ["echo", "1"])
            #expect(
                (answer["versions"] as? [[String: Any]])?.compactMap { $0["pipeline_version"] as? String } == [ids[1]],
                "\(answer)"
            )

            answer = try await Peers.abacus("describe_pipeline", port: gateway.port, ["echo"])
            #expect(answer["pipeline_id"] as? String == "echo", "\(answer)")
            #expect((answer["latest"] as? [String: Any])?["pipeline_version"] as? String == ids[1])
            answer = try await Peers.abacus("describe_pipeline", port: gateway.port, ["tokens"])
            #expect(answer["pipeline_id"] as? String == "tokens", "\(answer)")
            #expect(answer["latest"] is NSNull, "no run of tokens yet: \(answer)")
        }
    }

    @Test(
        "list_pipeline_versions limit: 1, 1000 (the store's largest page) and the float 1.0 answer; 0, 1001 and -1 raise InvalidParameterError naming the one range"
    )
    func listLimitEdges() async throws {
        try await withTestGateway { gateway in
            _ = try await Peers.abacus(
                "run", port: gateway.port,
                ["echo", "snake", #"[{"name":"w","variable_type":"STRING","value":"x"}]"#, "0"])
            // "1.0": a Python float, which the client sends in its JSON body as `1.0`. (A hand-written GET's
            // `limit=1.0` query is `AbacusParametersTests.integerInQuery`.)
            for limit in ["1", "1000", "1.0"] {
                let answer = try await Peers.abacus("list", port: gateway.port, ["echo", limit])
                #expect((answer["versions"] as? [[String: Any]])?.count == 1, "limit \(limit): \(answer)")
            }
            for limit in [0, 1001, -1] {
                let answer = try await Peers.abacus("list", port: gateway.port, ["echo", "\(limit)"])
                #expect(answer["exception"] as? String == "InvalidParameterError", "limit \(limit): \(answer)")
                #expect(answer["http_status"] as? Int == 400, "\(answer)")
                #expect(
                    (answer["message"] as? String)?.hasPrefix(
                        "limit must be an integer from 1 to 1000 (it is \(limit))") == true,
                    "\(answer)")
            }
        }
    }

    /// Routes that name their pipelines: a pipeline no route serves is unknown here. (With the embedded
    /// default's `demo/*` every id has a route, and the demo runner's `Describe` tells the unknown ones:
    /// `unknownPipelineOnWildcardRoute`.)
    static let namedRoutes = """
        pools:
          - {name: demo, transport: inprocess}
        routes:
          - {namespace: demo, pipeline: echo, pool: demo}
        """

    @Test("an unknown pipeline is DataNotFoundError, a missing pipelineId MissingParameterError; nothing is stored")
    func refusedRuns() async throws {
        try await withTestGateway(yaml: Self.namedRoutes) { gateway in
            var answer = try await Peers.abacus("run", port: gateway.port, ["no-such-pipeline", "snake", "[]", "0"])
            #expect(answer["exception"] as? String == "DataNotFoundError", "\(answer)")
            #expect(answer["http_status"] as? Int == 404)
            #expect((answer["message"] as? String)?.contains("no-such-pipeline") == true)
            #expect((answer["request_id"] as? String)?.isEmpty == false)
            answer = try await Peers.abacus("run", port: gateway.port, ["-", "snake", "[]", "0"])
            #expect(answer["exception"] as? String == "MissingParameterError", "\(answer)")
            #expect(answer["http_status"] as? Int == 400)
            answer = try await Peers.abacus(
                "run",
                port: gateway.port,
                ["echo", "snake", #"[{"name":"n","variable_type":"INTEGER","value":"x"}]"#, "0"]
            )
            #expect(answer["exception"] as? String == "InvalidParameterError", "\(answer)")
            answer = try await Peers.abacus("describe_version", port: gateway.port, ["nosuchversion"])
            #expect(answer["exception"] as? String == "DataNotFoundError", "\(answer)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.isEmpty, "refused runs must not be stored: \(page.operations.map(\.ref))")
        }
    }

    @Test(
        "with tokens configured: a wrong key is PermissionDeniedError (construction still instant), the right key runs"
    )
    func apiKeyAuth() async throws {
        try await withTestGateway(yaml: "tokens:\n  - {name: alice, token: s3cret}\n") { gateway in
            var answer = try await Peers.abacus(
                "run",
                port: gateway.port,
                ["echo", "snake", "[]", "0"],
                apiKey: "wrong"
            )
            #expect(answer["exception"] as? String == "PermissionDeniedError", "\(answer)")
            #expect(answer["http_status"] as? Int == 401)
            let construction = (answer["requests"] as? [[Any]])?.prefix(2).map { "\($0[1]) \($0[2])" }
            #expect(construction == ["/api/v0/getApiEndpoint 200", "/api/v0/version 200"], "\(answer)")
            answer = try await Peers.abacus(
                "run",
                port: gateway.port,
                ["echo", "snake", #"[{"name":"a","value":1}]"#, "1"],
                apiKey: "s3cret"
            )
            #expect((answer["final"] as? [String: Any])?["status"] as? String == "COMPLETE", "\(answer)")
            let id = try #require((answer["started"] as? [String: Any])?["pipeline_version"] as? String)
            #expect(try await gateway.store.get(id: id)?.request.principal == "alice")
        }
    }

    @Test(
        "with the embedded default's demo/*: run_pipeline, describe_pipeline and list_pipeline_versions of a pipeline the demo runner lacks raise DataNotFoundError at once; nothing is stored"
    )
    func unknownPipelineOnWildcardRoute() async throws {
        try await withTestGateway { gateway in
            var answer = try await Peers.abacus("run", port: gateway.port, ["nope", "snake", "[]", "0"])
            #expect(answer["exception"] as? String == "DataNotFoundError", "\(answer)")
            #expect(answer["http_status"] as? Int == 404)
            #expect((answer["message"] as? String)?.contains("nope") == true, "\(answer)")
            answer = try await Peers.abacus("describe_pipeline", port: gateway.port, ["nope2"])
            #expect(answer["exception"] as? String == "DataNotFoundError", "\(answer)")
            answer = try await Peers.abacus("list", port: gateway.port, ["nope3", "10"])
            #expect(answer["exception"] as? String == "DataNotFoundError", "\(answer)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.isEmpty, "refused runs must not be stored: \(page.operations.map(\.ref))")
        }
    }

    @Test(
        "a run whose body is over limits.max_body_bytes: the client raises InvalidParameterError 413 from the envelope (not a bare ApiException)"
    )
    func bodyOverTheCap() async throws {
        try await withTestGateway(yaml: "limits: {max_body_bytes: 4096}\n") { gateway in
            let mappings = #"[{"name":"p","variable_type":"STRING","value":"\#(String(repeating: "x", count: 5000))"}]"#
            let answer = try await Peers.abacus("run", port: gateway.port, ["echo", "snake", mappings, "0"])
            #expect(answer["exception"] as? String == "InvalidParameterError", "\(answer)")
            #expect(answer["http_status"] as? Int == 413)
            #expect((answer["message"] as? String)?.contains("4096") == true, "\(answer)")
            #expect((answer["request_id"] as? String)?.isEmpty == false, "\(answer)")
        }
    }

    @Test(
        "list_pipeline_version_logs and get_step_version_logs: the run's events (created, started, succeeded) as its step's logs; another key's version and an unknown one are DataNotFoundError"
    )
    func versionLogs() async throws {
        let yaml = "tokens:\n  - {name: alice, token: tok-a}\n  - {name: bob, token: tok-b}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let run = try await Peers.abacus(
                "run", port: gateway.port,
                ["echo", "snake", #"[{"name":"w","variable_type":"STRING","value":"x"}]"#, "1"],
                apiKey: "tok-a")
            let id = try #require((run["started"] as? [String: Any])?["pipeline_version"] as? String, "\(run)")
            var answer = try await Peers.abacus("version_logs", port: gateway.port, [id], apiKey: "tok-a")
            let steps = try #require(answer["step_logs"] as? [[String: Any]], "\(answer)")
            try #require(steps.count == 1, "\(answer)")
            #expect(steps[0]["step_name"] as? String == "echo")
            #expect(steps[0]["pipeline_step_id"] as? String == "echo")
            #expect(steps[0]["pipeline_step_version"] as? String == id)
            let lines = (steps[0]["logs"] as? String ?? "").split(separator: "\n")
            try #require(lines.count == 3, "\(answer)")
            #expect(lines[0].hasSuffix("execution \(id) created: pipeline demo/echo; queued"), "\(lines)")
            #expect(lines[1].hasSuffix("started on the pipeline's runner"), "\(lines)")
            #expect(lines[2].hasSuffix("succeeded after 1 attempt"), "\(lines)")
            // Each line starts with its RFC 3339 time, as the run's own createdAt shows it.
            let created = try #require((run["started"] as? [String: Any])?["created_at"] as? String)
            #expect(lines[0].hasPrefix(created + " "), "\(lines) \(created)")

            for (version, key) in [(id, "tok-b"), ("nosuchversion", "tok-a")] {
                answer = try await Peers.abacus("version_logs", port: gateway.port, [version], apiKey: key)
                #expect(answer["exception"] as? String == "DataNotFoundError", "\(version) as \(key): \(answer)")
                #expect(answer["http_status"] as? Int == 404, "\(answer)")
            }

            // get_step_version_logs (it was 404 "does not serve"), by the client and as the step version object
            // asks it: the step's entry of the version's logs, exactly.
            answer = try await Peers.abacus("step_logs", port: gateway.port, [id], apiKey: "tok-a")
            for key in ["direct", "via_step"] {
                let entry = try #require(answer[key] as? [String: Any], "\(answer)")
                #expect(entry["pipeline_step_version"] as? String == id, "\(answer)")
                #expect(entry["step_name"] as? String == "echo", "\(answer)")
                #expect(entry["logs"] as? String == steps[0]["logs"] as? String, "\(answer)")
            }
            for (version, key) in [(id, "tok-b"), ("nosuchversion", "tok-a")] {
                answer = try await Peers.abacus("step_logs", port: gateway.port, [version], apiKey: key)
                #expect(answer["exception"] as? String == "DataNotFoundError", "\(version) as \(key): \(answer)")
            }
        }
    }

    @Test("reset_pipeline_version is not served: the error says to run the pipeline again")
    func resetVersionRefused() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.abacus("reset_version", port: gateway.port, ["someversion"])
            #expect(answer["http_status"] as? Int == 404, "\(answer)")
            let message = answer["message"] as? String ?? ""
            #expect(message.contains("resetPipelineVersion") && message.contains("run the pipeline again"), "\(answer)")
        }
    }
}
