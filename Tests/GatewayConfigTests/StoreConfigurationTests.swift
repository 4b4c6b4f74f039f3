import GatewayConfig
import Testing

@Suite("store: configuration")
struct StoreConfigurationTests {
    @Test("no store section is SQLite under data_dir with the documented defaults")
    func defaults() throws {
        let config = try GatewayConfiguration.parse(yaml: "{}", source: "t.yaml")
        #expect(config.store == StoreConfiguration.defaults)
        #expect(config.store.kind == .sqlite)
        #expect(config.store.lease == .seconds(10))
        #expect(config.store.maxAttempts == 3)
        #expect(config.store.retention == .seconds(7 * 24 * 3600))
    }

    @Test("a full postgres section parses into the values it states")
    func full() throws {
        let yaml = """
            store:
              kind: postgres
              url: postgres://tg:pw@127.0.0.1:5433/ops
              table_prefix: gw_
              lease: 2s
              max_attempts: 5
              retry_backoff: 250ms
              max_retry_backoff: 10s
              retention: 24h
              workers: 8
              poll_interval: 100ms
              max_wait: 30s
              health_interval: 500ms
            """
        let store = try GatewayConfiguration.parse(yaml: yaml, source: "t.yaml").store
        #expect(
            store
                == StoreConfiguration(
                    kind: .postgres, url: "postgres://tg:pw@127.0.0.1:5433/ops", tablePrefix: "gw_",
                    lease: .seconds(2), maxAttempts: 5, retryBackoff: .milliseconds(250),
                    maxRetryBackoff: .seconds(10), retention: .seconds(86400), workers: 8,
                    pollInterval: .milliseconds(100), maxWait: .seconds(30), healthInterval: .milliseconds(500)
                ))
    }

    @Test(
        "bad store settings name their path",
        arguments: [
            ("store: {kind: mysql}", "t.yaml: store.kind: unknown value \"mysql\"; expected sqlite | postgres"),
            ("store: {kind: postgres}", "t.yaml: store.url: missing (required with kind: postgres)"),
            ("store: {url: \"postgres://u@h/d\"}", "t.yaml: store.url: only a postgres store takes a url"),
            ("store: {kind: postgres, url: \"mysql://u@h\"}", "t.yaml: store.url: expected postgres://"),
            ("store: {lease: 99ms}", "t.yaml: store.lease: 99ms is too short: must be at least 100ms"),
            ("store: {max_attempts: 0}", "t.yaml: store.max_attempts: 0 is out of range 1...100"),
            ("store: {max_attempts: 101}", "t.yaml: store.max_attempts: 101 is out of range 1...100"),
            ("store: {workers: 0}", "t.yaml: store.workers: 0 is out of range 1...10000"),
            ("store: {retry_backoff: 5s, max_retry_backoff: 1s}", "t.yaml: store.max_retry_backoff: 1s is shorter"),
            ("store: {table_prefix: Bad-Prefix}", "t.yaml: store.table_prefix: \"Bad-Prefix\" may only use"),
            ("store: {leese: 1s}", "t.yaml: store.leese: unknown key (did you mean \"lease\"?)"),
            (
                "store: {health_interval: 49ms}",
                "t.yaml: store.health_interval: 49ms is too short: must be at least 50ms"
            ),
            ("store: {health_interval: 2001ms}", "t.yaml: store.health_interval: must be at most 2s"),
        ])
    func errors(yaml: String, expected: String) {
        do {
            _ = try GatewayConfiguration.parse(yaml: yaml, source: "t.yaml")
            Issue.record("accepted \(yaml)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }

    @Test(
        "limits at the edge are accepted",
        arguments: [("max_attempts", "1"), ("max_attempts", "100"), ("lease", "100ms"), ("workers", "10000")])
    func edges(key: String, value: String) throws {
        _ = try GatewayConfiguration.parse(yaml: "store: {\(key): \(value)}", source: "t.yaml")
    }

    @Test("backoff doubles per attempt and stops at the cap")
    func backoff() {
        let store = StoreConfiguration(retryBackoff: .seconds(1), maxRetryBackoff: .seconds(5))
        #expect(store.backoff(afterAttempt: 1) == .seconds(1))
        #expect(store.backoff(afterAttempt: 2) == .seconds(2))
        #expect(store.backoff(afterAttempt: 3) == .seconds(4))
        #expect(store.backoff(afterAttempt: 4) == .seconds(5))
        #expect(store.backoff(afterAttempt: 50) == .seconds(5))
    }
}

@Suite("routes[i].webhook configuration")
struct WebhookConfigurationTests {
    static let pools = "pools: [{name: demo, transport: inprocess}]\n"

    @Test("a webhook parses into its endpoint, path, secret and retry settings")
    func parses() throws {
        let yaml =
            Self.pools + """
                routes:
                  - namespace: a
                    pool: demo
                    webhook: {url: "http://127.0.0.1:9000/hooks/x", secret: k, max_attempts: 3, backoff: 2s, timeout: 5s}
                """
        let webhook = try #require(try GatewayConfiguration.parse(yaml: yaml, source: "t.yaml").routes[0].webhook)
        #expect(webhook.endpoint == BackendEndpoint(host: "127.0.0.1", port: 9000, scheme: .http))
        #expect(webhook.path == "/hooks/x")
        #expect(webhook.requestURL == "http://127.0.0.1:9000/hooks/x")
        #expect(webhook.secret == "k")
        #expect(webhook.maxAttempts == 3)
        #expect(webhook.backoff == .seconds(2))
        #expect(webhook.timeout == .seconds(5))
        #expect(webhook.caFile == nil)
    }

    @Test("an https webhook: port 443 unless given, its ca_file, an IPv6 host in brackets")
    func https() throws {
        let yaml =
            Self.pools + """
                routes:
                  - {namespace: a, pool: demo, webhook: {url: "https://hooks.example/done", ca_file: /etc/ca.pem}}
                  - {namespace: b, pool: demo, webhook: {url: "HTTPS://[::1]:8443"}}
                """
        let routes = try GatewayConfiguration.parse(yaml: yaml, source: "t.yaml").routes
        let first = try #require(routes[0].webhook)
        #expect(first.requestURL == "https://hooks.example:443/done")
        #expect(first.caFile == "/etc/ca.pem")
        let second = try #require(routes[1].webhook)
        #expect(second.requestURL == "https://[::1]:8443/")
        #expect(second.caFile == nil)
    }

    @Test(
        "bad webhooks name their path",
        arguments: [
            ("{url: \"ftp://x:1/h\"}", "t.yaml: routes[0].webhook.url: expected an http:// or https:// URL"),
            (
                "{url: \"http://x:1/h\", ca_file: /ca.pem}",
                "t.yaml: routes[0].webhook.ca_file: needs an https:// url"
            ),
            ("{url: \"https://x:1/h\", ca_file: \"\"}", "t.yaml: routes[0].webhook.ca_file:"),
            ("{secret: k}", "t.yaml: routes[0].webhook.url: missing (required)"),
            ("{url: \"http://x:1/\", max_attempts: 0}", "t.yaml: routes[0].webhook.max_attempts: 0 is out of range"),
            ("{url: \"http://x:1/\", retries: 2}", "t.yaml: routes[0].webhook.retries: unknown key"),
        ])
    func errors(webhook: String, expected: String) {
        let yaml = Self.pools + "routes:\n  - {namespace: a, pool: demo, webhook: \(webhook)}\n"
        do {
            _ = try GatewayConfiguration.parse(yaml: yaml, source: "t.yaml")
            Issue.record("accepted \(webhook)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }
}
