import Foundation
import GatewayConfig
import Testing
import TriggerModel

/// `schedules:` in the config file: what parses, the defaults, and path-precise errors (`check-config`).
@Suite("Schedule configuration")
struct ScheduleConfigurationTests {
    static let routes = """
        pools:
          - {name: demo, transport: inprocess}
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}
          - {namespace: acme, pipeline: report, release: v2, pool: demo}

        """

    @Test("every key parses; defaults are UTC, overlap skip, one empty input, latest missed tick only, active")
    func parses() throws {
        let yaml =
            Self.routes + """
                schedules:
                  - name: nightly-report
                    cron: "30 2 * * MON-FRI"
                    timezone: Europe/Paris
                    route: {namespace: acme, pipeline: report, release: v2}
                    inputs:
                      - {text: hello, count: 3, ratio: 0.5, on: true, quoted: "42", nothing: ~, list: [1, two], nested: {a: b}}
                      - {}
                    overlap: cancel_previous
                    catchup_window: 2h
                    paused: true
                  - name: heartbeat
                    cron: "@every 1s"
                    route: {namespace: demo, pipeline: echo}
                """
        let config = try GatewayConfiguration.parse(yaml: yaml, source: "s.yaml")
        #expect(config.schedules.count == 2)
        let nightly = config.schedules[0]
        #expect(nightly.name == "nightly-report")
        #expect(nightly.cron.text == "30 2 * * MON-FRI")
        #expect(nightly.timeZone.identifier == "Europe/Paris" && nightly.timeZoneName == "Europe/Paris")
        #expect(nightly.ref == PipelineRef(namespace: "acme", pipeline: "report", release: "v2"))
        #expect(nightly.overlap == .cancelPrevious)
        #expect(nightly.catchupWindow == .seconds(7200))
        #expect(nightly.paused)
        #expect(nightly.inputs.count == 2)
        let first = nightly.inputs[0].variables
        #expect(first["text"] == .string("hello"))
        #expect(first["count"] == .number(3))
        #expect(first["ratio"] == .number(0.5))
        #expect(first["on"] == .bool(true))
        #expect(first["quoted"] == .string("42"))
        #expect(first["nothing"] == .null)
        #expect(first["list"] == .list([.number(1), .string("two")]))
        #expect(first["nested"] == .object(["a": .string("b")]))
        #expect(nightly.inputs[1].variables.isEmpty)

        let heartbeat = config.schedules[1]
        #expect(heartbeat.timeZoneName == "UTC" && heartbeat.timeZone.secondsFromGMT() == 0)
        #expect(heartbeat.overlap == .skip)
        #expect(heartbeat.catchupWindow == nil)
        #expect(!heartbeat.paused)
        #expect(heartbeat.inputs == [TriggerInput()])
        #expect(heartbeat.ref.release == nil)
    }

    @Test("no schedules key: no schedules")
    func noSchedules() throws {
        #expect(try GatewayConfiguration.parse(yaml: "{}", source: "e.yaml").schedules.isEmpty)
    }

