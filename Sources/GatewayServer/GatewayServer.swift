import Logging
package import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

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
        package init(host: String, port: Int, shutdownGrace: TimeAmount = .seconds(10)) {
            self.host = host
            self.port = port
            self.shutdownGrace = shutdownGrace
        }
    }

    private let configuration: Configuration
    private let services: FrontendServices
    private let group: any EventLoopGroup
    /// Set once: the bound address, or why binding failed (so `localAddress()` never waits forever).
    private let boundAddress = Mutex<Result<SocketAddress, any Error>?>(nil)
    private let listening = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])
    private let connections = ConnectionTracker()

    package init(configuration: Configuration, services: FrontendServices, group: any EventLoopGroup) {
        self.configuration = configuration
        self.services = services
        self.group = group
    }

    /// The address actually bound (useful with port 0); waits until the listener is up.
    package func localAddress() async throws -> SocketAddress {
        if let outcome = boundAddress.withLock({ $0 }) { return try outcome.get() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready: Result<SocketAddress, any Error>? = boundAddress.withLock { outcome in
                if let outcome { return outcome }
                listening.withLock { $0.append(continuation) }
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    package func run() async throws {
        let services = self.services
        let connections = self.connections
        let serverChannel: any Channel
        do {
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        connections.add(channel)
                        try channel.pipeline.syncOperations.addHandler(
                            ProtocolSniffer { channel, proto in
                                try Self.configure(channel, for: proto, services: services)
                            }
                        )
                    }
                }
                .bind(host: configuration.host, port: configuration.port)
                .get()
        } catch {
            services.logger.error("cannot listen", metadata: ["listen.address": "\(configuration.host):\(configuration.port)", "error": "\(error)"])
            let waiters: [CheckedContinuation<SocketAddress, any Error>] = boundAddress.withLock { outcome in
                outcome = .failure(error)
                return listening.withLock { w in defer { w = [] }; return w }
            }
            for waiter in waiters { waiter.resume(throwing: error) }
            throw error
        }
        let address = serverChannel.localAddress!
        // Ready before anyone learns the address, so a first readiness probe never sees "starting".
        services.health.set(.gateway, .serving)
        let waiters: [CheckedContinuation<SocketAddress, any Error>] = boundAddress.withLock { bound in
            bound = .success(address)
            return listening.withLock { w in defer { w = [] }; return w }
        }
        for waiter in waiters { waiter.resume(returning: address) }
        services.logger.info("listening", metadata: ["listen.address": "\(address)"])

        await withGracefulShutdownHandler {
            try? await serverChannel.closeFuture.get()
        } onGracefulShutdown: {
            services.health.draining()
            serverChannel.close(promise: nil)
        }
        services.health.draining()
        // Stop accepting is done; now drain what is in flight, then cut what remains.
        services.logger.info("draining connections", metadata: ["connections.open": "\(connections.count)"])
        await connections.drain(grace: configuration.shutdownGrace)
        services.logger.info("stopped")
    }

    /// Installs the frontend for a sniffed protocol.
    static func configure(_ channel: any Channel, for proto: ProtocolSniffer.WireProtocol, services: FrontendServices) throws {
        let sync = channel.pipeline.syncOperations
        switch proto {
        case .http1:
            try sync.addHandler(IdleStateHandler(readTimeout: services.idleTimeout))
            try sync.addHandler(HTTPResponseEncoder())
            try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try sync.addHandler(HTTPServerPipelineHandler())
            try sync.addHandler(HTTP1FrontendHandler(services: services))
        case .http2:
            try configureHTTP2(channel, services: services)
        }
    }
}
