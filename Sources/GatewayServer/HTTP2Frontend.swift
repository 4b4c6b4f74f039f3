import HTTP2Engine
import NIOCore
import TriggerModel

extension GatewayServer {
    /// Installs the HTTP/2 frontend (REST over h2c and gRPC) on a connection that sent the preface.
    ///
    /// The sniffer re-fires the preface with the rest of the bytes, so the session checks it itself.
    static func configureHTTP2(
        _ channel: any Channel,
        services current: CurrentFrontendServices,
        clientPrincipal: String? = nil,
        refusal: GatewayError? = nil
    ) throws {
        let services = current.value
        var configuration = HTTP2SessionConfiguration.defaults
        configuration.maxConcurrentStreams = services.maxConcurrentStreams
        configuration.maxHeaderListSize = services.maxHeaderBytes
        configuration.prefaceTimeout = services.slowClients.prefaceTimeout
        configuration.writeProgressTimeout = services.slowClients.writeProgressTimeout
        configuration.requestHeaderTimeout = services.slowClients.requestHeaderTimeout
        configuration.requestBodyProgressTimeout = services.slowClients.bodyProgressTimeout
        // `timeouts.request` bounds the upload too, as on HTTP/1.1 (review 24, M4).
        configuration.requestReceiptTimeout = services.requestTimeout
        configuration.streamOutboundHighWatermark = services.slowClients.streamBufferBytes
        configuration.connectionOutboundHighWatermark = services.slowClients.connectionBufferBytes
        configuration.flushesOncePerTick = true
        let sync = channel.pipeline.syncOperations
        // No `ReadIdleHandler` here: `timeouts.idle` is the frontend's own timer, which counts the time with no
        // stream open, not the time since the last read (review 24, M3).
        // The session first, its delegate attached at once (no event reaches it before the sniffer re-fires the
        // preface, after this returns): the frontend holds its session in a constant.
        let session = try sync.configureHTTP2Session(role: .server, configuration: configuration, delegate: nil)
        let frontend = HTTP2FrontendConnection(
            services: current, session: session, eventLoop: channel.eventLoop, clientPrincipal: clientPrincipal,
            refusal: refusal)
        frontend.peerAddress = channel.remoteAddress
        session.attachDelegate(frontend)
        try sync.addHandler(frontend)
        frontend.startRefusalTimer(services.slowClients.prefaceTimeout)
    }
}
