/// `pools[].tls`: TLS to a pool's endpoints (issue 17, item 2).
///
/// Present (`tls: true`, a mapping, or endpoints written `https://` / `grpcs://`) means every endpoint of the
/// pool is reached over TLS 1.2+: ALPN `h2` for grpc pools, `http/1.1` for http pools; the endpoint's
/// certificate is verified against `ca_file` (the system's trust store without it) and must name the host
/// the connection is for (`server_name`, else the endpoint's host; an IP address is matched against the
/// certificate's IP SANs). `server_name` is also what SNI sends; without it SNI carries the endpoint's host
/// name (never an IP address, RFC 6066 §3). `cert_file` + `key_file` present a client certificate to
/// backends that ask for one (mutual TLS).
///
/// The files are read when the configuration loads (start, `check-config`, SIGHUP), so a reload with renewed
/// files makes new connections with them.
package struct BackendTLSConfiguration: Sendable, Equatable {
    /// PEM: the CA certificates backend certificates are verified against; nil: the system's.
    package var caFile: String?
    /// The name the backend's certificate must carry and SNI sends; nil: the endpoint's host.
    package var serverName: String?
    /// PEM: the client certificate (then any intermediates) presented to the backend.
    package var certFile: String?
    /// PEM: the client certificate's private key.
    package var keyFile: String?

    package init(caFile: String? = nil, serverName: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.serverName = serverName
        self.certFile = certFile
        self.keyFile = keyFile
    }
}
