package import NIOCore

/// What the backend layer needs to know about one pool, independent of how the config file spells it.
///
/// Kept apart from GatewayConfig's `PoolConfiguration` on purpose: that one is the file's spelling (Swift
/// `Duration`s, flat `outlier_*`/`retry_*` keys, no NIO), this one is what the transports run with (NIO
/// `TimeAmount`s, derived values such as ``maxResponseBytes``), so Backends builds and is tested without the
/// config layer. GatewayApp maps one onto the other in one place (`init(configuration:limits:)`).
package struct BackendPoolConfiguration: Sendable, Equatable {
    package enum Transport: String, Sendable, Equatable {
        /// Pipelines run inside the gateway process (the embedded default's demo runner).
        case inProcess = "inprocess"
        /// HTTP/1.1 keep-alive `POST {base}/run` with the model as JSON.
        case http
        /// HTTP/2 (h2c, or TLS with ALPN `h2`) to a runner serving `trigger.runner.v1.Runner`.
        case grpc
    }

    package struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        package var host: String
        package var port: Int
        /// A path prefix for the http transport: requests go to `{basePath}/run`.
        package var basePath: String
        package init(host: String, port: Int, basePath: String = "") {
            self.host = host
            self.port = port
            self.basePath = basePath
        }
        package var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        /// What a request to this endpoint names as its `Host` (http) or `:authority` (grpc): with a TLS
        /// `server_name` that server, as SNI and the certificate check do (`server_name:port`: the endpoint is
        /// then an address, the server a virtual host behind it, as Envoy's configured host header is);
        /// otherwise the endpoint's own `host:port`.
        package func authority(tls: BackendTLS?) -> String {
            guard let serverName = tls?.serverName else { return description }
            return "\(serverName):\(port)"
        }
    }

    package var name: String
    package var transport: Transport
    package var endpoints: [Endpoint]
    package var connectTimeout: TimeAmount
    package var requestTimeout: TimeAmount
    /// `idle_timeout`: how long a backend connection may stay idle (no call on it) before the gateway closes it
    /// (nginx's `keepalive_timeout`, Envoy's `idle_timeout`); nil: never (tests).
    package var idleTimeout: TimeAmount?
    package var maxConcurrency: Int
    package var maxQueue: Int
    /// The largest response body accepted from a backend (``maxResponseBytes(forRequestCap:)``).
    package var maxResponseBytes: Int
    package var outlierDetection: OutlierDetection
    package var retryBudget: RetryBudget
    /// Tries of one call that never reached a backend (connect refused, stream refused), each on another
    /// endpoint when there is one, within the deadline and the retry budget.
    package var maxTries: Int
    /// Nil: no active health check (outlier detection still applies).
    package var healthCheck: HealthCheckConfiguration?
    /// Nil: cleartext (h2c, HTTP/1.1) to the endpoints; set: TLS to every endpoint, health checks included.
    package var tls: BackendTLS?

    package init(
        name: String,
        transport: Transport,
        endpoints: [Endpoint] = [],
        connectTimeout: TimeAmount = .seconds(2),
        requestTimeout: TimeAmount = .seconds(60),
        idleTimeout: TimeAmount? = .seconds(60),
        maxConcurrency: Int = 256,
        maxQueue: Int = 1024,
        maxResponseBytes: Int = BackendPoolConfiguration.maxResponseBytes(forRequestCap: 32 << 20),
        outlierDetection: OutlierDetection = .defaults,
        retryBudget: RetryBudget = .defaults,
        maxTries: Int = 3,
        healthCheck: HealthCheckConfiguration? = nil,
        tls: BackendTLS? = nil
    ) {
        self.name = name
        self.transport = transport
        self.endpoints = endpoints
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.maxConcurrency = maxConcurrency
        self.maxQueue = maxQueue
        self.maxResponseBytes = maxResponseBytes
        self.outlierDetection = outlierDetection
        self.retryBudget = retryBudget
        self.maxTries = maxTries
        self.healthCheck = healthCheck
        self.tls = tls
    }

    /// The most connections this pool can hold open at once on a group of `loops` event loops, counted as the
    /// transports keep them: idle connections are kept per endpoint in one list per loop plus a shared one (the
    /// `async` callers'), and a list only grows when all of its connections are busy, so each list can hold as many
    /// as the pool's peak of calls there: `max_concurrency` for http (one call per HTTP/1.1 connection), and
    /// `max_concurrency` / 100 rounded up for grpc (100 streams per HTTP/2 connection); plus one per endpoint for
    /// the active health check. 0 for the in-process runner.
    package func worstCaseConnections(loops: Int) -> Int {
        let perList: Int
        switch transport {
        case .inProcess: return 0
        case .http: perList = maxConcurrency
        case .grpc: perList = (maxConcurrency + 99) / 100
        }
        let probes = healthCheck == nil ? 0 : endpoints.count
        return endpoints.count * (loops + 1) * perList + probes
    }

    /// The largest response accepted for a request cap of `maxBodyBytes`: blobs come back as data URIs, so
    /// base64's 4/3 of it, plus 1 MiB of slack for the JSON around them.
    package static func maxResponseBytes(forRequestCap maxBodyBytes: Int) -> Int {
        maxBodyBytes / 3 * 4 + (1 << 20)
    }
}
