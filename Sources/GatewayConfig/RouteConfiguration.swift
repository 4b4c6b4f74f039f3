/// One line of the routing table (`routes:`): which pipelines go to which pool.
///
/// `namespace` and `pipeline` are exact names or `*`; `release` is nil for "every release" (the release
/// still travels to the backend) or one exact release. `Routing.RouteTable` decides which route wins.
package struct RouteConfiguration: Sendable, Equatable {
    package var namespace: String
    package var pipeline: String
    package var release: String?
    /// The name of a pool in `pools`.
    package var pool: String
    /// Called when an async operation of this route finishes.
    package var webhook: WebhookConfiguration?

    package init(
        namespace: String,
        pipeline: String = "*",
        release: String? = nil,
        pool: String,
        webhook: WebhookConfiguration? = nil
    ) {
        self.namespace = namespace
        self.pipeline = pipeline
        self.release = release
        self.pool = pool
        self.webhook = webhook
    }

    /// The `*` that matches any namespace or pipeline.
    package static let wildcard = "*"
}
