import Yams

extension GatewayConfiguration {
    static let storeKeys = [
        "kind", "url", "table_prefix", "lease", "max_attempts", "retry_backoff", "max_retry_backoff", "retention",
        "workers", "poll_interval", "max_wait", "health_interval", "max_connections", "password_file",
    ]

    static func readStore(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError) -> StoreConfiguration {
        let m = try reader.mapping(node, at: "store", allowed: storeKeys)
        var store = StoreConfiguration.defaults
        if let n = m["kind"] { store.kind = try reader.choice(n, at: m.path("kind"), as: StoreConfiguration.Kind.self) }
        if let n = m["url"] {
            let url = try reader.nonEmptyString(n, at: m.path("url"))
            guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"), url.contains("@") else {
                throw reader.error(m.path("url"), n, "expected postgres://user[:password]@host[:port][/database]")
            }
            store.url = url
        }
        switch (store.kind, m["url"]) {
        case (.postgres, nil):
            throw reader.error(m.path("url"), m.node, "missing (required with kind: postgres)")
        case (.sqlite, let n?):
            throw reader.error(
                m.path("url"), n, "only a postgres store takes a url (the sqlite store lives in data_dir)")
        default:
            break
        }
        if let n = m["table_prefix"] {
            let prefix = try reader.nonEmptyString(n, at: m.path("table_prefix"))
            guard
                prefix.utf8.allSatisfy({ b in
                    (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
                        || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                        || b == UInt8(ascii: "_")
                }), prefix.utf8.count <= 40
            else {
                throw reader.error(
                    m.path("table_prefix"), n, "\"\(prefix)\" may only use a-z, 0-9 and \"_\" (at most 40)")
            }
            store.tablePrefix = prefix
        }
        if let n = m["lease"] {
            store.lease = try reader.duration(n, at: m.path("lease"), minimum: StoreConfiguration.minimumLease)
        }
        if let n = m["max_attempts"] {
            store.maxAttempts = try reader.int(n, at: m.path("max_attempts"), in: StoreConfiguration.maxAttemptsRange)
        }
        if let n = m["retry_backoff"] {
            store.retryBackoff = try reader.duration(n, at: m.path("retry_backoff"), minimum: .zero)
        }
        if let n = m["max_retry_backoff"] {
            store.maxRetryBackoff = try reader.duration(n, at: m.path("max_retry_backoff"), minimum: .zero)
        }
        if store.maxRetryBackoff < store.retryBackoff {
            throw reader.error(
                m.path("max_retry_backoff"), m["max_retry_backoff"] ?? m.node,
                "\(ConfigUnits.format(store.maxRetryBackoff)) is shorter than retry_backoff "
                    + "(\(ConfigUnits.format(store.retryBackoff)))"
            )
        }
        if let n = m["retention"] {
            store.retention = try reader.duration(n, at: m.path("retention"), minimum: .seconds(1))
        }
        if let n = m["workers"] {
            store.workers = try reader.int(n, at: m.path("workers"), in: StoreConfiguration.workersRange)
        }
        if let n = m["password_file"] {
            guard store.kind == .postgres else {
                throw reader.error(m.path("password_file"), n, "only a postgres store takes a password_file")
            }
            // A password in the URL too would leave which one counts to chance.
            if let url = store.url, let at = url.lastIndex(of: "@"),
                url[..<at].dropFirst("postgres://".count).contains(":")
            {
                throw reader.error(
                    m.path("password_file"), n, "store.url has a password already: give it in one place")
            }
            let read = try reader.secretFile(n, at: m.path("password_file"))
            (store.passwordFile, store.password) = (read.path, read.secret)
        }
        if let n = m["max_connections"] {
            guard store.kind == .postgres else {
                throw reader.error(
                    m.path("max_connections"), n, "only a postgres store takes max_connections (its pool's size)")
            }
            store.maxConnections = try reader.int(
                n, at: m.path("max_connections"), in: StoreConfiguration.maxConnectionsRange)
        }
        if let n = m["poll_interval"] {
            store.pollInterval = try reader.duration(n, at: m.path("poll_interval"), minimum: .milliseconds(10))
        }
        if let n = m["max_wait"] { store.maxWait = try reader.duration(n, at: m.path("max_wait"), minimum: .zero) }
        if let n = m["health_interval"] {
            let range = StoreConfiguration.healthIntervalRange
            store.healthInterval = try reader.duration(n, at: m.path("health_interval"), minimum: range.lowerBound)
            if store.healthInterval > range.upperBound {
                throw reader.error(m.path("health_interval"), n, "must be at most 2s, got \(store.healthInterval)")
            }
        }
        return store
    }
}

extension GatewayConfiguration {
    static func readWebhook(_ node: Node, at path: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> WebhookConfiguration
    {
        let m = try reader.mapping(
            node, at: path, allowed: ["url", "secret", "secret_file", "max_attempts", "backoff", "timeout", "ca_file"])
        guard let urlNode = m["url"] else { throw reader.error(m.path("url"), m.node, "missing (required)") }
        let url = try reader.nonEmptyString(urlNode, at: m.path("url"))
        let lowercased = url.lowercased()
        guard lowercased.hasPrefix("http://") || lowercased.hasPrefix("https://") else {
            throw reader.error(m.path("url"), urlNode, "expected an http:// or https:// URL")
        }
        let endpoint: BackendEndpoint
        do {
            endpoint = try BackendEndpoint(parsing: url)
        } catch {
            throw reader.error(m.path("url"), urlNode, "bad URL \"\(url)\": \(error.message)")
        }
        var webhook = WebhookConfiguration(
            url: url,
            endpoint: BackendEndpoint(host: endpoint.host, port: endpoint.port, scheme: endpoint.scheme),
            path: endpoint.basePath.isEmpty ? "/" : endpoint.basePath
        )
        if let n = m["ca_file"] {
            // The file itself is read by ConfigFile.load (start, check-config, reload) and at each delivery.
            guard endpoint.scheme == .https else {
                throw reader.error(
                    m.path("ca_file"), n, "needs an https:// url (a CA verifies the receiver's certificate)")
            }
            webhook.caFile = try reader.nonEmptyString(n, at: m.path("ca_file"))
        }
        if let n = m["secret"] { webhook.secret = try reader.nonEmptyString(n, at: m.path("secret")) }
        if let n = m["secret_file"] {
            guard m["secret"] == nil else {
                throw reader.error(m.path("secret_file"), n, "give secret or secret_file, not both")
            }
            let read = try reader.secretFile(n, at: m.path("secret_file"))
            (webhook.secretFile, webhook.secret) = (read.path, read.secret)
        }
        if let n = m["max_attempts"] {
            webhook.maxAttempts = try reader.int(
                n, at: m.path("max_attempts"), in: WebhookConfiguration.maxAttemptsRange)
        }
        if let n = m["backoff"] { webhook.backoff = try reader.duration(n, at: m.path("backoff"), minimum: .zero) }
        if let n = m["timeout"] {
            webhook.timeout = try reader.duration(n, at: m.path("timeout"), minimum: .milliseconds(1))
        }
        return webhook
    }
}
