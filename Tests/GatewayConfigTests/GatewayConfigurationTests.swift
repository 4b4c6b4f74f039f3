import GatewayConfig
import Testing

@Suite("GatewayConfiguration loading")
struct GatewayConfigurationTests {
    static let fullFile = """
        listen: "[::1]:9090"
        data_dir: /var/lib/tg
        auth: tokens
        tokens:
          - {name: alice, token: s3cret}
          - name: bob
            token: 0123
        limits:
          max_body_bytes: 512KiB
          max_batch: 8
          max_header_bytes: 32768
          max_depth: 16
          max_json_members: 5000
          max_concurrent_streams: 50
        timeouts:
          request: 1m30s
          idle: 500ms
          shutdown_grace: 0
        pools:
          - name: demo
            transport: inprocess
          - name: gpu
            transport: grpc
            endpoints: ["127.0.0.1:9000", "http://[::1]:9001"]
            connect_timeout: 250ms
            request_timeout: 2m
            idle_timeout: 90s
            max_concurrency: 4
            max_queue: 0
          - name: web
            transport: http
            endpoints: ["http://runner.internal:8000/api/"]
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}
          - {namespace: acme, pipeline: chat, release: v2, pool: gpu}
          - {namespace: "*", pool: web}
        """

    @Test(
        "an empty or comment-only document is refused (a truncated file)",
        arguments: ["", "\n\n", "# all gone\n", "---\n"])
    func emptyDocumentRefused(yaml: String) throws {
        let error = #expect(throws: ConfigError.self) { try GatewayConfiguration.parse(yaml: yaml, source: "e.yaml") }
        #expect(error?.description.hasPrefix("e.yaml: the file is empty") == true, "\(String(describing: error))")
    }

    @Test("outlier detection and active health check keys parse; without them: detection on, no health check")
    func poolResilienceKeys() throws {
        let yaml = """
            pools:
              - name: web
                transport: http
                endpoints: ["127.0.0.1:9000"]
                outlier_detection: {consecutive_failures: 0, base_ejection: 2s, max_ejection: 10s, max_ejected_percent: 30}
                health_check: {path: /ready, interval: 2s, timeout: 300ms, healthy_threshold: 1, unhealthy_threshold: 4}
              - {name: plain, transport: grpc, endpoints: ["127.0.0.1:9001"], health_check: {}}
            """
        let config = try GatewayConfiguration.parse(yaml: yaml, source: "r.yaml")
        let web = config.pools[0]
        #expect(web.maxAsyncQueued == nil, "no async queue bound unless set")
        let bounded = try GatewayConfiguration.parse(
            yaml: "pools: [{name: a, transport: inprocess, max_async_queued: 1}]", source: "q.yaml")
        #expect(bounded.pools[0].maxAsyncQueued == 1)
        #expect(web.outlierConsecutiveFailures == 0)
        #expect(web.outlierBaseEjection == .seconds(2) && web.outlierMaxEjection == .seconds(10))
        #expect(web.outlierMaxEjectedPercent == 30)
        var check = PoolConfiguration.HealthCheck()
        check.path = "/ready"
        check.interval = .seconds(2)
        check.timeout = .milliseconds(300)
        check.healthyThreshold = 1
        check.unhealthyThreshold = 4
        #expect(web.healthCheck == check)
        let plain = config.pools[1]
        #expect(plain.healthCheck == PoolConfiguration.HealthCheck())
        #expect(plain.outlierConsecutiveFailures == 3 && plain.outlierMaxEjection == .seconds(5))
        #expect(PoolConfiguration(name: "x", transport: .grpc).healthCheck == nil)
    }

    @Test("retry keys parse at their edges; without them: 3 tries under a 20 % budget with a floor of 3")
    func retryKeys() throws {
        let yaml = """
            pools:
              - {name: a, transport: inprocess, retry: {max_tries: 1, budget_percent: 0, min_retry_concurrency: 0}}
              - {name: b, transport: inprocess, retry: {max_tries: 10, budget_percent: 100}}
              - {name: c, transport: http, endpoints: ["h:1"], health_check: {interval: 1s, timeout: 1s}}
              - {name: d, transport: inprocess}
            """
        let pools = try GatewayConfiguration.parse(yaml: yaml, source: "r.yaml").pools
        #expect(pools[0].retryMaxTries == 1 && pools[0].retryBudgetPercent == 0 && pools[0].retryMinConcurrency == 0)
        #expect(pools[1].retryMaxTries == 10 && pools[1].retryBudgetPercent == 100 && pools[1].retryMinConcurrency == 3)
        #expect(pools[2].healthCheck?.timeout == .seconds(1))
        #expect(pools[3].retryMaxTries == 3 && pools[3].retryBudgetPercent == 20 && pools[3].retryMinConcurrency == 3)
    }

