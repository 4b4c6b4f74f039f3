package import AsyncDispatch
package import Backends
package import GatewayConfig
package import GatewayServer
package import Logging
package import NIOCore
package import Observability
package import OperationStore
package import FoundationEssentials
import Routing
import SQLiteOperationStore
import Synchronization
package import ServiceLifecycle
import TriggerDispatch
package import TriggerModel
import WireCodecs

/// Turns a validated configuration into running parts: backend pools, the dispatcher, and the listener;
/// and swaps them for a new configuration on reload (SIGHUP).
///
/// The executable and the test harness both assemble the gateway through here, so what the tests run is
/// what users run. The in-process runner is injected (the demo pipelines for the embedded default) so
/// this module does not depend on the demo runner.
///
/// A configuration *generation* is what a reload replaces atomically: routes, pools, tokens, limits,
/// timeouts and webhooks. Requests take the generation in force when they start and keep it to the end.
/// Pools whose settings did not change carry over with their connections; a removed or changed pool
/// retires (its calls in flight finish, then its connections close). The listen address, the data
/// directory and the store cannot change without a restart: a reload that changes them logs "restart
/// required" and keeps them as they are.
package final class GatewayApp: Sendable {
    package let server: GatewayServer
    /// The admin listener (`admin:`); nil when the configuration has none.
    package let admin: AdminServer?
    /// Async mode: present when the app was given an operation store.
    package let operations: AsyncOperations?
    package let asyncDispatcher: AsyncDispatcher?
    /// Async runs the stop cut and handed back to the queue (``AsyncDispatcher/runsHandedBackAtStop``; 0 without
    /// async mode), for the stop's summary line.
    package var asyncRunsHandedBackAtStop: Int { asyncDispatcher?.runsHandedBackAtStop ?? 0 }
    /// Async runs the stop cut that the store could not take back (``AsyncDispatcher/runsNotHandedBackAtStop``).
    package var asyncRunsNotHandedBackAtStop: Int { asyncDispatcher?.runsNotHandedBackAtStop ?? 0 }
    /// Scheduled triggers: present with async mode (a store that keeps schedule state).
    package let scheduler: Scheduler?
    /// The digest of the configuration in force and the outcome of the last reload.
    package let configStatus: ConfigStatus
    /// Readiness per component: the gateway (starting, serving, draining) and async mode (the store).
    package let health: HealthRegistry
    /// What `/metrics` shows: one registry for the app's whole life, kept across reloads.
    package let metrics: GatewayMetrics
    /// The process's budget of buffered request-body bytes (`limits.max_buffered_request_bytes`; a reload sets
    /// its limit), shown on /metrics as `trigger_gateway_request_buffer_bytes`.
    package let requestBuffer: RequestBufferBudget
    /// The rate limit of the HTTP/2 connection-error warnings (`FrontendServices.connectionErrorLog`), kept across
    /// reloads so a reload does not restart its windows.
    let connectionErrorLog: FailureLogLimiter
    /// Pools a reload retired, kept on /metrics until their last call ended (see ``collectPoolMetrics()``).
    private let retiredPools = Mutex<[BackendPool]>([])
    /// The app's collectors on ``metrics``, cancelled when the app goes (see `deinit`).
    private let collectors = Mutex<[CollectorToken]>([])
    private let storeService: OperationStoreService?
    private let storeHealth: StoreHealthService?
    /// Shuts the completion webhooks' HTTP client down after the async dispatcher stopped.
    private let webhookService: WebhookService?
    private let group: any EventLoopGroup
    private let inProcessRunner: any TriggerRunner
    /// Told of every finished request, in order (`FrontendServices.requestObservers`), in every generation.
    private let requestObservers: RequestObservers
    /// What hears of the admin listener's requests: the access log alone (see `AdminServer`).
    private let adminObservers: RequestObservers
    let logger: Logger
    /// The process's log level, when its handlers follow one (`serve`): a reload applies `log.level` to it. Nil (an
    /// in-process test's handler): `log.level` keeps its running value until a restart.
    let logLevel: LogLevelSwitch?
    /// `log.access` in force: a reload sets it.
    let accessLog: AccessLogSwitch
    /// The configuration in force and its pools; replaced whole by `reload`.
    private let generation: Mutex<(configuration: GatewayConfiguration, pools: [String: BackendPool])>

    /// The pools of the configuration in force, by name.
    package var pools: [String: BackendPool] { generation.withLock { $0.pools } }

    /// The configuration in force.
    package var configuration: GatewayConfiguration { generation.withLock { $0.configuration } }

    /// `store`: the opened operation store (see `openStore`); nil and no `reopenStore` leaves async mode off
    /// (its endpoints answer UNIMPLEMENTED). `reopenStore` makes a fresh connection to a server store: with
    /// it, a store that is down (nil `store` at start-up, or lost later) is reconnected in the background
    /// while async triggers answer 503. `digest`: how operators recognise this configuration (see
    /// `ConfigFile`). `requestObservers`: told of every finished request (`RequestRecord`), after the
    /// gateway's own (the access log, the request metrics). `metrics`: the registry `/metrics` shows (a fresh
    /// one unless a test hands its own). `inheritedListener`: a listening socket passed by systemd, served
    /// instead of binding `listen` (whose value should then be that socket's address: see `ConfigFile.load`).
    /// `claimStallBound`: how long the async dispatcher's claim loop may go without a step before async readiness
    /// fails (nil: `AsyncDispatcher.stallBound` of the poll interval and the store's call limit; tests shorten it).
    /// `warningClock`: the monotonic clock the app's rate-limited warnings count their windows on (the HTTP/2
    /// connection errors'); a test passes one it moves by hand. `accessLogger`: where the access log writes
    /// (`serve`: logger `access` at a fixed `info`, apart from `log.level`); nil: `logger`.
    package init(
        configuration config: GatewayConfiguration,
        group: any EventLoopGroup,
        inProcessRunner: any TriggerRunner,
        logger: Logger,
        store openedStore: (any OperationStore)? = nil,
        reopenStore: StoreHealthService.Opener? = nil,
        digest: String = ConfigFile.embeddedDigest,
        requestObservers: [any RequestObserver] = [],
        metrics: GatewayMetrics = GatewayMetrics(),
        logLevel: LogLevelSwitch? = nil,
        accessLogger: Logger? = nil,
        inheritedListener: InheritedListener? = nil,
        claimStallBound: Duration? = nil,
        warningClock: @escaping @Sendable () -> NIODeadline = { .now() }
    ) {
        self.logLevel = logLevel
        let accessLog = AccessLogSwitch(config.log.access)
        self.accessLog = accessLog
        self.group = group
        self.inProcessRunner = inProcessRunner
        // The access log first: one line per request at `info`, while `log.access` holds; then the request metrics
        // (`/metrics`).
        self.requestObservers = RequestObservers(
            accessLog: AccessLog(logger: accessLogger ?? logger, enabled: accessLog), metrics: metrics.requests,
            others: requestObservers)
        let adminObservers = RequestObservers(accessLog: AccessLog(logger: accessLogger ?? logger, enabled: accessLog))
        self.adminObservers = adminObservers
        self.logger = logger
        self.metrics = metrics
        var collectors: [CollectorToken] = []
        let requestBuffer = RequestBufferBudget(limit: config.limits.maxBufferedRequestBytes)
        self.requestBuffer = requestBuffer
        let connectionErrorLog = FailureLogLimiter(interval: .seconds(10), now: warningClock)
        self.connectionErrorLog = connectionErrorLog
        // The gauges, never `metrics` itself: the registry keeps its collectors, so a collector holding `metrics` was a
        // cycle (metrics → collector → metrics) that kept every stopped app's registry alive, and with it what the
        // other collectors hold (the health registry).
        collectors.append(
            metrics.addCollector { [requestBuffer, gauges = metrics.requestBuffer] in
                let unauthenticated = requestBuffer.unauthenticated
                gauges.set(
                    bufferedBytes: requestBuffer.bufferedBytes, limit: requestBuffer.limit,
                    unauthenticatedBytes: unauthenticated.bufferedBytes, unauthenticatedLimit: unauthenticated.limit)
            })
        self.configStatus = ConfigStatus(digest: digest, metrics: metrics.config)
        let (pools, poolFailures) = Self.makePools(
            config, reusing: [:], group: group, inProcessRunner: inProcessRunner, metrics: metrics)
        // One table per generation, shared by the dispatcher and async mode's webhooks (as `reload` does).
        let routes = RouteTable(routes: config.routes)
        let dispatcher = TriggerDispatcher(routes: routes, pools: pools)
        let replaceable = reopenStore.map { _ in ReplaceableOperationStore(openedStore) }
        let baseStore: (any OperationStore)? = replaceable ?? openedStore
        let health = HealthRegistry(async: baseStore == nil ? nil : (openedStore == nil ? .notServing : .serving))
        self.health = health
        let storeFull = baseStore.map { _ in
            Self.storeFullLatch(config, health: health, metrics: metrics, logger: logger)
        }
        let store: (any OperationStore)? = baseStore.map {
            MeasuredOperationStore.measuring(
                $0, metrics: metrics.store, slowCalls: SlowCallLog(logger: logger, storeName: Self.storeName(config)),
                onDiskFull: { storeFull?.trip() })
        }
        let webhooks = store.map { _ in WebhookSender(group: group, logger: logger, metrics: metrics.webhooks) }
        if webhooks != nil { Self.registerWebhookRoutes(routes, metrics: metrics) }
        self.webhookService = webhooks.map { WebhookService(sender: $0) }
        let operations = store.map {
            AsyncOperations(store: $0, settings: config.store, routes: routes, webhooks: webhooks, metrics: metrics)
        }
        self.operations = operations
        operations?.queueBounds.limit(Self.asyncQueueLimits(config))
        // Loaded again here (ConfigFile.load checked the files): a failure now (the files changed meanwhile)
        // refuses the start rather than serve cleartext where TLS was asked for.
        let tls: ListenerTLS?
        var tlsFailure: ListenerTLS.Failure?
        do {
            tls = try config.tls.map { configured throws(ListenerTLS.Failure) in try ListenerTLS.load(configured) }
        } catch {
            tls = nil
            tlsFailure = error
        }
        metrics.setListenerCertificateExpiry(tls?.notValidAfter.timeIntervalSince1970)
        let scheduler = Self.makeScheduler(config, operations: operations, logger: logger)
        self.scheduler = scheduler
        let servingServices = Self.makeFrontendServices(
            config,
            requestBuffer: requestBuffer,
            connectionErrorLog: connectionErrorLog,
            dispatcher: dispatcher,
            operations: operations,
            configStatus: configStatus,
            health: health,
            tls: tls,
            logger: logger,
            scheduler: scheduler,
            requestObservers: self.requestObservers,
            metrics: metrics
        )
        self.admin = config.admin.map { admin in
            AdminServer(
                configuration: .init(
                    host: admin.listen.host, port: admin.listen.port, maxConnections: admin.maxConnections,
                    shutdownGrace: TimeAmount(config.timeouts.shutdownGrace)),
                services: servingServices.forAdminListener(observers: adminObservers), group: group)
        }
        let server = GatewayServer(
            configuration: .init(
                host: config.listenHost,
                port: config.listenPort,
                shutdownGrace: TimeAmount(config.timeouts.shutdownGrace),
                maxConnections: config.limits.maxConnections,
                startFailure: (tlsFailure ?? poolFailures.first).map { "\($0.path): \($0.message)" },
                inherited: inheritedListener,
                reusePort: config.listenReusePort
            ),
            services: servingServices,
            group: group
        )
        scheduler?.setStartGate(Self.listenerBound(server))
        // One budget for the process's backend connections, from what the open-file limit leaves after the
        // client connections: a connect over it is the gateway's overload, never EMFILE (which can kill the
        // process: see GatewayServer.fitOpenFileLimit).
        BackendConnectionBudget.shared.limit = server.backendConnectionLimit
        Self.warnIfPoolsOutgrowBudget(pools, group: group, logger: logger)
        self.server = server
        let identity = operations.flatMap { _ in Self.instanceIdentity(dataDir: config.dataDir, logger: logger) }
        self.asyncDispatcher = operations.map {
            AsyncDispatcher(
                operations: $0,
                dispatcher: dispatcher,
                shutdownGrace: config.timeouts.shutdownGrace,
                logger: logger,
                identity: identity,
                startGate: Self.listenerBound(server),
                claimWatch: ClaimLoopWatch(
                    bound: claimStallBound
                        ?? AsyncDispatcher.stallBound(
                            pollInterval: config.store.pollInterval, storeCallLimit: Self.storeCallLimit(config))
                ) { [health] stalledFor in
                    if let stalledFor { health.dispatcherStalled(for: stalledFor) } else { health.dispatcherClaiming() }
                }
            )
        }
        self.storeService = store.map { OperationStoreService(store: $0, logger: logger) }
        // The heartbeat row is the instance id's (the data dir's), not the process's: a second live process
        // writing it is a copied data dir, which the store's probe reports (review 9 #2).
        let instance = identity ?? asyncDispatcher?.instanceID ?? Operation.makeID()
        self.storeHealth = store.map {
            StoreHealthService(
                store: $0,
                replaceable: replaceable,
                reopen: reopenStore,
                health: health,
                interval: config.store.healthInterval,
                instance: instance,
                storeName: Self.storeName(config),
                full: storeFull,
                logger: logger
            )
        }
        self.generation = Mutex((configuration: config, pools: pools))
        let poolCollector = metrics.addCollector { [weak self] in self?.collectPoolMetrics() }
        collectors.append(poolCollector)
        collectors.append(
            metrics.addCollector { [connections = metrics.connections] in
                let budget = BackendConnectionBudget.shared
                connections.setBackendConnections(
                    open: budget.open, idle: budget.idle, limit: budget.limit, refusedTotal: budget.refused)
            })
        collectors.append(
            metrics.addCollector { [connections = metrics.connections, weak server] in
                guard let held = server?.admittedConnections else { return }
                connections.setAdmittedConnections(open: held.open, limit: held.limit)
            })
        collectors.append(
            metrics.addCollector { [readiness = metrics.readiness] in
                for (component, status) in health.components {
                    readiness.set(component.rawValue, serving: status == .serving)
                }
            })
        self.collectors.withLock { $0 = collectors }
    }

    /// A registry a test handed in outlives the app: its collectors end with the app, so they stop reading (and
    /// holding) the app's health registry and request buffer.
    deinit {
        for collector in collectors.withLock({ $0 }) { collector.cancel() }
    }

    /// The webhook counters of each route with a webhook, at 0 (`WebhookMetrics.register(route:)`).
    private static func registerWebhookRoutes(_ routes: RouteTable, metrics: GatewayMetrics) {
        for entry in routes.entries where entry.route.webhook != nil { metrics.webhooks.register(route: entry.pattern) }
    }

    /// The async dispatcher's and the scheduler's start gate: the listener is bound. Holds `server` weakly: the
    /// server holds the scheduler (its schedules API, `FrontendServices.scheduler`), so a gate holding the server
    /// was a cycle (server → services → scheduler → gate → server) that kept a stopped app's server, async mode,
    /// pools and metrics alive. While the gate is awaited the app's services (the service group) hold the server;
    /// a server already freed means the gateway is gone, and the gate throws (nothing starts).
    private static func listenerBound(_ server: GatewayServer) -> @Sendable () async throws -> Void {
        { [weak server] in
            guard let server else { throw CancellationError() }
            _ = try await server.localAddress()
        }
    }

    /// Async readiness after writes refused for lack of disk space (``StoreFullLatch``). For SQLite, readiness
    /// needs `limits.max_body_bytes` + 1 MiB free again after one (the largest trigger the gateway accepts, and
    /// room for the WAL), and the data directory's free bytes go on /metrics
    /// (`trigger_gateway_data_directory_free_bytes`, read at scrape time: one statvfs per scrape, none per call)
    /// so an operator can alert before the disk is full.
    static func storeFullLatch(
        _ config: GatewayConfiguration, health: HealthRegistry, metrics: GatewayMetrics, logger: Logger
    ) -> StoreFullLatch {
        var space: StoreFullLatch.Space?
        if config.store.kind == .sqlite {
            let dataDir = config.dataDir
            space = StoreFullLatch.Space(
                availableBytes: { DataDirectorySpace.availableBytes(dataDir) },
                needed: UInt64(config.limits.maxBodyBytes) + (1 << 20))
            metrics.trackDataDirectoryFreeBytes { DataDirectorySpace.availableBytes(dataDir) }
        }
        return StoreFullLatch(health: health, space: space, storeName: storeName(config), logger: logger)
    }

    /// Says at start-up, and at each reload, when the configured pools can need more backend connections than the
    /// budget allows (as nginx warns that `worker_connections are not enough`, at start and reload alike): not an
    /// error, since the worst case needs every list of every endpoint at its peak at once; idle connections make
    /// room (the budget closes them), so only calls in flight past the budget answer 503 (`UO`). `pools`: the
    /// configuration's (a reload's new generation; pools it retired drain on their own).
    static func warnIfPoolsOutgrowBudget(_ pools: [String: BackendPool], group: any EventLoopGroup, logger: Logger) {
        let budget = BackendConnectionBudget.shared.limit
        let loops = Array(group.makeIterator()).count
        let needs = pools.values.reduce(0) { $0 + $1.configuration.worstCaseConnections(loops: loops) }
        guard needs > budget else { return }
        logger.warning(
            "the backend pools can need more connections than the open-file limit leaves; connects over it close an idle backend connection, and answer 503 (UO) when every one carries a call: raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower pools' max_concurrency",
            metadata: [
                "backend.connections.worst_case": .stringConvertible(needs),
                "backend.connections.limit": .stringConvertible(budget),
            ]
        )
    }

    /// Scrape time: each pool's gauges. A retired pool stays on /metrics while it still has calls in flight (its
    /// counters are where those calls are counted); after its last call its series go, except those the pool of
    /// the same name in force now shares (same pool and endpoint: the registry's same instruments). While both
    /// run, a shared gauge shows the pool in force.
    private func collectPoolMetrics() {
        let live = pools
        releaseDrainedPools(live: live)
        for pool in retiredPools.withLock({ $0 }) { pool.collectMetrics() }
        for pool in live.values { pool.collectMetrics() }
    }

    /// Lets go of the retired pools whose last call ended: their series leave /metrics (except those `live`, the
    /// pools in force, share), and the pools (their transports, their connections' bookkeeping) are freed. Run at
    /// every scrape and every reload: with scrapes alone, a gateway nobody scraped kept every pool each reload
    /// ever retired.
    private func releaseDrainedPools(live: [String: BackendPool]) {
        let drained: [BackendPool] = retiredPools.withLock { retired in
            let (busy, done) = (retired.filter { $0.slotsInUse > 0 }, retired.filter { $0.slotsInUse == 0 })
            retired = busy
            return done
        }
        for pool in drained {
            pool.metrics?.unregister(keeping: live[pool.name]?.metrics)
        }
    }

    /// What a reload did.
    package struct ReloadReport: Sendable, Equatable {
        /// Keys that differ in the new file but only take effect after a restart (kept as they are).
        package var restartRequired: [String]
        package var poolsAdded: [String]
        package var poolsRetired: [String]
        /// The listener certificate now in force, when the reload changed it (subject or expiry); nil when not.
        package var certificate: Certificate? = nil
        /// The log level now in force, when the reload changed it; nil when not.
        package var logLevel: LogConfiguration.Level? = nil
        /// `log.access` now in force, when the reload changed it; nil when not.
        package var accessLog: Bool? = nil

        /// A listener certificate as the log names it (`tls.subject`, `tls.not_valid_after`).
        package struct Certificate: Sendable, Equatable {
            package var subject: String
            package var notValidAfter: Date
        }
    }

    /// Makes `new` the configuration of every request that starts from now on (see the type's summary).
    /// `new` has been validated (`ConfigFile.load`); the caller logs and records the outcome.
    ///
    /// Keys that need a restart (`listen`, `data_dir`, `store`, …) keep their running values. Two checks then
    /// run on the configuration that will actually be in force, and refuse the whole reload (nothing changes):
    /// - the listen policy (no tokens → loopback only, unless `auth: none`) against the *running* listen
    ///   address, so a file without `listen:` or `tokens:` cannot leave a public listener unauthenticated;
    /// - TLS on/off: adding or removing `tls:` would change the listener's protocol under its clients (a file
    ///   whose `tls:` block was lost would turn the port into cleartext). Like nginx/Envoy, where the
    ///   listener's protocol belongs to the listener, that needs a restart; new certificates for a TLS
    ///   listener are applied.
    ///
    /// - Throws: `ConfigError` naming the key (`listen`, `tls`), with the message a reload logs.
    @discardableResult
    package func reload(to new: GatewayConfiguration) throws(ConfigError) -> ReloadReport {
        var applied = new
        let (old, oldPools) = generation.withLock { ($0.configuration, $0.pools) }
        var restartRequired: [String] = []
        if new.listen != old.listen {
            restartRequired.append("listen")
            applied.listen = old.listen
        }
        if new.listenReusePort != old.listenReusePort {
            restartRequired.append("listen_reuse_port")
            applied.listenReusePort = old.listenReusePort
        }
        if new.dataDir != old.dataDir {
            restartRequired.append("data_dir")
            applied.dataDir = old.dataDir
        }
        if new.store != old.store {
            restartRequired.append("store")
            applied.store = old.store
        }
        if new.timeouts.shutdownGrace != old.timeouts.shutdownGrace {
            restartRequired.append("timeouts.shutdown_grace")
            applied.timeouts.shutdownGrace = old.timeouts.shutdownGrace
        }
        if new.limits.maxConnections != old.limits.maxConnections {
            restartRequired.append("limits.max_connections")
            applied.limits.maxConnections = old.limits.maxConnections
        }
        // The admin listener is bound at start-up, as `listen` is: adding, removing or moving it, or its cap, waits
        // for a restart; `metrics_on_serving_port` applies now, but only while an admin listener runs (a file that
        // adds `admin:` must not hide the serving port's /metrics before the admin port exists).
        switch (old.admin, new.admin) {
        case (nil, nil):
            break
        case (nil, _?):
            restartRequired.append("admin")
            applied.admin = nil
        case (let running?, nil):
            restartRequired.append("admin")
            applied.admin = running
            applied.admin?.metricsOnServingPort = true
        case (let running?, let wanted?):
            if wanted.listen != running.listen {
                restartRequired.append("admin.listen")
                applied.admin?.listen = running.listen
            }
            if wanted.maxConnections != running.maxConnections {
                restartRequired.append("admin.max_connections")
                applied.admin?.maxConnections = running.maxConnections
            }
        }
        if new.log.format != old.log.format {
            // The process's log handler is installed once, at start-up, with its format.
            restartRequired.append("log.format")
            applied.log.format = old.log.format
        }
        var logLevelChanged: LogConfiguration.Level?
        if new.log.level != old.log.level {
            if logLevel != nil {
                // Applied below with the rest, once the reload cannot be refused any more.
                logLevelChanged = new.log.level
            } else {
                restartRequired.append("log.level")
                applied.log.level = old.log.level
            }
        }
        let accessLogChanged = new.log.access != old.log.access ? new.log.access : nil
        try applied.validateListenPolicy()
        if (applied.tls == nil) != (old.tls == nil) {
            throw ConfigError(
                source: new.source, path: "tls",
                message: old.tls == nil
                    ? "TLS cannot be switched on by a reload: the listener on \(old.listen) serves cleartext "
                        + "until a restart"
                    : "TLS cannot be switched off by a reload (the `tls:` block is missing): the listener on "
                        + "\(old.listen) keeps serving TLS; remove TLS with a restart")
        }
        // New certificates for new connections. A TLS configuration that no longer loads (the files changed
        // after validation) keeps the running one rather than fall back to cleartext.
        let runningTLS = server.currentServices.value.tls
        var tls = runningTLS
        do {
            tls = try applied.tls.map { configured throws(ListenerTLS.Failure) in try ListenerTLS.load(configured) }
        } catch {
            logger.error(
                "tls: the new certificate files do not load; the running ones stay",
                metadata: ["tls.error": "\(error.path): \(error.message)"])
        }
        var certificate: ReloadReport.Certificate?
        if let tls,
            tls.serialNumber != runningTLS?.serialNumber || tls.subject != runningTLS?.subject
                || tls.notValidAfter != runningTLS?.notValidAfter
        {
            certificate = ReloadReport.Certificate(subject: tls.subject, notValidAfter: tls.notValidAfter)
        }
        metrics.setListenerCertificateExpiry(tls?.notValidAfter.timeIntervalSince1970)
        let (pools, poolFailures) = Self.makePools(
            applied, reusing: oldPools, group: group, inProcessRunner: inProcessRunner, metrics: metrics)
        for failure in poolFailures {
            logger.error(
                "tls: a pool's certificate files do not load; its running version stays",
                metadata: ["tls.error": "\(failure.path): \(failure.message)"])
        }
        Self.warnIfPoolsOutgrowBudget(pools, group: group, logger: logger)
        let routes = RouteTable(routes: applied.routes)
        if operations != nil { Self.registerWebhookRoutes(routes, metrics: metrics) }
        let dispatcher = TriggerDispatcher(routes: routes, pools: pools)
        generation.withLock { $0 = (configuration: applied, pools: pools) }
        // New requests see the new generation from here on; the order below only decides which of two
        // equally new things a request that starts meanwhile sees.
        asyncDispatcher?.use(dispatcher)
        operations?.use(routes: routes)
        operations?.queueBounds.limit(Self.asyncQueueLimits(applied))
        scheduler?.use(Self.schedules(of: applied, logger: logger))
        requestBuffer.limit = applied.limits.maxBufferedRequestBytes
        let servingServices = Self.makeFrontendServices(
            applied,
            requestBuffer: requestBuffer,
            connectionErrorLog: connectionErrorLog,
            dispatcher: dispatcher,
            operations: operations,
            configStatus: configStatus,
            health: health,
            tls: tls,
            logger: logger,
            scheduler: scheduler,
            requestObservers: requestObservers,
            metrics: metrics
        )
        server.currentServices.replace(with: servingServices)
        // The admin listener's requests from now on see the new timeouts (its address and cap wait for a restart).
        admin?.currentServices.replace(with: servingServices.forAdminListener(observers: adminObservers))
        var retired: [String] = []
        for (name, pool) in oldPools where pools[name] !== pool {
            pool.retire()
            retiredPools.withLock { $0.append(pool) }
            retired.append(name)
        }
        releaseDrainedPools(live: pools)
        let added = pools.filter { oldPools[$0.key] !== $0.value }.map(\.key)
        if let logLevelChanged, let logLevel {
            logLevel.set(Logger.Level(rawValue: logLevelChanged.rawValue) ?? .info)
        }
        if let accessLogChanged { accessLog.set(accessLogChanged) }
        return ReloadReport(
            restartRequired: restartRequired, poolsAdded: added.sorted(), poolsRetired: retired.sorted(),
            certificate: certificate, logLevel: logLevelChanged, accessLog: accessLogChanged)
    }

    /// One pool per configured pool; a pool whose settings are unchanged in `reusing` is carried over. A pool
    /// whose TLS files no longer load (they changed after `ConfigFile.load` checked them) is reported in
    /// `failures` and keeps its version in `reusing`, if any, rather than run without its TLS.
    private static func makePools(
        _ config: GatewayConfiguration,
        reusing previous: [String: BackendPool],
        group: any EventLoopGroup,
        inProcessRunner: any TriggerRunner,
        metrics: GatewayMetrics
    ) -> (pools: [String: BackendPool], failures: [ListenerTLS.Failure]) {
        let limits = CodecLimits(configuration: config.limits)
        var pools: [String: BackendPool] = [:]
        var failures: [ListenerTLS.Failure] = []
        for (index, poolConfig) in config.pools.enumerated() {
            var backendConfig = BackendPoolConfiguration(configuration: poolConfig, limits: config.limits)
            do {
                backendConfig.tls = try BackendTLS.load(pool: poolConfig, index: index)
            } catch {
                failures.append(error)
                if let existing = previous[poolConfig.name] { pools[poolConfig.name] = existing }
                continue
            }
            if let existing = previous[poolConfig.name], existing.configuration == backendConfig {
                pools[poolConfig.name] = existing
                continue
            }
            let poolMetrics = metrics.pool(poolConfig.name, endpoints: backendConfig.endpoints.map(\.description))
            let transport: any TriggerRunner
            switch backendConfig.transport {
            case .inProcess:
                transport = inProcessRunner
            case .http:
                transport = HTTPBackendTransport(
                    configuration: backendConfig, group: group, codecLimits: limits, metrics: poolMetrics)
            case .grpc:
                transport = GRPCBackendTransport(configuration: backendConfig, group: group, metrics: poolMetrics)
            }
            // The async dispatcher's runs go out on these loops too, each with its deadline's timer on its loop.
            pools[poolConfig.name] = BackendPool(
                configuration: backendConfig, transport: transport, metrics: poolMetrics, eventLoopGroup: group)
        }
        return (pools, failures)
    }

    private static func makeFrontendServices(
        _ config: GatewayConfiguration,
        requestBuffer: RequestBufferBudget,
        connectionErrorLog: FailureLogLimiter,
        dispatcher: TriggerDispatcher,
        operations: AsyncOperations?,
        configStatus: ConfigStatus,
        health: HealthRegistry,
        tls: ListenerTLS?,
        logger: Logger,
        scheduler: Scheduler? = nil,
        requestObservers: RequestObservers,
        metrics: GatewayMetrics
    ) -> FrontendServices {
        var services = FrontendServices(
            dispatcher: dispatcher,
            authenticator: TokenAuthenticator(
                tokens: config.tokens.map { (name: $0.name, token: $0.token) },
                authRequired: config.authRequired
            ),
            limits: CodecLimits(configuration: config.limits),
            maxHeaderBytes: config.limits.maxHeaderBytes,
            maxConcurrentStreams: config.limits.maxConcurrentStreams,
            requestTimeout: TimeAmount(config.timeouts.request),
            idleTimeout: TimeAmount(config.timeouts.idle),
            streamIdleTimeout: TimeAmount(config.timeouts.streamIdle),
            logger: logger,
            operations: operations,
            configStatus: configStatus,
            slowClients: SlowClientLimits(timeouts: config.timeouts, limits: config.limits),
            health: health,
            abacus: config.abacus
        )
        services.tls = tls
        services.maxConnectionsPerPeer = config.limits.maxConnectionsPerPeer
        services.maxBufferedRequestBytesPerConnection = config.limits.maxBufferedRequestBytesPerConnection
        services.scheduler = scheduler
        services.metrics = metrics
        services.requestBuffer = requestBuffer
        services.connectionErrorLog = connectionErrorLog
        services.maxDecompressedBytes = config.limits.maxDecompressedBytes
        services.craft = makeCraftSurface(config, dispatcher: dispatcher, logger: logger)
        services.namespaces = NamespaceDirectory(configuration: config)
        services.requestObservers = requestObservers
        services.servesMetrics = config.admin?.metricsOnServingPort ?? true
        return services
    }
}