    static let refusals: [(String, String)] = [
        (
            "- {name: a, cron: \"61 * * * *\", route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].cron: invalid cron expression \"61 * * * *\": minute field \"61\": 61 is out of range 0-59"
        ),
        (
            "- {name: a, cron: \"@every 500ms\", route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].cron: invalid cron expression \"@every 500ms\": @every 500ms: must be a whole number of seconds"
        ),
        (
            "- {name: a, cron: \"0 0 31 2 *\", route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].cron: cron expression \"0 0 31 2 *\" never fires"
        ),
        (
            "- {name: a, cron: \"@daily\", timezone: Mars/Olympus, route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].timezone: unknown time zone \"Mars/Olympus\""
        ),
        (
            "- {name: a, cron: \"@daily\", timezone: EST, route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].timezone: unknown time zone \"EST\""
        ),
        (
            "- {name: a, cron: \"@daily\", route: {namespace: other, pipeline: echo}}",
            "s.yaml: schedules[0].route: no route serves other/echo"
        ),
        (
            "- {name: a, cron: \"@daily\", route: {namespace: acme, pipeline: report, release: v3}}",
            "s.yaml: schedules[0].route: no route serves acme/report@v3"
        ),
        (
            "- {name: a, cron: \"@daily\", route: {namespace: demo, pipeline: \"*\"}}",
            "s.yaml: schedules[0].route.pipeline: \"*\" must name one pipeline"
        ),
        (
            "- {name: a, cron: \"@daily\"}",
            "s.yaml: schedules[0].route: missing (required)"
        ),
        (
            "- {name: a, route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].cron: missing (required)"
        ),
        (
            "- {name: \"a b\", cron: \"@daily\", route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].name: schedule names are 1 to 128 letters"
        ),
        (
            "- {name: a, cron: \"@daily\", route: {namespace: demo, pipeline: echo}}\n"
                + "  - {name: a, cron: \"@hourly\", route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[1].name: duplicate schedule name \"a\" (also schedules[0].name)"
        ),
        (
            "- {name: a, cron: \"@daily\", overlap: forbid, route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].overlap: unknown value \"forbid\"; expected allow | skip | cancel_previous"
        ),
        (
            "- {name: a, cron: \"@daily\", catchup_window: 999ms, route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].catchup_window: 999ms is too short: must be at least 1s"
        ),
        (
            "- {name: a, cron: \"@daily\", paused: yes please, route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].paused: expected true or false"
        ),
        (
            "- {name: a, cron: \"@daily\", inputs: [hello], route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].inputs[0]: expected a mapping of input names to values"
        ),
        (
            "- {name: a, cron: \"@daily\", crontab: x, route: {namespace: demo, pipeline: echo}}",
            "s.yaml: schedules[0].crontab: unknown key"
        ),
    ]

