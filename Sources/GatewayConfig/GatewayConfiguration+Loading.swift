import Foundation
import Yams

extension GatewayConfiguration {
    /// Reads and validates a config file. Errors name the file as given (`config.yaml: routes[2].pool: …`).
    package static func load(path: String) throws(ConfigError) -> GatewayConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? "\(error)"
            throw ConfigError(source: path, path: "", message: "cannot read the file: \(reason)")
        }
        return try parse(yaml: text, source: path)
    }

    /// Parses and validates YAML text. Listen policy is not checked here (`--listen` may still change the
    /// address): call `validateListenPolicy()` afterwards.
    ///
    /// Throws every independent mistake of the file at once (`ConfigError.further`; see `ConfigMistakes`);
    /// a YAML syntax error, an empty file or a document that is not a mapping is one mistake alone.
    package static func parse(yaml: String, source: String) throws(ConfigError) -> GatewayConfiguration {
        let mistakes = ConfigMistakes()
        let config = try read(yaml: yaml, source: source, recordingInto: mistakes)
        try mistakes.throwIfAny()
        return config
    }

    /// Reads YAML text as far as it can: each mistake goes to `mistakes` and the reading goes on with what does
    /// not depend on it (`ConfigMistakes`); a section or list item that failed keeps its default (is left out).
    /// Throws only when nothing can be read: a YAML syntax error (the parser stops), an empty file, a document
    /// that is not a mapping. The result is valid only when `mistakes` stayed empty.
    ///
    /// An empty or comment-only document is refused ("the file is empty"): it is the classic truncated-file
    /// failure of an editor or config-management run, and taking it as the embedded default would swap every
    /// route for the demo on a reload. `{}` is an explicit empty mapping, and takes the defaults. The embedded
    /// default itself is `serve` without `--config`, which does not parse a file.
    ///
    /// What depends on what (a check is skipped when a mistake was recorded in what it reads, so the first
    /// mistake is reported and not its consequences): `routes[i].pool` on `pools`; the duplicate-route check
    /// and the "no routes" warning on `routes`; `schedules[i].route` (a route serves it) on `routes`, and
    /// `schedules[i].inputs`' count on `limits`; `craft.deployments[i].tokens`, `schedules[i].operators` and
    /// `craft.deployments[i].operators` on `tokens`;
    /// `craft.long_poll_wait` ≤ `store.max_wait` on `store`; the periodic deployments' routes on `routes`
    /// (a deployment that failed to read is not there). An unknown top-level key (perhaps a misspelt `pools:`)
    /// suspends every such cross-section reference check. Duplicate names within a list are checked among the
    /// items that read. `ConfigFile.load`'s checks of the files a section names depend on that section.
    package static func read(yaml: String, source: String, recordingInto mistakes: ConfigMistakes)
        throws(ConfigError) -> GatewayConfiguration
    {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(source: source, path: "", message: Self.describe(error), line: Self.line(of: error))
        } catch {
            throw ConfigError(source: source, path: "", message: "invalid YAML: \(error)")
        }
        var config = GatewayConfiguration.defaults
        config.source = source
        // No document, or a document with no content (`---` alone): `null` as YAML resolves it.
        guard let root, root.null == nil else {
            throw ConfigError(
                source: source, path: "",
                message: "the file is empty (no YAML document, only blank lines or comments); "
                    + "write `{}` to run the built-in defaults")
        }
        let reader = ConfigNodeReader(source: source, mistakes: mistakes)
        let top = try reader.mapping(root, at: "", allowed: Self.topLevelKeys, recordingKeyMistakes: true)
        let unknownTopLevelKey = mistakes.any(under: "")
        for (key, value) in top.entries { mistakes.sectionLines[key] = value.mark?.line }
        /// Whether a cross-section reference into `section` can be checked: it read without a mistake.
        func complete(_ section: String) -> Bool { !unknownTopLevelKey && !mistakes.any(under: section) }

        if let node = top["listen"] {
            mistakes.collect { () throws(ConfigError) in
                let text = try reader.string(node, at: "listen")
                do throws(ListenAddressError) {
                    config.listen = try ListenAddress(parsing: text)
                } catch {
                    throw reader.error("listen", node, "bad address \"\(text)\": \(error.message)")
                }
            }
        }
        if let node = top["admin"] {
            mistakes.collect { () throws(ConfigError) in config.admin = try readAdmin(node, reader) }
        }
        if let node = top["listen_reuse_port"] {
            mistakes.collect { () throws(ConfigError) in
                config.listenReusePort = try reader.bool(node, at: "listen_reuse_port")
            }
        }
        if let node = top["data_dir"] {
            mistakes.collect { () throws(ConfigError) in
                config.dataDir = try reader.nonEmptyString(node, at: "data_dir")
            }
        }
        if let node = top["auth"] {
            mistakes.collect { () throws(ConfigError) in
                config.auth = try reader.choice(node, at: "auth", as: AuthMode.self)
            }
        }
        if let node = top["tokens"] { config.tokens = readTokens(node, reader) }
        if let node = top["namespaces"] { config.namespaces = readNamespaces(node, reader) }
        if let node = top["limits"] {
            mistakes.collect { () throws(ConfigError) in config.limits = try readLimits(node, reader) }
        }
        if let node = top["timeouts"] {
            mistakes.collect { () throws(ConfigError) in config.timeouts = try readTimeouts(node, reader) }
        }
        if let node = top["store"] {
            mistakes.collect { () throws(ConfigError) in config.store = try readStore(node, reader) }
        }
        if let node = top["tls"] {
            mistakes.collect { () throws(ConfigError) in config.tls = try readTLS(node, reader) }
        }
        if let node = top["abacus"] {
            mistakes.collect { () throws(ConfigError) in config.abacus = try readAbacus(node, reader) }
        }
        if let node = top["log"] {
            mistakes.collect { () throws(ConfigError) in config.log = try readLog(node, reader) }
        }
        if let node = top["craft"] {
            let tokens = complete("tokens") ? config.tokens : nil
            let maxWait = complete("store") ? config.store.maxWait : nil
            mistakes.collect { () throws(ConfigError) in
                config.craft = try readCraft(
                    node, tokens: tokens, authRequired: config.authRequired, maxWait: maxWait, reader)
            }
        }
        if top.has("pools") || top.has("routes") {
            config.pools = top["pools"].map { node in readPools(node, reader) } ?? []
            config.routes = []
            if let node = top["routes"] {
                let pools = complete("pools") ? config.pools : nil
                config.routes = readRoutes(node, pools: pools, poolsFromFile: top.has("pools"), reader)
            }
            if config.routes.isEmpty, !mistakes.any(under: "routes") {
                // Listing pools replaces the embedded route too: a file with pools and no routes is valid (a
                // stage of an edit) but serves nothing, and readiness cannot tell (review 10, finding 8).
                reader.warn("routes", top["routes"], "no routes: every trigger will be 404 (no route matches it)")
            }
            if complete("pools"), complete("routes"), !config.routes.isEmpty, let poolsNode = top["pools"] {
                warnUnusedPools(config, poolsNode: poolsNode, reader)
            }
        }
        if let node = top["schedules"] {
            config.schedules = readSchedules(
                node, routes: complete("routes") ? config.routes : nil,
                maxBatch: complete("limits") ? config.limits.maxBatch : nil,
                tokens: complete("tokens") ? config.tokens : nil, authRequired: config.authRequired, reader)
        }
        if complete("routes") {
            mistakes.collect { () throws(ConfigError) in try checkPeriodicDeployments(config, reader) }
        }
        config.warnings = reader.warnings.list
        return config
    }

    static let topLevelKeys = [
        "listen", "listen_reuse_port", "data_dir", "auth", "tokens", "limits", "timeouts", "pools", "routes", "store",
        "abacus", "tls", "schedules", "craft", "namespaces", "log", "admin",
    ]

    /// Tokens shorter than this many bytes get a warning (never their value).
    static let shortTokenLength = 16

    /// `tokens:`, each item checked on its own (`ConfigMistakes`); the ones with a mistake are left out.
    private static func readTokens(_ node: Node, _ reader: ConfigNodeReader) -> [TokenConfiguration] {
        var tokens: [TokenConfiguration] = []
        reader.forEachItem(node, at: "tokens") { (i, item) throws(ConfigError) in
            let path = "tokens[\(i)]"
            let entry = try reader.mapping(item, at: path, allowed: ["name", "token", "token_file", "requesters"])
            let name = try reader.nonEmptyString(try require(entry, "name", reader), at: entry.path("name"))
            // Inline, or from a file (review 27 M2: a secret kept out of the file that is versioned and diffed).
            let token: String
            let tokenNode: Node
            var tokenFile: String?
            switch (entry["token"], entry["token_file"]) {
            case (let inline?, nil):
                tokenNode = inline
                token = try reader.nonEmptyString(inline, at: entry.path("token"))
            case (nil, let fileNode?):
                tokenNode = fileNode
                let read = try reader.secretFile(fileNode, at: entry.path("token_file"))
                (tokenFile, token) = (read.path, read.secret)
            case (_?, let fileNode?):
                throw reader.error(entry.path("token_file"), fileNode, "give token or token_file, not both")
            case (nil, nil):
                throw reader.error(entry.path("token"), entry.node, "missing (required), or give token_file")
            }
            // Tokens travel in `Authorization: Bearer <t>`; whitespace or control bytes could never match.
            guard token.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
                throw reader.error(entry.path("token"), tokenNode, "must not contain spaces or control characters")
            }
            // A token is a password sent with every request: a short one is guessable (review 27 I3). Warned, not
            // refused (nginx and Envoy check nothing); 16 characters is 64 bits as hex, the least worth calling random.
            if token.utf8.count < Self.shortTokenLength {
                reader.warn(
                    entry.path("token"), tokenNode,
                    "is shorter than \(Self.shortTokenLength) characters: use a long random token (openssl rand -hex 16)"
                )
            }
            // craft-ai-sdk appends an endpoint token to a file output's URL unencoded (`?token={t}`, CLIENTS.md): a
            // `&`, `#` or `%` there ends or changes the query, and the download is refused (review 59, F5).
            if token.utf8.contains(where: {
                $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "#") || $0 == UInt8(ascii: "%")
            }) {
                reader.warn(
                    entry.path("token"), tokenNode,
                    "holds &, # or %, which craft-ai-sdk sends unencoded in ?token= (its file downloads then fail): "
                        + "use letters, digits and -._~+/= (openssl rand -hex 16)")
            }
            if let first = tokens.firstIndex(where: { $0.token == token }) {
                // Never echo the secret itself.
                throw reader.error(entry.path("token"), tokenNode, "duplicate token (same as tokens[\(first)].token)")
            }
            let requesters = try entry["requesters"].map { node throws(ConfigError) in
                try readRequesters(node, at: entry.path("requesters"), reader)
            }
            var configured = TokenConfiguration(name: name, token: token, requesters: requesters ?? [])
            configured.tokenFile = tokenFile
            tokens.append(configured)
        }
        return tokens
    }

    private static func readLimits(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError)
        -> LimitsConfiguration
    {
        typealias L = LimitsConfiguration
        let m = try reader.mapping(
            node,
            at: "limits",
            allowed: [
                "max_body_bytes", "max_batch", "max_header_bytes", "max_depth", "max_json_members",
                "max_concurrent_streams", "max_connections", "max_connections_per_peer", "stream_buffer_bytes",
                "connection_buffer_bytes", "max_decompressed_bytes", "max_buffered_request_bytes",
                "max_buffered_request_bytes_per_connection",
            ]
        )
        var limits = L.defaults
        if let n = m["max_body_bytes"] {
            limits.maxBodyBytes = try reader.byteSize(n, at: m.path("max_body_bytes"), in: L.maxBodyBytesRange)
        }
        if let n = m["max_decompressed_bytes"] {
            limits.maxDecompressedBytes = try reader.byteSize(
                n, at: m.path("max_decompressed_bytes"), in: L.maxDecompressedBytesRange)
            // Never above the body cap: the cap bounds every message, compressed or not.
            guard limits.maxDecompressedBytes <= limits.maxBodyBytes else {
                throw reader.error(
                    m.path("max_decompressed_bytes"), n,
                    "must not be above limits.max_body_bytes (\(limits.maxDecompressedBytes) > \(limits.maxBodyBytes))")
            }
        } else {
            // The default (4 MiB) follows a smaller body cap down.
            limits.maxDecompressedBytes = min(limits.maxDecompressedBytes, limits.maxBodyBytes)
        }
        if let n = m["max_buffered_request_bytes"] {
            limits.maxBufferedRequestBytes = try reader.byteSize(
                n, at: m.path("max_buffered_request_bytes"), in: L.maxBufferedRequestBytesRange)
            guard limits.maxBufferedRequestBytes == 0 || limits.maxBufferedRequestBytes >= 1024 else {
                throw reader.error(
                    m.path("max_buffered_request_bytes"), n, "must be 0 (no budget) or at least 1024 bytes")
            }
        }
        if let n = m["max_buffered_request_bytes_per_connection"] {
            let path = m.path("max_buffered_request_bytes_per_connection")
            limits.maxBufferedRequestBytesPerConnection = try reader.byteSize(
                n, at: path, in: L.maxBufferedRequestBytesPerConnectionRange)
            guard
                limits.maxBufferedRequestBytesPerConnection == 0 || limits.maxBufferedRequestBytesPerConnection >= 1024
            else {
                throw reader.error(path, n, "must be 0 (no bound) or at least 1024 bytes")
            }
        }
        if let n = m["max_batch"] { limits.maxBatch = try reader.int(n, at: m.path("max_batch"), in: L.maxBatchRange) }
        if let n = m["max_header_bytes"] {
            limits.maxHeaderBytes = try reader.byteSize(n, at: m.path("max_header_bytes"), in: L.maxHeaderBytesRange)
        }
        if let n = m["max_depth"] { limits.maxDepth = try reader.int(n, at: m.path("max_depth"), in: L.maxDepthRange) }
        if let n = m["max_json_members"] {
            limits.maxJSONMembers = try reader.int(n, at: m.path("max_json_members"), in: L.maxJSONMembersRange)
        }
        if let n = m["max_concurrent_streams"] {
            limits.maxConcurrentStreams = try reader.int(
                n,
                at: m.path("max_concurrent_streams"),
                in: L.maxConcurrentStreamsRange
            )
        }
        if let n = m["max_connections"] {
            limits.maxConnections = try reader.int(n, at: m.path("max_connections"), in: L.maxConnectionsRange)
        }
        if let n = m["max_connections_per_peer"] {
            limits.maxConnectionsPerPeer = try reader.int(
                n, at: m.path("max_connections_per_peer"), in: L.maxConnectionsPerPeerRange)
        }
        if let n = m["stream_buffer_bytes"] {
            limits.streamBufferBytes = try reader.byteSize(
                n,
                at: m.path("stream_buffer_bytes"),
                in: L.streamBufferBytesRange
            )
        }
        if let n = m["connection_buffer_bytes"] {
            limits.connectionBufferBytes = try reader.byteSize(
                n,
                at: m.path("connection_buffer_bytes"),
                in: L.connectionBufferBytesRange
            )
        }
        return limits
    }

    private static func readTimeouts(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError)
        -> TimeoutsConfiguration
    {
        let m = try reader.mapping(
            node,
            at: "timeouts",
            allowed: [
                "request", "idle", "shutdown_grace", "preface", "request_header", "body_progress", "write_progress",
                "stream_idle",
            ]
        )
        var timeouts = TimeoutsConfiguration.defaults
        let oneMillisecond = Duration.milliseconds(1)
        if let n = m["request"] {
            timeouts.request = try reader.duration(n, at: m.path("request"), minimum: oneMillisecond)
        }
        if let n = m["idle"] { timeouts.idle = try reader.duration(n, at: m.path("idle"), minimum: oneMillisecond) }
        if let n = m["shutdown_grace"] {
            timeouts.shutdownGrace = try reader.duration(n, at: m.path("shutdown_grace"), minimum: .zero)
        }
        if let n = m["preface"] {
            timeouts.preface = try reader.duration(n, at: m.path("preface"), minimum: oneMillisecond)
        }
        if let n = m["request_header"] {
            timeouts.requestHeader = try reader.duration(n, at: m.path("request_header"), minimum: oneMillisecond)
        }
        if let n = m["body_progress"] {
            timeouts.bodyProgress = try reader.duration(n, at: m.path("body_progress"), minimum: oneMillisecond)
        }
        if let n = m["write_progress"] {
            timeouts.writeProgress = try reader.duration(n, at: m.path("write_progress"), minimum: oneMillisecond)
        }
        if let n = m["stream_idle"] {
            timeouts.streamIdle = try reader.duration(n, at: m.path("stream_idle"), minimum: oneMillisecond)
        }
        return timeouts
    }

    /// `pools:`, each item checked on its own (`ConfigMistakes`); the ones with a mistake are left out.
    /// One warning per pool no route names (review 21, I2: a mistyped pool or route name passed unnoticed, and
    /// the pool's endpoints were never resolved or connected to). Not an error: operators stage a pool before
    /// the route that moves traffic to it (nginx says nothing of an unused upstream; this says it once).
    /// Schedules, Craft and Abacus reach pools through routes only, so routes are every user of a pool.
    private static func warnUnusedPools(_ config: GatewayConfiguration, poolsNode: Node, _ reader: ConfigNodeReader) {
        let used = Set(config.routes.map(\.pool))
        let items = (try? reader.sequence(poolsNode, at: "pools")) ?? []
        for (i, pool) in config.pools.enumerated() where !used.contains(pool.name) {
            reader.warn(
                "pools[\(i)]", i < items.count ? items[i] : poolsNode, "pool \"\(pool.name)\": no route uses it")
        }
    }

    private static func readPools(_ node: Node, _ reader: ConfigNodeReader) -> [PoolConfiguration] {
        var pools: [PoolConfiguration] = []
        reader.forEachItem(node, at: "pools") { (i, item) throws(ConfigError) in
            let m = try reader.mapping(
                item,
                at: "pools[\(i)]",
                allowed: [
                    "name", "transport", "endpoints", "connect_timeout", "request_timeout", "idle_timeout",
                    "max_concurrency", "max_queue", "max_async_queued", "outlier_detection", "retry", "health_check",
                    "tls",
                ]
            )
            let nameNode = try require(m, "name", reader)
            let name = try reader.nonEmptyString(nameNode, at: m.path("name"))
            guard name.utf8.allSatisfy({ isNameByte($0) }) else {
                throw reader.error(
                    m.path("name"),
                    nameNode,
                    "pool names may only use letters, digits, \".\", \"_\" and \"-\""
                )
            }
            if let first = pools.firstIndex(where: { $0.name == name }) {
                throw reader.error(
                    m.path("name"),
                    nameNode,
                    "duplicate pool name \"\(name)\" (also pools[\(first)].name)"
                )
            }
            let transportNode = try require(m, "transport", reader)
            var pool = PoolConfiguration(
                name: name,
                transport: try reader.choice(
                    transportNode,
                    at: m.path("transport"),
                    as: PoolConfiguration.Transport.self
                )
            )
            let endpointsNode = m["endpoints"]
            if let endpointsNode {
                for (j, endpointNode) in try reader.sequence(endpointsNode, at: m.path("endpoints")).enumerated() {
                    let path = "\(m.path("endpoints"))[\(j)]"
                    let text = try reader.string(endpointNode, at: path)
                    do throws(ListenAddressError) {
                        pool.endpoints.append(try BackendEndpoint(parsing: text))
                    } catch {
                        throw reader.error(path, endpointNode, "bad endpoint \"\(text)\": \(error.message)")
                    }
                    if pool.transport == .grpc, !pool.endpoints[j].basePath.isEmpty {
                        throw reader.error(path, endpointNode, "a grpc endpoint takes no path (got \"\(text)\")")
                    }
                }
            }
            try readBackendTLS(m, into: &pool, reader)
            if pool.transport == .inprocess, !pool.endpoints.isEmpty {
                throw reader.error(m.path("endpoints"), endpointsNode, "an inprocess pool takes no endpoints")
            }
            if pool.transport != .inprocess, pool.endpoints.isEmpty {
                let article = pool.transport == .http ? "an" : "a"
                throw reader.error(
                    m.path("endpoints"),
                    endpointsNode ?? m.node,
                    "\(article) \(pool.transport.rawValue) pool needs at least one endpoint"
                )
            }
            let oneMillisecond = Duration.milliseconds(1)
            if let n = m["connect_timeout"] {
                pool.connectTimeout = try reader.duration(n, at: m.path("connect_timeout"), minimum: oneMillisecond)
            }
            if let n = m["idle_timeout"] {
                pool.idleTimeout = try reader.duration(n, at: m.path("idle_timeout"), minimum: oneMillisecond)
                guard pool.idleTimeout <= PoolConfiguration.idleTimeoutRange.upperBound else {
                    throw reader.error(
                        m.path("idle_timeout"), n, "idle_timeout must be at most 24h, got \(pool.idleTimeout)")
                }
            }
            if let n = m["request_timeout"] {
                pool.requestTimeout = try reader.duration(n, at: m.path("request_timeout"), minimum: oneMillisecond)
            }
            if let n = m["max_concurrency"] {
                pool.maxConcurrency = try reader.int(
                    n,
                    at: m.path("max_concurrency"),
                    in: PoolConfiguration.maxConcurrencyRange
                )
            }
            if let n = m["max_queue"] {
                pool.maxQueue = try reader.int(n, at: m.path("max_queue"), in: PoolConfiguration.maxQueueRange)
            }
            if let n = m["max_async_queued"] {
                pool.maxAsyncQueued = try reader.int(
                    n, at: m.path("max_async_queued"), in: PoolConfiguration.maxAsyncQueuedRange)
            }
            if let n = m["outlier_detection"] {
                let o = try reader.mapping(
                    n,
                    at: m.path("outlier_detection"),
                    allowed: ["consecutive_failures", "base_ejection", "max_ejection", "max_ejected_percent"]
                )
                if let v = o["consecutive_failures"] {
                    pool.outlierConsecutiveFailures = try reader.int(
                        v,
                        at: o.path("consecutive_failures"),
                        in: 0...1000
                    )
                }
                if let v = o["base_ejection"] {
                    pool.outlierBaseEjection = try reader.duration(
                        v,
                        at: o.path("base_ejection"),
                        minimum: oneMillisecond
                    )
                }
                if let v = o["max_ejection"] {
                    pool.outlierMaxEjection = try reader.duration(
                        v,
                        at: o.path("max_ejection"),
                        minimum: oneMillisecond
                    )
                }
                if let v = o["max_ejected_percent"] {
                    pool.outlierMaxEjectedPercent = try reader.int(v, at: o.path("max_ejected_percent"), in: 0...100)
                }
                if pool.outlierMaxEjection < pool.outlierBaseEjection {
                    throw reader.error(o.path("max_ejection"), n, "max_ejection must not be shorter than base_ejection")
                }
            }
            if let n = m["retry"] {
                let r = try reader.mapping(
                    n,
                    at: m.path("retry"),
                    allowed: ["max_tries", "budget_percent", "min_retry_concurrency"]
                )
                if let v = r["max_tries"] {
                    pool.retryMaxTries = try reader.int(v, at: r.path("max_tries"), in: 1...10)
                }
                if let v = r["budget_percent"] {
                    pool.retryBudgetPercent = try reader.int(v, at: r.path("budget_percent"), in: 0...100)
                }
                if let v = r["min_retry_concurrency"] {
                    pool.retryMinConcurrency = try reader.int(v, at: r.path("min_retry_concurrency"), in: 0...10_000)
                }
            }
            if let n = m["health_check"] {
                pool.healthCheck = try readHealthCheck(n, at: m.path("health_check"), pool: pool, reader)
            }
            pools.append(pool)
        }
        return pools
    }

    /// `pools[].tls` and the endpoints' schemes: TLS is on when `tls` is `true` or a mapping, or when the
    /// endpoints are written `https://` (`grpcs://` for grpc pools); one pool's endpoints all use TLS or none.
    private static func readBackendTLS(
        _ m: ConfigMapping,
        into pool: inout PoolConfiguration,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) {
        let endpointsPath = m.path("endpoints")
        let endpointNodes = try m["endpoints"].map { n throws(ConfigError) in try reader.sequence(n, at: endpointsPath)
        }
        for (j, endpoint) in pool.endpoints.enumerated() {
            guard let scheme = endpoint.scheme, pool.transport == .http, scheme == .grpc || scheme == .grpcs else {
                continue
            }
            throw reader.error(
                "\(endpointsPath)[\(j)]", endpointNodes?[j],
                "\(scheme.rawValue):// is for grpc pools; an http pool's endpoints use http:// or https://")
        }
        var tls: BackendTLSConfiguration?
        var tlsSaysOff = false
        if let n = m["tls"] {
            let path = m.path("tls")
            if case .mapping = n {
                let t = try reader.mapping(n, at: path, allowed: ["ca_file", "server_name", "cert_file", "key_file"])
                var settings = BackendTLSConfiguration()
                if let v = t["ca_file"] { settings.caFile = try reader.nonEmptyString(v, at: t.path("ca_file")) }
                if let v = t["server_name"] {
                    let name = try reader.nonEmptyString(v, at: t.path("server_name"))
                    // SNI carries host names only (RFC 6066 §3); an IP endpoint is checked against its IP SANs.
                    guard HostSyntax.classify(name) == .name else {
                        throw reader.error(
                            t.path("server_name"), v, "\"\(name)\" is not a DNS host name (SNI carries no IP addresses)"
                        )
                    }
                    settings.serverName = name
                }
                if let v = t["cert_file"] { settings.certFile = try reader.nonEmptyString(v, at: t.path("cert_file")) }
                if let v = t["key_file"] { settings.keyFile = try reader.nonEmptyString(v, at: t.path("key_file")) }
                if settings.keyFile != nil, settings.certFile == nil {
                    throw reader.error(
                        t.path("key_file"), t["key_file"], "needs cert_file: the client certificate this key belongs to"
                    )
                }
                if settings.certFile != nil, settings.keyFile == nil {
                    throw reader.error(
                        t.path("cert_file"), t["cert_file"], "needs key_file: the client certificate's private key")
                }
                tls = settings
            } else if try reader.bool(n, at: path) {
                tls = BackendTLSConfiguration()
            } else {
                tlsSaysOff = true
            }
            if pool.transport == .inprocess, tls != nil {
                throw reader.error(path, n, "an inprocess pool has no endpoints to reach over TLS")
            }
        }
        let tlsEndpoints = pool.endpoints.indices.filter { pool.endpoints[$0].scheme?.isTLS == true }
        if tls != nil || tlsSaysOff {
            // An explicit scheme that contradicts the pool's `tls` is a mistake, not a preference.
            for (j, endpoint) in pool.endpoints.enumerated() {
                guard let scheme = endpoint.scheme, scheme.isTLS == tlsSaysOff else { continue }
                throw reader.error(
                    "\(endpointsPath)[\(j)]", endpointNodes?[j],
                    tlsSaysOff
                        ? "\(scheme.rawValue):// asks for TLS but the pool says tls: false"
                        : "\(scheme.rawValue):// asks for cleartext but the pool has tls")
            }
        } else if let first = tlsEndpoints.first {
            if let plain = pool.endpoints.indices.first(where: { !tlsEndpoints.contains($0) }) {
                throw reader.error(
                    "\(endpointsPath)[\(plain)]", endpointNodes?[plain],
                    "a pool's endpoints all use TLS or none: endpoints[\(first)] is "
                        + "\(pool.endpoints[first].scheme!.rawValue):// and this one is not")
            }
            tls = BackendTLSConfiguration()
        }
        pool.tls = tls
    }

    private static func readHealthCheck(
        _ node: Node,
        at path: String,
        pool: PoolConfiguration,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) -> PoolConfiguration.HealthCheck {
        let h = try reader.mapping(
            node,
            at: path,
            allowed: ["path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"]
        )
        if pool.transport == .inprocess {
            throw reader.error(path, node, "an inprocess pool has no endpoints to check")
        }
        var check = PoolConfiguration.HealthCheck()
        if let n = h["path"] {
            guard pool.transport == .http else {
                throw reader.error(
                    h.path("path"),
                    n,
                    "only http pools take a path (grpc pools call grpc.health.v1.Health/Check)"
                )
            }
            check.path = try reader.string(n, at: h.path("path"))
            guard check.path.hasPrefix("/"), !check.path.contains(where: { $0 == " " || $0.isNewline }) else {
                throw reader.error(h.path("path"), n, "must start with \"/\" and hold no spaces")
            }
        }
        if let n = h["interval"] {
            check.interval = try reader.duration(n, at: h.path("interval"), minimum: .milliseconds(10))
        }
        if let n = h["timeout"] {
            check.timeout = try reader.duration(n, at: h.path("timeout"), minimum: .milliseconds(1))
        }
        if let n = h["healthy_threshold"] {
            check.healthyThreshold = try reader.int(n, at: h.path("healthy_threshold"), in: 1...100)
        }
        if let n = h["unhealthy_threshold"] {
            check.unhealthyThreshold = try reader.int(n, at: h.path("unhealthy_threshold"), in: 1...100)
        }
        // A probe still running when the next one is due would overlap it (Envoy refuses the same).
        if check.timeout > check.interval {
            throw reader.error(
                h.path(h["timeout"] != nil ? "timeout" : "interval"),
                h["timeout"] ?? h["interval"] ?? node,
                "timeout (\(ConfigUnits.format(check.timeout))) must not be longer than interval (\(ConfigUnits.format(check.interval)))"
            )
        }
        return check
    }

    private static func readTLS(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError)
        -> ListenerTLSConfiguration
    {
        let m = try reader.mapping(
            node,
            at: "tls",
            allowed: [
                "cert_file", "key_file", "allow_plaintext", "client_ca_file", "require_client_cert",
                "client_principals",
            ]
        )
        var tls = ListenerTLSConfiguration(
            certFile: try reader.nonEmptyString(try require(m, "cert_file", reader), at: m.path("cert_file")),
            keyFile: try reader.nonEmptyString(try require(m, "key_file", reader), at: m.path("key_file"))
        )
        if let n = m["allow_plaintext"] { tls.allowPlaintext = try reader.bool(n, at: m.path("allow_plaintext")) }
        if let n = m["client_ca_file"] { tls.clientCAFile = try reader.nonEmptyString(n, at: m.path("client_ca_file")) }
        if let n = m["require_client_cert"] {
            tls.requireClientCert = try reader.bool(n, at: m.path("require_client_cert"))
            if tls.requireClientCert, tls.clientCAFile == nil {
                throw reader.error(
                    m.path("require_client_cert"),
                    n,
                    "needs client_ca_file: the CA certificates client certificates are verified against"
                )
            }
        }
        if let n = m["client_principals"] {
            let path = m.path("client_principals")
            guard tls.clientCAFile != nil else {
                throw reader.error(path, n, "needs client_ca_file: only verified client certificates name a principal")
            }
            guard case .mapping(let mapping) = n else {
                throw reader.error(
                    path, n, "expected a mapping of certificate subject to principal, got \(reader.describe(n))")
            }
            for (keyNode, valueNode) in mapping {
                let subject = try reader.nonEmptyString(keyNode, at: path)
                let entryPath = "\(path).\"\(subject)\""
                // RFC 4514 text always has an attribute type and "=": `alice` alone would never match.
                guard subject.contains("=") else {
                    throw reader.error(
                        entryPath, keyNode,
                        "expected a certificate subject in RFC 4514 form, most specific first (CN=alice,O=Example)")
                }
                let principal = try reader.nonEmptyString(valueNode, at: entryPath)
                // The principal travels to backends as the `x-trigger-principal` header value.
                guard principal.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else {
                    throw reader.error(entryPath, valueNode, "must not contain control characters")
                }
                tls.clientPrincipals[subject] = principal
            }
        }
        return tls
    }

    /// `routes:`, each item checked on its own (`ConfigMistakes`); the ones with a mistake are left out.
    /// `pools`: nil when `pools:` had a mistake, and then a route's pool is not looked up (it may be the one
    /// that failed). The duplicate check compares the routes that read.
    private static func readRoutes(
        _ node: Node,
        pools: [PoolConfiguration]?,
        poolsFromFile: Bool,
        _ reader: ConfigNodeReader
    ) -> [RouteConfiguration] {
        var routes: [(index: Int, route: RouteConfiguration)] = []
        reader.forEachItem(node, at: "routes") { (i, item) throws(ConfigError) in
            let path = "routes[\(i)]"
            let read = try readRoute(item, at: path, reader)
            if let pools, !pools.contains(where: { $0.name == read.route.pool }) {
                var message = "unknown pool \"\(read.route.pool)\""
                if !poolsFromFile {
                    // Say why the embedded `demo` pool is not there: the rule surprises people once.
                    message +=
                        " (this file lists routes but no pools, so the embedded demo pool is "
                        + "not added; list it under pools)"
                }
                throw reader.error("\(path).pool", read.poolNode, message)
            }
            let route = read.route
            if let first = routes.first(where: {
                $0.route.namespace == route.namespace && $0.route.pipeline == route.pipeline
                    && $0.route.release == route.release
            }) {
                throw reader.error(
                    path, item,
                    "duplicate route (same namespace, pipeline and release as routes[\(first.index)]); it could never match"
                )
            }
            routes.append((i, route))
        }
        return routes.map(\.route)
    }

    private struct ReadRoute {
        var route: RouteConfiguration
        var poolNode: Node
    }

    private static func readRoute(
        _ node: Node,
        at path: String,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) -> ReadRoute {
        let m = try reader.mapping(node, at: path, allowed: ["namespace", "pipeline", "release", "pool", "webhook"])
        let namespace = try routeName(try require(m, "namespace", reader), m.path("namespace"), reader)
        let pipeline = try m["pipeline"].map { n throws(ConfigError) in try routeName(n, m.path("pipeline"), reader) }
        var release = try m["release"].map { n throws(ConfigError) in try routeName(n, m.path("release"), reader) }
        // `release: "*"` says the same as no release: every release.
        if release == RouteConfiguration.wildcard { release = nil }
        let poolNode = try require(m, "pool", reader)
        let pool = try reader.nonEmptyString(poolNode, at: m.path("pool"))
        let webhook = try m["webhook"].map { n throws(ConfigError) in try readWebhook(n, at: m.path("webhook"), reader)
        }
        return ReadRoute(
            route: RouteConfiguration(
                namespace: namespace,
                pipeline: pipeline ?? "*",
                release: release,
                pool: pool,
                webhook: webhook
            ),
            poolNode: poolNode
        )
    }

    /// A namespace, pipeline or release: non-empty, `*` or a name without `*`, `/` or whitespace.
    static func routeName(_ node: Node, _ path: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> String
    {
        let text = try reader.nonEmptyString(node, at: path)
        if text == RouteConfiguration.wildcard { return text }
        if text.contains("*") {
            throw reader.error(path, node, "\"*\" matches only on its own (\"\(text)\" is not a pattern)")
        }
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") }) else {
            throw reader.error(path, node, "\"\(text)\" must not contain \"/\", spaces or control characters")
        }
        return text
    }

    static func require(_ m: ConfigMapping, _ key: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> Node
    {
        guard let node = m[key] else { throw reader.error(m.path(key), m.node, "missing (required)") }
        return node
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
            || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return "invalid YAML at line \(mark.line), column \(mark.column): \(problem)"
        case .duplicatedKeysInMapping(let duplicates, _):
            return "invalid YAML: duplicate key " + duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
        case .reader(let problem, _, _, _):
            return "invalid YAML text: \(problem)"
        default:
            return "invalid YAML: \(error)"
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        case .duplicatedKeysInMapping(_, let context): context.mark.line
        default: nil
        }
    }
}