extension GatewayApp {
    /// The services to run, in start order: the store, its health probe, the webhook client, the admin listener
    /// (when configured), then the async
    /// dispatcher, the scheduler and the listener as one ``SharedGraceServices``. A `ServiceGroup` stops them in
    /// reverse: the listener drains while the dispatcher stops claiming and lets its running calls finish (queued
    /// work stays stored), both within the one `timeouts.shutdown_grace` counted from the signal; then webhook
    /// POSTs under way finish and the webhook client closes, then the store closes.
    package var services: [any Service] {
        var services: [any Service] = []
        if let storeService { services.append(storeService) }
        if let storeHealth { services.append(storeHealth) }
        if let webhookService { services.append(webhookService) }
        // Before the listener, so it stops after the listener drained: probes read `/readyz` 503 meanwhile.
        if let admin { services.append(admin) }
        var work: [any Service] = []
        if let asyncDispatcher { work.append(asyncDispatcher) }
        if let scheduler { work.append(scheduler) }
        work.append(server)
        services.append(SharedGraceServices(services: work))
        return services
    }
}

extension CodecLimits {
    init(configuration limits: LimitsConfiguration) {
        var codecLimits = CodecLimits.defaults
        codecLimits.maxBodyBytes = limits.maxBodyBytes
        codecLimits.maxBatch = limits.maxBatch
        codecLimits.maxDepth = limits.maxDepth
        codecLimits.maxJSONMembers = limits.maxJSONMembers
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
            idleTimeout: TimeAmount(pool.idleTimeout),
            maxConcurrency: pool.maxConcurrency,
            maxQueue: pool.maxQueue,
            maxResponseBytes: Self.maxResponseBytes(forRequestCap: limits.maxBodyBytes),
            outlierDetection: OutlierDetection(
                consecutiveFailures: pool.outlierConsecutiveFailures,
                baseEjection: TimeAmount(pool.outlierBaseEjection),
                maxEjection: TimeAmount(pool.outlierMaxEjection),
                maxEjectedPercent: pool.outlierMaxEjectedPercent
            ),
            retryBudget: RetryBudget(percentOfActive: pool.retryBudgetPercent, minConcurrent: pool.retryMinConcurrency),
            maxTries: pool.retryMaxTries,
            healthCheck: pool.healthCheck.map {
                HealthCheckConfiguration(
                    path: $0.path,
                    interval: TimeAmount($0.interval),
                    timeout: TimeAmount($0.timeout),
                    healthyThreshold: $0.healthyThreshold,
                    unhealthyThreshold: $0.unhealthyThreshold
                )
            }
        )
    }
}

extension GatewayApp {
    /// `pools[].max_async_queued` of `config`, by pool name (pools without one left out).
    static func asyncQueueLimits(_ config: GatewayConfiguration) -> [String: Int] {
        Dictionary(
            uniqueKeysWithValues: config.pools.compactMap { pool in pool.maxAsyncQueued.map { (pool.name, $0) } })
    }
}
