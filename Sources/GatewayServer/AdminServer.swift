import Logging
package import NIOCore
import NIOPosix
import ServiceLifecycle
package import Observability

/// The admin listener (`admin.listen`): HTTP/1.1 `GET /metrics`, `/healthz` and `/readyz` (and Instill's
/// `/v1beta/__liveness`, `/v1beta/__readiness`) for operators, on a port of its own; every other path is 404
/// (security review 60, I4; Envoy's admin listener, nghttpx's `healthmon` frontend).
///
/// Its connections are the serving port's HTTP/1.1 frontend (``HTTP1FrontendHandler``, with its decoder, request
/// rules, header timeout and answers) behind the read-idle timer, gated to those paths (``HTTP1FrontendHandler/Gate/admin``)
/// and routed by the same code, so the exposition and the probes' bodies are the serving port's. What differs:
/// - its own connection cap (`admin.max_connections`), apart from `limits.max_connections` and
///   `limits.max_connections_per_peer`: clients that fill the serving caps do not keep a probe out, and probes do
///   not take a client's slot;
/// - no TLS, no protocol sniffing (HTTP/1.1 only) and no per-peer cap;
/// - its requests are in the access log, not in the request metrics (`requests_total`, the durations): a scraper
///   and the probes every few seconds would otherwise be most of a quiet gateway's traffic, and the serving
///   metrics are about clients (as Envoy keeps admin requests out of its listeners' `downstream_rq` stats); nor
///   are its connections in the serving connection metrics.
///
/// Shutdown: it stops after the serving listener has drained (it comes before it in `GatewayApp.services`), so a
/// probe during the drain reads `/readyz` 503 (draining) rather than a refused connection; then it drains its own
/// connections as the serving listener does (``ConnectionTracker``).
package final class AdminServer: Service {
    package struct Configuration: Sendable {
        package var host: String
        package var port: Int
        /// `admin.max_connections`: open admin connections at most; one accepted over it is closed at once.
        package var maxConnections: Int
        package var shutdownGrace: TimeAmount

        package init(host: String, port: Int, maxConnections: Int = 16, shutdownGrace: TimeAmount = .seconds(10)) {
            self.host = host
            self.port = port
            self.maxConnections = maxConnections
            self.shutdownGrace = shutdownGrace
        }
    }

    private let configuration: Configuration
    /// The admin view of the services in force (``FrontendServices/forAdminListener(observers:)``); a reload
    /// replaces them with the serving listener's.
    package let currentServices: CurrentFrontendServices
    private let group: any EventLoopGroup
    private let boundAddress = BoundAddress()
    private let connections = ConnectionTracker()
    private let admission: ConnectionAdmission

    package init(configuration: Configuration, services: FrontendServices, group: any EventLoopGroup) {
        self.configuration = configuration
        self.currentServices = CurrentFrontendServices(services)
        self.group = group
        self.admission = ConnectionAdmission(limit: configuration.maxConnections)
    }

    /// The address actually bound (useful with port 0); waits until the listener is up, throws its bind failure.
    package func localAddress() async throws -> SocketAddress { try await boundAddress.value() }

    /// Connections closed at accept because `admin.max_connections` were open.
    package var rejectedConnections: Int { admission.rejected }

    /// Admin connections accepted and not yet closed.
    package var openConnections: Int { connections.count }

    package func run() async throws {
        let current = currentServices
        let logger = current.value.logger
        let admission = self.admission
        let connections = self.connections
        let serverChannel: any Channel
        do {
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let refuse: @Sendable (any Channel) -> Bool = { accepted in
                            guard case .admitted = admission.admit(accepted, perPeerLimit: 0) else {
                                Self.refuse(accepted, admission: admission, logger: logger)
                                return true
                            }
                            return false
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            AcceptPauseHandler(logger: logger, refuse: refuse))
                    }
                }
                .serverChannelOption(.backlog, value: 128)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // IPPROTO_TCP's TCP_NODELAY, never `.socketOption(.tcp_nodelay)` (see GatewayServer).
                        try channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: 1)
                        connections.add(channel)
                        let services = current.value
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(ReadIdleHandler(timeout: services.idleTimeout))
                        try sync.addHandler(
                            HTTP1FrontendHandler(
                                services: current, peer: channel.remoteAddress?.hostPort, gate: .admin))
                    }
                }
                .bind(host: configuration.host, port: configuration.port).get()
        } catch {
            let failure = ListenFailure(
                host: configuration.host, port: configuration.port, error: error, key: "admin.listen")
            logger.error(
                "admin: cannot listen",
                metadata: ["admin.address": "\(failure.address)", "error": "\(failure.reason)"])
            boundAddress.set(.failure(failure))
            throw failure
        }
        let address = serverChannel.localAddress!
        boundAddress.set(.success(address))
        logger.info(
            "admin listening",
            metadata: [
                "admin.address": "\(address.hostPort)",
                "admin.max_connections": .stringConvertible(configuration.maxConnections),
            ])
        await withGracefulShutdownHandler {
            try? await serverChannel.closeFuture.get()
        } onGracefulShutdown: { [group] in
            Task { await GatewayServer.stopAccepting(serverChannel, group: group) }
        }
        await connections.drain(grace: configuration.shutdownGrace)
        logger.info("admin listener stopped")
    }

    /// Closes a connection accepted over `admin.max_connections`, logged for the first one and every 1000th after
    /// (as the serving listener's refusals are), naming the peer.
    private static func refuse(_ channel: any Channel, admission: ConnectionAdmission, logger: Logger) {
        let rejected = admission.rejected
        if ConnectionAdmission.isLogged(refusal: rejected) {
            logger.warning(
                "admin connection refused: too many open admin connections",
                metadata: [
                    "admin.max_connections": .stringConvertible(admission.limit),
                    "connections.rejected": .stringConvertible(rejected),
                    "peer.address": "\(channel.remoteAddress?.hostPort ?? "unknown")",
                ])
        }
        channel.close(promise: nil)
    }
}

extension FrontendServices {
    /// These services as the admin listener serves with them: `/metrics` answered whatever
    /// `admin.metrics_on_serving_port` says, no TLS, no per-peer cap, and `observers` (the access log alone: see
    /// ``AdminServer``) in place of the serving listener's.
    package func forAdminListener(observers: RequestObservers) -> FrontendServices {
        var admin = self
        admin.servesMetrics = true
        admin.tls = nil
        admin.maxConnectionsPerPeer = 0
        admin.requestObservers = observers
        return admin
    }
}
