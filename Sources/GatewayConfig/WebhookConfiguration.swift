/// A route's completion webhook (`routes[i].webhook`): where the gateway POSTs an async operation's JSON
/// when it finishes, and the secret it signs the body with.
package struct WebhookConfiguration: Sendable, Equatable {
    /// As written (`http://host:port/path` or `https://…`), for logs.
    package var url: String
    /// Host, port and scheme (`http`, or `https` for TLS); a port the URL leaves out is 80 or 443.
    package var endpoint: BackendEndpoint
    /// The request path (`/path`, `/` when the URL has none).
    package var path: String
    /// HMAC-SHA256 key of the `trigger-gateway-signature` header; nil sends no signature.
    package var secret: String?
    /// `secret_file`: the file `secret` was read from, when it was (for its mode check).
    package var secretFile: String?
    /// Deliveries tried before giving up (non-2xx answers and connection failures are retried).
    package var maxAttempts: Int
    /// Wait before the second delivery, doubled for each further one.
    package var backoff: Duration
    /// How long one delivery may take: connect, TLS handshake, request and answer together.
    package var timeout: Duration
    /// `ca_file` (https only): PEM CA certificates the receiver's certificate is verified against instead of
    /// the system's trust store.
    package var caFile: String?

    package init(
        url: String,
        endpoint: BackendEndpoint,
        path: String,
        secret: String? = nil,
        maxAttempts: Int = 5,
        backoff: Duration = .seconds(1),
        timeout: Duration = .seconds(10),
        caFile: String? = nil
    ) {
        self.url = url
        self.endpoint = endpoint
        self.path = path
        self.secret = secret
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.timeout = timeout
        self.caFile = caFile
    }

    /// The URL each delivery POSTs to: `<scheme>://<host>:<port><path>` (an IPv6 host in brackets).
    package var requestURL: String { "\((endpoint.scheme ?? .http).rawValue)://\(endpoint.authority)\(path)" }

    package static let maxAttemptsRange = 1...100
}
