import Foundation
import GatewayConfig
import Testing
import TriggerModel

@Suite("craft: periodic deployments")
struct CraftPeriodicConfigurationTests {
    @Test("a periodic deployment is a schedule craft.<name> on its pipeline, with its inputs and options")
    func parses() throws {
        let yaml = """
            craft:
              deployments:
                - {name: hook, pipeline: echo}
                - name: nightly
                  pipeline: upper
                  release: v2
                  execution_rule: periodic
                  schedule: "30 2 * * *"
                  timezone: Europe/Paris
                  inputs: {prompt: hello, n: 3}
                  overlap: allow
                  catchup_window: 1h
                  paused: true
                  input_mappings: [{pipeline_input_name: text, endpoint_input_name: prompt}]
            """
        let craft = try GatewayConfiguration.parse(yaml: yaml, source: "p.yaml").craft
        let hook = try #require(craft.deployment(named: "hook"))
        #expect(hook.executionRule == .endpoint && hook.endpointURLPath == "hook" && hook.schedule == nil)
        let nightly = try #require(craft.deployment(named: "nightly"))
        #expect(nightly.executionRule == .periodic)
        #expect(nightly.endpointURLPath == nil)
        #expect(craft.deployment(endpointURLPath: "nightly") == nil)
        let schedule = try #require(nightly.schedule)
        #expect(schedule.name == "craft.nightly")
        #expect(schedule.cron.text == "30 2 * * *")
        #expect(schedule.timeZoneName == "Europe/Paris")
        #expect(schedule.ref == PipelineRef(namespace: "demo", pipeline: "upper", release: "v2"))
        // Endpoint inputs as configured; the mappings are applied when the schedule is built (CraftExecution).
        #expect(schedule.inputs == [TriggerInput(variables: ["prompt": .string("hello"), "n": .number(3)])])
        #expect(schedule.overlap == .allow && schedule.catchupWindow == .seconds(3600) && schedule.paused)
    }

