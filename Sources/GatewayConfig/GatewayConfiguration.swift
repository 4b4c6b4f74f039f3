/// Everything the gateway is configured with, as typed values: the listener, auth, limits, timeouts,
/// backend pools and routes. Built once at startup (from YAML or `defaults`), validated, then handed out
/// as an immutable `Sendable` value.
///
/// The YAML keys are the snake_case forms of the property names (`data_dir`, `max_body_bytes`), and
/// every key has a default, so an empty file is the embedded default. `pools` and `routes` are one
/// unit: a file that has either key takes both from the file (a missing one is empty), and a file
/// with neither gets the embedded `demo` pool and its route. Merging a user's routes with a hidden
/// default route would make "why did this request go there?" hard to answer.
package struct GatewayConfiguration: Sendable, Equatable {
    package enum AuthMode: String, Sendable, Equatable, CaseIterable {
        /// Requests need one of `tokens` (and, with no tokens configured, only loopback is served).
        case tokens
        /// No authentication at all, on any address: an explicit operator choice.
        case none
    }

    /// Where this configuration came from (a file path, or `<embedded default>`), for messages.
    package var source: String
    package var listen: ListenAddress
    /// `listen_reuse_port`: bind `listen` with SO_REUSEPORT, so that a new instance (of the same user) can
    /// listen on the port while this one still does, and the old one is stopped after (an overlapped restart).
    /// Read at start-up. Not used with an inherited socket (systemd socket activation), which needs no overlap.
    package var listenReusePort: Bool = false
    /// Directory for the SQLite store and spilled blobs.
    package var dataDir: String
    package var auth: AuthMode
    package var tokens: [TokenConfiguration]
    package var limits: LimitsConfiguration
    package var timeouts: TimeoutsConfiguration
    package var pools: [PoolConfiguration]
    package var routes: [RouteConfiguration]
    /// The async operation store and dispatcher.
    package var store: StoreConfiguration
    /// The Abacus.AI surface: which namespace its `pipelineId`s name.
    package var abacus: AbacusConfiguration
    /// TLS on the listen port; nil: cleartext only.
    package var tls: ListenerTLSConfiguration? = nil
    /// Scheduled triggers (CRON), each tick one async operation.
    package var schedules: [ScheduleConfiguration] = []
    /// The Craft AI surface (`craft:`).
    package var craft: CraftConfiguration = .defaults
    /// Namespaces declared as users or organizations (`namespaces:`), for Instill's requester lookups.
    package var namespaces: [NamespaceConfiguration] = []
    /// The log's format and level (`log:`); read at start-up.
    package var log: LogConfiguration = .defaults
    /// The admin listener (`admin:`); nil: none, `/metrics` and the probes on the serving port only.
    package var admin: AdminConfiguration? = nil
    /// What the file says that is valid but likely not meant (pools and no routes; an SI size suffix), located
    /// as an error is: `check-config` prints each as `warning: <file>: <path>: <message>` and still succeeds,
    /// `serve` and a reload log each at warning level (review 10, findings 5 and 8).
    package var warnings: [ConfigError] = []

    package init(
        source: String = GatewayConfiguration.embeddedSource,
        listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 8080),
        dataDir: String = "./.trigger-gateway",
        auth: AuthMode = .tokens,
        tokens: [TokenConfiguration] = [],
        limits: LimitsConfiguration = .defaults,
        timeouts: TimeoutsConfiguration = .defaults,
        pools: [PoolConfiguration] = [.defaultDemo],
        routes: [RouteConfiguration] = [RouteConfiguration(namespace: "demo", pipeline: "*", pool: "demo")],
        store: StoreConfiguration = .defaults,
        abacus: AbacusConfiguration = .defaults
    ) {
        self.source = source
        self.listen = listen
        self.dataDir = dataDir
        self.auth = auth
        self.tokens = tokens
        self.limits = limits
        self.timeouts = timeouts
        self.pools = pools
        self.routes = routes
        self.store = store
        self.abacus = abacus
    }

    package static let embeddedSource = "<embedded default>"

    /// The embedded default: `127.0.0.1:8080`, data under `./.trigger-gateway`, no tokens (so loopback
    /// only), the in-process demo runner as pool `demo`, and one route `demo/*` → `demo`.
    package static var defaults: GatewayConfiguration { GatewayConfiguration() }

    package var listenHost: String { listen.host }
    package var listenPort: Int { listen.port }

    /// Whether requests must present a token: auth is `tokens` and at least one token is configured.
    /// With no tokens the gateway is a loopback-only development server (see `validateListenPolicy`).
    package var authRequired: Bool { auth == .tokens && !tokens.isEmpty }

    /// The pool a route names, by name.
    package func pool(named name: String) -> PoolConfiguration? { pools.first { $0.name == name } }

    /// Refuses to serve a non-loopback address without authentication unless the operator said
    /// `auth: none`. Call it after applying `--listen`, since the address actually used is what matters.
    package func validateListenPolicy() throws(ConfigError) {
        guard auth == .tokens, tokens.isEmpty, !listen.isLoopback else { return }
        throw ConfigError(
            source: source,
            path: "listen",
            message: "refusing to listen on \(listen) without authentication: no tokens are configured. "
                + "Add tokens, listen on a loopback address (127.0.0.1, [::1], localhost), "
                + "or set \"auth: none\" to serve without authentication"
        )
    }
}
