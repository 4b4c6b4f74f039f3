import HTTP2Engine
import NIOCore
import NIOEmbedded

/// Which server-side handlers a fuzzed connection gets: the swappable part of the fuzz target.
///
/// Today the gateway's sniffer and HTTP/2 frontend live in `GatewayServer`, which this target cannot depend on
/// yet, so the default (``engineWithGRPCDelegate``) is the HTTP/2 engine in server role plus a stand-in
/// delegate (``GRPCFuzzDelegate``) that decodes gRPC requests the way the frontend will. When the frontend
/// lands, add a `FuzzPipeline` that installs the real `ProtocolSniffer` + frontend (or calls its configure
/// function) and make it ``current``; nothing else changes.
struct FuzzPipeline: Sendable {
    /// Adds the handlers to a fresh, not yet active channel.
    var install: @Sendable (EmbeddedChannel) throws -> Void
    /// Runs after the whole input was delivered and before the connection closes (e.g. a graceful shutdown).
    var finish: @Sendable (EmbeddedChannel) -> Void = { _ in }

    static var current: FuzzPipeline { .engineWithGRPCDelegate }

    /// The HTTP/2 engine in server role, answering every request through ``GRPCFuzzDelegate``. The session
    /// expects the client preface, as behind the gateway's sniffer (which re-fires the preface bytes).
    static var engineWithGRPCDelegate: FuzzPipeline {
        FuzzPipeline(
            install: { channel in
                var configuration = HTTP2SessionConfiguration.defaults
                // Small limits so short inputs reach the limit paths (window exhaustion, header list cap).
                configuration.maxConcurrentStreams = 8
                configuration.initialWindowSize = 4096
                configuration.connectionWindowSize = 16_384
                configuration.maxHeaderListSize = 2048
                configuration.streamOutboundHighWatermark = 1024
                _ = try channel.pipeline.syncOperations.configureHTTP2Session(
                    role: .server,
                    configuration: configuration,
                    delegate: GRPCFuzzDelegate()
                )
            },
            finish: { channel in
                guard let handler = try? channel.pipeline.syncOperations.handler(type: HTTP2ConnectionHandler.self)
                else { return }
                handler.session.initiateGracefulShutdown()
            }
        )
    }
}
