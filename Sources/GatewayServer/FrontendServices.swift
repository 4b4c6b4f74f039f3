package import AsyncDispatch
package import GatewayConfig
package import CraftSurface
package import TriggerDispatch
package import Logging
package import NIOCore
package import Observability
package import Routing
package import WireCodecs

/// What every frontend connection needs from the rest of the gateway, built once and shared.
package struct FrontendServices: Sendable {
    package var dispatcher: TriggerDispatcher
    package var authenticator: TokenAuthenticator
    package var limits: CodecLimits
    /// The most a compressed gRPC message may inflate to (`limits.max_decompressed_bytes`; the deframer lowers
    /// it to `limits.maxBodyBytes`). Here rather than in ``limits``, which every REST body collector copies.
    package var maxDecompressedBytes = 4 << 20
    /// Request line + headers, in bytes, over which a request is refused with 431.
    package var maxHeaderBytes: Int
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise on HTTP/2.
    package var maxConcurrentStreams: Int
    /// How long a sync trigger may take end to end, unless the client asks for less.
    package var requestTimeout: TimeAmount
    /// `limits.max_connections_per_peer`: open connections of one peer at most (an IPv4 address, an IPv6 /64);
    /// 0: no cap (the default). Read when a connection is accepted, so a reload applies it to the next one.
    package var maxConnectionsPerPeer = 0
    /// How long a connection may sit with nothing to do before it is closed.
    package var idleTimeout: TimeAmount
    /// How long a stream's backend may be silent between two events while the next is awaited
    /// (`timeouts.stream_idle`; `EventRelay`). Its first event is bounded by the pool's request timeout instead.
    package var streamIdleTimeout: TimeAmount
    package var logger: Logger
    /// Async mode (accepting async triggers, the operation endpoints); nil answers them UNIMPLEMENTED.
    package var operations: AsyncOperations?
    /// The configuration's digest and reload history, for `/metrics`; the same object in every generation.
    package var configStatus: ConfigStatus?
    /// Timeouts and buffer ceilings for clients that do not progress.
    package var slowClients: SlowClientLimits = .defaults
    /// TLS on the listen port, for connections accepted while this configuration is in force; nil: cleartext.
    package var tls: ListenerTLS? = nil
    /// Per-component readiness (the gateway as a whole, async mode), shared with whoever reports it.
    package var health: HealthRegistry
    /// The Abacus.AI surface's settings (`abacus:`).
    package var abacus: AbacusConfiguration
    /// The schedules and their API (`/v1beta/schedules`); nil answers it UNIMPLEMENTED (no async store).
    package var scheduler: Scheduler?
    /// The Craft AI surface (`/api/v1/...`, `/endpoints/...`); nil answers its routes 404.
    package var craft: CraftSurface?
    /// Told of every finished request, in order (the access log, the request metrics); see `RequestRecord`.
    package var requestObservers = RequestObservers.none
    /// The users and organizations Instill clients may look up and act for (`instill-requester-uid`).
    package var namespaces = NamespaceDirectory()
    /// The registry `/metrics` renders, and the open-connection gauges; nil answers `/metrics` with no metrics.
    /// The same object in every configuration generation.
    package var metrics: GatewayMetrics?
    /// The clock requests are timed on (`RequestRecord.durationNanoseconds`) and their deadlines count from
    /// (`RequestContext`): NIO's monotonic clock; a test may inject one on the same timeline (advanced by hand).
    package var clock: @Sendable () -> NIODeadline = { NIODeadline.now() }
    /// The process's budget of buffered request-body bytes (`limits.max_buffered_request_bytes`): the same object
    /// in every configuration generation (a reload sets its limit). A test's services get one of their own, with
    /// no limit.
    package var requestBuffer = RequestBufferBudget()
    /// The rate limit of the warnings an HTTP/2 connection ended by the client's fault logs (protocol errors,
    /// excessive load, refused header blocks): one line per kind per 10 s at most, with the count held back. The same
    /// object in every configuration generation (`GatewayApp` keeps it); a test's services get one of their own.
    package var connectionErrorLog = FailureLogLimiter(interval: .seconds(10))
    /// `limits.max_buffered_request_bytes_per_connection`: the request-body bytes one HTTP/2 connection may hold
    /// before its streams' windows are held back (HTTP2FrontendConnection+RequestWindow.swift); 0: no bound.
    /// A reload applies to an open connection from its next stream (its services are refreshed then).
    package var maxBufferedRequestBytesPerConnection = 64 << 20
    /// Whether `GET /metrics` is answered (`admin.metrics_on_serving_port`, true without an admin listener); false:
    /// 404, as an unknown path, in the client's protocol. Always true on the admin listener's services
    /// (``forAdminListener(observers:)``).
    package var servesMetrics = true

    package init(
        dispatcher: TriggerDispatcher,
        authenticator: TokenAuthenticator,
        limits: CodecLimits,
        maxHeaderBytes: Int,
        maxConcurrentStreams: Int,
        requestTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        streamIdleTimeout: TimeAmount? = nil,
        logger: Logger,
        operations: AsyncOperations? = nil,
        configStatus: ConfigStatus? = nil,
        slowClients: SlowClientLimits = .defaults,
        health: HealthRegistry = HealthRegistry(),
        abacus: AbacusConfiguration = .defaults
    ) {
        self.dispatcher = dispatcher
        self.authenticator = authenticator
        self.limits = limits
        self.maxHeaderBytes = maxHeaderBytes
        self.maxConcurrentStreams = maxConcurrentStreams
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.streamIdleTimeout = streamIdleTimeout ?? idleTimeout
        self.logger = logger
        self.operations = operations
        self.configStatus = configStatus
        self.slowClients = slowClients
        self.health = health
        self.abacus = abacus
    }
}
