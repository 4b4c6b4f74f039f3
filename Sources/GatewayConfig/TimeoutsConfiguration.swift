/// Frontend timeouts (`timeouts:` in the config file).
package struct TimeoutsConfiguration: Sendable, Equatable {
    /// Deadline given to a trigger when the client sent none (and the cap on one it sent over REST).
    package var request: Duration
    /// How long a connection may sit with no request in flight before it is closed.
    package var idle: Duration
    /// How long shutdown waits for in-flight calls before closing what is left.
    package var shutdownGrace: Duration

    package init(
        request: Duration = .seconds(60),
        idle: Duration = .seconds(60),
        shutdownGrace: Duration = .seconds(10)
    ) {
        self.request = request
        self.idle = idle
        self.shutdownGrace = shutdownGrace
    }

    /// 60 s request, 60 s idle, 10 s shutdown grace.
    package static var defaults: TimeoutsConfiguration { TimeoutsConfiguration() }
}
