/// Frontend timeouts (`timeouts:` in the config file).
package struct TimeoutsConfiguration: Sendable, Equatable {
    /// Deadline given to a trigger when the client sent none (and the cap on one it sent over REST).
    package var request: Duration
    /// How long a connection may sit with no request in flight before it is closed.
    package var idle: Duration
    /// How long shutdown waits for in-flight calls before closing what is left.
    package var shutdownGrace: Duration
    /// From accept to the first byte, and on HTTP/2 to the end of the client preface (its first SETTINGS
    /// frame, counted from the 24-byte magic): a silent or stalled socket is closed after this (nghttpd: 10 s).
    package var preface: Duration
    /// HTTP/1.1: from the first byte of a request to the end of its header block; over it the client gets
    /// 408 and the connection closes. Distinct from `idle`, which counts only between requests.
    package var requestHeader: Duration
    /// HTTP/1.1: the longest gap between two pieces of a request body (408 and close).
    package var bodyProgress: Duration
    /// How long a response may wait for a client that reads nothing (HTTP/2: keeps its window shut) before
    /// the stream is reset (HTTP/2 RST_STREAM CANCEL, which gRPC reports as CANCELLED) or, on HTTP/1.1, the
    /// connection is closed.
    package var writeProgress: Duration
    /// A stream's backend silent this long between two events, while the gateway awaits the next, ends the
    /// stream with an error (the first event is bounded by the pool's `request_timeout` instead). 60 s, what
    /// `idle` (which bounded it before it had its own key) defaults to.
    package var streamIdle: Duration

    package init(
        request: Duration = .seconds(60),
        idle: Duration = .seconds(60),
        shutdownGrace: Duration = .seconds(10),
        preface: Duration = .seconds(10),
        requestHeader: Duration = .seconds(30),
        bodyProgress: Duration = .seconds(30),
        writeProgress: Duration = .seconds(30),
        streamIdle: Duration = .seconds(60)
    ) {
        self.request = request
        self.idle = idle
        self.shutdownGrace = shutdownGrace
        self.preface = preface
        self.requestHeader = requestHeader
        self.bodyProgress = bodyProgress
        self.writeProgress = writeProgress
        self.streamIdle = streamIdle
    }

    /// 60 s request, 60 s idle, 10 s shutdown grace, 10 s preface, 30 s request header, 30 s body progress,
    /// 30 s write progress, 60 s stream idle.
    package static var defaults: TimeoutsConfiguration { TimeoutsConfiguration() }
}
