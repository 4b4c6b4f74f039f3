import Foundation
import GatewayConfig
import GatewayTestSupport
import NIOCore
import OperationStore
import Testing
import TriggerModel

/// The Craft AI surface at the HTTP level (what the SDK tests cannot see): the long-poll's edges, the access
/// token checks, the I/O cap on outputs, mappings, describe over both runner transports, reload, and the key
/// shared between instances.
@Suite("Craft AI surface over raw HTTP")
struct CraftRESTTests {
    /// An access token from `/api/v1/auth/refresh`.
    static func accessToken(_ client: TestHTTPClient, sdkToken: String = "sdk") async throws -> String {
        let response = try await client.request(
            "POST", "/api/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": sdkToken])
        )
        try #require(response.status == 200, "\(response.bodyString)")
        return try #require(try json(response.body)["access_token"] as? String)
    }

    static func bearer(_ token: String) -> [(String, String)] { [("authorization", "Bearer \(token)")] }

    /// Starts an execution of `pipeline` with form-encoded `json_inputs`; returns its id.
    static func run(_ client: TestHTTPClient, _ token: String, _ pipeline: String, _ inputsJSON: String) async throws
        -> String
    {
        let encoded = inputsJSON.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let response = try await client.request(
            "POST", "/api/v1/pipelines/\(pipeline)/run",
            headers: bearer(token) + [("content-type", "application/x-www-form-urlencoded")],
            body: ByteBuffer(string: "json_inputs=\(encoded)")
        )
        try #require(response.status == 200, "\(response.bodyString)")
        return try #require(try json(response.body)["execution_id"] as? String)
    }

    @Test("the access token: issued as an HS256 JWT with numeric iat/exp; required and verified on every /api/v1 call")
    func accessTokens() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let token = try await Self.accessToken(client)
            let parts = token.split(separator: ".")
            #expect(parts.count == 3)
            var header = String(parts[0])
            while header.count % 4 != 0 { header += "=" }
            let decoded = try #require(
                Data(
                    base64Encoded: header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(
                        of: "_", with: "/")))
            #expect((try JSONSerialization.jsonObject(with: decoded) as? [String: Any])?["alg"] as? String == "HS256")

            var response = try await client.request("GET", "/api/v1/pipelines/echo")
            #expect(response.status == 401)
            #expect(
                (try json(response.body)["message"] as? String)?.contains("Bearer") == true, "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/pipelines/echo", headers: Self.bearer("not.a.jwt"))
            #expect(response.status == 401)
            // The same claims with the signature's first character changed: a forgery. (Not the last one: of a
            // 43-character base64url signature its low bits are padding a decoder may ignore.)
            var segments = token.split(separator: ".").map(String.init)
            let first = segments[2].removeFirst()
            segments[2] = (first == "A" ? "B" : "A") + segments[2]
            let forged = segments.joined(separator: ".")
            response = try await client.request("GET", "/api/v1/pipelines/echo", headers: Self.bearer(forged))
            #expect(response.status == 401, "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/pipelines/echo", headers: Self.bearer(token))
            #expect(response.status == 200, "\(response.bodyString)")
        }
    }

    @Test("pipeline descriptions: blob-info declares a file input, others none, config overrides, unknown is 404")
    func describeInProcess() async throws {
        let yaml =
            "craft:\n  pipelines:\n    - {name: echo, inputs: [{name: doc, data_type: file}, {name: n, data_type: number}]}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let token = try await Self.accessToken(client)
            var response = try await client.request("GET", "/api/v1/pipelines/blob-info", headers: Self.bearer(token))
            var inputs = (try json(response.body)["parameters"] as? [String: Any])?["inputs"] as? [[String: String]]
            #expect(inputs == [["name": "file", "data_type": "file"]], "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/pipelines/upper", headers: Self.bearer(token))
            inputs = (try json(response.body)["parameters"] as? [String: Any])?["inputs"] as? [[String: String]]
            #expect(inputs == [], "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/pipelines/echo", headers: Self.bearer(token))
            inputs = (try json(response.body)["parameters"] as? [String: Any])?["inputs"] as? [[String: String]]
            #expect(inputs == [["name": "doc", "data_type": "file"], ["name": "n", "data_type": "number"]])
            response = try await client.request("GET", "/api/v1/pipelines/nope", headers: Self.bearer(token))
            #expect(response.status == 404)
            #expect(try json(response.body)["message"] as? String != nil)
        }
    }

    @Test("Describe over both runner transports, answered by the demo-runner process", arguments: ["grpc", "http"])
    func describeOverTransport(transport: String) async throws {
        try await withDemoRunnerProcess(transport: transport) { port in
            let yaml = """
                pools:
                  - {name: runner, transport: \(transport), endpoints: ["127.0.0.1:\(port)"]}
                routes:
                  - {namespace: demo, pipeline: "*", pool: runner}
                """
            try await withTestGateway(yaml: yaml) { gateway in
                let client = try await gateway.client()
                let token = try await Self.accessToken(client)
                var response = try await client.request(
                    "GET", "/api/v1/pipelines/blob-info", headers: Self.bearer(token))
                let inputs = (try json(response.body)["parameters"] as? [String: Any])?["inputs"] as? [[String: String]]
                #expect(inputs == [["name": "file", "data_type": "file"]], "\(response.bodyString)")
                response = try await client.request("GET", "/api/v1/pipelines/not-there", headers: Self.bearer(token))
                #expect(response.status == 404, "\(response.bodyString)")
            }
        }
    }

    @Test(
        "the long-poll: an execution that ends during the wait is answered then; one that outlasts it gets 307 to itself"
    )
    func longPollEdges() async throws {
        try await withTestGateway(yaml: "craft: {long_poll_wait: 3s}\n") { gateway in
            let client = try await gateway.client()
            let token = try await Self.accessToken(client)
            let clock = ContinuousClock()

            // Ends well inside the wait: the held read is answered when the run ends, before the wait does.
            var id = try await Self.run(client, token, "sleep", #"{"ms":300}"#)
            var path = "/api/v1/executions/\(id)/outputs?wait_for_completion=true"
            var started = clock.now
            var response = try await client.request("GET", path, headers: Self.bearer(token))
            var elapsed = started.duration(to: clock.now)
            #expect(response.status == 200, "\(response.bodyString)")
            #expect(elapsed < .seconds(3), "answered only after \(elapsed), the whole wait")
            let outputs = try #require(try json(response.body)["outputs"] as? [[String: Any]])
            #expect(outputs.first?["pipeline_output_name"] as? String == "ms")
            #expect(outputs.first?["data_type"] as? String == "number")
            // A run's own output (review 59, F4: it read "endpoint", as a deployment's).
            #expect(outputs.first?["mapping_type"] as? String == "run")
            #expect(outputs.first?["endpoint_output_name"] == nil)
            #expect(outputs.first?["value"] as? Int == 300)

            // Outlasts the wait: held the whole wait, then 307 with Location to the same target.
            id = try await Self.run(client, token, "sleep", #"{"ms":60000}"#)
            path = "/api/v1/executions/\(id)/outputs?wait_for_completion=true"
            started = clock.now
            response = try await client.request("GET", path, headers: Self.bearer(token))
            elapsed = started.duration(to: clock.now)
            #expect(response.status == 307)
            #expect(response.header("location") == path)
            #expect(elapsed >= .milliseconds(2900) && elapsed < .seconds(8), "held \(elapsed)")

            // Without wait_for_completion nothing is held.
            started = clock.now
            response = try await client.request("GET", "/api/v1/executions/\(id)/outputs", headers: Self.bearer(token))
            #expect(response.status == 307)
            #expect(started.duration(to: clock.now) < .seconds(2))

            // A cancelled execution is an error, not outputs (and the gateway stops without waiting for it).
            response = try await client.request("POST", "/v1beta/operations/\(id):cancel")
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request("GET", path, headers: Self.bearer(token))
            #expect(response.status == 499, "\(response.bodyString)")
            #expect(try json(response.body)["message"] as? String != nil)
        }
    }

    @Test("a deployment's mappings: rename, constant, environment variable, null; outputs renamed and dropped")
    func mappings() async throws {
        let yaml = """
            craft:
              deployments:
                - name: mapped
                  pipeline: echo
                  endpoint_url_path: mapped-path
                  input_mappings:
                    - {pipeline_input_name: prompt, endpoint_input_name: text, is_required: true}
                    - {pipeline_input_name: n, endpoint_input_name: count, default_value: 7}
                    - {pipeline_input_name: source, constant_value: {kind: gateway, tags: [a, 1]}}
                    - {pipeline_input_name: path, environment_variable_name: PATH}
                    - {pipeline_input_name: gone, is_null: true}
                  output_mappings:
                    - {pipeline_output_name: prompt, endpoint_output_name: answer}
                    - {pipeline_output_name: n, endpoint_output_name: n}
                    - {pipeline_output_name: source, endpoint_output_name: source}
                    - {pipeline_output_name: path, is_null: true}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            var response = try await client.request(
                "POST", "/endpoints/mapped-path",
                headers: jsonHeaders + [("authorization", "EndpointToken any")],
                body: try jsonBody(["text": "hi", "gone": "ignored"])
            )
            #expect(response.status == 200, "\(response.bodyString)")
            let id = try #require(try json(response.body)["execution_id"] as? String)
            response = try await client.request("GET", "/endpoints/v1/mapped-path/executions/\(id)?token=any")
            #expect(response.status == 200, "\(response.bodyString)")
            let outputs = try #require(
                try json(response.body)["outputs"] as? [String: [String: Any]], "\(response.bodyString)")
            #expect(outputs["answer"]?["value"] as? String == "hi")
            #expect(outputs["n"]?["value"] as? Int == 7)
            let source = outputs["source"]?["value"] as? [String: Any]
            #expect(source?["kind"] as? String == "gateway")
            #expect(source?["tags"] as? [AnyHashable] == ["a", 1])
            #expect(outputs["path"] == nil && outputs["gone"] == nil, "\(outputs)")

            // The pipeline did receive the environment variable (the operation's request shows it).
            let operation = try await gateway.store.get(id: id)
            #expect(
                operation?.request.inputs.first?.variables["path"]?.stringValue
                    == ProcessInfo.processInfo.environment["PATH"])
            #expect(operation?.request.inputs.first?.variables["gone"] == nil)

            // Security review, M1: the gateway's environment reaches the runner, but no read shows it: not
            // get_pipeline_execution, not the input's own read, not Instill's list of the pipeline's runs. Nor the
            // constant, nor the default the caller left to the deployment (security review 60, M4: both were shown).
            let token = try await Self.accessToken(client)
            response = try await client.request("GET", "/api/v1/executions/\(id)", headers: Self.bearer(token))
            #expect(response.status == 200, "\(response.bodyString)")
            let shown = try #require(try json(response.body)["inputs"] as? [[String: Any]], "\(response.bodyString)")
            #expect(
                Set(shown.compactMap { $0["pipeline_input_name"] as? String }) == ["prompt"], "\(response.bodyString)")
            for hidden in ["path", "source", "n"] {
                response = try await client.request(
                    "GET", "/api/v1/executions/\(id)/inputs/\(hidden)", headers: Self.bearer(token))
                #expect(response.status == 404, "\(hidden): \(response.bodyString)")
            }
            response = try await client.request(
                "GET", "/api/v1/executions/\(id)/inputs/prompt", headers: Self.bearer(token))
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request("GET", "/v1beta/namespaces/demo/pipelines/echo/runs")
            #expect(response.status == 200, "\(response.bodyString)")
            let runs = try #require(
                try json(response.body)["pipelineRuns"] as? [[String: Any]], "\(response.bodyString)")
            let run = try #require(runs.first { $0["pipelineRunUid"] as? String == id }, "\(response.bodyString)")
            let runInputs = try #require(run["inputs"] as? [[String: Any]], "\(run)")
            #expect(runInputs.map { Set($0.keys) } == [["prompt"]], "\(run)")

            // A required input missing: 400 with a message.
            response = try await client.request(
                "POST", "/endpoints/mapped-path", headers: jsonHeaders + [("authorization", "EndpointToken any")],
                body: try jsonBody(["count": 1])
            )
            #expect(response.status == 400)
            #expect((try json(response.body)["message"] as? String)?.contains("\"text\" is required") == true)

            // The deployment's name is not an endpoint path.
            response = try await client.request(
                "POST", "/endpoints/mapped", headers: jsonHeaders + [("authorization", "EndpointToken any")],
                body: try jsonBody([:])
            )
            #expect(response.status == 404)
        }
    }

    @Test("outputs over the cap are 413 when read; at the cap they are delivered")
    func outputCap() async throws {
        // echo gives back its inputs; the constant adds to the outputs what the client never sent.
        func yaml(_ constantLength: Int) -> String {
            """
            craft:
              max_io_bytes: 1000
              deployments:
                - name: padded
                  pipeline: echo
                  input_mappings:
                    - {pipeline_input_name: pad, constant_value: "\(String(repeating: "p", count: constantLength))"}
            """
        }
        // Outputs: {"pad": "<k p>"} is k+2 bytes; {"s": "<n x>"} is n+2. 500 + 2 + 496 + 2 = 1000.
        for (constant, expected) in [(496, 200), (497, 413)] {
            try await withTestGateway(yaml: yaml(constant)) { gateway in
                let client = try await gateway.client()
                var response = try await client.request(
                    "POST", "/endpoints/padded", headers: jsonHeaders + [("authorization", "EndpointToken t")],
                    body: try jsonBody(["s": String(repeating: "x", count: 500)])
                )
                #expect(response.status == 200, "\(response.bodyString)")
                let id = try #require(try json(response.body)["execution_id"] as? String)
                response = try await client.request("GET", "/endpoints/v1/padded/executions/\(id)?token=t")
                #expect(response.status == expected, "constant \(constant): \(response.bodyString)")
                if expected == 413 {
                    #expect((try json(response.body)["message"] as? String)?.contains("cap of 1000 bytes") == true)
                }
            }
        }
    }

    @Test("bad bodies are JSON errors: a malformed form escape, an unknown field, a JSON run body")
    func badBodies() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let token = try await Self.accessToken(client)
            let form = Self.bearer(token) + [("content-type", "application/x-www-form-urlencoded")]
            var response = try await client.request(
                "POST", "/api/v1/pipelines/echo/run", headers: form, body: ByteBuffer(string: "json_inputs=%7"))
            #expect(response.status == 400)
            #expect((try json(response.body)["message"] as? String)?.contains("percent-escape") == true)
            response = try await client.request(
                "POST", "/api/v1/pipelines/echo/run", headers: form, body: ByteBuffer(string: "jsn_inputs=%7B%7D"))
            #expect(response.status == 400)
            #expect((try json(response.body)["message"] as? String)?.contains("jsn_inputs") == true)
            response = try await client.request(
                "POST", "/api/v1/pipelines/echo/run", headers: Self.bearer(token) + jsonHeaders,
                body: ByteBuffer(string: "{}")
            )
            #expect(response.status == 415)
        }
    }

    @Test("REST over h2c (curl --http2-prior-knowledge): a multipart endpoint trigger and its result")
    func overHTTP2() async throws {
        let curl = try #require(TestProcess.which("curl"), "scripts/setup.sh --test installs curl")
        try await withTestGateway { gateway in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("craft-h2-\(UUID().uuidString)")
            let bytes: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try Data(bytes).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let base = "http://127.0.0.1:\(gateway.port)"
            var out = try await TestProcess.run(
                curl,
                [
                    "-s", "--http2-prior-knowledge", "-H", "Authorization: EndpointToken t",
                    "-F", "file=@\(file.path)", "-F", "label=\"x\"", "\(base)/endpoints/blob-info",
                ])
            let started = try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any]
            let id = try #require(started?["execution_id"] as? String, "\(out.stdoutString) \(out.stderr)")
            out = try await TestProcess.run(
                curl, ["-s", "--http2-prior-knowledge", "\(base)/endpoints/v1/blob-info/executions/\(id)?token=t"])
            let answer = try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any]
            let outputs = try #require(answer?["outputs"] as? [String: [String: Any]], "\(out.stdoutString)")
            #expect((outputs["file"]?["value"] as? [String: Any])?["sha256"] as? String == (try sha256Hex(bytes)))

            // A file output's url is absolute, built from :authority, and serves the bytes over h2c too.
            out = try await TestProcess.run(
                curl,
                [
                    "-s", "--http2-prior-knowledge", "-H", "Authorization: EndpointToken t", "-F", "doc=@\(file.path)",
                    "\(base)/endpoints/echo",
                ])
            let echoID = try #require(
                (try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any])?["execution_id"] as? String)
            out = try await TestProcess.run(
                curl, ["-s", "--http2-prior-knowledge", "\(base)/endpoints/v1/echo/executions/\(echoID)?token=t"])
            let echoed = try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any]
            let url = try #require(
                ((echoed?["outputs"] as? [String: Any])?["doc"] as? [String: Any])?["url"] as? String,
                "\(out.stdoutString)")
            #expect(url == "\(base)/endpoints/v1/echo/executions/\(echoID)/outputs/doc")
            out = try await TestProcess.run(curl, ["-s", "--http2-prior-knowledge", "\(url)?token=t"])
            #expect(Array(out.stdout) == bytes)
        }
    }

    @Test("an execution is another principal's or another deployment's: 404 at once, not held for the wait")
    func visibility() async throws {
        let yaml = """
            tokens: [{name: alice, token: ALICE}, {name: bob, token: BOB}]
            craft: {long_poll_wait: 5s}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let alice = try await Self.accessToken(client, sdkToken: "ALICE")
            let bob = try await Self.accessToken(client, sdkToken: "BOB")
            let id = try await Self.run(client, alice, "sleep", #"{"ms":60000}"#)
            let clock = ContinuousClock()
            let started = clock.now
            var response = try await client.request(
                "GET", "/api/v1/executions/\(id)/outputs?wait_for_completion=true", headers: Self.bearer(bob)
            )
            #expect(response.status == 404, "\(response.bodyString)")
            #expect(started.duration(to: clock.now) < .seconds(4), "held for the 5 s wait")
            response = try await client.request(
                "POST", "/v1beta/operations/\(id):cancel", headers: [("authorization", "Bearer ALICE")])
            #expect(response.status == 200, "\(response.bodyString)")

            response = try await client.request(
                "POST", "/endpoints/echo", headers: jsonHeaders + [("authorization", "EndpointToken ALICE")],
                body: try jsonBody(["a": 1])
            )
            let echoID = try #require(try json(response.body)["execution_id"] as? String)
            response = try await client.request("GET", "/endpoints/v1/upper/executions/\(echoID)?token=ALICE")
            #expect(response.status == 404, "\(response.bodyString)")
            response = try await client.request("GET", "/endpoints/v1/echo/executions/\(echoID)?token=BOB")
            #expect(response.status == 404, "\(response.bodyString)")
            response = try await client.request("GET", "/endpoints/v1/echo/executions/\(echoID)?token=ALICE")
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request("GET", "/endpoints/v1/echo/executions/\(echoID)")
            #expect(response.status == 401, "\(response.bodyString)")
            #expect(
                (try json(response.body)["message"] as? String)
                    == "missing endpoint token: send Authorization: EndpointToken <token>, or ?token=")
            // The header, as README says endpoints take it, on both reads as on the trigger (review 59, F3: 401).
            for scheme in ["EndpointToken", "Bearer"] {
                for path in [
                    "/endpoints/v1/echo/executions/\(echoID)", "/endpoints/v1/echo/executions/\(echoID)/outputs/a",
                ] {
                    response = try await client.request("GET", path, headers: [("authorization", "\(scheme) ALICE")])
                    #expect(response.status == 200, "\(scheme) \(path): \(response.bodyString)")
                    response = try await client.request("GET", path, headers: [("authorization", "\(scheme) BOB")])
                    #expect(response.status == 404, "\(scheme) \(path): \(response.bodyString)")
                }
            }
            response = try await client.request(
                "GET", "/endpoints/v1/echo/executions/\(echoID)", headers: [("authorization", "EndpointToken NOPE")])
            #expect(response.status == 401, "\(response.bodyString)")
            // A proxy's own Authorization beside the SDK's ?token=: the query's token is the caller's (review 59,
            // L9: 401 "invalid token"); an unknown ?token= under it is still refused, and a header alone too.
            for path in [
                "/endpoints/v1/echo/executions/\(echoID)", "/endpoints/v1/echo/executions/\(echoID)/outputs/a",
            ] {
                let proxied = [("authorization", "Basic cHJveHk6cHc=")]
                response = try await client.request("GET", path + "?token=ALICE", headers: proxied)
                #expect(response.status == 200, "\(path): \(response.bodyString)")
                response = try await client.request("GET", path + "?token=BOB", headers: proxied)
                #expect(response.status == 404, "\(path): \(response.bodyString)")
                response = try await client.request("GET", path + "?token=NOPE", headers: proxied)
                #expect(response.status == 401, "\(path): \(response.bodyString)")
                response = try await client.request("GET", path, headers: proxied)
                #expect(response.status == 401, "\(path): \(response.bodyString)")
            }
        }
    }

    @Test(
        "execution reads: another principal's is 404 and unlisted; cancelled is Failed with CANCELLED; include_io_values=false; a deployment's execution names it"
    )
    func executionReads() async throws {
        let yaml = """
            tokens: [{name: alice, token: ALICE}, {name: bob, token: BOB}]
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let alice = try await Self.accessToken(client, sdkToken: "ALICE")
            let bob = try await Self.accessToken(client, sdkToken: "BOB")
            let slow = try await Self.run(client, alice, "sleep", #"{"ms":60000}"#)
            var response = try await client.request("GET", "/api/v1/executions/\(slow)", headers: Self.bearer(bob))
            #expect(response.status == 404, "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/pipelines/sleep/executions", headers: Self.bearer(bob))
            #expect(response.status == 200 && response.bodyString == "[]", "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/pipelines/sleep/executions/latest", headers: Self.bearer(bob))
            #expect(response.status == 204, "\(response.bodyString)")

            response = try await client.request(
                "POST", "/v1beta/operations/\(slow):cancel", headers: [("authorization", "Bearer ALICE")])
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/executions/\(slow)", headers: Self.bearer(alice))
            var execution = try json(response.body)
            #expect(execution["status"] as? String == "Failed", "\(response.bodyString)")
            #expect((execution["error"] as? [String: Any])?["name"] as? String == "CANCELLED", "\(response.bodyString)")
            #expect(execution["created_by"] as? String == "alice")
            #expect((execution["outputs"] as? [Any])?.isEmpty == true)
            // HEAD answers as GET does, without the body.
            let head = try await client.request("HEAD", "/api/v1/executions/\(slow)", headers: Self.bearer(alice))
            #expect(head.status == 200 && head.body.readableBytes == 0)

            // Through a deployment, the values left out on request.
            response = try await client.request(
                "POST", "/endpoints/echo", headers: jsonHeaders + [("authorization", "EndpointToken ALICE")],
                body: try jsonBody(["a": 1]))
            let echoID = try #require(try json(response.body)["execution_id"] as? String, "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(echoID)/outputs?wait_for_completion=true", headers: Self.bearer(alice))
            #expect(response.status == 200, "\(response.bodyString)")
            // Python's False (what the SDK's `requests` sends) is false too; a value that is neither is refused.
            response = try await client.request(
                "GET", "/api/v1/executions/\(echoID)?include_io_values=maybe", headers: Self.bearer(alice))
            #expect(response.status == 400, "\(response.bodyString)")
            #expect(response.bodyString.contains(#"invalid include_io_values \"maybe\""#), "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(echoID)/outputs?wait_for_completion=1", headers: Self.bearer(alice))
            #expect(response.status == 400, "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(echoID)?include_io_values=False", headers: Self.bearer(alice))
            let withoutValues = try (json(response.body)["inputs"] as? [[String: Any]])?.first
            #expect(response.status == 200 && withoutValues?["value"] == nil, "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(echoID)?include_io_values=false", headers: Self.bearer(alice))
            execution = try json(response.body)
            #expect(execution["deployment_name"] as? String == "echo", "\(response.bodyString)")
            let input = try #require((execution["inputs"] as? [[String: Any]])?.first, "\(response.bodyString)")
            #expect(input["pipeline_input_name"] as? String == "a" && input["mapping_type"] as? String == "endpoint")
            #expect(input["value"] == nil, "\(response.bodyString)")
            let output = try #require((execution["outputs"] as? [[String: Any]])?.first, "\(response.bodyString)")
            #expect(output["value"] == nil && output["data_type"] as? String == "number", "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(echoID)/inputs/a", headers: Self.bearer(alice))
            #expect(response.status == 200 && response.bodyString == "1", "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(echoID)/inputs/a", headers: Self.bearer(bob))
            #expect(response.status == 404, "\(response.bodyString)")

            // Newest first, alice's only.
            response = try await client.request("GET", "/api/v1/pipelines/echo/executions", headers: Self.bearer(alice))
            let listed = try #require(
                try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]])
            #expect(listed.map { $0["execution_id"] as? String } == [echoID], "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/pipelines/echo/executions/latest", headers: Self.bearer(alice))
            #expect(try json(response.body)["execution_id"] as? String == echoID, "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/pipelines", headers: Self.bearer(alice))
            #expect(
                response.status == 200 && response.bodyString == "[]", "only a * route here: \(response.bodyString)")
        }
    }

    @Test("a pipeline's latest execution of the caller is found behind a full first page of another's")
    func latestBehindAnotherPrincipalsPage() async throws {
        let yaml = "tokens: [{name: alice, token: ALICE}, {name: bob, token: BOB}]"
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let alice = try await Self.accessToken(client, sdkToken: "ALICE")
            let bob = try await Self.accessToken(client, sdkToken: "BOB")
            let mine = try await Self.run(client, alice, "echo", #"{"i":0}"#)
            // One more than the first page holds (OperationPaging.defaultPageSize, 50), all newer and bob's.
            for i in 1...51 { _ = try await Self.run(client, bob, "echo", #"{"i":\#(i)}"#) }
            var response = try await client.request(
                "GET", "/api/v1/pipelines/echo/executions/latest", headers: Self.bearer(alice))
            #expect(try json(response.body)["execution_id"] as? String == mine, "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/pipelines/echo/executions", headers: Self.bearer(bob))
            let listed = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [Any]
            #expect(listed?.count == 51, "\(response.bodyString.prefix(200))")
        }
    }

    @Test("deployments: described, executed through the API, and their latest execution (204 before any)")
    func deployments() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let token = try await Self.accessToken(client)
            var response = try await client.request("GET", "/api/v1/deployments/echo", headers: Self.bearer(token))
            let deployment = try json(response.body)
            #expect(deployment["execution_rule"] as? String == "endpoint")
            #expect(deployment["endpoint_url_path"] as? String == "echo")
            response = try await client.request("GET", "/api/v1/deployments/nope", headers: Self.bearer(token))
            #expect(response.status == 404)

            response = try await client.request(
                "GET", "/api/v1/deployments/echo/executions/latest", headers: Self.bearer(token))
            #expect(response.status == 204)
            #expect(response.body.readableBytes == 0)
            var ids: [String] = []
            for n in 1...2 {
                response = try await client.request(
                    "POST", "/api/v1/deployments/echo/executions", headers: Self.bearer(token) + jsonHeaders,
                    body: try jsonBody(["n": n])
                )
                ids.append(try #require(try json(response.body)["execution_id"] as? String, "\(response.bodyString)"))
            }
            // A run of the same pipeline outside the deployment is not the deployment's.
            _ = try await Self.run(client, token, "echo", #"{"n":3}"#)
            response = try await client.request(
                "GET", "/api/v1/deployments/echo/executions/latest", headers: Self.bearer(token))
            #expect(try json(response.body)["execution_id"] as? String == ids[1], "\(response.bodyString)")
        }
    }

    @Test(
        "a deployment's latest execution is found however many executions of other deployments of its pipeline are newer (the store filters on the deployment)"
    )
    func latestBehindOtherDeployments() async throws {
        let yaml = "craft:\n  deployments:\n    - {name: quiet, pipeline: echo}\n    - {name: busy, pipeline: echo}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let token = try await Self.accessToken(client)
            func execute(_ deployment: String, _ n: Int) async throws -> String {
                let response = try await client.request(
                    "POST", "/api/v1/deployments/\(deployment)/executions", headers: Self.bearer(token) + jsonHeaders,
                    body: try jsonBody(["n": n]))
                return try #require(try json(response.body)["execution_id"] as? String, "\(response.bodyString)")
            }
            let quiet = try await execute("quiet", 0)
            // More than the 100 newest operations of the pipeline, which were all the surface used to read.
            var busy = ""
            for n in 1...110 { busy = try await execute("busy", n) }
            var response = try await client.request(
                "GET", "/api/v1/deployments/quiet/executions/latest", headers: Self.bearer(token))
            #expect(response.status == 200)
            #expect(try json(response.body)["execution_id"] as? String == quiet, "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/deployments/busy/executions/latest", headers: Self.bearer(token))
            #expect(try json(response.body)["execution_id"] as? String == busy, "\(response.bodyString)")
        }
    }

    @Test(
        "a deployment's latest execution is of its pipeline as configured now, and found when stored before the store had a deployment column"
    )
    func latestScopedAndLegacy() async throws {
        try await withTestGateway(yaml: "craft:\n  deployments:\n    - {name: d, pipeline: echo}\n") { gateway in
            let client = try await gateway.client()
            let token = try await Self.accessToken(client)
            func execute() async throws -> String {
                let response = try await client.request(
                    "POST", "/api/v1/deployments/d/executions", headers: Self.bearer(token) + jsonHeaders,
                    body: try jsonBody(["n": 1]))
                return try #require(try json(response.body)["execution_id"] as? String, "\(response.bodyString)")
            }
            func latest() async throws -> (status: Int, id: String?) {
                let response = try await client.request(
                    "GET", "/api/v1/deployments/d/executions/latest", headers: Self.bearer(token))
                return (
                    response.status, response.status == 200 ? try json(response.body)["execution_id"] as? String : nil
                )
            }
            _ = try await execute()
            let newest = try await execute()
            #expect(try await latest().id == newest)

            // As an earlier gateway stored them: the rows have no deployment column value (their requests still
            // carry the deployment's label). An SQLite client of its own, as an earlier version's file would be.
            let database = "\(gateway.configuration.dataDir)/operations.sqlite"
            let nulled = try await TestProcess.run(
                Peers.python,
                [
                    "-c",
                    "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); "
                        + "n=c.execute('UPDATE operations SET deployment = NULL').rowcount; c.commit(); print(n)",
                    database,
                ])
            #expect(nulled.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines) == "2", "\(nulled.stderr)")
            #expect(try await latest().id == newest)

            // The deployment now runs another pipeline: the old pipeline's executions are not its latest.
            try gateway.reload(yaml: "craft:\n  deployments:\n    - {name: d, pipeline: upper}\n")
            #expect(try await latest().status == 204)
            let moved = try await execute()
            #expect(try await latest().id == moved)
            await client.close()
        }
    }

    @Test("SIGHUP reload swaps the craft section: a new deployment appears, the old path is gone")
    func reload() async throws {
        try await withTestGateway(yaml: "craft:\n  deployments:\n    - {name: one, pipeline: upper}\n") { gateway in
            let client = try await gateway.client()
            let headers = jsonHeaders + [("authorization", "EndpointToken t")]
            var response = try await client.request(
                "POST", "/endpoints/one", headers: headers, body: try jsonBody(["a": "b"]))
            #expect(response.status == 200, "\(response.bodyString)")
            try gateway.reload(yaml: "craft:\n  deployments:\n    - {name: two, pipeline: upper}\n")
            response = try await client.request(
                "POST", "/endpoints/one", headers: headers, body: try jsonBody(["a": "b"]))
            #expect(response.status == 404)
            response = try await client.request(
                "POST", "/endpoints/two", headers: headers, body: try jsonBody(["a": "b"]))
            #expect(response.status == 200, "\(response.bodyString)")
        }
    }

    @Test(
        "a reload ends the access tokens of an SDK token given a new value (kept while both values are configured), and of a removed principal"
    )
    func rotatedSDKToken() async throws {
        try await withTestGateway(yaml: "tokens: [{name: alice, token: ALICE-one}, {name: bob, token: BOB}]") {
            gateway in
            let client = try await gateway.client()
            func read(_ token: String) async throws -> (status: Int, body: String) {
                let response = try await client.request(
                    "GET", "/api/v1/pipelines/echo", headers: Self.bearer(token))
                return (response.status, response.bodyString)
            }
            let first = try await Self.accessToken(client, sdkToken: "ALICE-one")
            let bob = try await Self.accessToken(client, sdkToken: "BOB")
            #expect(try await read(first).status == 200)

            // The new value beside the old (a rotation's overlap): both values' access tokens work.
            _ = try gateway.reload(
                yaml:
                    "tokens: [{name: alice, token: ALICE-one}, {name: alice, token: ALICE-two}, {name: bob, token: BOB}]"
            )
            let second = try await Self.accessToken(client, sdkToken: "ALICE-two")
            #expect(try await read(first).status == 200)
            #expect(try await read(second).status == 200)

            // The old value gone: its access token is refused at once (not at its expiry), the new one's is not.
            _ = try gateway.reload(yaml: "tokens: [{name: alice, token: ALICE-two}, {name: bob, token: BOB}]")
            let refused = try await read(first)
            #expect(refused.status == 401, "\(refused.body)")
            #expect(refused.body.contains("no longer configured"), "\(refused.body)")
            #expect(try await read(second).status == 200)
            #expect(try await read(bob).status == 200)

            // A value moved to another principal does not carry the old principal's access tokens over to it.
            _ = try gateway.reload(yaml: "tokens: [{name: alice, token: BOB}, {name: bob, token: ALICE-two}]")
            #expect(try await read(second).status == 401)
            #expect(try await read(bob).status == 401)

            // A removed principal's access tokens end too.
            _ = try gateway.reload(yaml: "tokens: [{name: bob, token: BOB}, {name: carol, token: ALICE-two}]")
            #expect(try await read(second).status == 401)
            #expect(try await read(bob).status == 200)
            await client.close()
        }
    }

    @Test("instances sharing craft.jwt_secret_file accept each other's access tokens; generated keys do not")
    func sharedKey() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("craft-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let keyFile = dir.appendingPathComponent("key").path
        try Data(String(repeating: "k", count: 40).utf8).write(to: URL(fileURLWithPath: keyFile))
        let shared = "craft: {jwt_secret_file: \(keyFile)}\n"
        let tokenFromA = try await withTestGateway(yaml: shared) { a in try await Self.accessToken(try await a.client())
        }
        try await withTestGateway(yaml: shared) { b in
            let response = try await b.client().request(
                "GET", "/api/v1/pipelines/echo", headers: Self.bearer(tokenFromA))
            #expect(response.status == 200, "\(response.bodyString)")
        }
        try await withTestGateway { c in
            let response = try await c.client().request(
                "GET", "/api/v1/pipelines/echo", headers: Self.bearer(tokenFromA))
            #expect(response.status == 401, "\(response.bodyString)")
        }
    }

    @Test(
        "the frontend's own refusals on Craft paths are Craft errors: a streamed body over the cap (HTTP/1.1 and h2c), no Host",
        arguments: [
            ["-X", "POST", "-T", "-", "-H", "authorization: EndpointToken t", "http://127.0.0.1:PORT/endpoints/echo"],
            [
                "--http2-prior-knowledge", "-X", "POST", "-T", "-", "-H", "authorization: EndpointToken t",
                "http://127.0.0.1:PORT/endpoints/echo",
            ],
            ["-H", "Host:", "http://127.0.0.1:PORT/api/v1/pipelines/echo"],
        ])
    func frontendRefusalsInCraftShape(arguments: [String]) async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway(yaml: "limits: {max_body_bytes: 4096}\n") { gateway in
            let body = #"{"prompt":"\#(String(repeating: "x", count: 5000))"}"#
            let output = try await TestProcess.run(
                curl,
                [
                    "-sS", "-H", "content-type: application/json", "-H", "request-id: craft-refusal", "-o", "-", "-w",
                    "\n%{http_code}",
                ] + arguments.map { $0.replacingOccurrences(of: "PORT", with: String(gateway.port)) },
                stdin: Data(body.utf8)
            )
            let text = output.stdoutString
            let cut = try #require(text.lastIndex(of: "\n"), "\(text) \(output.stderr)")
            let status = Int(text[text.index(after: cut)...])
            let answer = try #require(
                try JSONSerialization.jsonObject(with: Data(text[..<cut].utf8)) as? [String: Any], "\(text)")
            let expected = arguments.contains("Host:") ? (400, "INVALID_ARGUMENT") : (413, "RESOURCE_EXHAUSTED")
            #expect(status == expected.0, "\(answer)")
            #expect(answer["name"] as? String == expected.1, "\(answer)")
            #expect((answer["message"] as? String)?.isEmpty == false, "\(answer)")
            #expect(answer["request_id"] as? String == "craft-refusal", "\(answer)")
            #expect(answer["code"] == nil, "no Instill error body on a Craft path: \(answer)")
        }
    }
}
