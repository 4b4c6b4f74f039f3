/// A route's completion webhook (`routes[i].webhook`): where the gateway POSTs an async operation's JSON
/// when it finishes, and the secret it signs the body with.
package struct WebhookConfiguration: Sendable, Equatable {
    /// As written (`http://host:port/path`), for logs.
    package var url: String
    package var endpoint: BackendEndpoint
    /// The request path (`/path`, `/` when the URL has none).
    package var path: String
    /// HMAC-SHA256 key of the `trigger-gateway-signature` header; nil sends no signature.
    package var secret: String?
    /// Deliveries tried before giving up (non-2xx answers and connection failures are retried).
    package var maxAttempts: Int
    /// Wait before the second delivery, doubled for each further one.
    package var backoff: Duration
    /// How long one delivery may take.
    package var timeout: Duration

    package init(
        url: String,
        endpoint: BackendEndpoint,
        path: String,
        secret: String? = nil,
        maxAttempts: Int = 5,
        backoff: Duration = .seconds(1),
        timeout: Duration = .seconds(10)
    ) {
        self.url = url
        self.endpoint = endpoint
        self.path = path
        self.secret = secret
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.timeout = timeout
    }

    package static let maxAttemptsRange = 1...100
}
