#if canImport(Glibc)
    import Glibc
#endif
import AsyncDispatch
import GatewayConfig
import Logging
package import NIOCore
import NIOSSL
import NIOPosix
import Observability
import ServiceLifecycle
import Synchronization
import TriggerModel

/// The one listener: accepts connections, sniffs HTTP/1.1 vs HTTP/2, installs the matching frontend, and
/// drains on shutdown.
///
/// As a `Service`, `run()` binds, serves until graceful shutdown is requested, then stops accepting, lets
/// in-flight requests finish for up to the grace period, and closes what is left.
package final class GatewayServer: Service {
    package struct Configuration: Sendable {
        package var host: String
        package var port: Int
        package var shutdownGrace: TimeAmount
        /// Open client connections at most; one accepted over the cap is closed at once (and counted).
        package var maxConnections: Int
        /// Why the listener must not start although the configuration validated (its TLS files stopped
        /// loading): `run` fails with it instead of binding.
        package var startFailure: String?
        /// A listening socket passed by systemd (or a launcher): served instead of binding `host`:`port`
        /// (``SocketActivation``).
        package var inherited: InheritedListener?
        /// `listen_reuse_port`: bind with SO_REUSEPORT, so a new instance (same user) can listen on the port
        /// before this one stops. Not applied to an inherited socket (its owner set its options).
        package var reusePort: Bool
        package init(
            host: String,
            port: Int,
            shutdownGrace: TimeAmount = .seconds(10),
            maxConnections: Int = 4096,
            startFailure: String? = nil,
            inherited: InheritedListener? = nil,
            reusePort: Bool = false
        ) {
            self.host = host
            self.port = port
            self.shutdownGrace = shutdownGrace
            self.maxConnections = maxConnections
            self.startFailure = startFailure
            self.inherited = inherited
            self.reusePort = reusePort
        }
    }

    private let configuration: Configuration
    /// The services of the configuration in force; a reload swaps them for new requests.
    package let currentServices: CurrentFrontendServices
    private let group: any EventLoopGroup
    /// Set once: the bound address, or why binding failed (so `localAddress()` never waits forever).
    private let boundAddress = BoundAddress()
    private let connections = ConnectionTracker()
    private let requestsCut = Atomic(0)
    /// The requests the last drain cut at `timeouts.shutdown_grace` (0 until a drain ended), for the stop's summary.
    package var requestsCutAtShutdown: Int { requestsCut.load(ordering: .relaxed) }
    private let admission: ConnectionAdmission
    /// The backend connections the open-file limit leaves room for next to ``admission``'s client connections
    /// (``backendConnectionLimit(clientCap:)``); GatewayApp gives it to the backends' connection budget.
    package let backendConnectionLimit: Int

    package init(configuration: Configuration, services: FrontendServices, group: any EventLoopGroup) {
        self.configuration = configuration
        self.currentServices = CurrentFrontendServices(services)
        self.group = group
        let clientCap = Self.fitOpenFileLimit(maxConnections: configuration.maxConnections, logger: services.logger)
        self.admission = ConnectionAdmission(limit: clientCap)
        self.backendConnectionLimit = Self.backendConnectionLimit(clientCap: clientCap)
    }

    /// Connections closed at accept because `maxConnections` were open (also the metric
    /// `trigger_gateway_connections_rejected_total{reason="max_connections"}`).
    package var rejectedConnections: Int { admission.rejected }

    /// Connections counted against `limits.max_connections` now, and that cap as the open-file limit left it
    /// (`trigger_gateway_connections_admitted` and `…_limit`, read at scrape time).
    package var admittedConnections: (open: Int, limit: Int) { (admission.admitted, admission.limit) }

    /// Client connections accepted, set up and not yet closed (tests wait on it instead of sleeping).
    package var openConnections: Int { connections.count }

    /// Returns once a graceful stop has queued its drain notice (`ChannelShouldQuiesceEvent`) on every open
    /// connection (tests order a client's request after it instead of racing the drain).
    package func waitUntilDrainNoticeSent() async { await connections.waitUntilQuiesceSent() }

    /// The address actually bound (useful with port 0); waits until the listener is up.
    package func localAddress() async throws -> SocketAddress { try await boundAddress.value() }

    package func run() async throws {
        let current = self.currentServices
        let services = current.value
        let connections = self.connections
        let admission = self.admission
        // One registry per process, kept across reloads: the instruments of the first generation are everyone's.
        let connectionMetrics = services.metrics?.connections
        let serverChannel: any Channel
        do {
            if let reason = configuration.startFailure { throw StartFailure(reason: reason) }
            let inherited = configuration.inherited
            var bootstrap = ServerBootstrap(group: group)
                .serverChannelInitializer { channel in
                    // EMFILE/ENFILE at accept: pause a second instead of retrying at once (a spinning core).
                    channel.eventLoop.makeCompletedFuture {
                        if let inherited {
                            // NIO's withBoundSocket listens again with its default backlog (128), which would
                            // shrink the queue that holds connections while no instance accepts (a restart).
                            // The kernel's maximum, as a socket unit's default Backlog= (SOMAXCONN).
                            _ = Glibc.listen(inherited.descriptor, SOMAXCONN)
                        }
                        // Over the connection cap: refused and closed on this loop, as accepted (see the handler).
                        let refuse: @Sendable (any Channel) -> Bool = { accepted in
                            // Every accepted socket, refused at the cap or not (`connections_accepted_total`).
                            connectionMetrics?.acceptedConnection()
                            let perPeerLimit = current.maxConnectionsPerPeer
                            switch admission.admit(accepted, perPeerLimit: perPeerLimit) {
                            case .admitted:
                                return false
                            case .overLimit:
                                Self.refuse(accepted, admission: admission, services: current.value)
                            case .overPeerLimit(let peer, let open):
                                Self.refusePerPeer(
                                    accepted, peer: peer, open: open, limit: perPeerLimit, admission: admission,
                                    services: current.value)
                            }
                            return true
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            AcceptPauseHandler(logger: services.logger, refuse: refuse))
                    }
                }
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Admitted by the listener's AcceptPauseHandler (connections over the caps never get here).
                        // TCP_NODELAY (IPPROTO_TCP): NIO sets it on the listener and Linux copies it to accepted
                        // sockets; set again here so it does not rest on that, and so a failure is logged below.
                        // Never `.socketOption(.tcp_nodelay)`: that is SOL_SOCKET option 1, SO_DEBUG, which needs
                        // CAP_NET_ADMIN and made every accept fail for any user but root.
                        try channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: 1)
                        connections.add(channel)
                        try Self.configureConnection(channel, services: current)
                    }.flatMapErrorThrowing { error in
                        // NIO closes a connection whose set-up failed without telling anyone: say which and why.
                        services.logger.error(
                            "cannot set up an accepted connection",
                            metadata: [
                                "peer.address": "\(channel.remoteAddress?.hostPort ?? "unknown")",
                                "error": "\(error)",
                            ]
                        )
                        throw error
                    }
                }
            if configuration.reusePort, inherited == nil {
                // NIO names no SO_REUSEPORT option; SOL_SOCKET's, set before bind. Only when asked and never on an
                // inherited socket: NIO's withBoundSocket applies the server channel options too, and a 0 cleared
                // a socket unit's `ReusePort=yes` on the socket its owner shares with us.
                bootstrap = bootstrap.serverChannelOption(
                    ChannelOptions.Types.SocketOption(
                        level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)),
                    value: 1)
            }
            if let inherited {
                serverChannel = try await bootstrap.withBoundSocket(inherited.descriptor).get()
            } else {
                serverChannel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
            }
        } catch {
            let address = configuration.inherited?.address
            let error = ListenFailure(
                host: address?.host ?? configuration.host, port: address?.port ?? configuration.port, error: error)
            services.logger.error(
                "cannot listen", metadata: ["listen.address": "\(error.address)", "error": "\(error.reason)"])
            boundAddress.set(.failure(error))
            throw error
        }
        let address = serverChannel.localAddress!
        // Ready before anyone learns the address, so a first readiness probe never sees "starting".
        services.health.set(.gateway, .serving)
        boundAddress.set(.success(address))
        var listenMetadata: Logger.Metadata = ["listen.address": "\(address.hostPort)"]
        if let inherited = configuration.inherited {
            // Whose socket this is: a restart keeps its queue, `listen` was not bound.
            listenMetadata["listen.inherited_fd"] = .stringConvertible(inherited.descriptor)
            if let name = inherited.name { listenMetadata["listen.fd_name"] = "\(name)" }
        } else if configuration.reusePort {
            listenMetadata["listen.reuse_port"] = "true"
        }
        if let tls = services.tls {
            listenMetadata["tls.subject"] = "\(tls.subject)"
            listenMetadata["tls.not_valid_after"] = "\(ListenerTLS.logTime(tls.notValidAfter))"
            listenMetadata["tls.allow_plaintext"] = .stringConvertible(tls.allowPlaintext)
        }
        services.logger.info("listening", metadata: listenMetadata)

        await withGracefulShutdownHandler {
            try? await serverChannel.closeFuture.get()
        } onGracefulShutdown: { [group] in
            services.health.draining()
            services.operations?.endLongPolls()
            Task { await Self.stopAccepting(serverChannel, group: group) }
        }
        services.health.draining()
        // Long-polls (`?wait=`, Craft's outputs wait) are answered with their normal "not done yet" now, not
        // held for the whole grace and then cut with 503.
        services.operations?.endLongPolls()
        // Stop accepting is done; now drain what is in flight, then cut what remains.
        services.logger.info(
            "draining connections", metadata: ["connections.open": .stringConvertible(connections.count)])
        let cut = await connections.drain(grace: configuration.shutdownGrace)
        requestsCut.store(cut, ordering: .relaxed)
        // The process's own `stopped` comes last, once every service has (review 12, finding 2: this line came
        // before the async dispatcher's and the store's ends). The drain's summary (review 26 L3): the requests
        // `shutdown_grace` cut, which a longer grace would have let finish.
        services.logger.info("listener stopped", metadata: ["requests.cut": .stringConvertible(cut)])
    }

    /// Stops accepting, then closes the listener without dropping a connection it already accepted.
    ///
    /// NIO hands an accepted connection to its child loop (options, our initializer) and back, then closes it
    /// if the listener is no longer active by then (`ServerBootstrap`'s accept handler): a connection accepted
    /// just before a plain `close()` was reset with its request unread (seen on every few restarts under load
    /// with an inherited socket, where the next instance takes over the queue). So accepting stops first
    /// (`autoRead` off: no more accept(2); what is still queued stays in the kernel's queue, for the next
    /// instance when the socket is shared), three turns of every loop let the hand-overs already under way
    /// finish, and only then does the listener close (our copy of the descriptor, if inherited).
    static func stopAccepting(_ listener: any Channel, group: any EventLoopGroup) async {
        // Through the accept handler, so that its pauses' ends (EMFILE, refusals closing) cannot turn it back on.
        listener.pipeline.fireUserInboundEventTriggered(AcceptPauseHandler.StopAccepting())
        try? await listener.setOption(.autoRead, value: false).get()
        for _ in 0..<3 {
            for loop in group.makeIterator() { try? await loop.submit {}.get() }
        }
        try? await listener.close()
    }

    /// Closes a connection accepted over `maxConnections`: counted in
    /// `trigger_gateway_connections_rejected_total{reason="max_connections"}`, logged for the first one and every
    /// 1000th after, so a flood does not also flood the log. The warning names the refused peer and the one
    /// holding the most connections (`connections.top_peer`, `connections.top_peer_open`): who to look at, or
    /// whose `limits.max_connections_per_peer` to lower.
    private static func refuse(_ channel: any Channel, admission: ConnectionAdmission, services: FrontendServices) {
        services.metrics?.connections.rejected(.maxConnections)
        let rejected = admission.rejected
        if ConnectionAdmission.isLogged(refusal: rejected) {
            var metadata: Logger.Metadata = [
                "connections.limit": .stringConvertible(admission.limit),
                "connections.rejected": .stringConvertible(rejected),
                "peer.address": "\(channel.remoteAddress?.hostPort ?? "unknown")",
            ]
            if let top = admission.topPeer() {
                metadata["connections.top_peer"] = "\(top.peer)"
                metadata["connections.top_peer_open"] = .stringConvertible(top.open)
            }
            services.logger.warning("connection refused: too many open connections", metadata: metadata)
        }
        channel.close(promise: nil)
    }

    /// Closes a connection whose peer already holds `limits.max_connections_per_peer` (`open`): counted in
    /// `trigger_gateway_connections_rejected_total{reason="max_connections_per_peer"}`, logged for the first one
    /// and every 1000th after, naming the peer (the holder) and its count.
    private static func refusePerPeer(
        _ channel: any Channel, peer: ConnectionAdmission.Peer, open: Int, limit: Int,
        admission: ConnectionAdmission, services: FrontendServices
    ) {
        services.metrics?.connections.rejected(.maxConnectionsPerPeer)
        let rejected = admission.rejectedPerPeer
        if ConnectionAdmission.isLogged(refusal: rejected) {
            services.logger.warning(
                "connection refused: too many open connections from one peer",
                metadata: [
                    "connections.peer": "\(peer)",
                    "connections.peer_open": .stringConvertible(open),
                    "connections.per_peer_limit": .stringConvertible(limit),
                    "connections.rejected": .stringConvertible(rejected),
                    "peer.address": "\(channel.remoteAddress?.hostPort ?? "unknown")",
                ]
            )
        }
        channel.close(promise: nil)
    }

    /// Fits the process's open-file limit to `limits.max_connections`, once at start-up, and returns the cap on
    /// client connections that the limit allows: `maxConnections`, or fewer when the hard limit is too low.
    ///
    /// Every client connection holds a descriptor and may need a backend connection too (nginx counts proxied
    /// connections in `worker_connections` the same way), and the store, blobs, the listener and the event loops
    /// need some more: `2 × maxConnections + 64` are wanted. A soft limit below that is raised, up to the hard
    /// limit: an unprivileged process may, and 1 024 (the usual soft default, kept for select(2) users; NIO uses
    /// epoll) would otherwise cap a default `max_connections` of 4 096. Go's runtime raises the soft limit the
    /// same way at start.
    ///
    /// What the hard limit still does not allow lowers the cap, said once with what to change: half of the
    /// descriptors left after those open now and a reserve (64, or a quarter of a tiny limit). The process must
    /// never run out of descriptors: besides failing accepts (which ``AcceptPauseHandler`` survives), Swift's
    /// libdispatch on Linux opens `/proc/<tid>/stat` to watch its worker threads and traps when that fails
    /// ("workq: registered worker exited prematurely", swift-corelibs-libdispatch `workqueue.c`): a gateway at
    /// its descriptor limit died with SIGILL. Connections over the cap are closed at accept and counted instead.
    static func fitOpenFileLimit(maxConnections: Int, logger: Logger) -> Int {
        let resource = Int32(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return maxConnections }
        let headroom = 64
        // RLIM_INFINITY is all ones (Glibc's macro does not import as an unsigned constant).
        let wanted = rlim_t(2 * maxConnections + headroom)
        if limit.rlim_cur != rlim_t.max, limit.rlim_cur < wanted {
            var raised = limit
            raised.rlim_cur = limit.rlim_max == rlim_t.max ? wanted : min(wanted, limit.rlim_max)
            if raised.rlim_cur > limit.rlim_cur, setrlimit(resource, &raised) == 0 {
                logger.info(
                    "raised the open-file soft limit to fit limits.max_connections",
                    metadata: [
                        "nofile.soft.was": openFileLimit(limit.rlim_cur),
                        "nofile.soft": openFileLimit(raised.rlim_cur),
                    ]
                )
                limit = raised
            }
        }
        guard limit.rlim_cur != rlim_t.max, limit.rlim_cur < wanted else { return maxConnections }
        let soft = Int(clamping: limit.rlim_cur)
        let reserve = min(headroom, soft / 4)
        let openNow = ProcessMetrics.openDescriptors() ?? 0
        let fitting = min(maxConnections, max(1, (soft - openNow - reserve) / 2))
        guard fitting < maxConnections else { return maxConnections }
        logger.warning(
            "limits.max_connections lowered to fit the open-file limit; raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower max_connections",
            metadata: [
                "connections.limit": .stringConvertible(fitting),
                "connections.configured": .stringConvertible(maxConnections),
                "nofile.soft": openFileLimit(limit.rlim_cur),
                "nofile.hard": openFileLimit(limit.rlim_max),
                "nofile.open": .stringConvertible(openNow),
            ]
        )
        return fitting
    }

    /// The backend connections (all pools, endpoints and loops together) that fit in the open-file soft limit
    /// once ``fitOpenFileLimit(maxConnections:logger:)`` has run: the limit less the descriptors open now, the
    /// same reserve (64, or a quarter of a tiny limit: the store's connections, webhooks, files, the event loops)
    /// and `clientCap` client connections; at least `clientCap` when the limit was fitted (it was made twice
    /// that plus the reserve), never below 1. `Int.max` when the soft limit is unlimited or unreadable.
    ///
    /// Where the descriptor count comes from at run time: a connect over it fails as the gateway's overload
    /// (503 / UNAVAILABLE, `UO`) instead of reaching EMFILE (`BackendConnectionBudget`).
    static func backendConnectionLimit(clientCap: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return .max }
        let soft = Int(clamping: limit.rlim_cur)
        let reserve = min(64, soft / 4)
        let openNow = ProcessMetrics.openDescriptors() ?? 0
        return max(1, soft - openNow - reserve - clientCap)
    }

    /// An rlimit value for the log: its number, or "unlimited" for RLIM_INFINITY (all ones, which a JSON log
    /// would otherwise print as 18446744073709551615, a number most JSON readers cannot hold exactly).
    static func openFileLimit(_ value: rlim_t) -> Logger.MetadataValue {
        value == rlim_t.max ? "unlimited" : .stringConvertible(value)
    }

    /// Installs what an accepted connection starts with: the protocol sniffer, which installs the TLS handler
    /// and the HTTP/1.1 or HTTP/2 frontend (``configure(_:for:services:tls:secure:)``) once the first bytes say
    /// which. The one place the connection pipeline is built; the fuzz target (`GatewayFuzzing`) calls it too.
    ///
    /// The preface timeout and TLS context are those of the configuration in force when the connection
    /// arrives: a reload (new certificates) applies to new connections, open ones keep theirs.
    package static func configureConnection(_ channel: any Channel, services current: CurrentFrontendServices) throws {
        let services = current.value
        let tls = services.tls
        let mode: ProtocolSniffer.TLSMode = tls.map { $0.allowPlaintext ? .optional : .required } ?? .off
        try channel.pipeline.syncOperations.addHandler(
            ProtocolSniffer(timeout: services.slowClients.prefaceTimeout, tls: mode) { channel, proto in
                try Self.configure(channel, for: proto, services: current, tls: tls)
            }
        )
    }

    /// Installs the frontend for a sniffed protocol.
    static func configure(
        _ channel: any Channel,
        for proto: ProtocolSniffer.WireProtocol,
        services current: CurrentFrontendServices,
        tls: ListenerTLS? = nil,
        secure: Bool = false,
        clientPrincipal: String? = nil
    ) throws {
        let services = current.value
        let sync = channel.pipeline.syncOperations
        switch proto {
        case .tls:
            guard let tls else { throw ChannelError.operationUnsupported }
            // Decrypted bytes go to a second sniffer: the frontend is chosen by the preface, as in cleartext (ALPN
            // only says what the client offered). Its preface timeout also bounds the handshake.
            try sync.addHandler(NIOSSLServerHandler(context: tls.context))
            try sync.addHandler(
                ProtocolSniffer(timeout: services.slowClients.prefaceTimeout) { channel, proto in
                    // The handshake is done by the time decrypted bytes decide the protocol.
                    try Self.configure(
                        channel, for: proto, services: current, secure: true,
                        clientPrincipal: tls.clientPrincipal(of: channel))
                }
            )
        case .plaintextRefused(let http2):
            // The client reads why in its own protocol, then the connection closes.
            let text = "this port requires TLS (https://, or a gRPC channel with TLS credentials)"
            services.metrics?.connections.rejected(.tlsRequired)
            // Counted open too: it lives while its request is answered (HTTP/2: at most the preface timeout;
            // HTTP/1.1: the request header timeout, then one answer in the surface's shape and the close).
            if http2 {
                countOpen(channel, .http2, tls: false, metrics: services.metrics)
                try configureHTTP2(channel, services: current, refusal: GatewayError(.invalidArgument, text))
                return
            }
            countOpen(channel, .http1, tls: false, metrics: services.metrics)
            try sync.addHandler(ReadIdleHandler(timeout: services.idleTimeout))
            try sync.addHandler(
                HTTP1FrontendHandler(
                    services: current, peer: channel.remoteAddress?.hostPort,
                    gate: .refusal(GatewayError(.invalidArgument, text))))
        case .http1:
            countOpen(channel, .http1, tls: secure, metrics: services.metrics)
            try sync.addHandler(ReadIdleHandler(timeout: services.idleTimeout))
            // One handler from bytes to answers: decoding, pipelining, timeouts, routing (issue 11).
            try sync.addHandler(
                HTTP1FrontendHandler(
                    services: current, secure: secure, clientPrincipal: clientPrincipal,
                    peer: channel.remoteAddress?.hostPort))
        case .http2:
            countOpen(channel, .http2, tls: secure, metrics: services.metrics)
            try configureHTTP2(channel, services: current, clientPrincipal: clientPrincipal)
        }
    }

    /// `trigger_gateway_connections_open{protocol,tls}`: up now, down when the connection closes.
    private static func countOpen(
        _ channel: any Channel,
        _ proto: ConnectionMetrics.WireProtocol,
        tls: Bool,
        metrics: GatewayMetrics?
    ) {
        guard let connections = metrics?.connections else { return }
        connections.opened(proto, tls: tls)
        channel.closeFuture.whenComplete { _ in connections.closed(proto, tls: tls) }
    }
}

/// The listener refused to start for a reason other than binding (see `Configuration.startFailure`).
struct StartFailure: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
