import AsyncDispatch
import Foundation
import GatewayApp
import GatewayConfig
import GatewayTestSupport
import Logging
import NIOCore
import OperationStore
import Testing
import TriggerModel

/// Periodic Craft AI deployments (`execution_rule: periodic`): each tick of the deployment's schedule is an
/// execution of the deployment, built as an endpoint trigger builds one (input mappings, labels), so the
/// Craft API reads it as the deployment's and Instill/Abacus clients see an ordinary operation.
@Suite("Craft AI periodic deployments")
struct CraftPeriodicTests {
    static let variable = "TG_CRAFT_PERIODIC_REGION_\(UUID().uuidString.prefix(8))"

    static var mappedYAML: String {
        """
        craft:
          max_io_bytes: 5000
          deployments:
            - name: nightly
              pipeline: echo
              execution_rule: periodic
              schedule: "@every 10s"
              overlap: allow
              inputs: {prompt: hello, extra: 1}
              input_mappings:
                - {pipeline_input_name: text, endpoint_input_name: prompt}
                - {pipeline_input_name: region, environment_variable_name: \(variable)}
                - {pipeline_input_name: mode, constant_value: fast}
              output_mappings:
                - {pipeline_output_name: text, endpoint_output_name: shout}
        """
    }

    @Test("a tick (injected clock) is an execution of the deployment: its labels, its inputs through the mappings")
    func tickIsAnExecution() async throws {
        setenv(Self.variable, "eu-west", 1)
        let config = try GatewayConfiguration.parse(yaml: Self.mappedYAML, source: "p.yaml")
        // What start and reload hand the scheduler.
        let schedules = GatewayApp.schedules(of: config, logger: Logger(label: "test.craft-periodic"))
        #expect(schedules.map(\.name) == ["craft.nightly"])
        try await SchedulerTests.Harness.with(.sqlite) { harness in
            let clock = ManualSchedulerClock(SchedulerTests.t0)
            let instance = try await harness.instance(schedules, clock: clock)
            defer { Task { await instance.close() } }
            #expect(await instance.scheduler.runPass(now: SchedulerTests.at(0)) == SchedulerTests.at(10))
            #expect(try await instance.runs().isEmpty)
            await instance.scheduler.runPass(now: SchedulerTests.at(10))
            let runs = try await instance.runs()
            try #require(runs.count == 1)
            let run = runs[0]
            #expect(ScheduleView.run(of: run)?.schedule == "craft.nightly")
            #expect(run.request.principal == nil)
            #expect(run.request.ref == PipelineRef(namespace: "demo", pipeline: "echo"))
            #expect(
                run.request.inputs == [
                    TriggerInput(variables: [
                        "text": .string("hello"), "region": .string("eu-west"), "mode": .string("fast"),
                        "extra": .number(1),
                    ])
                ]
            )
            // The operator's values are no reader's: the environment's and the constant (security review 60, M4:
            // every token holder read a periodic deployment's constant_value); the schedule's own inputs are not.
            #expect(run.request.hiddenInputNames == ["region", "mode"])
            #expect(run.request.labels["craft.deployment"] == "nightly")
            #expect(run.request.labels["craft.io_cap"] == "5000")
            let mapping = try #require(run.request.labels["craft.outputs_mapping"])
            let decoded = try JSONSerialization.jsonObject(with: Data(mapping.utf8)) as? [[String: String]]
            #expect(decoded == [["pipeline_output_name": "text", "endpoint_output_name": "shout"]])
        }
    }

    @Test("inputs that cannot become an execution are a config error at the deployment's inputs (check-config)")
    func unsetVariableRefused() throws {
        let unset = "TG_CRAFT_PERIODIC_UNSET_\(UUID().uuidString.prefix(8))"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tg-craft-periodic-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func check(_ deployment: String) throws -> String {
            let file = dir.appendingPathComponent("c.yaml").path
            try Data("craft:\n  deployments:\n    - \(deployment)\n".utf8).write(to: URL(fileURLWithPath: file))
            do {
                _ = try ConfigFile.load(path: file)
                return "accepted"
            } catch {
                return error.path + ": " + error.message
            }
        }
        let base = "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"@daily\""
        #expect(
            try check(base + ", input_mappings: [{pipeline_input_name: r, environment_variable_name: \(unset)}]}")
                == "craft.deployments[0].inputs: input \"r\" comes from the environment variable \(unset), which is not set"
        )
        #expect(
            try check(base + ", input_mappings: [{pipeline_input_name: r, endpoint_input_name: R, is_required: true}]}")
                == "craft.deployments[0].inputs: input \"R\" is required"
        )
        // The I/O cap: at it accepted, one byte over refused ("12345678" is 10 bytes of JSON).
        #expect(try check(base + ", max_io_bytes: 10, inputs: {a: \"12345678\"}}") == "accepted")
        #expect(
            try check(base + ", max_io_bytes: 9, inputs: {a: \"12345678\"}}").hasPrefix(
                "craft.deployments[0].inputs: the non-file inputs are 10 bytes"
            )
        )
    }

    /// The SDK reviewer of session 56 (L1): `constant_value: "2"` for an input declared `number` loaded, and every
    /// trigger of the endpoint deployment was then a 400 about an input its caller never sent.
    @Test("a deployment's constant or default not of its input's declared data_type is a config error at it")
    func configuredValuesChecked() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-craft-values-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func check(_ mapping: String) throws -> String {
            let file = dir.appendingPathComponent("c.yaml").path
            let yaml = """
                craft:
                  pipelines: [{name: echo, inputs: [{name: n, data_type: number}, {name: s, data_type: string}]}]
                  deployments: [{name: a, pipeline: echo, input_mappings: [{pipeline_input_name: s, constant_value: x}, \(mapping)]}]

                """
            try Data(yaml.utf8).write(to: URL(fileURLWithPath: file))
            do {
                _ = try ConfigFile.load(path: file)
                return "accepted"
            } catch {
                return error.path + ": " + error.message
            }
        }
        #expect(
            try check("{pipeline_input_name: n, constant_value: \"2\"}")
                == "craft.deployments[0].input_mappings[1].constant_value: is string, but input \"n\" of pipeline echo "
                + "is declared number (craft.pipelines)")
        #expect(
            try check("{pipeline_input_name: n, endpoint_input_name: N, default_value: [1]}")
                == "craft.deployments[0].input_mappings[1].default_value: is array, but input \"n\" of pipeline echo "
                + "is declared number (craft.pipelines)")
        #expect(try check("{pipeline_input_name: n, constant_value: 2}") == "accepted")
        #expect(try check("{pipeline_input_name: n, endpoint_input_name: N, default_value: 2.5}") == "accepted")
        #expect(try check("{pipeline_input_name: z, constant_value: [1]}") == "accepted", "an undeclared input")
    }

    /// The SDK reviewer of session 55 (F5): every caller sees a periodic deployment's runs (they belong to no
    /// principal), and `delete_pipeline_execution` of a finished one let any caller's token remove it for all.
    @Test("with tokens, no caller deletes a finished periodic run (403, it stays); a caller's own finished run it does")
    func periodicRunsAreNotDeletable() async throws {
        let yaml = """
            tokens:
              - {name: alice, token: ALICE-SECRET}
            craft:
              deployments:
                - name: beat
                  pipeline: upper
                  execution_rule: periodic
                  schedule: "@every 1s"
                  inputs: {prompt: hello}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let bearer = CraftRESTTests.bearer(try await CraftRESTTests.accessToken(client, sdkToken: "ALICE-SECRET"))
            var latest: String?
            _ = try await eventually(within: .seconds(10), interval: .milliseconds(100)) {
                let response = try await client.request(
                    "GET", "/api/v1/deployments/beat/executions/latest", headers: bearer)
                if response.status == 200 { latest = try json(response.body)["execution_id"] as? String }
                return latest != nil
            }
            let tick = try #require(latest, "no execution of the periodic deployment within 10 s")
            var response = try await client.request(
                "GET", "/api/v1/executions/\(tick)/outputs?wait_for_completion=true", headers: bearer)
            #expect(response.status == 200, "\(response.bodyString)")

            response = try await client.request("DELETE", "/api/v1/executions/\(tick)", headers: bearer)
            #expect(response.status == 403, "\(response.bodyString)")
            #expect(response.bodyString.contains("is a schedule's run"), "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/executions/\(tick)", headers: bearer)
            #expect(response.status == 200, "\(response.bodyString)")

            // It runs on its schedule only: an ad-hoc run (trigger_endpoint's path without a token) would bypass a
            // pause and the overlap policy (review 59, F6: it was 200, paused or not).
            response = try await client.request(
                "POST", "/api/v1/deployments/beat/executions",
                headers: bearer + [("content-type", "application/json")], body: ByteBuffer(string: #"{"prompt":"x"}"#))
            #expect(response.status == 409, "\(response.bodyString)")
            #expect((try json(response.body)["name"] as? String) == "FAILED_PRECONDITION", "\(response.bodyString)")
            #expect(response.bodyString.contains("is periodic"), "\(response.bodyString)")

            // Alice's own finished execution she deletes.
            let own = try await CraftRESTTests.run(
                client, try await CraftRESTTests.accessToken(client, sdkToken: "ALICE-SECRET"), "upper",
                #"{"prompt":"x"}"#)
            response = try await client.request(
                "GET", "/api/v1/executions/\(own)/outputs?wait_for_completion=true", headers: bearer)
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request("DELETE", "/api/v1/executions/\(own)", headers: bearer)
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request("GET", "/api/v1/executions/\(own)", headers: bearer)
            #expect(response.status == 404, "\(response.bodyString)")
            await client.close()
        }
    }

    /// Security review 60, M2: a periodic deployment's schedule was paused and triggered by any token holder, and
    /// `delete_pipeline_execution` cancelled its unfinished run before its 403 check (only the second delete was
    /// refused); the 409 of `POST …/executions` sent every caller to the open `:trigger`. Before the fix eve's
    /// `:pause` was 200 and her delete cancelled alice's run.
    @Test("operators: eve's :pause and delete of a running periodic run are 403 (it keeps running); alice's work")
    func operatorsOnly() async throws {
        let yaml = """
            tokens:
              - {name: alice, token: ALICE-SECRET-0123456789}
              - {name: eve, token: EVE-SECRET-0123456789ab}
            craft:
              deployments:
                - name: nap
                  pipeline: sleep
                  execution_rule: periodic
                  schedule: "0 0 1 1 *"
                  overlap: allow
                  inputs: {ms: 30000}
                  operators: [alice]
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let alice = CraftRESTTests.bearer(
                try await CraftRESTTests.accessToken(client, sdkToken: "ALICE-SECRET-0123456789"))
            let eve = CraftRESTTests.bearer(
                try await CraftRESTTests.accessToken(client, sdkToken: "EVE-SECRET-0123456789ab"))
            let aliceToken = [("authorization", "Bearer ALICE-SECRET-0123456789")]
            let eveToken = [("authorization", "Bearer EVE-SECRET-0123456789ab")]

            var response = try await client.request("POST", "/v1beta/schedules/craft.nap:pause", headers: eveToken)
            #expect(response.status == 403, "\(response.bodyString)")
            #expect(response.bodyString.contains("craft.deployments[].operators"), "\(response.bodyString)")
            response = try await client.request("POST", "/v1beta/schedules/craft.nap:trigger", headers: eveToken)
            #expect(response.status == 403, "\(response.bodyString)")

            // The 409 names the schedule's routes only to an operator.
            let body = ByteBuffer(string: #"{"ms":1}"#)
            let jsonType = [("content-type", "application/json")]
            response = try await client.request(
                "POST", "/api/v1/deployments/nap/executions", headers: eve + jsonType, body: body)
            #expect(response.status == 409, "\(response.bodyString)")
            #expect(response.bodyString.contains("only its operators"), "\(response.bodyString)")
            #expect(!response.bodyString.contains(":trigger"), "\(response.bodyString)")
            response = try await client.request(
                "POST", "/api/v1/deployments/nap/executions", headers: alice + jsonType, body: body)
            #expect(response.status == 409, "\(response.bodyString)")
            #expect(response.bodyString.contains("/v1beta/schedules/craft.nap:pause"), "\(response.bodyString)")

            response = try await client.request("POST", "/v1beta/schedules/craft.nap:trigger", headers: aliceToken)
            #expect(response.status == 200, "\(response.bodyString)")
            let name = try #require((try json(response.body)["operation"] as? [String: Any])?["name"] as? String)
            let id = String(name.dropFirst("operations/".count))
            func status() async throws -> String? {
                let read = try await client.request("GET", "/api/v1/executions/\(id)", headers: eve)
                return try json(read.body)["status"] as? String
            }
            let running = try await eventually(within: .seconds(10), interval: .milliseconds(50)) {
                try await status() == "Running"
            }
            #expect(running, "the run never started")

            // Eve reads it, may not delete (cancel) it: 403 before anything changes; it is still running.
            response = try await client.request("DELETE", "/api/v1/executions/\(id)", headers: eve)
            #expect(response.status == 403, "\(response.bodyString)")
            #expect(
                (try json(response.body)["name"] as? String) == "PERMISSION_DENIED", "\(response.bodyString)")
            #expect(response.bodyString.contains("craft.deployments[].operators"), "\(response.bodyString)")
            #expect(try await status() == "Running")
            response = try await client.request("POST", "/v1beta/operations/\(id):cancel", headers: eveToken)
            #expect(response.status == 403, "\(response.bodyString)")
            #expect(try await status() == "Running")

            // Alice, an operator, stops it.
            response = try await client.request("DELETE", "/api/v1/executions/\(id)", headers: alice)
            #expect(response.status == 200, "\(response.bodyString)")
            let read = try await client.request("GET", "/v1beta/operations/\(id)", headers: eveToken)
            #expect(
                ((try json(read.body)["operation"] as? [String: Any])?.metadataState) == "cancelled",
                "\(read.bodyString)")
            await client.close()
        }
    }

    @Test(
        "a real gateway: @every 1s ticks are the deployment's executions, read through the Craft API with outputs mapped"
    )
    func realGateway() async throws {
        let yaml = """
            craft:
              deployments:
                - {name: hook, pipeline: upper}
                - name: beat
                  pipeline: upper
                  execution_rule: periodic
                  schedule: "@every 1s"
                  overlap: allow
                  inputs: {prompt: hello}
                  output_mappings: [{pipeline_output_name: prompt, endpoint_output_name: shout}]
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let token = try await CraftRESTTests.accessToken(client)
            let bearer = CraftRESTTests.bearer(token)

            var response = try await client.request("GET", "/api/v1/deployments/beat", headers: bearer)
            var body = try json(response.body)
            #expect(response.status == 200, "\(response.bodyString)")
            #expect(body["execution_rule"] as? String == "periodic")
            #expect(body["schedule"] as? String == "@every 1s")
            #expect(body["schedule_name"] as? String == "craft.beat")
            #expect(body["endpoint_url_path"] == nil)
            // No endpoint: the path is not one.
            response = try await client.request(
                "POST",
                "/endpoints/beat",
                headers: [("content-type", "application/json")],
                body: try jsonBody([:])
            )
            #expect(response.status == 404, "\(response.bodyString)")

            // Within a few seconds the newest tick's execution is the deployment's latest.
            var latest: String?
            _ = try await eventually(within: .seconds(10), interval: .milliseconds(100)) {
                response = try await client.request(
                    "GET", "/api/v1/deployments/beat/executions/latest", headers: bearer)
                if response.status == 200 { latest = try json(response.body)["execution_id"] as? String }
                return latest != nil
            }
            let id = try #require(latest, "no execution of the periodic deployment within 10 s")
            response = try await client.request(
                "GET",
                "/api/v1/executions/\(id)/outputs?wait_for_completion=true",
                headers: bearer
            )
            body = try json(response.body)
            #expect(response.status == 200, "\(response.bodyString)")
            let outputs = body["outputs"] as? [[String: Any]] ?? []
            #expect(outputs.count == 1, "\(response.bodyString)")
            #expect(outputs.first?["pipeline_output_name"] as? String == "prompt")
            #expect(outputs.first?["endpoint_output_name"] as? String == "shout")
            #expect(outputs.first?["value"] as? String == "HELLO")
            // Without tokens too, a tick's run is not deleted: its key keeps the tick to one run across instances.
            response = try await client.request("DELETE", "/api/v1/executions/\(id)", headers: bearer)
            #expect(response.status == 403, "\(response.bodyString)")
            // An endpoint deployment of the same pipeline sees none of them (latest is by deployment).
            response = try await client.request("GET", "/api/v1/deployments/hook/executions/latest", headers: bearer)
            #expect(response.status == 204)

            // `latest` moves on to the newest tick; and each run is an ordinary operation for Instill and Abacus
            // clients, listed under /v1beta/operations with the schedule's name and tick.
            func scheduleRuns() async throws -> [[String: Any]] {
                response = try await client.request("GET", "/v1beta/operations?pipeline=demo/upper&page_size=100")
                return (try json(response.body)["operations"] as? [[String: Any]] ?? []).filter {
                    $0.scheduleName == "craft.beat"
                }
            }
            // Wait for three ticks, and for `latest` to have moved past the first one seen.
            _ = try await eventually(within: .seconds(10), interval: .milliseconds(100)) {
                try await scheduleRuns().count >= 3
            }
            var newest: String?
            let movedOn = try await eventually(within: .seconds(10), interval: .milliseconds(100)) {
                response = try await client.request(
                    "GET", "/api/v1/deployments/beat/executions/latest", headers: bearer)
                newest = response.status == 200 ? try json(response.body)["execution_id"] as? String : nil
                return newest != nil && newest != id
            }
            #expect(movedOn, "latest stayed \(id): \(response.bodyString)")
            let newestID = try #require(newest)
            let operations = try await scheduleRuns()
            #expect(operations.count >= 3, "\(response.bodyString)")
            #expect(operations.contains { $0["name"] as? String == "operations/\(id)" }, "\(response.bodyString)")
            let newestTick = try #require(
                operations.first { $0["name"] as? String == "operations/\(newestID)" }?.scheduledTime
            )
            let lastTick = try #require(operations.compactMap(\.scheduledTime).max())
            // At most one tick can land between the two reads.
            #expect(lastTick.timeIntervalSince(newestTick) <= 1, "latest \(newestTick), newest listed \(lastTick)")

            // Paused, the deployment reads disabled, in get_deployment and list_deployments (SDK review 56, L2);
            // resumed, enabled again. The endpoint deployment is enabled throughout.
            func enabled() async throws -> (get: Bool?, listed: [String: Bool]) {
                response = try await client.request("GET", "/api/v1/deployments/beat", headers: bearer)
                let get = try json(response.body)["is_enabled"] as? Bool
                response = try await client.request("GET", "/api/v1/deployments", headers: bearer)
                let items =
                    try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]]
                var listed: [String: Bool] = [:]
                for item in items ?? [] {
                    if let name = item["name"] as? String { listed[name] = item["is_enabled"] as? Bool }
                }
                return (get, listed)
            }
            var state = try await enabled()
            #expect(state.get == true && state.listed == ["hook": true, "beat": true], "\(state)")
            response = try await client.request("POST", "/v1beta/schedules/craft.beat:pause")
            #expect(response.status == 200, "\(response.bodyString)")
            state = try await enabled()
            #expect(state.get == false && state.listed == ["hook": true, "beat": false], "\(state)")
            response = try await client.request("POST", "/v1beta/schedules/craft.beat:resume")
            state = try await enabled()
            #expect(state.get == true && state.listed == ["hook": true, "beat": true], "\(state)")
        }
    }
    @Test("a reload (SIGHUP) adds, changes and removes a periodic deployment's schedule under /v1beta/schedules")
    func reload() async throws {
        func schedules(_ client: TestHTTPClient) async throws -> [String: String] {
            let response = try await client.request("GET", "/v1beta/schedules")
            try #require(response.status == 200, "\(response.bodyString)")
            let list = try json(response.body)["schedules"] as? [[String: Any]] ?? []
            var byName: [String: String] = [:]
            for item in list { if let name = item["name"] as? String { byName[name] = item["cron"] as? String } }
            return byName
        }
        func yaml(_ cron: String?) -> String {
            var text = "craft:\n  deployments:\n    - {name: hook, pipeline: echo}\n"
            if let cron {
                text += "    - {name: later, pipeline: echo, execution_rule: periodic, schedule: \"\(cron)\"}\n"
            }
            return text
        }
        try await withTestGateway(yaml: yaml(nil)) { gateway in
            let client = try await gateway.client()
            #expect(try await schedules(client) == [:])
            try gateway.reload(yaml: yaml("@daily"))
            #expect(try await schedules(client) == ["craft.later": "@daily"])
            try gateway.reload(yaml: yaml("@hourly"))
            #expect(try await schedules(client) == ["craft.later": "@hourly"])
            try gateway.reload(yaml: yaml(nil))
            #expect(try await schedules(client) == [:])
        }
    }
}
