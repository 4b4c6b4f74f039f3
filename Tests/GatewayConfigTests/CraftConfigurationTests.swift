import Foundation
import GatewayConfig
import Testing
import TriggerModel

@Suite("craft: configuration")
struct CraftConfigurationTests {
    @Test("defaults: namespace demo, 25 s long-poll, 0.06 MB cap, implicit deployments named after pipelines")
    func defaults() {
        let craft = GatewayConfiguration.defaults.craft
        #expect(craft.namespace == "demo")
        #expect(craft.longPollWait == .seconds(25))
        #expect(craft.maxIOBytes == 60_000)
        #expect(craft.jwtSecretFile == nil)
        #expect(craft.deployments == nil)
        #expect(
            craft.deployment(named: "echo")
                == CraftDeploymentConfiguration(name: "echo", pipeline: "echo", endpointURLPath: "echo"))
        #expect(craft.deployment(endpointURLPath: "upper")?.pipeline == "upper")
    }

    @Test("a full craft section parses into what it states")
    func full() throws {
        let yaml = """
            tokens: [{name: alice, token: a-secret}]
            craft:
              namespace: team
              long_poll_wait: 2s
              max_io_bytes: 1KiB
              jwt_secret_file: /etc/key
              access_token_lifetime: 10m
              pipelines:
                - {name: p, inputs: [{name: f, data_type: file}], outputs: [{name: o, data_type: json}]}
              deployments:
                - name: d
                  pipeline: p
                  release: v1
                  endpoint_url_path: dee
                  tokens: [alice]
                  max_io_bytes: 100
                  input_mappings:
                    - {pipeline_input_name: a, endpoint_input_name: A, is_required: true}
                    - {pipeline_input_name: b, constant_value: [1, x, true, null, {k: 2.5}]}
                    - {pipeline_input_name: c, environment_variable_name: HOME}
                    - {pipeline_input_name: e, is_null: true}
                  output_mappings:
                    - {pipeline_output_name: o, endpoint_output_name: O}
                    - {pipeline_output_name: q, is_null: true}
            """
        let craft = try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml").craft
        #expect(craft.namespace == "team")
        #expect(craft.longPollWait == .seconds(2))
        #expect(craft.maxIOBytes == 1024)
        #expect(craft.jwtSecretFile == "/etc/key")
        #expect(craft.accessTokenLifetime == .seconds(600))
        #expect(
            craft.pipelines == [
                .init(
                    name: "p", inputs: [.init(name: "f", dataType: "file")],
                    outputs: [.init(name: "o", dataType: "json")])
            ])
        let d = try #require(craft.deployments?.first)
        #expect(d.release == "v1" && d.endpointURLPath == "dee" && d.tokens == ["alice"] && d.maxIOBytes == 100)
        #expect(
            d.inputMappings?.map(\.source) == [
                .endpointInput("A"),
                .constant(.list([.number(1), .string("x"), .bool(true), .null, .object(["k": .number(2.5)])])),
                .environmentVariable("HOME"), .null,
            ])
        #expect(d.inputMappings?.first?.isRequired == true)
        #expect(d.outputMappings?.map(\.destination) == [.endpointOutput("O"), .null])
        #expect(craft.deployment(named: "p") == nil)
        #expect(craft.deployment(endpointURLPath: "dee")?.name == "d")
    }

    /// The diff reviewer of session 55 (L2): a `default_value: 2.0` went through Foundation's `JSONSerialization`,
    /// which wrote `2`, and an integer past Int's range became a string. Constants and defaults are read as a
    /// schedule's inputs are (`configValue`).
    @Test("constants and defaults keep what YAML says: 2.0 a float, 2 an integer, an integer past 2^64 its digits")
    func mappingValues() throws {
        let yaml = """
            craft:
              deployments:
                - name: d
                  pipeline: p
                  input_mappings:
                    - {pipeline_input_name: a, endpoint_input_name: A, default_value: 2.0}
                    - {pipeline_input_name: b, constant_value: {f: 1e2, i: 2, big: 18446744073709551616, s: "2.0"}}
                    - {pipeline_input_name: c, constant_value: ~}
            """
        let d = try #require(try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml").craft.deployments?.first)
        let mappings = try #require(d.inputMappings)
        guard case .number(2, .float)? = mappings[0].defaultValue else {
            Issue.record("\(String(describing: mappings[0].defaultValue))")
            return
        }
        guard case .constant(.object(let b)) = mappings[1].source, case .number(100, .float)? = b["f"],
            case .number(2, .plain)? = b["i"], case .largeInteger(let big)? = b["big"]
        else {
            Issue.record("\(mappings[1].source)")
            return
        }
        #expect(big.description == "18446744073709551616")
        #expect(b["s"] == .string("2.0"))
        #expect(mappings[2].source == .constant(.null))
    }

    /// The diff reviewer of session 56 (M3): JSON has no infinity, and a client's `1e400` is a 400; `jsonText` made a
    /// non-finite constant the string ".inf", `configValue` made it a number the JSON writer sends as null.
    @Test(
        "a constant, default or schedule input that is not a finite number is refused at its path; quoted, it is a string",
        arguments: [".inf", "-.inf", ".nan", "1e400"])
    func nonFiniteValues(literal: String) throws {
        for (mapping, path) in [
            ("{pipeline_input_name: a, constant_value: {x: [1, \(literal)]}}", "input_mappings[0].constant_value.x[1]"),
            (
                "{pipeline_input_name: a, endpoint_input_name: A, default_value: \(literal)}",
                "input_mappings[0].default_value"
            ),
        ] {
            let yaml = "craft: {deployments: [{name: d, pipeline: p, input_mappings: [\(mapping)]}]}"
            #expect {
                _ = try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml")
            } throws: { error in
                guard let error = error as? ConfigError else { return false }
                return error.path == "craft.deployments[0].\(path)" && error.message.contains("not a finite number")
            }
        }
        let schedule = """
            pools: [{name: demo, transport: inprocess}]
            routes: [{namespace: a, pool: demo}]
            schedules: [{name: s, cron: "* * * * *", route: {namespace: a, pipeline: p}, inputs: [{n: \(literal)}]}]
            """
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: schedule, source: "c.yaml")
        }
        #expect(error.mistakes.map(\.path) == ["schedules[0].inputs[0].n"], "\(error.description)")
        let quoted =
            "craft: {deployments: [{name: d, pipeline: p, input_mappings: [{pipeline_input_name: a, constant_value: '\(literal)'}]}]}"
        let d = try #require(try GatewayConfiguration.parse(yaml: quoted, source: "c.yaml").craft.deployments?.first)
        #expect(d.inputMappings?.first?.source == .constant(.string(literal)))
    }

    @Test("a constant nested as deep as a value may be (Value.maximumDepth) loads; one level deeper is refused")
    func nestingDepth() throws {
        func yaml(_ depth: Int) -> String {
            let constant = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            return "craft: {deployments: [{name: d, pipeline: p, input_mappings: "
                + "[{pipeline_input_name: a, constant_value: \(constant)}]}]}"
        }
        let d = try #require(
            try GatewayConfiguration.parse(yaml: yaml(Value.maximumDepth), source: "c.yaml").craft.deployments?.first)
        guard case .constant(var value)? = d.inputMappings?.first?.source else {
            Issue.record("no constant")
            return
        }
        var depth = 0
        while case .list(let items) = value {
            depth += 1
            value = items.first ?? .null
        }
        #expect(depth == Value.maximumDepth)
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: yaml(Value.maximumDepth + 1), source: "c.yaml")
        }
        #expect(error.message.contains("deeper than \(Value.maximumDepth) levels"), "\(error)")
    }

    @Test("bounds are inclusive: the shortest and longest accepted values parse")
    func edges() throws {
        var craft = try GatewayConfiguration.parse(
            yaml: "craft: {long_poll_wait: 1ms, max_io_bytes: 1, access_token_lifetime: 121s}", source: "e.yaml"
        ).craft
        #expect(craft.longPollWait == .milliseconds(1))
        #expect(craft.maxIOBytes == 1)
        #expect(craft.accessTokenLifetime == .seconds(121))
        // store.max_wait (60 s by default) bounds the wait: equal to it is fine.
        craft = try GatewayConfiguration.parse(yaml: "craft: {long_poll_wait: 60s}", source: "e.yaml").craft
        #expect(craft.longPollWait == .seconds(60))
        craft = try GatewayConfiguration.parse(
            yaml: "store: {max_wait: 600s}\ncraft: {long_poll_wait: 600s}", source: "e.yaml"
        ).craft
        #expect(craft.longPollWait == .seconds(600))
        // An empty deployments list is explicit: no deployment at all (not the implicit ones).
        craft = try GatewayConfiguration.parse(yaml: "craft: {deployments: []}", source: "e.yaml").craft
        #expect(craft.deployment(named: "echo") == nil)
    }

    @Test(
        "invalid craft keys are errors naming the key",
        arguments: [
            ("craft: {namespce: x}", "craft.namespce"),
            ("craft: {long_poll_wait: 0s}", "craft.long_poll_wait"),
            ("store: {max_wait: 1h}\ncraft: {long_poll_wait: 601s}", "craft.long_poll_wait"),
            ("craft: {long_poll_wait: 61s}", "craft.long_poll_wait"),
            ("store: {max_wait: 10s}\ncraft: {long_poll_wait: 11s}", "craft.long_poll_wait"),
            ("craft: {max_io_bytes: 0}", "craft.max_io_bytes"),
            ("craft: {access_token_lifetime: 120s}", "craft.access_token_lifetime"),
            (
                "craft: {pipelines: [{name: p, inputs: [{name: a, data_type: blob}]}]}",
                "craft.pipelines[0].inputs[0].data_type"
            ),
            ("craft: {deployments: [{name: d}]}", "craft.deployments[0].pipeline"),
            (
                "craft: {deployments: [{name: d, pipeline: p, execution_rule: cron}]}",
                "craft.deployments[0].execution_rule"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, execution_rule: periodic}]}",
                "craft.deployments[0].schedule"
            ),
            ("craft: {deployments: [{name: d, pipeline: p, tokens: [nobody]}]}", "craft.deployments[0].tokens[0]"),
            (
                "craft: {deployments: [{name: d, pipeline: p, endpoint_url_path: v1}]}",
                "craft.deployments[0].endpoint_url_path"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p}, {name: e, pipeline: p, endpoint_url_path: d}]}",
                "craft.deployments[1].endpoint_url_path"
            ),
            // Dot segments: clients remove them before sending (review 59, F7).
            (
                "craft: {deployments: [{name: d, pipeline: p, endpoint_url_path: .}]}",
                "craft.deployments[0].endpoint_url_path"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, endpoint_url_path: ..}]}",
                "craft.deployments[0].endpoint_url_path"
            ),
            // Two pipeline outputs into one endpoint output (review 59, F2).
            (
                "craft: {deployments: [{name: d, pipeline: p, output_mappings: [{pipeline_output_name: a, endpoint_output_name: x}, {pipeline_output_name: b, endpoint_output_name: x}]}]}",
                "craft.deployments[0].output_mappings[1]"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, input_mappings: [{pipeline_input_name: a}]}]}",
                "craft.deployments[0].input_mappings[0]"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, input_mappings: [{pipeline_input_name: a, constant_value: 1, is_required: true}]}]}",
                "craft.deployments[0].input_mappings[0]"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, output_mappings: [{pipeline_output_name: a, is_null: false}]}]}",
                "craft.deployments[0].output_mappings[0].is_null"
            ),
            // An output mapped onto the name of a declared output no mapping mentions (diff review 59, M4).
            (
                "craft: {pipelines: [{name: p, outputs: [{name: a, data_type: json}, {name: b, data_type: json}]}], deployments: [{name: d, pipeline: p, output_mappings: [{pipeline_output_name: a, endpoint_output_name: b}]}]}",
                "craft.deployments[0].output_mappings[0].endpoint_output_name"
            ),
            // Names craft-ai-sdk puts into URL paths unencoded and so cannot read back (review 59, F8).
            (
                "craft: {pipelines: [{name: p, inputs: [{name: a/b, data_type: file}]}]}",
                "craft.pipelines[0].inputs[0].name"
            ),
            (
                "craft: {pipelines: [{name: p, outputs: [{name: \"a?b\", data_type: json}]}]}",
                "craft.pipelines[0].outputs[0].name"
            ),
            (
                "craft: {pipelines: [{name: p, outputs: [{name: .., data_type: json}]}]}",
                "craft.pipelines[0].outputs[0].name"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, input_mappings: [{pipeline_input_name: a, endpoint_input_name: \"a#b\"}]}]}",
                "craft.deployments[0].input_mappings[0].endpoint_input_name"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, output_mappings: [{pipeline_output_name: a, endpoint_output_name: \"%\"}]}]}",
                "craft.deployments[0].output_mappings[0].endpoint_output_name"
            ),
            (
                "craft: {deployments: [{name: d, pipeline: p, output_mappings: [{pipeline_output_name: a, endpoint_output_name: .}]}]}",
                "craft.deployments[0].output_mappings[0].endpoint_output_name"
            ),
        ])
    func invalid(yaml: String, path: String) {
        do {
            _ = try GatewayConfiguration.parse(yaml: yaml, source: "bad.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.path == path, "\(error)")
        }
    }

    /// Diff review 59, M4 and review 59, F8: what the two checks still accept.
    @Test("outputs mapped onto each other's names, names with spaces or other scripts, and runner names renamed load")
    func namesThatLoad() throws {
        let yaml = """
            craft:
              pipelines:
                - {name: p, inputs: [{name: my file, data_type: file}], outputs: [{name: a, data_type: json}, {name: b, data_type: json}, {name: é名, data_type: json}]}
              deployments:
                - name: d
                  pipeline: p
                  input_mappings:
                    - {pipeline_input_name: "x/y", endpoint_input_name: xy}
                  output_mappings:
                    - {pipeline_output_name: a, endpoint_output_name: b}
                    - {pipeline_output_name: b, endpoint_output_name: a}
                    - {pipeline_output_name: "c/d", endpoint_output_name: cd}
            """
        let craft = try GatewayConfiguration.parse(yaml: yaml, source: "ok.yaml").craft
        #expect(craft.deployments?.first?.outputMappings?.count == 3)
        #expect(craft.pipelines.first?.inputs.first?.name == "my file")
    }

    @Test("scripts/example-config.yaml parses, craft section included")
    func exampleConfig() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try GatewayConfiguration.load(
            path: root.appendingPathComponent("scripts/example-config.yaml").path)
        #expect(config.craft.deployments?.first?.name == "shout")
        #expect(config.craft.deployments?.first?.inputMappings?.count == 2)
        let periodic = config.craft.deployment(named: "nightly-shout")
        #expect(periodic?.executionRule == .periodic && periodic?.schedule?.name == "craft.nightly-shout")
    }
}