    @Test("a full file parses into the values it states")
    func fullFileParses() throws {
        let config = try GatewayConfiguration.parse(yaml: Self.fullFile, source: "full.yaml")
        #expect(config.source == "full.yaml")
        #expect(config.listenHost == "::1")
        #expect(config.listenPort == 9090)
        #expect(config.listen.description == "[::1]:9090")
        #expect(config.dataDir == "/var/lib/tg")
        #expect(config.auth == .tokens)
        #expect(
            config.tokens == [TokenConfiguration(name: "alice", token: "s3cret"), .init(name: "bob", token: "0123")]
        )
        #expect(config.authRequired)
        #expect(
            config.limits
                == LimitsConfiguration(
                    maxBodyBytes: 512 * 1024,
                    // Not in the file: the 4 MiB default follows the smaller body cap down.
                    maxDecompressedBytes: 512 * 1024,
                    maxBatch: 8,
                    maxHeaderBytes: 32768,
                    maxDepth: 16,
                    maxJSONMembers: 5000,
                    maxConcurrentStreams: 50
                )
        )
        #expect(
            config.timeouts
                == TimeoutsConfiguration(request: .seconds(90), idle: .milliseconds(500), shutdownGrace: .zero)
        )
        #expect(config.pools.map(\.name) == ["demo", "gpu", "web"])
        #expect(config.pools[0] == PoolConfiguration(name: "demo", transport: .inprocess))
        var gpu = PoolConfiguration(
            name: "gpu",
            transport: .grpc,
            endpoints: [
                BackendEndpoint(host: "127.0.0.1", port: 9000),
                BackendEndpoint(host: "::1", port: 9001, scheme: .http),
            ],
            connectTimeout: .milliseconds(250),
            requestTimeout: .seconds(120),
            maxConcurrency: 4,
            maxQueue: 0
        )
        gpu.idleTimeout = .seconds(90)
        #expect(config.pools[1] == gpu)
        #expect(
            config.pools[2].endpoints == [
                BackendEndpoint(host: "runner.internal", port: 8000, basePath: "/api", scheme: .http)
            ])
        #expect(config.pools[2].transport == .http)
        #expect(config.pools[1].idleTimeout == .seconds(90))
        #expect(
            config.routes == [
                RouteConfiguration(namespace: "demo", pipeline: "*", pool: "demo"),
                RouteConfiguration(namespace: "acme", pipeline: "chat", release: "v2", pool: "gpu"),
                RouteConfiguration(namespace: "*", pipeline: "*", pool: "web"),
            ]
        )
        #expect(config.pool(named: "gpu")?.maxConcurrency == 4)
    }

    @Test("the embedded default is loopback, no tokens, and the demo pool serving demo/*")
    func embeddedDefaults() {
        let d = GatewayConfiguration.defaults
        #expect(d.listen == ListenAddress(host: "127.0.0.1", port: 8080))
        #expect(d.dataDir == "./.trigger-gateway")
        #expect(d.auth == .tokens)
        #expect(d.tokens.isEmpty)
        #expect(!d.authRequired)
        #expect(d.pools == [PoolConfiguration(name: "demo", transport: .inprocess)])
        #expect(d.routes == [RouteConfiguration(namespace: "demo", pipeline: "*", release: nil, pool: "demo")])
        #expect(d.limits.maxBodyBytes == 33_554_432)
        #expect(d.limits.maxBatch == 32)
        #expect(d.limits.maxHeaderBytes == 16384)
        #expect(d.limits.maxDepth == 64)
        #expect(d.limits.maxJSONMembers == 100_000)
        #expect(d.limits.maxConcurrentStreams == 100)
        #expect(
            d.timeouts == TimeoutsConfiguration(request: .seconds(60), idle: .seconds(60), shutdownGrace: .seconds(10))
        )
        #expect(d.pools[0].connectTimeout == .seconds(2))
        #expect(d.pools[0].requestTimeout == .seconds(60))
        #expect(d.pools[0].idleTimeout == .seconds(60), "nginx's keepalive_timeout, Envoy's idle_timeout")
        #expect(d.pools[0].maxConcurrency == 256)
        #expect(d.pools[0].maxQueue == 1024)
        #expect(throws: Never.self) { try d.validateListenPolicy() }
    }

    @Test("the slow-client timeouts and buffer ceilings default as documented and load from their keys")
    func slowClientSettings() throws {
        let d = GatewayConfiguration.defaults
        #expect(d.timeouts.preface == .seconds(10))
        #expect(d.timeouts.requestHeader == .seconds(30))
        #expect(d.timeouts.bodyProgress == .seconds(30))
        #expect(d.timeouts.writeProgress == .seconds(30))
        #expect(d.limits.maxConnections == 4096)
        // Unset: no per-peer cap (see LimitsConfiguration.maxConnectionsPerPeer for why).
        #expect(d.limits.maxConnectionsPerPeer == 0)
        #expect(d.limits.streamBufferBytes == 256 << 10)
        #expect(d.limits.connectionBufferBytes == 1 << 20)
        let config = try GatewayConfiguration.parse(
            yaml: """
                limits: {max_connections: 10, stream_buffer_bytes: 64KiB, connection_buffer_bytes: 2MiB}
                timeouts: {preface: 200ms, request_header: 1s, body_progress: 2s, write_progress: 3s}
                """,
            source: "c.yaml"
        )
        #expect(config.limits.maxConnections == 10)
        #expect(config.limits.streamBufferBytes == 64 << 10)
        #expect(config.limits.connectionBufferBytes == 2 << 20)
        #expect(config.timeouts.preface == .milliseconds(200))
        #expect(config.timeouts.requestHeader == .seconds(1))
        #expect(config.timeouts.bodyProgress == .seconds(2))
        #expect(config.timeouts.writeProgress == .seconds(3))
    }

    @Test("`{}` (an explicit empty mapping) is the embedded default")
    func emptyMappingIsDefault() throws {
        var expected = GatewayConfiguration.defaults
        expected.source = "empty.yaml"
        #expect(try GatewayConfiguration.parse(yaml: "{}", source: "empty.yaml") == expected)
    }

    @Test("listen_reuse_port: off by default, `true` turns it on, a non-boolean is refused at its key")
    func listenReusePort() throws {
        #expect(GatewayConfiguration.defaults.listenReusePort == false)
        #expect(try GatewayConfiguration.parse(yaml: "listen_reuse_port: true\n", source: "c.yaml").listenReusePort)
        let error = #expect(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: "listen_reuse_port: often\n", source: "c.yaml")
        }
        #expect(error?.path == "listen_reuse_port", "\(String(describing: error))")
    }

    @Test("empty sections (`limits:` with nothing under it) keep their defaults")
    func emptySections() throws {
        let config = try GatewayConfiguration.parse(yaml: "limits:\ntimeouts: {}\n", source: "c.yaml")
        #expect(config.limits == .defaults)
        #expect(config.timeouts == .defaults)
        #expect(config.pools == GatewayConfiguration.defaults.pools)
    }

    @Test("a file that lists pools but no routes gets no default route")
    func poolsWithoutRoutes() throws {
        let config = try GatewayConfiguration.parse(
            yaml: "pools:\n  - {name: gpu, transport: http, endpoints: [\"10.0.0.1:80\"]}\n",
            source: "c.yaml"
        )
        #expect(config.pools.map(\.name) == ["gpu"])
        #expect(config.routes.isEmpty)
    }

    @Test("a file that lists routes but no pools does not get the demo pool, and says so")
    func routesWithoutPools() {
        let error = #expect(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: "routes:\n  - {namespace: acme, pool: demo}\n", source: "c.yaml")
        }
        #expect(error?.path == "routes[0].pool")
        #expect(error?.message.hasPrefix("unknown pool \"demo\" (this file lists routes but no pools") == true)
    }

    @Test("`release: \"*\"` means every release, and pipeline defaults to *")
    func releaseWildcard() throws {
        let config = try GatewayConfiguration.parse(
            yaml: "pools: [{name: p, transport: inprocess}]\nroutes: [{namespace: a, release: \"*\", pool: p}]\n",
            source: "c.yaml"
        )
        #expect(config.routes == [RouteConfiguration(namespace: "a", pipeline: "*", release: nil, pool: "p")])
    }

    @Test("the description is `<source>: <path>: <message>` and the line is kept apart")
    func errorDescription() {
        let yaml = """
            pools:
              - {name: demo, transport: inprocess}
            routes:
              - {namespace: a, pool: demo}
              - {namespace: b, pool: demo}
              - {namespace: c, pool: gpu}
            """
        let error = #expect(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: yaml, source: "config.yaml")
        }
        #expect(error?.description == "config.yaml: routes[2].pool: unknown pool \"gpu\"")
        #expect(error?.line == 6)
    }

    @Test("load(path:) reads a file and names it in errors")
    func loadFromFile() throws {
        let missing = #expect(throws: ConfigError.self) { try GatewayConfiguration.load(path: "/nonexistent/c.yaml") }
        #expect(missing?.source == "/nonexistent/c.yaml")
        #expect(missing?.path == "")
        #expect(missing?.message.hasPrefix("cannot read the file") == true)
    }

    @Test(
        "log: format, level and access parse; without them logfmt at info, access on; an unknown value is refused by its path"
    )
    func logKeys() throws {
        #expect(GatewayConfiguration.defaults.log == LogConfiguration(format: .logfmt, level: .info))
        let config = try GatewayConfiguration.parse(yaml: "log: {format: json, level: debug}", source: "log.yaml")
        #expect(config.log == LogConfiguration(format: .json, level: .debug))
        let format = #expect(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: "log: {format: text}", source: "bad.yaml")
        }
        #expect(format?.path == "log.format")
        let key = #expect(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: "log: {colour: true}", source: "bad.yaml")
        }
        #expect(key?.path == "log.colour")
        #expect(GatewayConfiguration.defaults.log.access, "the access log is on by default")
        // The PostgreSQL pool's size: the formula of workers, or store.max_connections.
        #expect(GatewayConfiguration.defaults.store.postgresPoolSize == 32, "64 workers / 2")
        let pooled = try GatewayConfiguration.parse(
            yaml: "store: {kind: postgres, url: \"postgres://u@h/d\", workers: 4, max_connections: 2}", source: "s.yaml"
        )
        #expect(pooled.store.postgresPoolSize == 2)
        #expect(
            try GatewayConfiguration.parse(yaml: "store: {workers: 4}", source: "s.yaml").store.postgresPoolSize == 4)
        let quiet = try GatewayConfiguration.parse(yaml: "log: {level: warning, access: false}", source: "log.yaml")
        #expect(quiet.log == LogConfiguration(format: .logfmt, level: .warning, access: false))
        let access = #expect(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: "log: {access: sometimes}", source: "bad.yaml")
        }
        #expect(access?.path == "log.access")
        let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let example = try GatewayConfiguration.load(path: "/\(path)/scripts/example-config.yaml")
        #expect(example.log == .defaults, "scripts/example-config.yaml shows the defaults")
    }
}

