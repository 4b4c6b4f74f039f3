package import DemoRunner
import Foundation
package import GatewayApp
package import GatewayConfig
import Backends
import GatewayServer
package import Observability
package import Logging
package import NIOCore
import NIOPosix
package import OperationStore
import ServiceLifecycle

/// A gateway running in the test process on 127.0.0.1 with an ephemeral port.
package struct TestGateway: Sendable {
    package let port: Int
    package let configuration: GatewayConfiguration
    /// The operation store the gateway runs async mode on.
    package let store: any OperationStore
    /// The assembled gateway (pools, config status, reload).
    package let app: GatewayApp
    /// Starts graceful shutdown (what SIGTERM does) without waiting for it to finish.
    package let beginShutdown: @Sendable () async -> Void

    /// Reloads with `yaml` as SIGHUP would with a file holding it (the test's listen address and data dir
    /// are kept, as the command line's overrides are). Throws the file's `ConfigError`.
    @discardableResult
    package func reload(yaml: String) throws -> GatewayApp.ReloadReport {
        var new = try GatewayConfiguration.parse(yaml: yaml, source: "reload.yaml")
        new.listen = configuration.listen
        new.dataDir = configuration.dataDir
        return try app.reload(to: new)
    }

    /// Connections closed at accept because `limits.max_connections` were open.
    package let rejectedConnections: @Sendable () -> Int

    /// Client connections the gateway has accepted and set up and that are still open: a test waits for
    /// it to reach what it connected before relying on the gateway having seen them.
    package let openConnections: @Sendable () -> Int

    /// Returns once a graceful stop (``beginShutdown``) has queued its drain notice on every open connection.
    package let drainNoticeSent: @Sendable () async -> Void

    /// A fresh keep-alive connection to the gateway.
    package func client() async throws -> TestHTTPClient {
        try await TestHTTPClient.connect(port: port)
    }
}

/// Runs `body` against a gateway built from `yaml` (nil: the embedded default) exactly as the executable
/// builds it, then shuts it down gracefully, also when `body` throws. `inProcessRunner` serves the embedded
/// default's `demo` namespace; pass one to watch its `cancellations`.
///
/// The operation store is `store` when given (tests inject failing stores), else the configured one (passed
/// through `wrapStore`, so a test can interpose on a real store); a SQLite store lives in a fresh temporary
/// data directory, removed afterwards.
///
/// `eventLoopGroup` (nil: NIO's singleton, one loop per core) serves the gateway's connections and its pools:
/// a test whose figure depends on how many loops share the backend connections (a pool keeps one per loop)
/// passes a group of its own size, and shuts it down afterwards. `log`: keeps the gateway's lines (`logLevel` and
/// above: warnings unless asked; `.info` keeps the access log and the `operation run` lines) for the test's
/// assertions. `claimStallBound`: the async dispatcher's (`GatewayApp.init`; nil: derived). `warningClock`: the
/// clock the app's rate-limited warnings count their windows on (see `GatewayApp.init`).
package func withTestGateway<T: Sendable>(
    yaml: String? = nil,
    eventLoopGroup: (any EventLoopGroup)? = nil,
    inProcessRunner: DemoPipelines = DemoPipelines(),
    store injectedStore: (any OperationStore)? = nil,
    wrapStore: (any OperationStore) -> any OperationStore = { $0 },
    requestObservers: [any RequestObserver] = [],
    log: RecordedLog? = nil,
    claimStallBound: Duration? = nil,
    logLevel: Logger.Level = .warning,
    warningClock: @escaping @Sendable () -> NIODeadline = { .now() },
    _ body: (TestGateway) async throws -> T
) async throws -> T {
    var configuration = try yaml.map { try GatewayConfiguration.parse(yaml: $0, source: "test.yaml") } ?? .defaults
    configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
    // In-process gateways test behaviour, not durability (the process tests do that on a real disk): their
    // SQLite file lives on tmpfs when there is one, so fsyncs of parallel tests do not queue behind the disk.
    let scratch = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let dataDir = "\(scratch)/tg-test-\(UUID().uuidString)"
    configuration.dataDir = dataDir
    defer { try? FileManager.default.removeItem(atPath: dataDir) }
    var logger =
        log.map { log in Logger(label: "test-gateway", factory: { _ in log }) } ?? Logger(label: "test-gateway")
    logger.logLevel = logLevel
    let store: any OperationStore
    if let injectedStore {
        store = injectedStore
    } else {
        store = wrapStore(try await GatewayApp.openStore(configuration, logger: logger))
    }
    let app = GatewayApp(
        configuration: configuration,
        group: eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton,
        inProcessRunner: inProcessRunner,
        logger: logger,
        store: store,
        requestObservers: requestObservers,
        claimStallBound: claimStallBound,
        warningClock: warningClock
    )
    let serviceGroup = ServiceGroup(
        configuration: .init(
            services: app.services.map { .init(service: $0) },
            gracefulShutdownSignals: [],
            logger: logger
        )
    )
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await serviceGroup.run() }
        let outcome: Result<T, any Error>
        do {
            let address = try await app.server.localAddress()
            let server = app.server
            let gateway = TestGateway(
                port: address.port!,
                configuration: configuration,
                store: store,
                app: app,
                beginShutdown: { await serviceGroup.triggerGracefulShutdown() },
                rejectedConnections: { server.rejectedConnections },
                openConnections: { server.openConnections },
                drainNoticeSent: { await server.waitUntilDrainNoticeSent() }
            )
            outcome = .success(try await body(gateway))
        } catch {
            outcome = .failure(error)
        }
        await serviceGroup.triggerGracefulShutdown()
        try await group.waitForAll()
        // What the process's exit would do: active health checks stop, idle backend connections close.
        for pool in app.pools.values { pool.retire() }
        return try outcome.get()
    }
}