    @Test("defaults as for schedules: UTC, overlap skip, latest missed tick only, active, no inputs")
    func defaults() throws {
        let yaml = """
            craft:
              deployments: [{name: tick, pipeline: echo, execution_rule: periodic, schedule: "@every 1s"}]
            """
        let schedule = try #require(
            try GatewayConfiguration.parse(yaml: yaml, source: "p.yaml").craft.deployments?.first?.schedule
        )
        #expect(schedule.timeZoneName == "UTC")
        #expect(schedule.overlap == .skip && schedule.catchupWindow == nil && !schedule.paused)
        #expect(schedule.inputs == [TriggerInput()])
        #expect(schedule.labels.isEmpty)
    }

    static let refusals: [(String, String)] = [
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"61 * * * *\"}",
            "p.yaml: craft.deployments[1].schedule: invalid cron expression \"61 * * * *\": minute field \"61\": "
                + "61 is out of range 0-59"
        ),
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"0 0 30 2 *\"}",
            "p.yaml: craft.deployments[1].schedule: cron expression \"0 0 30 2 *\" never fires"
        ),
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"@daily\", timezone: EST}",
            "p.yaml: craft.deployments[1].timezone: unknown time zone \"EST\""
        ),
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"@daily\", endpoint_url_path: d}",
            "p.yaml: craft.deployments[1].endpoint_url_path: a periodic deployment has no endpoint"
        ),
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"@daily\", tokens: [alice]}",
            "p.yaml: craft.deployments[1].tokens: a periodic deployment has no endpoint"
        ),
        (
            "{name: d, pipeline: echo, schedule: \"@daily\"}",
            "p.yaml: craft.deployments[1].schedule: applies only to a deployment with execution_rule: periodic"
        ),
        (
            "{name: d, pipeline: echo, paused: true}",
            "p.yaml: craft.deployments[1].paused: applies only to a deployment with execution_rule: periodic"
        ),
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"@daily\", inputs: [1, 2]}",
            "p.yaml: craft.deployments[1].inputs: expected a mapping of endpoint input names to values"
        ),
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"@daily\", overlap: queue}",
            "p.yaml: craft.deployments[1].overlap:"
        ),
        (
            "{name: d, pipeline: echo, execution_rule: periodic, schedule: \"@daily\", catchup_window: 0s}",
            "p.yaml: craft.deployments[1].catchup_window:"
        ),
        (
            "{name: d, pipeline: nowhere, release: r, execution_rule: periodic, schedule: \"@daily\"}",
            "p.yaml: craft.deployments[1].pipeline: no route serves"
        ),
    ]

    @Test("bad periodic deployments are refused with their path and the reason", arguments: refusals)
    func refused(_ item: String, _ message: String) {
        let yaml = """
            tokens: [{name: alice, token: a-secret}]
            routes: [{namespace: demo, pipeline: echo, pool: demo}]
            pools: [{name: demo, transport: inprocess}]
            craft:
              deployments:
                - {name: first, pipeline: echo}
                - \(item)
            """
        #expect {
            _ = try GatewayConfiguration.parse(yaml: yaml, source: "p.yaml")
        } throws: { error in
            "\(error)".hasPrefix(message)
        }
    }

    @Test("a schedules: entry named like a periodic deployment's schedule is refused")
    func nameClash() {
        let yaml = """
            craft:
              deployments: [{name: d, pipeline: echo, execution_rule: periodic, schedule: "@daily"}]
            schedules:
              - {name: craft.d, cron: "@daily", route: {namespace: demo, pipeline: echo}}
            """
        #expect {
            _ = try GatewayConfiguration.parse(yaml: yaml, source: "p.yaml")
        } throws: { error in
            "\(error)".hasPrefix(
                "p.yaml: schedules[0].name: \"craft.d\" is the schedule of the periodic deployment craft.deployments[0]"
            )
        }
    }

    @Test("periodic deployment names: 122 bytes accepted (schedule name 128), 123 refused")
    func nameLength() throws {
        func yaml(_ length: Int) -> String {
            "craft:\n  deployments:\n    - {name: \(String(repeating: "d", count: length)), pipeline: echo, "
                + "execution_rule: periodic, schedule: \"@daily\"}\n"
        }
        let schedule = try GatewayConfiguration.parse(yaml: yaml(122), source: "p.yaml").craft.deployments?.first?
            .schedule
        #expect(schedule?.name.utf8.count == 128)
        #expect {
            _ = try GatewayConfiguration.parse(yaml: yaml(123), source: "p.yaml")
        } throws: { error in
            "\(error)".hasPrefix("p.yaml: craft.deployments[0].name: a periodic deployment's name is at most 122 bytes")
        }
    }

    /// Security review 60, M2: a periodic deployment's schedule was paused, resumed and triggered by any token
    /// holder. Its operators are `operators`, the key `schedules[]` has; `tokens` stays refused (it names who may
    /// trigger an endpoint, which a periodic deployment has not), and an endpoint deployment takes no `operators`.
    @Test("operators on a periodic deployment: token names, checked; refused on an endpoint one; warned when absent")
    func operators() throws {
        func parse(_ item: String) throws -> GatewayConfiguration {
            try GatewayConfiguration.parse(
                yaml: """
                    tokens: [{name: alice, token: alice-secret-0123456789}]
                    craft:
                      deployments:
                        - \(item)
                    """,
                source: "p.yaml")
        }
        let periodic = "{name: tick, pipeline: echo, execution_rule: periodic, schedule: \"@daily\""
        let config = try parse(periodic + ", operators: [alice]}")
        #expect(config.craft.deployment(named: "tick")?.schedule?.operators == ["alice"])
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        #expect(
            try parse(periodic + "}").warnings.map(\.description) == [
                "p.yaml: craft.deployments[0].operators: absent: with tokens required, no caller may pause, resume or "
                    + "trigger schedule \"craft.tick\" or cancel its runs (403); list the names of the tokens that may"
            ])
        for (item, message) in [
            (
                periodic + ", operators: [eve]}",
                "p.yaml: craft.deployments[0].operators[0]: no token named \"eve\" in tokens"
            ),
            (
                "{name: hook, pipeline: echo, operators: [alice]}",
                "p.yaml: craft.deployments[0].operators: applies only to a deployment with execution_rule: periodic"
            ),
            (
                periodic + ", tokens: [alice]}",
                "p.yaml: craft.deployments[0].tokens: a periodic deployment has no endpoint: remove tokens (or use "
                    + "execution_rule: endpoint); the tokens that may pause, resume and trigger its schedule are operators"
            ),
        ] {
            #expect {
                _ = try parse(item)
            } throws: { error in
                "\(error)" == message
            }
        }
    }
}