    @Test("bad schedules are refused with their path and the reason", arguments: refusals)
    func refused(_ item: String, _ message: String) {
        let yaml = Self.routes + "schedules:\n  " + item + "\n"
        #expect {
            _ = try GatewayConfiguration.parse(yaml: yaml, source: "s.yaml")
        } throws: { error in
            "\(error)".hasPrefix(message)
        }
    }

    @Test("inputs obey limits.max_batch: at the limit accepted, one more refused")
    func batchLimit() throws {
        func yaml(_ count: Int) -> String {
            Self.routes + """
                limits: {max_batch: 2}
                schedules:
                  - name: a
                    cron: "@daily"
                    route: {namespace: demo, pipeline: echo}
                    inputs: [\(Array(repeating: "{}", count: count).joined(separator: ", "))]
                """
        }
        #expect(try GatewayConfiguration.parse(yaml: yaml(2), source: "s.yaml").schedules[0].inputs.count == 2)
        #expect {
            _ = try GatewayConfiguration.parse(yaml: yaml(3), source: "s.yaml")
        } throws: { error in
            "\(error)" == "s.yaml: schedules[0].inputs: 3 inputs exceed limits.max_batch (2)"
        }
    }

    @Test("schedule names: 128 characters accepted, 129 refused")
    func nameLength() throws {
        func yaml(_ length: Int) -> String {
            Self.routes + """
                schedules:
                  - {name: \(String(repeating: "n", count: length)), cron: "@daily", route: {namespace: demo, pipeline: echo}}
                """
        }
        #expect(try GatewayConfiguration.parse(yaml: yaml(128), source: "s.yaml").schedules[0].name.count == 128)
        #expect(throws: ConfigError.self) { try GatewayConfiguration.parse(yaml: yaml(129), source: "s.yaml") }
    }

    @Test("catchup_window: 1s is the shortest accepted")
    func catchupEdge() throws {
        let yaml =
            Self.routes + """
                schedules:
                  - {name: a, cron: "@daily", catchup_window: 1s, route: {namespace: demo, pipeline: echo}}
                """
        #expect(try GatewayConfiguration.parse(yaml: yaml, source: "s.yaml").schedules[0].catchupWindow == .seconds(1))
    }

    /// Security review 60, M2: any token holder paused, resumed and triggered every schedule. `operators` names
    /// who may; a name that is no token is a mistake, as in a deployment's `tokens`.
    @Test("operators: token names, checked against tokens (an unknown one is refused at its path)")
    func operators() throws {
        func yaml(_ operators: String) -> String {
            Self.routes + """
                tokens:
                  - {name: alice, token: alice-secret-0123456789}
                  - {name: ci, token: ci-secret-0123456789abc}
                schedules:
                  - {name: a, cron: "@daily", route: {namespace: demo, pipeline: echo}\(operators)}
                """
        }
        let config = try GatewayConfiguration.parse(yaml: yaml(", operators: [alice, ci, alice]"), source: "s.yaml")
        #expect(config.schedules[0].operators == ["alice", "ci"])
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        let none = try GatewayConfiguration.parse(yaml: yaml(", operators: []"), source: "s.yaml")
        #expect(none.schedules[0].operators == [])
        #expect(none.warnings.isEmpty, "an explicit empty list is a choice: \(none.warnings)")
        #expect(try GatewayConfiguration.parse(yaml: yaml(""), source: "s.yaml").schedules[0].operators == nil)
        for (operators, message) in [
            (", operators: [alice, eve]", "s.yaml: schedules[0].operators[1]: no token named \"eve\" in tokens"),
            (", operators: alice", "s.yaml: schedules[0].operators: expected a list"),
            (", operators: [\"\"]", "s.yaml: schedules[0].operators[0]:"),
        ] {
            #expect {
                _ = try GatewayConfiguration.parse(yaml: yaml(operators), source: "s.yaml")
            } throws: { error in
                "\(error)".hasPrefix(message)
            }
        }
        // With no tokens at all, no name is a token's (auth is off, so operators would not be asked anyway).
        #expect {
            _ = try GatewayConfiguration.parse(
                yaml: Self.routes
                    + "schedules: [{name: a, cron: \"@daily\", route: {namespace: demo, pipeline: echo}, "
                    + "operators: [alice]}]",
                source: "s.yaml")
        } throws: { error in
            "\(error)" == "s.yaml: schedules[0].operators[0]: no token named \"alice\" in tokens"
        }
    }

    /// Without `operators` and with tokens required, no caller may control the schedule any more (the reviewer's
    /// default): a configuration written before the key loads, and says so at the key to set.
    @Test("no operators with tokens required: a warning at schedules[i].operators; none with auth off")
    func operatorsWarning() throws {
        let schedule = "schedules: [{name: nightly, cron: \"@daily\", route: {namespace: demo, pipeline: echo}}]\n"
        let tokens = "tokens: [{name: alice, token: alice-secret-0123456789}]\n"
        let warned = try GatewayConfiguration.parse(yaml: Self.routes + tokens + schedule, source: "s.yaml")
        #expect(
            warned.warnings.map(\.description) == [
                "s.yaml: schedules[0].operators: absent: with tokens required, no caller may pause, resume or trigger "
                    + "schedule \"nightly\" or cancel its runs (403); list the names of the tokens that may"
            ])
        #expect(try GatewayConfiguration.parse(yaml: Self.routes + schedule, source: "s.yaml").warnings.isEmpty)
        let authNone = try GatewayConfiguration.parse(
            yaml: Self.routes + "auth: none\n" + tokens + schedule, source: "s.yaml")
        #expect(authNone.warnings.isEmpty, "\(authNone.warnings)")
    }

    static func schedule(_ name: String, operators: [String]?) throws -> ScheduleConfiguration {
        ScheduleConfiguration(
            name: name, cron: try CronExpression(parsing: "@daily"),
            ref: PipelineRef(namespace: "demo", pipeline: "echo"), operators: operators)
    }

    @Test("mayControl: operators with tokens required; anyone with auth off; a periodic deployment's key named")
    func mayControl() throws {
        let schedule = try Self.schedule("nightly", operators: ["ops", "ci"])
        #expect(schedule.mayControl(principal: "ops", authRequired: true))
        #expect(schedule.mayControl(principal: "ci", authRequired: true))
        #expect(!schedule.mayControl(principal: "Ops", authRequired: true))
        #expect(!schedule.mayControl(principal: nil, authRequired: true))
        #expect(schedule.mayControl(principal: nil, authRequired: false))
        #expect(try Self.schedule("n", operators: nil).mayControl(principal: "x", authRequired: false))
        #expect(try !Self.schedule("n", operators: []).mayControl(principal: "ops", authRequired: true))
        var periodic = try Self.schedule("craft.tick", operators: nil)
        periodic.labels[TriggerRequest.deploymentLabel] = "tick"
        do throws(GatewayError) {
            try periodic.checkMayControl(principal: "eve", authRequired: true, to: "pause")
            Issue.record("eve paused craft.tick")
        } catch {
            #expect(error.code == .permissionDenied)
            #expect(
                error.message
                    == "this token may not pause schedule \"craft.tick\": only its operators may, and its "
                    + "craft.deployments[].operators is not set")
        }
    }
}
