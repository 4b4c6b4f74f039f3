import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// A TLS-terminating front for a cleartext backend on loopback (the gateway's TLS backends in tests): accepts TLS
/// with the given certificate, ALPN protocols and client-certificate rule, then relays the decrypted bytes to
/// `127.0.0.1:<backendPort>` and back. Records every finished handshake's client certificate subject (nil when
/// none was presented) and every failed handshake, so tests can see what the gateway presented.
package final class TLSTerminator: Sendable {
    package let port: Int
    private let channel: any Channel
    private let seen = Mutex<(subjects: [String?], failures: [String])>(([], []))

    /// The client certificates' common names, one per completed handshake (nil: no certificate presented).
    package var clientSubjects: [String?] { seen.withLock { $0.subjects } }
    /// Handshakes that failed, with NIOSSL's error.
    package var handshakeFailures: [String] { seen.withLock { $0.failures } }

    /// - Parameters:
    ///   - clientCA: client certificates are asked for and verified against this PEM file; nil: none asked for.
    ///   - requireClientCert: a handshake without a client certificate fails.
    package init(
        certFile: String,
        keyFile: String,
        applicationProtocols: [String],
        clientCA: String? = nil,
        requireClientCert: Bool = false,
        backendPort: Int
    ) async throws {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        )
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = applicationProtocols
        if let clientCA {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
            tls.certificateVerification = requireClientCert ? .noHostnameVerification : .optionalVerification
        }
        let context = try NIOSSLContext(configuration: tls)
        let box = Mutex<TLSTerminator?>(nil)
        let group = MultiThreadedEventLoopGroup.singleton
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let relay = Relay(backendPort: backendPort) { event in
                        box.withLock { $0 }?.record(event)
                    }
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(relay)
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        port = channel.localAddress!.port!
        box.withLock { $0 = self }
    }

    package func close() async {
        try? await channel.close()
    }

    private func record(_ event: Relay.Event) {
        seen.withLock {
            switch event {
            case .handshake(let subject): $0.subjects.append(subject)
            case .failure(let error): $0.failures.append(error)
            }
        }
    }

    /// Relays one accepted (decrypted) connection to the backend.
    private final class Relay: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        enum Event {
            case handshake(String?)
            case failure(String)
        }

        private let backendPort: Int
        private let report: @Sendable (Event) -> Void
        private let link = RelayBackendLink()

        init(backendPort: Int, report: @escaping @Sendable (Event) -> Void) {
            self.backendPort = backendPort
            self.report = report
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
                let subject = (try? context.pipeline.syncOperations.nioSSL_peerCertificate())
                    .flatMap { $0 }
                    .flatMap { $0.subjectName.first { $0.type == .commonName }?.value }
                report(.handshake(subject))
                link.connect(front: context.channel, port: backendPort)
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            link.forward(unwrapInboundIn(data))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            report(.failure("\(error)"))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            link.close()
            context.fireChannelInactive()
        }
    }

}
