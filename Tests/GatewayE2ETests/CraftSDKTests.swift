import DemoRunner
import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// The Craft AI surface driven by the unmodified craft-ai-sdk 0.74.7 (Tests/InteropClients/craft_client.py,
/// in `.venv-craft`) against a gateway on a loopback port: the calls CLIENTS.md §3 lists.
@Suite("Craft AI surface with craft-ai-sdk")
struct CraftSDKTests {
    /// The SDK's answer, or a failure that shows what it printed.
    func result(_ answer: [String: Any]) throws -> [String: Any] {
        try #require(answer["result"] as? [String: Any], "\(answer)")
    }

    func error(_ answer: [String: Any]) throws -> [String: Any] {
        try #require(answer["error"] as? [String: Any], "expected an SdkException: \(answer)")
    }

    /// How many times the SDK was answered `status` on a path containing `fragment`.
    func count(_ answer: [String: Any], status: Int, pathContaining fragment: String) -> Int {
        (answer["http"] as? [[String: Any]] ?? []).filter {
            $0["status"] as? Int == status && ($0["path"] as? String ?? "").contains(fragment)
        }.count
    }

    @Test("run_pipeline with JSON inputs: refresh, describe, form-encoded run, outputs")
    func runPipelineJSON() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.craft(
                "run_json", port: gateway.port, ["echo", #"{"prompt":"hello world","n":3,"l":[1,"x"]}"#])
            let outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect(outputs["prompt"] as? String == "hello world")
            #expect(outputs["n"] as? Int == 3)
            #expect(outputs["l"] as? [AnyHashable] == [1, "x"])
            #expect(count(answer, status: 200, pathContaining: "/api/v1/auth/refresh") == 1, "\(answer)")
        }
    }

