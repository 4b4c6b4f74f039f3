import NIOCore
import NIOPosix
package import NIOSSL
import TriggerModel
import NIOTLS

/// TLS to a pool's endpoints (issue 17, item 2): the client context and the name the endpoints' certificates
/// must carry.
///
/// TLS 1.2 or later, full verification (the chain must lead to `trustRoots`, the system's store when nil, and
/// the leaf must name the host: `serverName`, else the endpoint's host, an IP address being matched against
/// the certificate's IP SANs; NIOSSL also accepts a leaf that lists the connection's IP address, whatever the
/// name), ALPN `h2` for grpc pools and `http/1.1` for http pools (gRPC servers such as
/// grpc-go refuse a TLS connection that does not offer `h2`). A client certificate is presented when the
/// backend asks for one and `identity` is set.
///
/// Equal when built from the same certificates, key and names: a reload whose files did not change keeps the
/// pool and its connections; renewed files make a new pool (new connections use them, open ones finish).
package struct BackendTLS: Sendable, Equatable {
    package let context: NIOSSLContext
    /// The name verified and sent in SNI instead of the endpoint's host (`tls.server_name`).
    package let serverName: String?
    private let trustRoots: [NIOSSLCertificate]?
    private let chain: [NIOSSLCertificate]
    private let key: NIOSSLPrivateKey?
    private let applicationProtocols: [String]

    /// - Parameters:
    ///   - trustRoots: the CA certificates endpoints are verified against; nil: the system's trust store.
    ///   - identity: the client certificate chain (leaf first) and its key, presented when a backend asks.
    ///   - applicationProtocols: ALPN, in preference order (`["h2"]` for gRPC, `["http/1.1"]` for HTTP/1.1).
    /// - Throws: NIOSSL's error when BoringSSL refuses the material (the loader checked it before).
    package init(
        trustRoots: [NIOSSLCertificate]?,
        identity: (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)?,
        serverName: String?,
        applicationProtocols: [String]
    ) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let trustRoots { configuration.trustRoots = .certificates(trustRoots) }
        if let identity {
            configuration.certificateChain = identity.chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(identity.key)
        }
        configuration.applicationProtocols = applicationProtocols
        self.context = try NIOSSLContext(configuration: configuration)
        self.serverName = serverName
        self.trustRoots = trustRoots
        self.chain = identity?.chain ?? []
        self.key = identity?.key
        self.applicationProtocols = applicationProtocols
    }

    package static func == (lhs: BackendTLS, rhs: BackendTLS) -> Bool {
        lhs.serverName == rhs.serverName && lhs.trustRoots == rhs.trustRoots && lhs.chain == rhs.chain
            && lhs.key == rhs.key && lhs.applicationProtocols == rhs.applicationProtocols
    }

    /// Adds the TLS client handler for a connection to `host` to the front of a new channel's pipeline, and a
    /// ``BackendTLSHandshake`` after it; returns the handshake's outcome.
    ///
    /// SNI is `serverName`, else `host` unless it is an IP address (RFC 6066 §3 allows host names only); the
    /// certificate is checked against the same name, or against the peer's IP address when there is none.
    func addHandlers(
        to channel: any Channel,
        host: String,
        pool: String,
        endpoint: String,
        handshakeTimeout: TimeAmount
    ) throws -> EventLoopFuture<Void> {
        let name = serverName ?? (Self.isIPAddress(host) ? nil : host)
        let handshake = BackendTLSHandshake(
            pool: pool, endpoint: endpoint, expectedName: name ?? host, timeout: handshakeTimeout,
            eventLoop: channel.eventLoop)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: name))
        try sync.addHandler(handshake)
        return handshake.done
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// Waits for a backend connection's TLS handshake: `done` succeeds when NIOSSL reports it complete and fails
/// with the gateway's error (naming the certificate problem, logged once with the endpoint) when the handshake
/// fails, the connection closes first, or `timeout` passes (a backend that accepts TCP but never answers the
/// ClientHello would otherwise hold the call until its deadline). Leaves the pipeline once the handshake is
/// done, so established connections carry no extra handler.
final class BackendTLSHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<Void>
    private let pool: String
    private let endpoint: String
    private let expectedName: String
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var finished = false

    var done: EventLoopFuture<Void> { promise.futureResult }

    init(pool: String, endpoint: String, expectedName: String, timeout: TimeAmount, eventLoop: any EventLoop) {
        self.promise = eventLoop.makePromise()
        self.pool = pool
        self.endpoint = endpoint
        self.expectedName = expectedName
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTimer(context: context)
        context.fireChannelActive()
    }

    private func startTimer(context: ChannelHandlerContext) {
        guard timer == nil, !finished else { return }
        let channel = context.channel
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let handler = loopBound.value
            guard !handler.finished else { return }
            handler.fail(
                BackendErrors.endpointFailure(
                    .deadlineExceeded, pool: handler.pool, endpoint: handler.endpoint,
                    "the TLS handshake with an endpoint timed out after \(describe(handler.timeout))",
                    flag: .connectionFailure))
            channel.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent, !finished {
            finished = true
            timer?.cancel()
            promise.succeed()
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !finished {
            fail(
                BackendErrors.endpointFailure(
                    pool: pool, endpoint: endpoint,
                    "TLS handshake with an endpoint failed: \(Self.reason(error, expectedName: expectedName))",
                    flag: .connectionFailure))
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            fail(
                BackendErrors.endpointFailure(
                    pool: pool, endpoint: endpoint,
                    "TLS handshake with an endpoint failed: the endpoint closed the connection",
                    flag: .connectionFailure))
        }
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        finished = true
        timer?.cancel()
        promise.fail(error)
    }

    /// What went wrong, in words an operator can act on.
    static func reason(_ error: any Error, expectedName: String) -> String {
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "the endpoint's certificate is not valid for \"\(expectedName)\" (set tls.server_name to the "
                + "name it carries)"
        }
        return BackendErrors.tlsReason(error) ?? BackendErrors.reason(error)
    }
}

