package import AsyncDispatch
package import Backends
package import GatewayConfig
package import GatewayServer
package import Logging
package import NIOCore
package import OperationStore
import Routing
package import ServiceLifecycle
import TriggerDispatch
package import TriggerModel
import WireCodecs

/// Turns a validated configuration into running parts: backend pools, the dispatcher, and the listener.
///
/// The executable and the test harness both assemble the gateway through here, so what the tests run is
/// what users run. The in-process runner is injected (the demo pipelines for the embedded default) so
/// this module does not depend on the demo runner.
package struct GatewayApp: Sendable {
    package let server: GatewayServer
    package let pools: [String: BackendPool]
    /// Async mode: present when the app was given an operation store.
    package let operations: AsyncOperations?
    package let asyncDispatcher: AsyncDispatcher?
    /// Readiness per component: the gateway (starting, serving, draining) and async mode (the store).
    package let health: HealthRegistry
    private let storeService: OperationStoreService?
    private let storeHealth: StoreHealthService?

    /// `store`: the opened operation store (see `openStore`); nil and no `reopenStore` leaves async mode off
    /// (its endpoints answer UNIMPLEMENTED). `reopenStore` makes a fresh connection to a server store: with
    /// it, a store that is down (nil `store` at start-up, or lost later) is reconnected in the background
    /// while async triggers answer 503.
    package init(
        configuration config: GatewayConfiguration,
        group: any EventLoopGroup,
        inProcessRunner: any TriggerRunner,
        logger: Logger,
        store openedStore: (any OperationStore)? = nil,
        reopenStore: StoreHealthService.Opener? = nil
    ) {
        let limits = CodecLimits(configuration: config.limits)
        var pools: [String: BackendPool] = [:]
        for poolConfig in config.pools {
            let backendConfig = BackendPoolConfiguration(configuration: poolConfig, limits: config.limits)
            let transport: any TriggerRunner
            switch backendConfig.transport {
            case .inProcess:
                transport = inProcessRunner
            case .http:
                transport = HTTPBackendTransport(configuration: backendConfig, group: group, codecLimits: limits)
            case .grpc:
                transport = GRPCBackendTransport(configuration: backendConfig, group: group)
            }
            pools[poolConfig.name] = BackendPool(configuration: backendConfig, transport: transport)
        }
        let dispatcher = TriggerDispatcher(routes: RouteTable(routes: config.routes), pools: pools)
        let replaceable = reopenStore.map { _ in ReplaceableOperationStore(openedStore) }
        let store: (any OperationStore)? = replaceable ?? openedStore
        let health = HealthRegistry(async: store == nil ? nil : (openedStore == nil ? .notServing : .serving))
        self.health = health
        let operations = store.map {
            AsyncOperations(
                store: $0,
                settings: config.store,
                routes: RouteTable(routes: config.routes),
                webhooks: WebhookSender(group: group, logger: logger)
            )
        }
        self.operations = operations
        self.asyncDispatcher = operations.map {
            AsyncDispatcher(
                operations: $0,
                dispatcher: dispatcher,
                shutdownGrace: config.timeouts.shutdownGrace,
                logger: logger
            )
        }
        self.storeService = store.map { OperationStoreService(store: $0, logger: logger) }
        let instance = asyncDispatcher?.instanceID ?? Operation.makeID()
        self.storeHealth = store.map {
            StoreHealthService(
                store: $0,
                replaceable: replaceable,
                reopen: reopenStore,
                health: health,
                interval: config.store.healthInterval,
                instance: instance,
                storeName: Self.storeName(config),
                logger: logger
            )
        }
        let services = FrontendServices(
            dispatcher: dispatcher,
            authenticator: TokenAuthenticator(
                tokens: config.tokens.map { (name: $0.name, token: $0.token) },
                authRequired: config.authRequired
            ),
            limits: limits,
            maxHeaderBytes: config.limits.maxHeaderBytes,
            maxConcurrentStreams: config.limits.maxConcurrentStreams,
            requestTimeout: TimeAmount(config.timeouts.request),
            idleTimeout: TimeAmount(config.timeouts.idle),
            logger: logger,
            operations: operations,
            health: health
        )
        self.pools = pools
        self.server = GatewayServer(
            configuration: .init(
                host: config.listenHost,
                port: config.listenPort,
                shutdownGrace: TimeAmount(config.timeouts.shutdownGrace)
            ),
            services: services,
            group: group
        )
    }
}

extension GatewayApp {
    /// The services to run, in start order: the store, its health probe, the async dispatcher, the listener. A
    /// `ServiceGroup` stops them in reverse: the listener drains first, then the dispatcher (running calls
    /// finish, queued work stays stored), then the store closes.
    package var services: [any Service] {
        var services: [any Service] = []
        if let storeService { services.append(storeService) }
        if let storeHealth { services.append(storeHealth) }
        if let asyncDispatcher { services.append(asyncDispatcher) }
        services.append(server)
        return services
    }
}

extension CodecLimits {
    init(configuration limits: LimitsConfiguration) {
        var codecLimits = CodecLimits.defaults
        codecLimits.maxBodyBytes = limits.maxBodyBytes
        codecLimits.maxBatch = limits.maxBatch
        codecLimits.maxDepth = limits.maxDepth
        self = codecLimits
    }
}

extension BackendPoolConfiguration {
    init(configuration pool: PoolConfiguration, limits: LimitsConfiguration) {
        let transport: Transport =
            switch pool.transport {
            case .inprocess: .inProcess
            case .http: .http
            case .grpc: .grpc
            }
        self.init(
            name: pool.name,
            transport: transport,
            endpoints: pool.endpoints.map { Endpoint(host: $0.host, port: $0.port, basePath: $0.basePath) },
            connectTimeout: TimeAmount(pool.connectTimeout),
            requestTimeout: TimeAmount(pool.requestTimeout),
            maxConcurrency: pool.maxConcurrency,
            maxQueue: pool.maxQueue,
            maxResponseBytes: limits.maxBodyBytes / 3 * 4 + (1 << 20)
        )
    }
}

extension TimeAmount {
    /// Config durations are Swift `Duration`s; NIO schedules with `TimeAmount`.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
