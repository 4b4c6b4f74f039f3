/// A transport that owns connections of its own and can let them go gracefully (the in-process runner has
/// none, so it is not one).
package protocol RetirableTransport: Sendable {
    /// Stops keeping connections: calls in flight finish, then each connection closes; nothing new is kept
    /// idle. Idempotent.
    func retire()
}