extension BackendErrors {
    /// A TLS failure in words an operator can act on, or nil when `error` is not one (``TLSFailure``).
    static func tlsReason(_ error: any Error) -> String? {
        switch TLSFailure(error) {
        case nil: return nil
        case .notVerified:
            // Without `tls.ca_file` the pool verifies against the system's CA store (BackendTLS+Load).
            return "the endpoint's certificate did not verify (it is not signed by a CA the pool trusts: its "
                + "tls.ca_file, or the system's CA store when it has none; or it has expired)"
        case .notTLS:
            return "the endpoint does not speak TLS"
        case .alert(let name):
            return "the endpoint refused the TLS session (alert \(name)); it may require a client certificate "
                + "it trusts (tls.cert_file and tls.key_file)"
        case .other(let codes):
            return codes.isEmpty ? "TLS error" : "TLS error " + codes.joined(separator: ", ")
        }
    }

    /// A TLS failure on an established connection (the backend refused the session after the handshake), or nil
    /// when `error` is not a TLS failure.
    static func tlsFailure(pool: String, endpoint: String, _ error: any Error) -> GatewayError? {
        tlsReason(error).map {
            endpointFailure(
                pool: pool, endpoint: endpoint, "TLS with an endpoint failed: \($0)", flag: .connectionFailure)
        }
    }

}

/// What went wrong in a TLS session, read out of NIOSSL's errors, for the callers to word for their peer (a
/// backend endpoint here, a webhook receiver in AsyncDispatch). NIOSSL reports BoringSSL's error stack
/// (`…:CERTIFICATE_VERIFY_FAILED`), wrapped in `NIOSSLError.handshakeFailed` during the handshake and bare
/// afterwards: with TLS 1.3 the client's handshake is done before the server has checked the client's
/// certificate, so a peer's refusal (alert certificate_required) arrives as a read error.
package enum TLSFailure: Sendable, Equatable {
    /// The peer's certificate did not verify against the trusted CAs (or has expired).
    case notVerified
    /// The peer answered something other than TLS (plain HTTP, say).
    case notTLS
    /// The peer ended the session with an alert, named as RFC 8446 names it (`certificate_required`).
    case alert(String)
    /// Any other TLS error: BoringSSL's reason codes.
    case other([String])

    /// nil when `error` is not a TLS failure.
    package init?(_ error: any Error) {
        let boring: BoringSSLError
        if let error = error as? NIOSSLError, case .handshakeFailed(let failure) = error {
            boring = failure
        } else if let failure = error as? BoringSSLError {
            boring = failure
        } else {
            return nil
        }
        let codes: [String]
        switch boring {
        case .sslError(let stack), .unknownError(let stack): codes = stack.map(Self.reasonCode)
        default: codes = ["\(boring)"]
        }
        if codes.contains("CERTIFICATE_VERIFY_FAILED") {
            self = .notVerified
        } else if codes.contains("WRONG_VERSION_NUMBER") || codes.contains("HTTP_REQUEST")
            || codes.contains("RECORD_LENGTH_MISMATCH")
        {
            self = .notTLS
        } else if let alert = codes.first(where: { $0.contains("ALERT") }) {
            self = .alert(
                alert.replacing("SSLV3_ALERT_", with: "").replacing("TLSV13_ALERT_", with: "")
                    .replacing("TLSV1_ALERT_", with: "").lowercased())
        } else {
            self = .other(codes)
        }
    }

    /// `CERTIFICATE_VERIFY_FAILED` out of `Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:
    /// CERTIFICATE_VERIFY_FAILED at …/handshake.cc:123`.
    private static func reasonCode(_ error: BoringSSLInternalError) -> String {
        var text = Substring(error.description)
        if let at = text.firstRange(of: " at ") { text = text[..<at.lowerBound] }
        if let colon = text.lastIndex(of: ":") { text = text[text.index(after: colon)...] }
        return String(text)
    }
}

@available(*, unavailable)
extension BackendTLSHandshake: Sendable {}

extension Optional where Wrapped == BackendTLS {
    /// The bootstrap both transports connect to an endpoint with: on `eventLoop`, bounded by `connectTimeout`
    /// (the TLS handshake too), TLS first when the pool has it, then `protocolHandlers` on the channel.
    /// `handshake` is completed by the TLS handshake, or at once without TLS; the caller fails it too when the
    /// connect fails, so it never leaks (completing a completed promise is a no-op).
    func clientBootstrap(
        on eventLoop: any EventLoop,
        host: String,
        pool: String,
        endpoint: String,
        connectTimeout: TimeAmount,
        handshake: EventLoopPromise<Void>,
        protocolHandlers: @escaping @Sendable (any Channel) throws -> Void
    ) -> ClientBootstrap {
        // ClientBootstrap sets TCP_NODELAY (IPPROTO_TCP) itself.
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = self {
                        try tls.addHandlers(
                            to: channel, host: host, pool: pool, endpoint: endpoint, handshakeTimeout: connectTimeout
                        ).cascade(to: handshake)
                    } else {
                        handshake.succeed()
                    }
                    try protocolHandlers(channel)
                }
            }
    }
}