    @Test("run_pipeline with inputs_mapping and outputs_mapping: a constant and an is_null source, a dropped output")
    func runPipelineMapped() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.craft(
                "run_mapped", port: gateway.port,
                [
                    "echo", #"{"prompt":"p","drop":"d"}"#,
                    #"[{"pipeline_input_name":"c","constant_value":5},{"pipeline_input_name":"drop","is_null":true}]"#,
                    #"[{"pipeline_output_name":"prompt","is_null":true}]"#,
                ])
            let outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect(outputs["c"] as? Int == 5, "the constant reached the pipeline: \(outputs)")
            #expect(outputs["drop"] == nil, "an is_null input is not given to the pipeline: \(outputs)")
            // The SDK lists a dropped output with no value.
            #expect(outputs.keys.contains("prompt") && outputs["prompt"] is NSNull, "\(outputs)")
        }
    }

    /// Review 23 H1: a run's `environment_variable_name` mapping read the gateway process's environment, so any
    /// client read its credentials back through an echoing pipeline. Now 400, before anything runs.
    @Test(
        "run_pipeline with an environment_variable_name mapping is 400: a client cannot read the gateway's environment")
    func runPipelineEnvironmentMappingRefused() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.craft(
                "run_mapped", port: gateway.port,
                [
                    "echo", #"{"prompt":"p"}"#, #"[{"pipeline_input_name":"path","environment_variable_name":"PATH"}]"#,
                    "[]",
                ])
            let failure = try error(answer)
            #expect(failure["status_code"] as? Int == 400, "\(answer)")
            #expect((failure["message"] as? String)?.contains("environment_variable_name") == true, "\(answer)")
            #expect(!"\(answer)".contains(ProcessInfo.processInfo.environment["PATH"] ?? "PATH"), "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/executions") == 0, "\(answer)")
        }
    }

    @Test("run_pipeline with a BytesIO file input: blob-info declares it a file, the SDK uploads it, sha256 matches")
    func runPipelineFile() async throws {
        try await withTestGateway { gateway in
            let bytes: [UInt8] = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let hex = bytes.map { String(format: "%02x", $0) }.joined()
            let answer = try await Peers.craft(
                "run_file", port: gateway.port, ["blob-info", "file", "-"], stdin: Data(hex.utf8))
            let outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            let info = try #require(outputs["file"] as? [String: Any], "\(answer)")
            #expect(info["sha256"] as? String == (try sha256Hex(bytes)))
            #expect(info["size"] as? Int == bytes.count)
            #expect(info["file_name"] as? String == "file")
        }
    }

    @Test("run_pipeline with a file output: the SDK fetches /api/v1/executions/{id}/outputs/{name} as octet-stream")
    func runPipelineFileOutput() async throws {
        // A configured description makes echo take a file input; echo hands the bytes back as a file output.
        let yaml = "craft:\n  pipelines:\n    - {name: echo, inputs: [{name: doc, data_type: file}]}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let answer = try await Peers.craft("run_file", port: gateway.port, ["echo", "doc", "00010203fffe"])
            let outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect((outputs["doc"] as? [String: Any])?["hex"] as? String == "00010203fffe", "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/outputs/doc") == 1, "\(answer)")
        }
    }

    @Test("trigger_endpoint with wait_for_completion true, and a file output fetched from its url")
    func triggerEndpointWaits() async throws {
        try await withTestGateway { gateway in
            var answer = try await Peers.craft(
                "trigger", port: gateway.port, ["upper", "EP-TOKEN", #"{"prompt":"hello"}"#, "true"])
            var outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect(outputs["prompt"] as? String == "HELLO")
            #expect(count(answer, status: 200, pathContaining: "/endpoints/upper") == 1, "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/endpoints/v1/upper/executions/") == 1, "\(answer)")

            // echo hands the uploaded bytes back: a file output, which the SDK downloads from `url` with ?token=.
            answer = try await Peers.craft("trigger_file", port: gateway.port, ["echo", "EP-TOKEN", "doc", "00ff10ab"])
            outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect((outputs["doc"] as? [String: Any])?["hex"] as? String == "00ff10ab", "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/outputs/doc") == 1, "\(answer)")

            // Files and parameters together: multipart whose parameter fields are JSON-encoded.
            answer = try await Peers.craft(
                "trigger_file", port: gateway.port,
                ["echo", "EP-TOKEN", "doc", "0102", #"{"prompt":"hi","n":3,"o":{"a":[true]}}"#]
            )
            outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect(outputs["prompt"] as? String == "hi")
            #expect(outputs["n"] as? Int == 3)
            #expect((outputs["o"] as? [String: Any])?["a"] as? [Bool] == [true])
            #expect((outputs["doc"] as? [String: Any])?["hex"] as? String == "0102", "\(answer)")
        }
    }

    /// craft-ai-sdk appends the endpoint token to a file output's `url` unencoded (`?token={endpoint_token}`), where
    /// its other reads URL-encode it: a base64 token's `+` must still be a `+` there, not a space (the run
    /// succeeded and the file download was 401: review of the fifty-fourth session). A `+` read as a space would
    /// still fail with the token that has a space in its place, which configuration refuses.
    @Test("an endpoint token with + and / (base64): the run, its result and its file output, fetched with ?token=")
    func base64EndpointToken() async throws {
        let token = "c+rol/K3y+0123456789=="
        let yaml = """
            tokens:
              - {name: carol, token: "\(token)"}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let answer = try await Peers.craft(
                "trigger_file", port: gateway.port, ["echo", token, "doc", "00ff10ab"], sdkToken: token)
            let outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect((outputs["doc"] as? [String: Any])?["hex"] as? String == "00ff10ab", "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/outputs/doc") == 1, "\(answer)")
        }
    }

    /// Craft AI sends files only as parts (CLIENTS.md §3.4, §3.5): a text input that happens to be a base64 data
    /// URI is text. It was taken as a file (the Instill REST rule), so echo handed back bytes, and an input
    /// declared `string` was refused as "got file".
    @Test("a string input that is a data URI stays a string: run_pipeline, trigger_endpoint, the execution's inputs")
    func dataURIStringsStayText() async throws {
        let uri = "data:text/plain;base64,aGVsbG8="
        let yaml = "craft:\n  pipelines:\n    - {name: echo, inputs: [{name: s, data_type: string}]}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            var answer = try await Peers.craft("run_json", port: gateway.port, ["echo", #"{"s":"\#(uri)"}"#])
            let run = try result(answer)
            #expect((run["outputs"] as? [String: Any])?["s"] as? String == uri, "\(answer)")
            let id = try #require(run["execution_id"] as? String, "\(answer)")
            answer = try await Peers.craft("get_execution", port: gateway.port, [id])
            let inputs = try #require(try result(answer)["inputs"] as? [[String: Any]], "\(answer)")
            #expect(inputs.first?["data_type"] as? String == "string", "\(answer)")
            #expect(inputs.first?["value"] as? String == uri, "\(answer)")

            answer = try await Peers.craft("trigger", port: gateway.port, ["echo", "EP", #"{"s":"\#(uri)"}"#, "true"])
            #expect((try result(answer)["outputs"] as? [String: Any])?["s"] as? String == uri, "\(answer)")
            // Files and parameters together: the parameter is a JSON-encoded form field.
            answer = try await Peers.craft(
                "trigger_file", port: gateway.port, ["echo", "EP", "doc", "00ff", #"{"s":"\#(uri)"}"#])
            let outputs = try #require(try result(answer)["outputs"] as? [String: Any], "\(answer)")
            #expect(outputs["s"] as? String == uri, "\(answer)")
            #expect((outputs["doc"] as? [String: Any])?["hex"] as? String == "00ff", "\(answer)")
        }
    }

    @Test("trigger_endpoint without waiting, then retrieve_endpoint_results; the execution is an operation too")
    func triggerThenRetrieve() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.craft(
                "trigger_then_retrieve", port: gateway.port, ["echo", "EP-TOKEN", #"{"prompt":"later","flag":true}"#]
            )
            let value = try result(answer)
            let started = try #require(value["started"] as? [String: Any], "\(answer)")
            let id = try #require(started["execution_id"] as? String, "\(answer)")
            #expect(started["outputs"] == nil)
            let retrieved = try #require(value["retrieved"] as? [String: Any], "\(answer)")
            #expect(retrieved["execution_id"] as? String == id)
            let outputs = try #require(retrieved["outputs"] as? [String: Any], "\(answer)")
            #expect(outputs["prompt"] as? String == "later")
            #expect(outputs["flag"] as? Bool == true)

            let operation = try await gateway.client().request("GET", "/v1beta/operations/\(id)")
            #expect(operation.status == 200)
            #expect((try json(operation.body)["operation"] as? [String: Any])?["done"] as? Bool == true)

            // A separate retrieve, and the deployment's latest execution is this one.
            let again = try await Peers.craft("retrieve", port: gateway.port, ["echo", "EP-TOKEN", id])
            #expect((try result(again)["outputs"] as? [String: Any])?["prompt"] as? String == "later", "\(again)")
        }
    }

    @Test("trigger_endpoint without a token goes through /api/v1/deployments/{name}/executions and the 307 loop")
    func triggerWithoutToken() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.craft(
                "trigger", port: gateway.port, ["upper", "-", #"{"prompt":"api"}"#, "true"])
            #expect((try result(answer)["outputs"] as? [String: Any])?["prompt"] as? String == "API", "\(answer)")
            #expect(
                count(answer, status: 200, pathContaining: "/api/v1/deployments/upper/executions") == 1, "\(answer)")
        }
    }

    @Test("a slow pipeline: each read is held for long_poll_wait, then 307; the SDK loops until the outputs")
    func slowPipelineNeeds307() async throws {
        try await withTestGateway(yaml: "craft: {long_poll_wait: 500ms}\n") { gateway in
            var answer = try await Peers.craft("run_json", port: gateway.port, ["sleep", #"{"ms":2500}"#])
            #expect((try result(answer)["outputs"] as? [String: Any])?["ms"] as? Int == 2500, "\(answer)")
            let rounds = count(answer, status: 307, pathContaining: "/outputs")
            // 2.5 s of run at 0.5 s per held read: several rounds, and no busy loop (which makes thousands).
            #expect(rounds >= 2 && rounds <= 30, "\(rounds) rounds: \(answer)")

            // The endpoint read: `requests` follows the 307 to the same URL.
            answer = try await Peers.craft(
                "trigger", port: gateway.port, ["sleep", "EP-TOKEN", #"{"ms":1200}"#, "true"])
            #expect((try result(answer)["outputs"] as? [String: Any])?["ms"] as? Int == 1200, "\(answer)")
            #expect(count(answer, status: 307, pathContaining: "/endpoints/v1/sleep/executions/") >= 1, "\(answer)")
        }
    }

    @Test(
        "with tokens configured: a wrong endpoint token is 401, a wrong SDK token fails the refresh, a good one works; create_deployment's endpoint_token must be one the deployment takes"
    )
    func tokens() async throws {
        let yaml = """
            tokens:
              - {name: alice, token: ALICE-SECRET}
              - {name: bob, token: BOB-SECRET}
            craft:
              deployments:
                - {name: shout, pipeline: upper, endpoint_url_path: loud, tokens: [alice]}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            var answer = try await Peers.craft(
                "trigger", port: gateway.port, ["shout", "WRONG-TOKEN", #"{"prompt":"x"}"#, "true"],
                sdkToken: "ALICE-SECRET"
            )
            var failure = try error(answer)
            #expect(failure["status_code"] as? Int == 401, "\(answer)")
            #expect(count(answer, status: 401, pathContaining: "/endpoints/loud") == 1, "\(answer)")

            // bob is a configured token, but not one this deployment lists.
            answer = try await Peers.craft(
                "trigger", port: gateway.port, ["shout", "BOB-SECRET", #"{"prompt":"x"}"#, "true"],
                sdkToken: "ALICE-SECRET"
            )
            #expect(try error(answer)["status_code"] as? Int == 403, "\(answer)")

            answer = try await Peers.craft(
                "run_json", port: gateway.port, ["echo", #"{"a":1}"#], sdkToken: "NOT-CONFIGURED")
            failure = try error(answer)
            #expect(failure["status_code"] as? Int == 401, "\(answer)")
            #expect(count(answer, status: 401, pathContaining: "/api/v1/auth/refresh") == 1, "\(answer)")

            answer = try await Peers.craft(
                "trigger", port: gateway.port, ["shout", "ALICE-SECRET", #"{"prompt":"ok"}"#, "true"],
                sdkToken: "BOB-SECRET"
            )
            #expect((try result(answer)["outputs"] as? [String: Any])?["prompt"] as? String == "OK", "\(answer)")

            // Review 23 H2: without an endpoint token the SDK posts to /api/v1/deployments/shout/executions with
            // its bearer JWT; the deployment's `tokens` hold there too: bob's is 403, nothing runs; alice's runs.
            answer = try await Peers.craft(
                "trigger", port: gateway.port, ["shout", "-", #"{"prompt":"x"}"#, "true"], sdkToken: "BOB-SECRET")
            failure = try error(answer)
            #expect(failure["status_code"] as? Int == 403, "\(answer)")
            #expect(
                count(answer, status: 403, pathContaining: "/api/v1/deployments/shout/executions") == 1, "\(answer)")
            answer = try await Peers.craft(
                "trigger", port: gateway.port, ["shout", "-", #"{"prompt":"ok"}"#, "true"], sdkToken: "ALICE-SECRET")
            #expect((try result(answer)["outputs"] as? [String: Any])?["prompt"] as? String == "OK", "\(answer)")
            #expect(
                count(answer, status: 200, pathContaining: "/api/v1/deployments/shout/executions") == 1, "\(answer)")

            // create_deployment's endpoint_token: one the deployment takes is honoured; a configured token it
            // does not take, or one that is not configured at all, is 403 (the SDK token itself was good).
            let shout = ["upper", "shout", "endpoint"]
            answer = try await Peers.craft(
                "create_deployment", port: gateway.port,
                shout + [#"{"endpoint_url_path": "loud", "endpoint_token": "ALICE-SECRET"}"#], sdkToken: "BOB-SECRET")
            #expect(try result(answer)["name"] as? String == "shout", "\(answer)")
            answer = try await Peers.craft(
                "create_deployment", port: gateway.port,
                shout + [#"{"endpoint_url_path": "loud", "endpoint_token": "BOB-SECRET"}"#], sdkToken: "BOB-SECRET")
            failure = try error(answer)
            #expect(failure["status_code"] as? Int == 403, "\(answer)")
            #expect((failure["message"] as? String)?.contains("craft.deployments[].tokens") == true, "\(answer)")
            answer = try await Peers.craft(
                "create_deployment", port: gateway.port,
                shout + [#"{"endpoint_url_path": "loud", "endpoint_token": "NEW-SECRET"}"#], sdkToken: "BOB-SECRET")
            failure = try error(answer)
            #expect(failure["status_code"] as? Int == 403, "\(answer)")
            #expect((failure["message"] as? String)?.contains("not a configured token") == true, "\(answer)")
        }
    }

    @Test("an input over the cap is 413 naming the cap; one at the cap runs")
    func overCap() async throws {
        try await withTestGateway(yaml: "craft: {max_io_bytes: 1000}\n") { gateway in
            // {"s": "<998 x>"}: the value's JSON is 1000 bytes, exactly the cap.
            let atCap = String(repeating: "x", count: 998)
            var answer = try await Peers.craft("run_json", port: gateway.port, ["echo", "{\"s\":\"\(atCap)\"}"])
            #expect((try result(answer)["outputs"] as? [String: Any])?["s"] as? String == atCap, "\(answer)")

            answer = try await Peers.craft("run_json", port: gateway.port, ["echo", "{\"s\":\"\(atCap)x\"}"])
            let failure = try error(answer)
            #expect(failure["status_code"] as? Int == 413, "\(answer)")
            let message = failure["message"] as? String ?? ""
            #expect(message.contains("1001 bytes") && message.contains("cap of 1000 bytes"), "\(message)")

            answer = try await Peers.craft(
                "trigger", port: gateway.port, ["echo", "EP", "{\"s\":\"\(atCap)x\"}", "true"])
            #expect(try error(answer)["status_code"] as? Int == 413, "\(answer)")
        }
    }

    @Test(
        "get_pipeline_execution of an execution whose values are over the cap (made through Instill): status, times and error readable, the set over the cap left out and named in io_values_left_out; at the cap everything (review 23 L2)"
    )
    func statusReadOverCap() async throws {
        try await withTestGateway(yaml: "craft: {max_io_bytes: 1000}\n") { gateway in
            let async = try await AsyncClient.connect(port: gateway.port)
            // {"s": "<998 x>"}: 1000 bytes of JSON value, the cap; echo answers the same outputs.
            let atCap = String(repeating: "x", count: 998)
            var ids: [String] = []
            for (pipeline, variables) in [
                ("echo", ["s": atCap]), ("echo", ["s": atCap + "x"]),
                ("fail", ["message": "kaput", "pad": String(repeating: "y", count: 1000)]),
            ] as [(String, [String: Any])] {
                let (status, accepted) = try await async.trigger(pipeline, variables)
                try #require(status == 200, "\(accepted)")
                let name = try #require(accepted.operationName)
                _ = try await async.waitDone(name)
                ids.append(String(name.dropFirst("operations/".count)))
            }
            func item(_ execution: [String: Any], _ key: String) throws -> [String: Any] {
                try #require((execution[key] as? [[String: Any]])?.first, "\(execution)")
            }

            var answer = try await Peers.craft("get_execution", port: gateway.port, [ids[0]])
            var execution = try result(answer)
            #expect(execution["status"] as? String == "Succeeded", "\(answer)")
            #expect(try item(execution, "inputs")["value"] as? String == atCap, "\(answer)")
            #expect(try item(execution, "outputs")["value"] as? String == atCap, "\(answer)")
            #expect(execution["io_values_left_out"] == nil, "\(answer)")

            // One byte past it: the status read still answers, with the values left out (the SDK's None).
            answer = try await Peers.craft("get_execution", port: gateway.port, [ids[1]])
            execution = try result(answer)
            #expect(execution["status"] as? String == "Succeeded", "\(answer)")
            #expect((execution["start_date"] as? String)?.hasSuffix("Z") == true, "\(answer)")
            #expect((execution["end_date"] as? String)?.hasSuffix("Z") == true, "\(answer)")
            #expect(try item(execution, "inputs")["data_type"] as? String == "string", "\(answer)")
            #expect(try item(execution, "inputs")["value"] is NSNull, "\(answer)")
            #expect(try item(execution, "outputs")["pipeline_output_name"] as? String == "s", "\(answer)")
            #expect(try item(execution, "outputs")["value"] is NSNull, "\(answer)")
            let leftOut = try #require(execution["io_values_left_out"] as? [String: String], "\(answer)")
            #expect(leftOut["inputs"]?.contains("the non-file inputs are 1001 bytes, over the cap of 1000") == true)
            #expect(leftOut["outputs"]?.contains("the non-file outputs are 1001 bytes, over the cap of 1000") == true)
            // The outputs read itself stays 413 (README "Input/output cap").
            answer = try await Peers.craft("execution_output", port: gateway.port, [ids[1], "s"])
            #expect(try error(answer)["status_code"] as? Int == 413, "\(answer)")

            // A failed one: its status and error, its inputs over the cap left out.
            answer = try await Peers.craft("get_execution", port: gateway.port, [ids[2]])
            execution = try result(answer)
            #expect(execution["status"] as? String == "Failed", "\(answer)")
            #expect((execution["error"] as? [String: Any])?["message"] as? String == "kaput", "\(answer)")
            let inputs = try #require(execution["inputs"] as? [[String: Any]], "\(answer)")
            #expect(inputs.count == 2 && inputs.allSatisfy { $0["value"] is NSNull }, "\(answer)")
            #expect((execution["io_values_left_out"] as? [String: String])?.keys.sorted() == ["inputs"], "\(answer)")
        }
    }

    @Test("a failing pipeline is an SdkException with the pipeline's message and status")
    func failingPipeline() async throws {
        try await withTestGateway { gateway in
            var answer = try await Peers.craft(
                "run_json", port: gateway.port, ["fail", #"{"message":"boom","code":"FAILED_PRECONDITION"}"#])
            var failure = try error(answer)
            #expect(failure["message"] as? String == "boom", "\(answer)")
            #expect(failure["status_code"] as? Int == 400 || failure["status_code"] as? Int == 409, "\(answer)")

            answer = try await Peers.craft(
                "trigger", port: gateway.port, ["fail", "EP", #"{"message":"kaput"}"#, "true"])
            failure = try error(answer)
            #expect(failure["message"] as? String == "kaput", "\(answer)")
            #expect(failure["status_code"] as? Int == 500, "\(answer)")
            #expect(failure["name"] as? String == "INTERNAL", "\(answer)")
        }
    }

    @Test(
        "with the http runner down, run_pipeline of a declared pipeline and trigger_endpoint (token and deployment paths) are accepted, not started (no start_date, no start in the log), one warning; the executions run when it is back and start then (review 23 M1); run_pipeline of a pipeline never described is 503 (review 59 F1)",
        .timeLimit(.minutes(2))
    )
    func runnerDownRefusesNothing() async throws {
        // A port the runner will listen on again: bound once, closed (the runner is down), bound again below.
        let first = try await DemoHTTPServer.bind(
            host: "127.0.0.1", port: 0, runner: DemoPipelines(), group: MultiThreadedEventLoopGroup.singleton)
        let port = try #require(first.localAddress?.port)
        try await first.close()
        // `upper` is declared (`craft.pipelines`): its description needs no runner. `echo` is not, and its runner has
        // never described it.
        let yaml = """
            pools:
              - {name: runner, transport: http, connect_timeout: 1s, endpoints: ["127.0.0.1:\(port)"]}
            routes:
              - {namespace: demo, pipeline: upper, pool: runner}
              - {namespace: demo, pipeline: echo, pool: runner}
            craft:
              pipelines:
                - {name: upper, inputs: [{name: prompt, data_type: string}]}
            store: {max_attempts: 50, retry_backoff: 100ms, max_retry_backoff: 200ms}
            """
        let log = RecordedLog()
        try await withTestGateway(yaml: yaml, log: log) { gateway in
            // Which of echo's inputs are files is unknown: described as taking any inputs, a file given as a path
            // would go as the path's string and run later on it. get_pipeline is 503, which the SDK raises first.
            let undescribed = try await Peers.craft("run_nowait", port: gateway.port, ["echo", #"{"prompt":"x"}"#])
            let refusal = try error(undescribed)
            #expect(refusal["status_code"] as? Int == 503, "\(undescribed)")
            #expect(refusal["name"] as? String == "UNAVAILABLE", "\(undescribed)")
            #expect((refusal["message"] as? String)?.contains("cannot be described now") == true, "\(undescribed)")
            #expect(count(undescribed, status: 503, pathContaining: "/api/v1/pipelines/echo") == 1, "\(undescribed)")
            #expect(
                count(undescribed, status: 200, pathContaining: "/api/v1/pipelines/echo/run") == 0, "\(undescribed)")

            // run_pipeline asks GET /api/v1/pipelines/upper first; trigger_endpoint GET /api/v1/deployments/upper
            // (no endpoint token) or POST /endpoints/upper (with one).
            var ids: [String] = []
            let run = try await Peers.craft("run_nowait", port: gateway.port, ["upper", #"{"prompt":"run"}"#])
            ids.append(try #require(try result(run)["execution_id"] as? String, "\(run)"))
            #expect(count(run, status: 200, pathContaining: "/api/v1/pipelines/upper") >= 1, "\(run)")
            for token in ["EP-TOKEN", "-"] {
                let trigger = try await Peers.craft(
                    "trigger", port: gateway.port, ["upper", token, #"{"prompt":"trigger"}"#, "false"])
                ids.append(try #require(try result(trigger)["execution_id"] as? String, "\(trigger)"))
            }
            // What the route table does not serve is still refused at once.
            let unknown = try await Peers.craft("run_json", port: gateway.port, ["no-such-pipeline", "{}"])
            #expect(try error(unknown)["status_code"] as? Int == 404, "\(unknown)")
            let noDeployment = try await Peers.craft(
                "trigger", port: gateway.port, ["no-such-pipeline", "-", "{}", "false"])
            #expect(try error(noDeployment)["status_code"] as? Int == 404, "\(noDeployment)")

            // Claimed, refused and handed back (the warning says so, once for the pool): not started.
            let warning = "runner unreachable; async operations wait in the queue"
            let warnings = { log.lines.filter { $0.message == warning } }
            #expect(await eventually(within: .seconds(20)) { !warnings().isEmpty }, "\(log.lines)")
            #expect(warnings().first?.metadata["backend.pool"] == "runner", "\(warnings())")
            #expect(warnings().first?.metadata["error"]?.contains("connection refused") == true, "\(warnings())")
            // The dispatcher probes the runner with one claim per back-off (100–200 ms here): a read while that claim
            // is under way shows it Running for that moment (a session-60 flake), so the read is repeated until it
            // lands between probes. Never Pending, it fails.
            var answer: [String: Any] = [:]
            var execution: [String: Any] = [:]
            for _ in 0..<10 {
                answer = try await Peers.craft("get_execution", port: gateway.port, [ids[0]])
                execution = try result(answer)
                if execution["status"] as? String != "Running" { break }
            }
            #expect(execution["status"] as? String == "Pending", "\(answer)")
            #expect(execution["start_date"] is NSNull, "\(answer)")
            #expect((execution["steps"] as? [[String: Any]])?.first?["start_date"] is NSNull, "\(answer)")
            answer = try await Peers.craft("execution_logs", port: gateway.port, [ids[0]])
            let started = "started on the pipeline's runner"
            #expect(
                (answer["result"] as? [[String: Any]])?.contains { $0["message"] as? String == started } == false,
                "\(answer)")

            let backAt = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
            let back = try await DemoHTTPServer.bind(
                host: "127.0.0.1", port: port, runner: DemoPipelines(), group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { try? await back.close() } }
            let client = try await gateway.client()
            for (i, id) in ids.enumerated() {
                let done = try await client.request("GET", "/v1beta/operations/\(id)?wait=30s")
                let operation = try #require(try json(done.body)["operation"] as? [String: Any], "\(done.bodyString)")
                #expect(operation["done"] as? Bool == true, "\(done.bodyString)")
                let outputs = (operation["response"] as? [String: Any])?["outputs"] as? [[String: Any]]
                #expect(outputs?.first?["prompt"] as? String == (i == 0 ? "RUN" : "TRIGGER"), "\(done.bodyString)")
            }
            // Its start is the run that reached the runner, after it came back; the log says so then.
            answer = try await Peers.craft("get_execution", port: gateway.port, [ids[0]])
            execution = try result(answer)
            #expect(execution["status"] as? String == "Succeeded", "\(answer)")
            let startDate = try #require(
                (execution["start_date"] as? String).flatMap(RFC3339Milliseconds.parse), "\(answer)")
            #expect(startDate >= backAt, "started before the runner was back: \(answer)")
            answer = try await Peers.craft("execution_logs", port: gateway.port, [ids[0]])
            let startLine = (answer["result"] as? [[String: Any]])?.first { $0["message"] as? String == started }
            #expect(
                (startLine?["timestamp"] as? String).flatMap(RFC3339Milliseconds.parse) == startDate, "\(answer)")
            #expect(warnings().count == 1, "one warning a minute per pool: \(warnings())")
        }
    }

    @Test("an unknown pipeline or deployment is an SdkException (404)")
    func unknownNames() async throws {
        try await withTestGateway { gateway in
            var answer = try await Peers.craft("run_json", port: gateway.port, ["no-such-pipeline", "{}"])
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
            answer = try await Peers.craft("trigger", port: gateway.port, ["no-such-deployment", "EP", "{}", "true"])
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
        }
    }

    // MARK: Reads of pipelines and executions (get_pipeline, list_pipelines, list_pipeline_executions,
    // get_pipeline_execution and its input and output getters): each answered 404 before they were served.

    /// Routes that name `upper` and `sleep`, `echo` described by `craft.pipelines` with a file input, and the
    /// rest behind a `*` route (served but not listed).
    static let readsYAML = """
        pools:
          - {name: demo, transport: inprocess}
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}
          - {namespace: demo, pipeline: upper, pool: demo}
          - {namespace: demo, pipeline: sleep, pool: demo}
          - {namespace: other, pipeline: tokens, pool: demo}
        craft:
          pipelines:
            - {name: echo, inputs: [{name: doc, data_type: file}, {name: n, data_type: number}]}
        """

    @Test(
        "declared input types are checked: a string for a number input is 400 naming the input and both types; a number runs (review 23 I2)"
    )
    func declaredTypesChecked() async throws {
        try await withTestGateway(yaml: Self.readsYAML) { gateway in
            var answer = try await Peers.craft("run_json", port: gateway.port, ["echo", #"{"n":"abc"}"#])
            let failure = try error(answer)
            #expect(failure["status_code"] as? Int == 400, "\(answer)")
            #expect(
                failure["message"] as? String
                    == "input \"n\" of pipeline echo is declared number (craft.pipelines), got string", "\(answer)")
            answer = try await Peers.craft("trigger", port: gateway.port, ["echo", "-", #"{"n":true}"#, "true"])
            #expect(try error(answer)["status_code"] as? Int == 400, "\(answer)")
            answer = try await Peers.craft("run_json", port: gateway.port, ["echo", #"{"n":3}"#])
            #expect((try result(answer)["outputs"] as? [String: Any])?["n"] as? Int == 3, "\(answer)")
        }
    }

    @Test("get_pipeline and list_pipelines: a routed pipeline is ready with its inputs, last_execution_id follows runs")
    func getAndListPipelines() async throws {
        try await withTestGateway(yaml: Self.readsYAML) { gateway in
            var answer = try await Peers.craft("get_pipeline", port: gateway.port, ["blob-info"])
            var pipeline = try result(answer)
            let parameters = try #require(pipeline["parameters"] as? [String: Any], "\(answer)")
            #expect(parameters["inputs"] as? [[String: String]] == [["name": "file", "data_type": "file"]])
            #expect(parameters["pipeline_name"] as? String == "blob-info")
            var creation = try #require(pipeline["creation_info"] as? [String: Any], "\(answer)")
            #expect(creation["status"] as? String == "ready")
            #expect(creation.keys.contains("last_execution_id") && creation["last_execution_id"] is NSNull)
            #expect(count(answer, status: 204, pathContaining: "/pipelines/blob-info/executions/latest") == 1)

            // list_pipelines returns the body as it is: routed names and described ones, not what only `*` serves.
            answer = try await Peers.craft("list_pipelines", port: gateway.port)
            let list = try #require(answer["result"] as? [[String: Any]], "\(answer)")
            #expect(list.map { $0["pipeline_name"] as? String } == ["echo", "sleep", "upper"], "\(answer)")
            #expect(list.allSatisfy { $0["status"] as? String == "ready" })

            // After two runs the newest is the pipeline's last execution; waiting for creation ends at once.
            _ = try await Peers.craft("run_json", port: gateway.port, ["upper", #"{"p":"a"}"#])
            let second = try result(try await Peers.craft("run_json", port: gateway.port, ["upper", #"{"p":"b"}"#]))
            answer = try await Peers.craft("get_pipeline", port: gateway.port, ["upper", "true"])
            pipeline = try result(answer)
            creation = try #require(pipeline["creation_info"] as? [String: Any], "\(answer)")
            #expect(creation["last_execution_id"] as? String == second["execution_id"] as? String, "\(answer)")

            answer = try await Peers.craft("get_pipeline", port: gateway.port, ["no-such-pipeline"])
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
        }
    }

    @Test("get_pipeline_execution and list_pipeline_executions: status, times, inputs and outputs (files fetched)")
    func getAndListExecutions() async throws {
        try await withTestGateway(yaml: Self.readsYAML) { gateway in
            var answer = try await Peers.craft("list_executions", port: gateway.port, ["echo"])
            #expect(answer["result"] as? [Any] != nil && (answer["result"] as? [Any])?.isEmpty == true, "\(answer)")

            // A file input and a number: echo hands both back as outputs.
            let run = try result(
                try await Peers.craft("run_file", port: gateway.port, ["echo", "doc", "00ff10ab"]))
            let id = try #require(run["execution_id"] as? String, "\(run)")
            answer = try await Peers.craft("get_execution", port: gateway.port, [id])
            let execution = try result(answer)
            #expect(execution["execution_id"] as? String == id)
            #expect(execution["status"] as? String == "Succeeded", "\(answer)")
            #expect(execution["pipeline_name"] as? String == "echo")
            #expect(execution["deployment_name"] is NSNull)
            #expect((execution["created_at"] as? String)?.hasSuffix("Z") == true, "\(answer)")
            #expect((execution["end_date"] as? String)?.hasSuffix("Z") == true, "\(answer)")
            let inputs = try #require(execution["inputs"] as? [[String: Any]], "\(answer)")
            #expect(inputs.count == 1, "\(answer)")
            #expect(inputs.first?["pipeline_input_name"] as? String == "doc")
            #expect(inputs.first?["data_type"] as? String == "file")
            #expect(inputs.first?["source"] as? String == "run")
            #expect((inputs.first?["value"] as? [String: Any])?["hex"] as? String == "00ff10ab", "\(answer)")
            let outputs = try #require(execution["outputs"] as? [[String: Any]], "\(answer)")
            #expect(outputs.first?["pipeline_output_name"] as? String == "doc")
            // A run's own output, as its input (review 59, F4: it read "endpoint"); `run_output_name` is dropped by
            // the SDK.
            #expect(outputs.first?["destination"] as? String == "run", "\(answer)")
            #expect(outputs.first?["endpoint_output_name"] == nil, "\(answer)")
            #expect(outputs.first?["run_output_name"] == nil, "\(answer)")
            #expect((outputs.first?["value"] as? [String: Any])?["hex"] as? String == "00ff10ab", "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/executions/\(id)/inputs/doc") == 1, "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/executions/\(id)/outputs/doc") == 1, "\(answer)")

            answer = try await Peers.craft("execution_input", port: gateway.port, [id, "doc"])
            #expect((try result(answer)["value"] as? [String: Any])?["hex"] as? String == "00ff10ab", "\(answer)")
            answer = try await Peers.craft("execution_output", port: gateway.port, [id, "doc"])
            #expect((try result(answer)["value"] as? [String: Any])?["hex"] as? String == "00ff10ab", "\(answer)")
            answer = try await Peers.craft("execution_input", port: gateway.port, [id, "nope"])
            #expect((try error(answer)["message"] as? String)?.contains("Cannot find input nope") == true)

            // A run still going is Running with no outputs read; a failed one is Failed with its error. The run
            // sleeps a minute (the gateway's stop ends it): each SDK call starts a Python process that imports the
            // SDK, which on two loaded cores took longer than the 1.5 s this run once slept.
            let running = try result(
                try await Peers.craft("run_nowait", port: gateway.port, ["sleep", #"{"ms":60000}"#]))
            let runningID = try #require(running["execution_id"] as? String)
            answer = try await Peers.craft("get_execution", port: gateway.port, [runningID])
            #expect(["Pending", "Running"].contains(try result(answer)["status"] as? String), "\(answer)")
            let failing = try result(
                try await Peers.craft("run_nowait", port: gateway.port, ["fail", #"{"message":"kaput"}"#]))
            let failingID = try #require(failing["execution_id"] as? String)
            var failed: [String: Any] = [:]
            for _ in 0..<50 {
                failed = try result(try await Peers.craft("get_execution", port: gateway.port, [failingID]))
                if failed["status"] as? String != "Pending" && failed["status"] as? String != "Running" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(failed["status"] as? String == "Failed", "\(failed)")
            #expect(failed["outputs"] as? [Any] != nil && (failed["outputs"] as? [Any])?.isEmpty == true)
            #expect((failed["error"] as? [String: Any])?["message"] as? String == "kaput", "\(failed)")

            // Newest first, each with who and where from; only the pipeline's own.
            answer = try await Peers.craft("list_executions", port: gateway.port, ["echo"])
            let echoRuns = try #require(answer["result"] as? [[String: Any]], "\(answer)")
            #expect(echoRuns.map { $0["execution_id"] as? String } == [id], "\(answer)")
            #expect(echoRuns.first?["status"] as? String == "Succeeded")
            #expect(echoRuns.first?["pipeline_name"] as? String == "echo")
            #expect(echoRuns.first?.keys.contains("created_by") == true)

            answer = try await Peers.craft("get_execution", port: gateway.port, ["no-such-execution"])
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
            answer = try await Peers.craft("list_executions", port: gateway.port, ["no-such-pipeline"])
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
        }
    }
}
