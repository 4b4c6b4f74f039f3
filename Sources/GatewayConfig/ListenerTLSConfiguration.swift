/// `tls:` — TLS on the listen port (issue 17, item 1).
///
/// With it, the port speaks TLS 1.2+ with ALPN `h2` and `http/1.1` (gRPC and REST over both). With
/// `allow_plaintext`, the same port also takes cleartext connections, told apart by their first byte (a TLS
/// record starts with 0x16, the handshake content type, RFC 8446 §5.1), so one port can serve both during a
/// migration. `client_ca_file` asks clients for a certificate and verifies the ones presented against it;
/// `require_client_cert` refuses a handshake without one (mutual TLS). A verified client certificate names the
/// request's principal (issue 17, item 1): its subject in RFC 4514 form (`CN=alice,O=Example`), or the name
/// `client_principals` maps that subject to. Tokens still decide the principal when `auth` requires them.
///
/// The files are read when the configuration is loaded (start, `check-config`, SIGHUP), so a reload picks up
/// renewed certificates for new connections while open ones keep theirs.
package struct ListenerTLSConfiguration: Sendable, Equatable {
    /// PEM: the server certificate, then any intermediates.
    package var certFile: String
    /// PEM: the certificate's private key.
    package var keyFile: String
    package var allowPlaintext = false
    /// PEM: the CA certificates client certificates are verified against; nil: none asked for.
    package var clientCAFile: String?
    package var requireClientCert = false
    /// Client certificate subject (RFC 4514, most specific first: `CN=alice,O=Example`) → principal; a subject
    /// not listed is its own principal.
    package var clientPrincipals: [String: String] = [:]

    package init(
        certFile: String,
        keyFile: String,
        allowPlaintext: Bool = false,
        clientCAFile: String? = nil,
        requireClientCert: Bool = false,
        clientPrincipals: [String: String] = [:]
    ) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.allowPlaintext = allowPlaintext
        self.clientCAFile = clientCAFile
        self.requireClientCert = requireClientCert
        self.clientPrincipals = clientPrincipals
    }
}
