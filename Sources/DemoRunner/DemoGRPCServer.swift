package import HTTP2Engine
package import NIOCore
import NIOPosix
import Synchronization
package import TriggerModel

/// Serves a `TriggerRunner` (the demo pipelines) over the `grpc` backend transport:
/// `trigger.runner.v1.Runner` over h2c with prior knowledge (API.md §5, protos/trigger/runner/v1).
///
/// The returned channel is the listener; closing it also closes every accepted connection, so "kill the
/// runner" is one `close()` (the demo-runner process and the tests rely on that). Each connection is an
/// HTTP/2 engine session driven by a ``DemoGRPCConnection``.
package enum DemoGRPCServer {
    /// The largest request message accepted: the gateway's 32 MiB request cap plus room for the protobuf
    /// framing of many small values.
    package static let defaultMaxMessageBytes = (32 << 20) + (1 << 20)

    /// How fast the gateway may reset streams before this runner ends the connection: burst 100 000, 10 000 a
    /// second, not the engine's defaults (libnghttp2's: burst 1000, 33 a second), which the gateway's own listener
    /// keeps. The gateway resets one stream per cancelled or expired call (README "Writing an http runner"), and
    /// a backlog of calls expiring together resets hundreds a second on one connection: at the defaults the
    /// runner ended that connection with GOAWAY, failing the calls still on it with 502 instead of 504 (review 13
    /// F8). Counting only "premature" resets, as Envoy does, would not help: an expired call is reset before any
    /// answer, young, which is what Envoy counts (and it closes at 50 % of 500 streams). This runner is a test
    /// and benchmark backend whose one client is the gateway; the limit stays (a runaway client still ends at it),
    /// set by `demo-runner --stream-reset-limit`.
    package static let defaultStreamResetRateLimit = HTTP2StreamResetRateLimit(burst: 100_000, refillPerSecond: 10_000)

    /// `demo-runner --stream-reset-limit`'s `BURST/PER_SECOND` (decimal; BURST 1 to 10^9, PER_SECOND 0 to 10^9:
    /// `HTTP2StreamResetRateLimit.maximum`); nil for anything else.
    package static func streamResetRateLimit(parsing text: String) -> HTTP2StreamResetRateLimit? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let burst = Int(parts[0]), let perSecond = Int(parts[1]),
            (1...HTTP2StreamResetRateLimit.maximum).contains(burst),
            (0...HTTP2StreamResetRateLimit.maximum).contains(perSecond)
        else { return nil }
        return HTTP2StreamResetRateLimit(burst: burst, refillPerSecond: perSecond)
    }

    /// Binds and returns the server channel; close it to stop (accepted connections close with it).
    package static func bind(
        host: String,
        port: Int,
        runner: any TriggerRunner,
        group: any EventLoopGroup,
        maxMessageBytes: Int = DemoGRPCServer.defaultMaxMessageBytes,
        streamResetRateLimit: HTTP2StreamResetRateLimit = DemoGRPCServer.defaultStreamResetRateLimit
    ) async throws -> any Channel {
        let children = DemoGRPCChildChannels()
        let configuration = {
            var configuration = HTTP2SessionConfiguration.defaults
            configuration.streamResetRateLimit = streamResetRateLimit
            return configuration
        }()
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // TCP_NODELAY (IPPROTO_TCP): NIO sets it on the listener and Linux copies it to accepted sockets; said
            // again per connection so it does not rest on that. Never `.socketOption(.tcp_nodelay)`: that is
            // SOL_SOCKET option 1, SO_DEBUG, which needs CAP_NET_ADMIN and fails every accept for other users.
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                children.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    let connection = DemoGRPCConnection(
                        runner: runner,
                        eventLoop: channel.eventLoop,
                        maxMessageBytes: maxMessageBytes
                    )
                    connection.session = try channel.pipeline.syncOperations.configureHTTP2Session(
                        role: .server,
                        configuration: configuration,
                        delegate: connection
                    )
                }
            }
            .bind(host: host, port: port)
            .get()
        server.closeFuture.whenComplete { _ in children.closeAll() }
        return server
    }
}

/// The accepted connections of one listener, so closing the listener can close them too.
final class DemoGRPCChildChannels: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { s in
            if s.closed { return false }
            s.channels[id] = channel
            return true
        }
        guard accepted else {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { _ in
            _ = self.state.withLock { $0.channels.removeValue(forKey: id) }
        }
    }

    func closeAll() {
        let channels = state.withLock { s in
            s.closed = true
            return Array(s.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }
}
