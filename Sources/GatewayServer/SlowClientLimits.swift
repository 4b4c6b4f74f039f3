package import GatewayConfig
package import NIOCore
import TriggerModel

/// What a client that does not progress may hold (issue 10, items 1, 2 and 4): time before its first bytes,
/// header and body progress of an HTTP/1.1 request, how long a response may wait for the client to read,
/// and how many response bytes are buffered for it before the backend is paused.
package struct SlowClientLimits: Sendable {
    /// From accept to the first byte and, on HTTP/2, from the 24-byte magic to the client's first SETTINGS.
    package var prefaceTimeout: TimeAmount
    /// HTTP/1.1: from a request's first byte to the end of its header block (408, then close).
    package var requestHeaderTimeout: TimeAmount
    /// HTTP/1.1: the longest gap between two pieces of a request body (408, then close).
    package var bodyProgressTimeout: TimeAmount
    /// How long a response may wait for the client to take bytes: HTTP/2 resets the stream (CANCEL),
    /// HTTP/1.1 closes the connection.
    package var writeProgressTimeout: TimeAmount
    /// HTTP/2: queued response bytes per stream, and per connection, above which producers wait.
    package var streamBufferBytes: Int
    package var connectionBufferBytes: Int

    package init(
        prefaceTimeout: TimeAmount,
        requestHeaderTimeout: TimeAmount,
        bodyProgressTimeout: TimeAmount,
        writeProgressTimeout: TimeAmount,
        streamBufferBytes: Int,
        connectionBufferBytes: Int
    ) {
        self.prefaceTimeout = prefaceTimeout
        self.requestHeaderTimeout = requestHeaderTimeout
        self.bodyProgressTimeout = bodyProgressTimeout
        self.writeProgressTimeout = writeProgressTimeout
        self.streamBufferBytes = streamBufferBytes
        self.connectionBufferBytes = connectionBufferBytes
    }

    /// The configured `timeouts:` and `limits:` keys these come from; the config layer keeps the defaults.
    package init(timeouts: TimeoutsConfiguration, limits: LimitsConfiguration) {
        self.init(
            prefaceTimeout: TimeAmount(timeouts.preface),
            requestHeaderTimeout: TimeAmount(timeouts.requestHeader),
            bodyProgressTimeout: TimeAmount(timeouts.bodyProgress),
            writeProgressTimeout: TimeAmount(timeouts.writeProgress),
            streamBufferBytes: limits.streamBufferBytes,
            connectionBufferBytes: limits.connectionBufferBytes
        )
    }

    /// The defaults of `TimeoutsConfiguration` and `LimitsConfiguration`.
    package static var defaults: SlowClientLimits { SlowClientLimits(timeouts: .defaults, limits: .defaults) }
}

extension GatewayError {
    /// A request whose header block or body stopped arriving for ``SlowClientLimits/requestHeaderTimeout`` or
    /// ``SlowClientLimits/bodyProgressTimeout``: the client was late, not the backend. REST answers it with 408
    /// (RFC 9110 §15.5.9, ``RESTResponse/requestTimeout(_:)``) in the route's error shape, gRPC with
    /// DEADLINE_EXCEEDED; HTTP/1.1 and HTTP/2 say the same words.
    static var requestNotReceivedInTime: GatewayError {
        GatewayError(.deadlineExceeded, "the request was not received in time")
    }
}

extension RESTResponse {
    /// `response` (an error response of ``GatewayError/requestNotReceivedInTime`` in the route's shape) as 408:
    /// the error's body says DEADLINE_EXCEEDED, but not under the 504 that code maps to, since the client was
    /// late (RFC 9110 §15.5.9).
    static func requestTimeout(_ response: RESTResponse) -> RESTResponse {
        var response = response
        response.status = 408
        return response
    }
}