/// Review 10, findings 8 and 5: valid files that are likely not meant load with located warnings.
@Suite("GatewayConfiguration warnings: pools and no routes; SI size suffixes")
struct GatewayConfigurationWarningTests {
    @Test("pools and no routes (key absent or empty): one warning at routes; with a route, none")
    func poolsWithoutRoutes() throws {
        for file in [
            #"pools: [{name: a, transport: http, endpoints: ["127.0.0.1:9090"]}]"#,
            "pools: [{name: a, transport: inprocess}]\nroutes: []",
        ] {
            let config = try GatewayConfiguration.parse(yaml: file, source: "gw.yaml")
            #expect(config.routes.isEmpty)
            #expect(
                config.warnings.map(\.description)
                    == ["gw.yaml: routes: no routes: every trigger will be 404 (no route matches it)"], "\(file)")
        }
        let routed = try GatewayConfiguration.parse(
            yaml: "pools: [{name: a, transport: inprocess}]\nroutes: [{namespace: n, pool: a}]", source: "gw.yaml")
        #expect(routed.warnings.isEmpty)
        // The embedded default (no pools, no routes key) routes demo: nothing to warn of.
        #expect(try GatewayConfiguration.parse(yaml: "{}", source: "gw.yaml").warnings.isEmpty)
    }

    /// Review 59, F5: craft-ai-sdk appends an endpoint token to file URLs unencoded, so `&`, `#`, `%` break it.
    @Test("a token holding &, # or % is warned of at its path, naming the SDK; base64 and hex tokens are not")
    func tokenCharacters() throws {
        for (token, warned) in [
            ("we&ird-0123456789abc", true), ("hash#0123456789abcdef", true), ("pct%250123456789abc", true),
            ("ab+cd/ef==0123456789", false), ("0123456789abcdef0123", false),
        ] {
            let config = try GatewayConfiguration.parse(
                yaml: "tokens: [{name: a, token: \"\(token)\"}]", source: "gw.yaml")
            let warnings = config.warnings.map(\.description)
            #expect(
                warnings.contains { $0.hasPrefix("gw.yaml: tokens[0].token: holds &, # or %, which craft-ai-sdk") }
                    == warned, "\(token): \(warnings)")
            #expect(!warnings.contains { $0.contains(token) }, "the secret is never echoed: \(warnings)")
        }
    }

    /// Review 21, I2: a pool no route names (staged, or a typo in a route's pool) is said once, at the pool.
    @Test("a pool no route uses: one warning at pools[i] naming it; every pool routed: none")
    func poolNoRouteUses() throws {
        let file = """
            pools:
              - {name: a, transport: inprocess}
              - {name: gpu, transport: inprocess}
              - {name: c, transport: inprocess}
            routes: [{namespace: n, pool: a}, {namespace: m, pool: c}]
            """
        let config = try GatewayConfiguration.parse(yaml: file, source: "gw.yaml")
        #expect(config.warnings.map(\.description) == ["gw.yaml: pools[1]: pool \"gpu\": no route uses it"])
        let allRouted = """
            pools: [{name: a, transport: inprocess}, {name: gpu, transport: inprocess}]
            routes: [{namespace: n, pool: a}, {namespace: g, pool: gpu}]
            """
        #expect(try GatewayConfiguration.parse(yaml: allRouted, source: "gw.yaml").warnings.isEmpty)
    }

    @Test("an SI suffix on a byte size: loaded as powers of 1000, with a warning naming both readings")
    func siSizeSuffix() throws {
        let config = try GatewayConfiguration.parse(
            yaml: "limits: {max_body_bytes: 32MB, max_header_bytes: 64KiB, stream_buffer_bytes: 1048576}",
            source: "gw.yaml")
        #expect(config.limits.maxBodyBytes == 32_000_000)
        #expect(config.limits.maxHeaderBytes == 65_536)
        #expect(
            config.warnings.map(\.description) == [
                "gw.yaml: limits.max_body_bytes: 32MB is 32000000 bytes (an SI suffix: powers of 1000); "
                    + "the binary 32MiB would be 33554432"
            ])
        #expect(config.warnings.first?.line == 1)
        // Lower case and a space, as the grammar allows.
        let spaced = try GatewayConfiguration.parse(yaml: "limits: {max_body_bytes: 2 kb}", source: "f")
        #expect(spaced.limits.maxBodyBytes == 2_000)
        #expect(
            spaced.warnings.map(\.message) == [
                "2 kb is 2000 bytes (an SI suffix: powers of 1000); the binary 2 KiB would be 2048"
            ])
    }

    /// Review 27 I3: `token: short` was accepted without a word.
    @Test("a token under 16 characters is warned about by its path, never its value; 16 is not")
    func shortTokenWarned() throws {
        let short = String(repeating: "k", count: 15)
        let config = try GatewayConfiguration.parse(
            yaml: "tokens:\n  - {name: a, token: \(short)}\n  - {name: b, token: \(short)x}\n", source: "t.yaml")
        #expect(config.warnings.map(\.path) == ["tokens[0].token"])
        let text = config.warnings.map(\.description).joined()
        #expect(text.contains("shorter than 16 characters"), "\(text)")
        #expect(!text.contains(short), "the warning echoes the token: \(text)")
    }
}
