#if canImport(Glibc)
    import Glibc
#endif
package import FoundationEssentials
package import GatewayConfig
package import NIOSSL
import SwiftASN1
import X509

/// The TLS side of the listener (issue 17, item 1): a server context built from `tls:`, and the rule for
/// cleartext on the same port.
///
/// TLS 1.2 or later, NIOSSL's default (modern, forward-secret AEAD) cipher suites, ALPN `h2` then `http/1.1`
/// (RFC 7301; the server's preference decides, so gRPC clients that offer both get h2). The frontend is still
/// chosen by the connection preface after the handshake (`ProtocolSniffer`), so a client that sends no ALPN
/// works too.
///
/// The certificate and key are checked when loaded rather than at the first handshake: a key that does not
/// belong to the certificate (BoringSSL would only fail each handshake) and a certificate that has expired or
/// is not yet valid are refused with what to fix. A configuration is loaded at start, by `check-config` and on
/// SIGHUP, so renewed files are picked up by a reload: new connections get the new context, open ones keep
/// theirs.
package struct ListenerTLS: Sendable {
    package let context: NIOSSLContext
    /// Cleartext connections are served on the TLS port too (told apart by their first byte).
    package let allowPlaintext: Bool
    /// The leaf certificate's subject and expiry, for the start-up log.
    package let subject: String
    package let notValidAfter: Date

    /// Why `tls:` cannot be used: the key path (`tls.cert_file`, …) and a message naming the file.
    package struct Failure: Error, Sendable {
        package var path: String
        package var message: String
    }

    /// ALPN identifiers offered, in preference order.
    package static let applicationProtocols = ["h2", "http/1.1"]

    /// Reads and checks the files `configuration` names and builds the server context.
    ///
    /// - Throws: `Failure` for an unreadable file, PEM that holds no certificate or key, a key that does not
    ///   match the certificate, a certificate outside its validity period at `now`, or a CA file with no
    ///   certificate.
    package static func load(_ configuration: ListenerTLSConfiguration, now: Date = Date()) throws(Failure)
        -> ListenerTLS
    {
        let chainPEM = try read(configuration.certFile, key: "tls.cert_file")
        let keyPEM = try read(configuration.keyFile, key: "tls.key_file")
        let chain: [Certificate]
        do {
            chain = try PEMDocument.parseMultiple(pemString: chainPEM)
                .filter { $0.discriminator == "CERTIFICATE" }
                .map { try Certificate(pemDocument: $0) }
        } catch {
            throw Failure(path: "tls.cert_file", message: "\(configuration.certFile): not a PEM certificate: \(error)")
        }
        guard let leaf = chain.first else {
            throw Failure(path: "tls.cert_file", message: "\(configuration.certFile): holds no PEM certificate")
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: keyPEM)
        } catch {
            throw Failure(
                path: "tls.key_file",
                message: "\(configuration.keyFile): not a PEM private key (PKCS#8, SEC1 or PKCS#1): \(error)"
            )
        }
        guard key.publicKey == leaf.publicKey else {
            throw Failure(
                path: "tls.key_file",
                message:
                    "\(configuration.keyFile) is not the private key of the certificate in \(configuration.certFile)"
            )
        }
        if now > leaf.notValidAfter {
            throw Failure(
                path: "tls.cert_file",
                message:
                    "\(configuration.certFile): the certificate expired at \(leaf.notValidAfter) (subject \(leaf.subject))"
            )
        }
        if now < leaf.notValidBefore {
            throw Failure(
                path: "tls.cert_file",
                message: "\(configuration.certFile): the certificate is not valid before \(leaf.notValidBefore)"
            )
        }

        var tls: TLSConfiguration
        do {
            let certificates = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8)).map {
                NIOSSLCertificateSource.certificate($0)
            }
            let privateKey = NIOSSLPrivateKeySource.privateKey(
                try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
            tls = TLSConfiguration.makeServerConfiguration(certificateChain: certificates, privateKey: privateKey)
        } catch {
            throw Failure(path: "tls.cert_file", message: "\(configuration.certFile): cannot be used: \(error)")
        }
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = Self.applicationProtocols
        if let caFile = configuration.clientCAFile {
            let caPEM = try read(caFile, key: "tls.client_ca_file")
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8))
            } catch {
                throw Failure(path: "tls.client_ca_file", message: "\(caFile): not PEM certificates: \(error)")
            }
            guard !roots.isEmpty else {
                throw Failure(path: "tls.client_ca_file", message: "\(caFile): holds no PEM certificate")
            }
            tls.trustRoots = .certificates(roots)
            tls.sendCANameList = true
            // Verified when presented; required only with require_client_cert (no hostname: clients have none).
            tls.certificateVerification =
                configuration.requireClientCert ? .noHostnameVerification : .optionalVerification
        }
        do {
            return ListenerTLS(
                context: try NIOSSLContext(configuration: tls),
                allowPlaintext: configuration.allowPlaintext,
                subject: "\(leaf.subject)",
                notValidAfter: leaf.notValidAfter
            )
        } catch {
            throw Failure(path: "tls", message: "cannot build the TLS context: \(error)")
        }
    }

    /// A file's text, or a `Failure` naming the key, the path and the OS's reason.
    private static func read(_ path: String, key: String) throws(Failure) -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason: String
            if let error = error as? CocoaError, error.code == .fileReadNoSuchFile {
                reason = "no such file"
            } else if let error = error as? CocoaError, error.code == .fileReadNoPermission {
                reason = "permission denied"
            } else {
                reason = "\(error)"
            }
            throw Failure(path: key, message: "cannot read \(path): \(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw Failure(path: key, message: "\(path) is not PEM text")
        }
        return text
    }
}
