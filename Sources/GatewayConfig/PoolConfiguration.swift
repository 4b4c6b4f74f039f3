/// One backend pool (`pools:`): a named set of endpoints sharing a transport and its limits.
package struct PoolConfiguration: Sendable, Equatable {
    package enum Transport: String, Sendable, Equatable, CaseIterable {
        /// The demo runner inside the gateway process; takes no endpoints.
        case inprocess
        /// `POST {base}/run` over HTTP/1.1 keep-alive (API.md §5).
        case http
        /// The runner service of `protos/` over h2c.
        case grpc
    }

    package var name: String
    package var transport: Transport
    /// Where the runners are; empty exactly when the transport is `inprocess`.
    package var endpoints: [BackendEndpoint]
    package var connectTimeout: Duration
    /// Per-call timeout when the client's own deadline is later (or absent).
    package var requestTimeout: Duration
    /// `idle_timeout`: a backend connection idle (no call on it) this long is closed, as nginx's
    /// `keepalive_timeout` and Envoy's `idle_timeout` (both 60 s by default).
    package var idleTimeout: Duration = .seconds(60)
    /// Calls in flight to the pool at once.
    package var maxConcurrency: Int
    /// Calls allowed to wait for a slot; past that the gateway answers 503 / RESOURCE_EXHAUSTED.
    package var maxQueue: Int
    /// `max_async_queued`: async operations of this pool's pipelines stored `queued` at most (nil: no bound). Past
    /// it an async trigger is refused as the pool's overflow (503 + `Retry-After`, UNAVAILABLE), so a runner down for
    /// hours cannot fill the disk or the database (review 26 I2; Envoy's `max_pending_requests` per cluster). The
    /// store's count is read every few seconds (`AsyncDispatcher.queueCountInterval`): the bound is that count plus
    /// this instance's accepts since, so it can be passed by one interval's accepts of other instances.
    package var maxAsyncQueued: Int?
    /// `outlier_detection`: transport failures in a row that eject an endpoint (0: off), the first ejection's
    /// length (doubling per ejection in a row up to `max_ejection`), and the most of the pool ejected at once.
    package var outlierConsecutiveFailures = 3
    package var outlierBaseEjection: Duration = .seconds(1)
    package var outlierMaxEjection: Duration = .seconds(5)
    package var outlierMaxEjectedPercent = 50
    /// `retry`: tries of one call that never reached a backend (connect refused or timed out, a stream refused
    /// before the backend processed it), the first included; and Envoy's retry budget: retries in flight stay
    /// under `budget_percent` of the pool's calls in flight, with a floor of `min_retry_concurrency`, so a
    /// quiet pool can still retry while retries cannot multiply an outage.
    package var retryMaxTries = 3
    package var retryBudgetPercent = 20
    package var retryMinConcurrency = 3
    /// `health_check`: nil (the default) means no active health check.
    package var healthCheck: HealthCheck?
    /// `tls`: nil means cleartext to the endpoints; set, every endpoint is reached over TLS (the active health
    /// check included). See ``BackendTLSConfiguration``.
    package var tls: BackendTLSConfiguration?

    /// An active health check: `grpc.health.v1.Health/Check` for grpc pools, `GET <path>` for http pools.
    package struct HealthCheck: Sendable, Equatable {
        /// http pools only: the path under the endpoint's base path.
        package var path = "/healthz"
        package var interval: Duration = .seconds(5)
        package var timeout: Duration = .seconds(1)
        /// Passed probes in a row that bring an unhealthy endpoint back.
        package var healthyThreshold = 2
        /// Failed probes in a row that take an endpoint out.
        package var unhealthyThreshold = 3

        package init() {}
    }

    package init(
        name: String,
        transport: Transport,
        endpoints: [BackendEndpoint] = [],
        connectTimeout: Duration = .seconds(2),
        requestTimeout: Duration = .seconds(60),
        maxConcurrency: Int = 256,
        maxQueue: Int = 1024
    ) {
        self.name = name
        self.transport = transport
        self.endpoints = endpoints
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.maxConcurrency = maxConcurrency
        self.maxQueue = maxQueue
    }

    /// The embedded default's only pool: the in-process demo runner, named `demo`.
    package static var defaultDemo: PoolConfiguration { PoolConfiguration(name: "demo", transport: .inprocess) }

    package static let idleTimeoutRange = Duration.milliseconds(1)...Duration.seconds(86_400)
    package static let maxConcurrencyRange = 1...1_000_000
    package static let maxQueueRange = 0...1_000_000
    package static let maxAsyncQueuedRange = 1...1_000_000_000
}
