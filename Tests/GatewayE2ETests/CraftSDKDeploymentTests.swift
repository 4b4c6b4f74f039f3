import Foundation
import GatewayTestSupport
import Testing

/// craft-ai-sdk 0.74.7's deployment calls and execution logs against a real gateway: `list_deployments`,
/// `get_deployment(wait_for_completion=True)`, `create_deployment` (honoured when the deployment exists as asked,
/// refused in the SDK's error shape otherwise), `delete_deployment` (refused) and `get_pipeline_execution_logs`.
extension CraftSDKTests {
    /// The SDK's answer when it is a list.
    private func list(_ answer: [String: Any]) throws -> [[String: Any]] {
        try #require(answer["result"] as? [[String: Any]], "\(answer)")
    }

    @Test("list_deployments and get_deployment: one implicit deployment per pipeline; the configured ones exactly")
    func listAndGetDeployments() async throws {
        // The embedded default's one route is `demo/*`, which names no pipeline: these are listed.
        let named = "craft:\n  pipelines:\n    - {name: echo}\n    - {name: upper}\n"
        try await withTestGateway(yaml: named) { gateway in
            var answer = try await Peers.craft("list_deployments", port: gateway.port)
            let items = try list(answer)
            let echo = try #require(items.first { $0["name"] as? String == "echo" }, "\(answer)")
            #expect(echo["pipeline_name"] as? String == "echo")
            #expect(echo["execution_rule"] as? String == "endpoint")
            #expect(echo["is_enabled"] as? Bool == true)
            #expect(items.contains { $0["name"] as? String == "upper" }, "\(answer)")
            // Implicit deployments are the listed pipelines: the same names.
            let pipelines = try list(try await Peers.craft("list_pipelines", port: gateway.port))
            #expect(
                Set(items.compactMap { $0["name"] as? String })
                    == Set(pipelines.compactMap { $0["pipeline_name"] as? String }))
            #expect(items.count == 2, "\(answer)")

            // wait_for_completion=True loops until the status is final: `up` ends it at the first read.
            answer = try await Peers.craft("get_deployment", port: gateway.port, ["echo", "true"])
            let deployment = try result(answer)
            #expect(deployment["status"] as? String == "up", "\(answer)")
            #expect(deployment["endpoint_url_path"] as? String == "echo")
            #expect(count(answer, status: 200, pathContaining: "/api/v1/deployments/echo") == 1, "\(answer)")
            #expect(count(answer, status: 204, pathContaining: "/api/v1/deployments/echo/executions/latest") == 1)
        }
        let yaml = """
            craft:
              deployments:
                - {name: shout, pipeline: upper, endpoint_url_path: loud}
                - {name: yearly, pipeline: echo, execution_rule: periodic, schedule: "0 0 1 1 *"}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let items = try list(try await Peers.craft("list_deployments", port: gateway.port))
            #expect(items.count == 2, "\(items)")
            #expect(items.first?["name"] as? String == "shout")
            #expect(items.first?["pipeline_name"] as? String == "upper")
            #expect(items.last?["name"] as? String == "yearly")
            #expect(items.last?["execution_rule"] as? String == "periodic")
        }
    }

    @Test("create_deployment: an existing deployment asked for as it is succeeds; anything else is an SdkException")
    func createDeployment() async throws {
        try await withTestGateway { gateway in
            // Implicit: pipeline echo is deployment echo at /endpoints/echo.
            var answer = try await Peers.craft("create_deployment", port: gateway.port, ["echo", "echo", "endpoint"])
            let created = try result(answer)
            #expect(created["name"] as? String == "echo", "\(answer)")
            #expect(created["status"] as? String == "up")
            #expect(count(answer, status: 200, pathContaining: "/api/v1/endpoints") == 1, "\(answer)")

            // A new name needs configuration: 501, saying what to add.
            answer = try await Peers.craft("create_deployment", port: gateway.port, ["echo", "my-echo", "endpoint"])
            var failure = try error(answer)
            #expect(failure["status_code"] as? Int == 501, "\(answer)")
            #expect((failure["message"] as? String)?.contains("craft.deployments") == true, "\(answer)")
            #expect(failure["name"] as? String == "UNIMPLEMENTED", "\(answer)")

            // A name that is another pipeline's deployment: 409.
            answer = try await Peers.craft("create_deployment", port: gateway.port, ["echo", "upper", "endpoint"])
            failure = try error(answer)
            #expect(failure["status_code"] as? Int == 409, "\(answer)")
            #expect((failure["message"] as? String)?.contains("pipeline \"upper\"") == true, "\(answer)")

            // Another endpoint path, the low_latency mode, mappings: 409 each.
            for kwargs in [
                #"{"endpoint_url_path": "elsewhere"}"#, #"{"mode": "low_latency"}"#,
                #"{"inputs_mapping": []}"#,
            ] {
                answer = try await Peers.craft(
                    "create_deployment", port: gateway.port, ["echo", "echo", "endpoint", kwargs])
                if kwargs.contains("inputs_mapping") {
                    // An empty mapping list is no mapping: honoured.
                    #expect(try result(answer)["name"] as? String == "echo", "\(answer)")
                } else {
                    #expect(try error(answer)["status_code"] as? Int == 409, "\(kwargs): \(answer)")
                }
            }

            // An unknown pipeline: 404 naming it.
            answer = try await Peers.craft(
                "create_deployment", port: gateway.port, ["no-such-pipeline", "no-such-pipeline", "endpoint"])
            failure = try error(answer)
            #expect(failure["status_code"] as? Int == 404, "\(answer)")
            #expect((failure["message"] as? String)?.contains("no-such-pipeline") == true, "\(answer)")

            // A periodic deployment would need configuration.
            answer = try await Peers.craft(
                "create_deployment", port: gateway.port, ["echo", "nightly", "periodic", #"{"schedule": "0 0 * * *"}"#])
            #expect(try error(answer)["status_code"] as? Int == 501, "\(answer)")
        }
        let yaml = """
            craft:
              deployments:
                - {name: shout, pipeline: upper, endpoint_url_path: loud}
                - {name: yearly, pipeline: echo, execution_rule: periodic, schedule: "0 0 1 1 *"}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            var answer = try await Peers.craft(
                "create_deployment", port: gateway.port,
                ["upper", "shout", "endpoint", #"{"endpoint_url_path": "loud"}"#])
            #expect(try result(answer)["endpoint_url_path"] as? String == "loud", "\(answer)")
            // Without endpoint_url_path the path asked for is the name, which is not this deployment's.
            answer = try await Peers.craft("create_deployment", port: gateway.port, ["upper", "shout", "endpoint"])
            #expect(try error(answer)["status_code"] as? Int == 409, "\(answer)")

            answer = try await Peers.craft(
                "create_deployment", port: gateway.port, ["echo", "yearly", "periodic", #"{"schedule": "0 0 1 1 *"}"#])
            #expect(try result(answer)["schedule"] as? String == "0 0 1 1 *", "\(answer)")
            answer = try await Peers.craft(
                "create_deployment", port: gateway.port, ["echo", "yearly", "periodic", #"{"schedule": "0 0 2 1 *"}"#])
            #expect(try error(answer)["status_code"] as? Int == 409, "\(answer)")
            answer = try await Peers.craft("create_deployment", port: gateway.port, ["echo", "yearly", "endpoint"])
            #expect(try error(answer)["status_code"] as? Int == 409, "\(answer)")
            // Implicit deployments are off: a pipeline's own name is not a deployment.
            answer = try await Peers.craft("create_deployment", port: gateway.port, ["echo", "echo", "endpoint"])
            #expect(try error(answer)["status_code"] as? Int == 501, "\(answer)")
        }
    }

    /// craft-ai-sdk documents `create_deployment(...)["endpoint_token"]` as the token to trigger with: the key was
    /// missing (a KeyError in the script). The gateway hands out no token (endpoint tokens are configured
    /// secrets): null, which the SDK's `trigger_endpoint` takes as "no token" and triggers with the SDK token.
    @Test("get_deployment shows endpoint_token null and the mappings; create_deployment's token triggers")
    func deploymentTokenAndMappings() async throws {
        let yaml = """
            craft:
              deployments:
                - {name: echo, pipeline: echo}
                - name: shout
                  pipeline: upper
                  endpoint_url_path: loud
                  input_mappings:
                    - {pipeline_input_name: prompt, endpoint_input_name: text, is_required: true}
                    - {pipeline_input_name: n, constant_value: 3}
                  output_mappings: [{pipeline_output_name: prompt, endpoint_output_name: text}]
                - {name: yearly, pipeline: echo, execution_rule: periodic, schedule: "0 0 1 1 *"}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            var answer = try await Peers.craft(
                "create_then_trigger", port: gateway.port, ["echo", "echo", #"{"a":1}"#])
            let value = try result(answer)
            #expect(value["endpoint_token"] is NSNull, "\(answer)")
            #expect(
                ((value["triggered"] as? [String: Any])?["outputs"] as? [String: Any])?["a"] as? Int == 1, "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/api/v1/deployments/echo/executions") >= 1, "\(answer)")

            // The mappings the SDK documents (review 59, F9); a constant's value redacted for every caller, as the
            // executions' inputs leave it out (security review 60, M4).
            answer = try await Peers.craft("get_deployment", port: gateway.port, ["shout"])
            let shout = try result(answer)
            #expect(shout.keys.contains("endpoint_token") && shout["endpoint_token"] is NSNull, "\(answer)")
            let inputs = try #require(shout["inputs_mapping"] as? [[String: Any]], "\(answer)")
            #expect(inputs.map { $0["pipeline_input_name"] as? String } == ["prompt", "n"], "\(answer)")
            #expect(inputs.first?["endpoint_input_name"] as? String == "text", "\(answer)")
            #expect(inputs.last?["constant_value"] is NSNull, "\(answer)")
            #expect(inputs.last?["constant_value_redacted"] as? Bool == true, "\(answer)")
            let outputs = try #require(shout["outputs_mapping"] as? [[String: Any]], "\(answer)")
            #expect(outputs.first?["endpoint_output_name"] as? String == "text", "\(answer)")

            answer = try await Peers.craft("get_deployment", port: gateway.port, ["echo"])
            let echo = try result(answer)
            #expect(echo["endpoint_token"] is NSNull, "\(answer)")
            #expect((echo["inputs_mapping"] as? [Any])?.isEmpty == true, "\(answer)")
            answer = try await Peers.craft("get_deployment", port: gateway.port, ["yearly"])
            #expect(try result(answer).keys.contains("endpoint_token") == false, "\(answer)")
        }
    }

    @Test("delete_deployment: a deployment is configuration (501); an unknown one is 404")
    func deleteDeployment() async throws {
        try await withTestGateway { gateway in
            var answer = try await Peers.craft("delete_deployment", port: gateway.port, ["echo"])
            let failure = try error(answer)
            #expect(failure["status_code"] as? Int == 501, "\(answer)")
            #expect((failure["message"] as? String)?.contains("craft.deployments") == true, "\(answer)")
            answer = try await Peers.craft("delete_deployment", port: gateway.port, ["no-such-deployment"])
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
            // Still there.
            answer = try await Peers.craft("get_deployment", port: gateway.port, ["echo"])
            #expect(try result(answer)["name"] as? String == "echo", "\(answer)")
        }
    }

    @Test("get_pipeline_execution_logs: created, started and how it ended; from, to and limit at their edges")
    func executionLogs() async throws {
        try await withTestGateway { gateway in
            let id = try #require(
                try result(try await Peers.craft("run_json", port: gateway.port, ["echo", #"{"p":"x"}"#]))[
                    "execution_id"] as? String)
            var answer = try await Peers.craft("execution_logs", port: gateway.port, [id])
            let lines = try list(answer)
            #expect(lines.count == 3, "\(answer)")
            #expect((lines.first?["message"] as? String)?.contains("created") == true, "\(answer)")
            #expect((lines.last?["message"] as? String)?.hasPrefix("succeeded after 1 attempt") == true, "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/api/v1/executions/\(id)/logs") == 1, "\(answer)")
            let times = try lines.map { line in
                let text = try #require(line["timestamp"] as? String, "\(line)")
                return try #require(RFC3339Milliseconds.parse(text), "\(line)")
            }
            #expect(times == times.sorted())

            // limit: at the number of lines all come back, one fewer drops the newest, 0 is refused.
            answer = try await Peers.craft("execution_logs", port: gateway.port, [id, #"{"limit": 3}"#])
            #expect(try list(answer).count == 3, "\(answer)")
            answer = try await Peers.craft("execution_logs", port: gateway.port, [id, #"{"limit": 2}"#])
            #expect(
                try list(answer).map { $0["message"] as? String } == lines.prefix(2).map { $0["message"] as? String })
            answer = try await Peers.craft("execution_logs", port: gateway.port, [id, #"{"limit": 0}"#])
            #expect(try error(answer)["status_code"] as? Int == 400, "\(answer)")

            // from and to are inclusive: at the last line's time it is kept, one millisecond past it is not.
            let last = try #require(times.last)
            answer = try await Peers.craft("execution_logs", port: gateway.port, [id, #"{"from_ms": \#(last)}"#])
            #expect(try list(answer).last?["message"] as? String == lines.last?["message"] as? String, "\(answer)")
            answer = try await Peers.craft("execution_logs", port: gateway.port, [id, #"{"from_ms": \#(last + 1)}"#])
            #expect(try list(answer).isEmpty, "\(answer)")
            let first = try #require(times.first)
            answer = try await Peers.craft("execution_logs", port: gateway.port, [id, #"{"to_ms": \#(first)}"#])
            #expect(try list(answer).first?["message"] as? String == lines.first?["message"] as? String, "\(answer)")
            answer = try await Peers.craft("execution_logs", port: gateway.port, [id, #"{"to_ms": \#(first - 1)}"#])
            #expect(try list(answer).isEmpty, "\(answer)")

            // A failed execution's last line carries the pipeline's error.
            let failing = try #require(
                try result(
                    try await Peers.craft(
                        "run_nowait", port: gateway.port,
                        ["fail", #"{"message":"kaput","code":"FAILED_PRECONDITION"}"#])
                )["execution_id"] as? String)
            let ended = try await eventually(within: .seconds(20), interval: .milliseconds(200)) {
                let failed = try list(try await Peers.craft("execution_logs", port: gateway.port, [failing]))
                let message = failed.last?["message"] as? String ?? ""
                return message.contains("failed after 1 attempt: [FAILED_PRECONDITION] kaput")
            }
            #expect(ended, "the failed execution's log never ended with its error")

            answer = try await Peers.craft("execution_logs", port: gateway.port, ["no-such-execution"])
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
        }
    }
}

/// `2026-11-30T12:00:00.123Z` → milliseconds since the epoch (what the Craft surface writes).
enum RFC3339Milliseconds {
    static func parse(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
    }
}
