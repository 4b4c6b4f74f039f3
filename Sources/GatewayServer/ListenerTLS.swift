#if canImport(Glibc)
    import Glibc
#endif
package import FoundationEssentials
package import GatewayConfig
package import NIOCore
package import NIOSSL
import SwiftASN1
import TriggerModel
package import X509

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
    /// The leaf's serial number (hex): a renewal that keeps subject and expiry to the second still changes it.
    package let serialNumber: String
    /// `client_ca_file` is set: client certificates are asked for and verified, and name the principal.
    package let verifiesClients: Bool
    /// `client_principals`: certificate subject → principal.
    package let clientPrincipals: [String: String]

    /// A certificate time as the log writes times (RFC 3339, UTC, milliseconds: `tls.not_valid_after`), not
    /// `Date`'s description (`2026-12-08 18:21:43 +0000`). Rounded to the millisecond: `notAfter` is whole
    /// seconds, which the `Double` may hold a hair under.
    package static func logTime(_ date: Date) -> String {
        RFC3339.format(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    /// Why `tls:` cannot be used: the key path (`tls.cert_file`, …) and a message naming the file.
    package struct Failure: Error, Sendable {
        package var path: String
        package var message: String

        package init(path: String, message: String) {
            self.path = path
            self.message = message
        }
    }

    /// ALPN identifiers offered, in preference order.
    package static let applicationProtocols = ["h2", "http/1.1"]

    /// The TLS 1.2 cipher suites served (BoringSSL's cipher string; TLS 1.3's suites are not set by it and are all
    /// AEAD): ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only, as Mozilla's "intermediate" profile and
    /// Envoy's default server list. No static-RSA key exchange (no forward secrecy) and no CBC suites: RFC 9113
    /// §9.2.2 forbids h2 over the suites of its Appendix A, which are all of those (review 24, L4).
    package static let tls12CipherSuites = "ECDHE+AESGCM:ECDHE+CHACHA20"

    /// Reads and checks the files `configuration` names and builds the server context.
    ///
    /// - Throws: `Failure` for an unreadable file, PEM that holds no certificate or key, a key that does not
    ///   match the certificate, a certificate outside its validity period at `now`, or a CA file with no
    ///   certificate.
    package static func load(_ configuration: ListenerTLSConfiguration, now: Date = Date()) throws(Failure)
        -> ListenerTLS
    {
        let identity = try Self.identity(
            certFile: configuration.certFile, keyFile: configuration.keyFile, keyPath: "tls", now: now)
        let leaf = identity.leaf
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: identity.chain.map { .certificate($0) },
            privateKey: .privateKey(identity.key)
        )
        tls.minimumTLSVersion = .tlsv12
        tls.cipherSuites = Self.tls12CipherSuites
        tls.applicationProtocols = Self.applicationProtocols
        if let caFile = configuration.clientCAFile {
            tls.trustRoots = .certificates(try Self.certificates(in: caFile, key: "tls.client_ca_file"))
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
                notValidAfter: leaf.notValidAfter,
                serialNumber: "\(leaf.serialNumber)",
                verifiesClients: configuration.clientCAFile != nil,
                clientPrincipals: configuration.clientPrincipals
            )
        } catch {
            throw Failure(path: "tls", message: "cannot build the TLS context: \(error)")
        }
    }

    /// The principal a TLS connection's client certificate names, once the handshake is done (on the channel's
    /// loop): the subject in RFC 4514 form (`CN=alice,O=Example`, most specific first, as swift-certificates
    /// writes it), or what `client_principals` maps it to; nil when the port verifies no client certificates
    /// or the client presented none. BoringSSL has verified a presented certificate against `client_ca_file`
    /// before the handshake completed (a certificate that does not verify fails the handshake, even where one
    /// is optional).
    package func clientPrincipal(of channel: any Channel) -> String? {
        guard verifiesClients,
            let peer = try? channel.pipeline.syncOperations.nioSSL_peerCertificate(),
            let der = try? peer.toDERBytes(),
            let certificate = try? Certificate(derEncoded: der)
        else { return nil }
        let subject = "\(certificate.subject)"
        return clientPrincipals[subject] ?? subject
    }

    /// A certificate chain and its private key, checked as a pair: `cert_file` holds the leaf first, then any
    /// intermediates; `key_file` must be the leaf's key, and the leaf must be valid at `now`. Failures name
    /// `<keyPath>.cert_file` / `<keyPath>.key_file` (`tls`, or a pool's `pools[2].tls` for the client
    /// certificate presented to backends).
    package static func identity(certFile: String, keyFile: String, keyPath: String, now: Date = Date())
        throws(Failure) -> (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey, leaf: Certificate)
    {
        let certKey = "\(keyPath).cert_file"
        let keyKey = "\(keyPath).key_file"
        let chainPEM = try read(certFile, key: certKey)
        let keyPEM = try read(keyFile, key: keyKey)
        let chain: [Certificate]
        do {
            chain = try PEMDocument.parseMultiple(pemString: chainPEM)
                .filter { $0.discriminator == "CERTIFICATE" }
                .map { try Certificate(pemDocument: $0) }
        } catch {
            throw Failure(path: certKey, message: "\(certFile): not a PEM certificate: \(error)")
        }
        guard let leaf = chain.first else {
            throw Failure(path: certKey, message: "\(certFile): holds no PEM certificate")
        }
        let keyBlock = try privateKeyBlock(keyPEM, file: keyFile, key: keyKey)
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemDocument: keyBlock)
        } catch {
            throw Failure(
                path: keyKey,
                message: "\(keyFile): its \(keyBlock.discriminator) block is not a private key it can read")
        }
        guard key.publicKey == leaf.publicKey else {
            throw Failure(path: keyKey, message: "\(keyFile) is not the private key of the certificate in \(certFile)")
        }
        if now > leaf.notValidAfter {
            throw Failure(
                path: certKey,
                message: "\(certFile): the certificate expired at \(leaf.notValidAfter) (subject \(leaf.subject))"
            )
        }
        if now < leaf.notValidBefore {
            throw Failure(
                path: certKey, message: "\(certFile): the certificate is not valid before \(leaf.notValidBefore)")
        }
        do {
            return (
                try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8)),
                try NIOSSLPrivateKey(bytes: Array(keyBlock.pemString.utf8), format: .pem),
                leaf
            )
        } catch {
            throw Failure(path: certKey, message: "\(certFile): cannot be used: \(error)")
        }
    }

    /// The one private-key block of a key file's PEM text, in words an operator can act on (review 9,
    /// finding 12): a file that also holds certificates or EC parameters (a haproxy-style bundle, `openssl
    /// ecparam -genkey`'s output) gives its key, as nginx's `ssl_certificate_key` takes it; an encrypted key
    /// (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a traditional one with `Proc-Type: 4,ENCRYPTED`, RFC 1421) says how to
    /// decrypt it (the gateway has no passphrase to ask for); DER or other text says it is not PEM. Never a
    /// library's type name or source path.
    static func privateKeyBlock(_ pem: String, file: String, key: String) throws(Failure) -> PEMDocument {
        let encrypted =
            "\(file): the key is encrypted; write it unencrypted (openssl pkey -in \(file) -out \(file).plain) "
            + "and keep it readable by the gateway's user alone"
        // A traditional encrypted key's headers are not base64: its parse would fail, so look first.
        if pem.contains("Proc-Type: 4,ENCRYPTED") { throw Failure(path: key, message: encrypted) }
        let documents = (try? PEMDocument.parseMultiple(pemString: pem)) ?? []
        if documents.isEmpty {
            throw Failure(
                path: key,
                message:
                    "\(file): not a PEM private key (PKCS#8, SEC1 or PKCS#1): no -----BEGIN … PRIVATE KEY----- block")
        }
        if documents.contains(where: { $0.discriminator == "ENCRYPTED PRIVATE KEY" }) {
            throw Failure(path: key, message: encrypted)
        }
        let keys = documents.filter { ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"].contains($0.discriminator) }
        guard keys.count == 1, let block = keys.first else {
            let found = documents.map(\.discriminator).joined(separator: ", ")
            throw Failure(
                path: key,
                message: keys.isEmpty
                    ? "\(file): holds no PEM private key (found \(found))"
                    : "\(file): holds \(keys.count) private keys; key_file must hold one")
        }
        return block
    }

    /// The PEM certificates in `path` (a CA file), at least one; failures name `key`.
    package static func certificates(in path: String, key: String) throws(Failure) -> [NIOSSLCertificate] {
        let pem = try read(path, key: key)
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))
        } catch {
            throw Failure(path: key, message: "\(path): not PEM certificates: \(error)")
        }
        guard !certificates.isEmpty else { throw Failure(path: key, message: "\(path): holds no PEM certificate") }
        return certificates
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
            // Binary: most likely DER, which converts losslessly to the PEM the gateway reads.
            let convert = key.hasSuffix("key_file") ? "openssl pkey" : "openssl x509"
            throw Failure(
                path: key,
                message:
                    "\(path) is not PEM text (DER? convert it: \(convert) -inform DER -in \(path) -out \(path).pem)")
        }
        return text
    }
}
