import GatewayConfig
import Testing

/// A file with several independent mistakes is refused with all of them at once, in file order, each with the
/// path and message it has alone; a mistake that makes a later check meaningless is reported once.
@Suite("Every mistake of a file")
struct ConfigMistakesTests {
    /// `pools` (its items 0 and 2 as given, 1 valid) and a valid route.
    static func poolsAndRoutes(pool0: String = "request_timeout: 0s", pool2: String = "carrier-pigeon") -> String {
        """
        pools:
          - {name: a, transport: http, endpoints: ["127.0.0.1:9000"], \(pool0)}
          - {name: b, transport: http, endpoints: ["127.0.0.1:9001"]}
          - {name: c, transport: \(pool2)}
        routes:
          - {namespace: n, pool: b}

        """
    }

    /// One file with five mistakes, in three sections (`limits`, `timeouts`, `log`) and two items of one list
    /// (`pools[0]`, `pools[2]`); the routes and the pool between are valid.
    static let file =
        "limits: {max_batch: many}\n" + poolsAndRoutes() + "timeouts: {idle: forever}\nlog: {level: chatty}\n"

    /// The same five, each in a file where it is the only mistake.
    static let alone = [
        "limits: {max_batch: many}\n",
        poolsAndRoutes(pool2: "inprocess"),
        poolsAndRoutes(pool0: "request_timeout: 1s"),
        "timeouts: {idle: forever}\n",
        "log: {level: chatty}\n",
    ]

