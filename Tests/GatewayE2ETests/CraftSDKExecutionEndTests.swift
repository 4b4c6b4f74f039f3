import DemoRunner
import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// How craft-ai-sdk 0.74.7 sees an execution end or fail, and the calls the gateway does not serve (review 23):
/// a stored failure is read back with a status that does not say "unreachable, retry" (L1),
/// `delete_pipeline_execution` cancels an unfinished execution (M1) and deletes a finished one, and the unserved calls are 501 saying what
/// to do instead (L4).
extension CraftSDKTests {
    /// Review 23 L1: a run cut by the pool's `request_timeout` is stored failed with DEADLINE_EXCEEDED. Read back
    /// it was 504, which craft-ai-sdk prints as "The platform is currently unreachable. Please try again later.";
    /// UNAVAILABLE (503) and RESOURCE_EXHAUSTED (429) invited retries of an answer that never changes.
    @Test(
        "a stored failure whose code means 'busy or unreachable' reads back as 500 with its name and message: outputs and an endpoint's result",
        .timeLimit(.minutes(2))
    )
    func storedFailureStatus() async throws {
        let yaml = """
            pools:
              - {name: demo, transport: inprocess, request_timeout: 300ms}
            routes:
              - {namespace: demo, pipeline: "*", pool: demo}
            store: {max_attempts: 1}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            // run_pipeline waits on /api/v1/executions/{id}/outputs.
            var answer = try await Peers.craft("run_json", port: gateway.port, ["sleep", #"{"ms":5000}"#])
            var failure = try error(answer)
            #expect(failure["status_code"] as? Int == 500, "\(answer)")
            #expect(failure["name"] as? String == "DEADLINE_EXCEEDED", "\(answer)")
            #expect((failure["message"] as? String)?.contains("did not answer within") == true, "\(answer)")
            #expect(!(failure["text"] as? String ?? "").contains("unreachable"), "\(answer)")
            #expect(count(answer, status: 500, pathContaining: "/outputs") == 1, "\(answer)")

            // trigger_endpoint with a token waits on /endpoints/v1/{path}/executions/{id}.
            answer = try await Peers.craft("trigger", port: gateway.port, ["sleep", "EP", #"{"ms":5000}"#, "true"])
            failure = try error(answer)
            #expect(failure["status_code"] as? Int == 500, "\(answer)")
            #expect(failure["name"] as? String == "DEADLINE_EXCEEDED", "\(answer)")
            #expect(!(failure["text"] as? String ?? "").contains("unreachable"), "\(answer)")
            #expect(count(answer, status: 500, pathContaining: "/endpoints/v1/sleep/executions/") == 1, "\(answer)")

            // The pipeline's own codes: UNAVAILABLE and RESOURCE_EXHAUSTED are 500 too, and so are
            // UNAUTHENTICATED and PERMISSION_DENIED (a runner's key refused: at 401 the SDK dropped its own access
            // token); others keep their status.
            let codes = [
                (14, "UNAVAILABLE", 500), (8, "RESOURCE_EXHAUSTED", 500), (16, "UNAUTHENTICATED", 500),
                (7, "PERMISSION_DENIED", 500), (5, "NOT_FOUND", 404),
            ]
            for (code, name, status) in codes {
                answer = try await Peers.craft(
                    "run_json", port: gateway.port, ["fail", #"{"code":\#(code),"message":"runner says \#(name)"}"#])
                failure = try error(answer)
                #expect(failure["status_code"] as? Int == status, "\(code): \(answer)")
                #expect(count(answer, status: 401, pathContaining: "/outputs") == 0, "\(code): \(answer)")
                #expect(failure["name"] as? String == name, "\(answer)")
                #expect(failure["message"] as? String == "runner says \(name)", "\(answer)")
            }
        }
    }

    /// Review 23 M1: `delete_pipeline_execution` (`DELETE /api/v1/executions/{id}`) was 405, and it is the Craft
    /// user's only way to stop a run that waits for a runner that is down. A finished execution was refused
    /// (409) though the SDK documents the call as "Delete one pipeline execution" and its users clean up with it:
    /// it is deleted now.
    @Test(
        "delete_pipeline_execution cancels a run waiting for a runner that is down (the waiting run_pipeline ends, the execution reads cancelled), then deletes it; a finished one is deleted; unknown and another's are 404; one whose webhook is pending 409",
        .timeLimit(.minutes(2))
    )
    func deleteExecution() async throws {
        // A port nothing listens on: the runner (and the webhook receiver) is down for the whole test.
        let probe = try await DemoHTTPServer.bind(
            host: "127.0.0.1", port: 0, runner: DemoPipelines(), group: MultiThreadedEventLoopGroup.singleton)
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        let yaml = """
            tokens:
              - {name: alice, token: ALICE-SECRET}
              - {name: bob, token: BOB-SECRET}
            pools:
              - {name: runner, transport: http, connect_timeout: 1s, endpoints: ["127.0.0.1:\(port)"]}
              - {name: demo, transport: inprocess}
            routes:
              - {namespace: demo, pipeline: upper, pool: runner}
              - {namespace: demo, pipeline: echo, pool: demo}
              - namespace: demo
                pipeline: sleep
                pool: demo
                webhook: {url: "http://127.0.0.1:\(port)/hooks", secret: s3cret, backoff: 1h}
            store: {retry_backoff: 100ms, max_retry_backoff: 200ms}
            craft:
              # Declared: a runner that is down cannot describe it, and get_pipeline would be 503 (review 59 F1).
              pipelines: [{name: upper, inputs: [{name: prompt, data_type: string}]}]
            """
        try await withTestGateway(yaml: yaml) { gateway in
            async let waiting = Peers.craft(
                "run_json", port: gateway.port, ["upper", #"{"prompt":"x"}"#], sdkToken: "ALICE-SECRET")
            var id: String? = nil
            for _ in 0..<60 where id == nil {
                let listed = try await Peers.craft(
                    "list_executions", port: gateway.port, ["upper"], sdkToken: "ALICE-SECRET")
                id = (listed["result"] as? [[String: Any]])?.first?["execution_id"] as? String
                if id == nil { try await Task.sleep(for: .milliseconds(200)) }
            }
            let executionID = try #require(id, "the waiting run's execution never appeared")

            // Another principal's execution is not found, as for every read; nothing is cancelled.
            var answer = try await Peers.craft(
                "delete_execution", port: gateway.port, [executionID], sdkToken: "BOB-SECRET")
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")

            answer = try await Peers.craft(
                "delete_execution", port: gateway.port, [executionID], sdkToken: "ALICE-SECRET")
            #expect(try result(answer)["execution_id"] as? String == executionID, "\(answer)")
            #expect(count(answer, status: 200, pathContaining: "/api/v1/executions/\(executionID)") == 1, "\(answer)")

            // The run_pipeline that waited ends with the cancellation.
            let ended = try await waiting
            let failure = try error(ended)
            #expect(failure["name"] as? String == "CANCELLED", "\(ended)")
            #expect(failure["status_code"] as? Int == 499, "\(ended)")

            // The status read: Failed (Craft AI has no cancelled status) with the CANCELLED error; the log says so.
            answer = try await Peers.craft("get_execution", port: gateway.port, [executionID], sdkToken: "ALICE-SECRET")
            let execution = try result(answer)
            #expect(execution["status"] as? String == "Failed", "\(answer)")
            #expect((execution["error"] as? [String: Any])?["name"] as? String == "CANCELLED", "\(answer)")
            answer = try await Peers.craft(
                "execution_logs", port: gateway.port, [executionID], sdkToken: "ALICE-SECRET")
            let lines = (answer["result"] as? [[String: Any]] ?? []).compactMap { $0["message"] as? String }
            #expect(lines.last?.hasPrefix("cancelled") == true, "\(answer)")

            // Deleting it again deletes it (it is finished now): reads are 404 after, and so is a third delete.
            answer = try await Peers.craft(
                "delete_execution", port: gateway.port, [executionID], sdkToken: "ALICE-SECRET")
            #expect(try result(answer)["execution_id"] as? String == executionID, "\(answer)")
            answer = try await Peers.craft("get_execution", port: gateway.port, [executionID], sdkToken: "ALICE-SECRET")
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
            answer = try await Peers.craft(
                "delete_execution", port: gateway.port, [executionID], sdkToken: "ALICE-SECRET")
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")

            // A succeeded execution: another principal cannot delete it; its owner does, and it is gone from the
            // pipeline's executions.
            let done = try result(
                try await Peers.craft("run_json", port: gateway.port, ["echo", #"{"a":1}"#], sdkToken: "ALICE-SECRET"))
            let doneID = try #require(done["execution_id"] as? String, "\(done)")
            answer = try await Peers.craft("delete_execution", port: gateway.port, [doneID], sdkToken: "BOB-SECRET")
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
            answer = try await Peers.craft("get_execution", port: gateway.port, [doneID], sdkToken: "ALICE-SECRET")
            #expect(try result(answer)["status"] as? String == "Succeeded", "\(answer)")
            answer = try await Peers.craft("delete_execution", port: gateway.port, [doneID], sdkToken: "ALICE-SECRET")
            #expect(try result(answer)["execution_id"] as? String == doneID, "\(answer)")
            answer = try await Peers.craft("get_execution", port: gateway.port, [doneID], sdkToken: "ALICE-SECRET")
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
            answer = try await Peers.craft("list_executions", port: gateway.port, ["echo"], sdkToken: "ALICE-SECRET")
            let listed = (answer["result"] as? [[String: Any]] ?? []).compactMap { $0["execution_id"] as? String }
            #expect(!listed.contains(doneID), "\(answer)")

            // A finished execution whose completion webhook is not delivered (its receiver is down, the next try an
            // hour away): kept for the delivery, 409 saying so.
            let hooked = try result(
                try await Peers.craft(
                    "run_json", port: gateway.port, ["sleep", #"{"ms":1}"#], sdkToken: "ALICE-SECRET"))
            let hookedID = try #require(hooked["execution_id"] as? String, "\(hooked)")
            answer = try await Peers.craft("delete_execution", port: gateway.port, [hookedID], sdkToken: "ALICE-SECRET")
            let refused = try error(answer)
            #expect(refused["status_code"] as? Int == 409, "\(answer)")
            #expect(refused["name"] as? String == "FAILED_PRECONDITION", "\(answer)")
            #expect((refused["message"] as? String)?.contains("webhook is not delivered yet") == true, "\(answer)")
            answer = try await Peers.craft("get_execution", port: gateway.port, [hookedID], sdkToken: "ALICE-SECRET")
            #expect(try result(answer)["status"] as? String == "Succeeded", "\(answer)")

            answer = try await Peers.craft(
                "delete_execution", port: gateway.port, ["no-such-execution"], sdkToken: "ALICE-SECRET")
            #expect(try error(answer)["status_code"] as? Int == 404, "\(answer)")
        }
    }

    /// Review 23 L4: the SDK calls the gateway does not serve were 404 "no endpoint at POST …" (which reads as a
    /// typo) or 405; each is now 501 UNIMPLEMENTED saying what the gateway does instead, as delete_deployment is.
    @Test(
        "get_pipeline_logs, get_deployment_logs, update_deployment, delete_pipeline and create_pipeline are 501 saying what to do instead"
    )
    func unservedCalls() async throws {
        try await withTestGateway { gateway in
            let answer = try await Peers.craft("unserved", port: gateway.port)
            let calls = try result(answer)
            let hints = [
                "get_pipeline_logs": "get_pipeline_execution_logs",
                "get_deployment_logs": "get_pipeline_execution_logs",
                "update_deployment": "craft.deployments",
                "delete_pipeline": "remove its route",
                // It was 405 "POST is not allowed on /api/v1/pipelines", which said nothing of configuration.
                "create_pipeline": "add the route",
            ]
            for (call, hint) in hints {
                let failure = try #require(
                    (calls[call] as? [String: Any])?["error"] as? [String: Any], "\(call): \(answer)")
                #expect(failure["status_code"] as? Int == 501, "\(call): \(answer)")
                #expect(failure["name"] as? String == "UNIMPLEMENTED", "\(call): \(answer)")
                #expect((failure["message"] as? String)?.contains(hint) == true, "\(call): \(answer)")
            }
            // Calls with no route: 404 naming the call as one the gateway does not serve (it read "no endpoint at
            // POST /api/v1/endpoints/echo/generate-new-token", as if deployment echo were missing).
            let paths = [
                "who_am_i": "GET /api/v1/users/me",
                "generate_new_endpoint_token": "POST /api/v1/endpoints/echo/generate-new-token",
                "list_environment_variables": "GET /api/v1/environment-variables",
            ]
            for (call, path) in paths {
                let failure = try #require(
                    (calls[call] as? [String: Any])?["error"] as? [String: Any], "\(call): \(answer)")
                #expect(failure["status_code"] as? Int == 404, "\(call): \(answer)")
                #expect(
                    (failure["message"] as? String)?.hasPrefix(
                        "this gateway does not serve \(path) of the Craft AI API")
                        == true, "\(call): \(answer)")
            }
            // Nothing was changed: echo is still a pipeline and a deployment.
            let deployment = try await Peers.craft("get_deployment", port: gateway.port, ["echo"])
            #expect(try result(deployment)["name"] as? String == "echo", "\(deployment)")
        }
    }
}