    /// The one mistake `yaml` has alone.
    static func onlyMistake(_ yaml: String) throws -> ConfigError {
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml")
        }
        #expect(error.further == [], "\(error.description)")
        return error
    }

    @Test("mistakes in three sections and two items of one list: all five, in file order, each as it reads alone")
    func all() throws {
        let alone = try Self.alone.map(Self.onlyMistake)
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: Self.file, source: "c.yaml")
        }
        #expect(error.mistakes.count == 5, "\(error.description)")
        #expect(
            error.mistakes.map(\.path) == [
                "limits.max_batch", "pools[0].request_timeout", "pools[2].transport", "timeouts.idle", "log.level",
            ])
        // Each exactly as it is alone (the line aside: the pieces sit elsewhere in the joined file).
        #expect(error.mistakes.map(\.path) == alone.map(\.path))
        #expect(error.mistakes.map(\.message) == alone.map(\.message))
        #expect(error.mistakes.map(\.line) == [1, 3, 5, 8, 9])
        #expect(error.further.allSatisfy { $0.further.isEmpty })
        // One line each, `source: path: message`, then the count.
        #expect(error.lines == alone.map(\.description) + ["5 mistakes in c.yaml"])
        #expect(error.description == error.lines.joined(separator: "\n"))
        // The first is the one the file refused with before (path and message of `ConfigError` itself).
        #expect(error.path == "limits.max_batch" && error.message == alone[0].message)
    }

    @Test("top-level keys are independent sections: each unknown one is a mistake, and the others are read")
    func unknownTopLevelKeys() throws {
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(
                yaml: "lisen: 1\nlimits: {max_depth: 0}\n? [a]\n: 1\nlogg: {}\n", source: "c.yaml")
        }
        #expect(error.mistakes.map(\.path) == ["lisen", "limits.max_depth", "", "logg"], "\(error.description)")
        #expect(error.mistakes[2].message == "keys must be plain strings, got a list")
        #expect(error.mistakes[0].message.hasPrefix("unknown key (did you mean \"listen\"?)"))
    }

    @Test(
        "a mistake is reported once: what names a pool, route, token or limit that failed to read is not checked against it",
        arguments: [
            // A pool that failed to read; the route naming it is not also an "unknown pool".
            (
                "pools:\n  - {name: gpu, transport: http}\nroutes:\n  - {namespace: a, pool: gpu}\n",
                ["pools[0].endpoints"]
            ),
            // `pools:` that is not a list at all.
            ("pools: gpu\nroutes:\n  - {namespace: a, pool: gpu}\n", ["pools"]),
            // A misspelt `pools:` is an unknown key, not a cause of "unknown pool".
            ("pool:\n  - {name: gpu, transport: inprocess}\nroutes:\n  - {namespace: a, pool: gpu}\n", ["pool"]),
            // A route that failed to read; the schedule it would have served is not "no route serves".
            (
                """
                pools: [{name: demo, transport: inprocess}]
                routes: [{namespace: a, pipeline: "p*", pool: demo}]
                schedules: [{name: s, cron: "* * * * *", route: {namespace: a, pipeline: p}}]

                """,
                ["routes[0].pipeline"]
            ),
            // A token that failed to read; the deployment naming it is not "no token named".
            (
                """
                tokens: [{name: ci}]
                craft: {deployments: [{name: d, pipeline: p, tokens: [ci]}]}

                """,
                ["tokens[0].token"]
            ),
            // `limits` that failed (meant 64); a schedule's 33 inputs are not measured against the default 32.
            (
                """
                limits: {max_batch: 64x}
                pools: [{name: demo, transport: inprocess}]
                routes: [{namespace: a, pool: demo}]
                schedules: [{name: s, cron: "* * * * *", route: {namespace: a, pipeline: p}, inputs: [\(
                    Array(repeating: "{}", count: 33).joined(separator: ", "))]}]

                """,
                ["limits.max_batch"]
            ),
        ]
    )
    func dependentOnce(yaml: String, paths: [String]) throws {
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml")
        }
        #expect(error.mistakes.map(\.path) == paths, "\(error.description)")
    }

    @Test("independent mistakes next to a failed pool are still reported: a route naming a pool that read")
    func independentAfterFailedItem() throws {
        let yaml = """
            pools:
              - {name: a, transport: inprocess, max_queue: -1}
              - {name: b, transport: inprocess}
            routes:
              - {namespace: n, pipeline: p, pool: b}
              - {namespace: n, pipeline: p, pool: b}
              - {namespace: m, pool: b, releese: v1}

            """
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml")
        }
        #expect(error.mistakes.map(\.path) == ["pools[0].max_queue", "routes[1]", "routes[2].releese"], "\(error)")
        #expect(
            error.mistakes[1].message.hasPrefix("duplicate route (same namespace, pipeline and release as routes[0])"))
    }

    @Test("a YAML syntax error is one mistake: the parser stops there")
    func syntaxStops() throws {
        let error = try #require(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: "limits: {max_batch: many}\nlisten: [unclosed\n", source: "c.yaml")
        }
        #expect(error.further == [] && error.message.hasPrefix("invalid YAML"), "\(error)")
    }

    @Test("a valid file loads as before: no mistakes, the same values")
    func validLoads() throws {
        let yaml =
            "pools: [{name: b, transport: inprocess}]\nroutes: [{namespace: n, pool: b}]\nlimits: {max_batch: 7}\n"
        let config = try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml")
        #expect(config.pools.map(\.name) == ["b"] && config.routes.map(\.pool) == ["b"] && config.limits.maxBatch == 7)
        let mistakes = ConfigMistakes()
        #expect(try GatewayConfiguration.read(yaml: yaml, source: "c.yaml", recordingInto: mistakes) == config)
        #expect(mistakes.error() == nil)
    }

    @Test("any(under:) covers a key and what is inside it, not a key that merely starts the same")
    func under() {
        let mistakes = ConfigMistakes()
        mistakes.record(ConfigError(source: "c", path: "pools[1].name", message: "m"))
        mistakes.record(ConfigError(source: "c", path: "tokens_x", message: "m"))
        #expect(mistakes.any(under: "pools") && mistakes.any(under: "pools[1]") && mistakes.any(under: ""))
        #expect(!mistakes.any(under: "tokens") && !mistakes.any(under: "pool") && !mistakes.any(under: "routes"))
    }
}
