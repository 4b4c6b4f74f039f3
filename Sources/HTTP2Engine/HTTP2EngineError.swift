/// Why an HTTP/2 connection (not a single stream) failed, or why an operation was refused.
///
/// Stream-level failures are not errors: they arrive as
/// ``HTTP2SessionDelegate/session(_:streamClosed:errorCode:)`` with a non-`noError` code.
package struct HTTP2EngineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The category; a struct over a private enum so new cases do not break exhaustive switches elsewhere.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case protocolError, goAwaySent, sessionClosing, streamIDsExhausted, connectionClosed, internalError
            case timedOut, excessiveLoad, headerBlockTooLarge, controlFrameFlood, excessiveHeaderLists
        }

        private var wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// The peer broke the protocol (bad preface, malformed frame, HPACK failure, flooding).
        package static let protocolError = Code(.protocolError)
        /// nghttp2 closed the connection with a GOAWAY carrying an error code.
        package static let goAwaySent = Code(.goAwaySent)
        /// A new stream was asked for after a GOAWAY was sent or received.
        package static let sessionClosing = Code(.sessionClosing)
        /// The client used up the 2^31 stream ids of this connection; open a new one.
        package static let streamIDsExhausted = Code(.streamIDsExhausted)
        /// The transport went away before the session finished.
        package static let connectionClosed = Code(.connectionClosed)
        /// The peer did not progress in time: no preface, or a connection it stopped reading.
        package static let timedOut = Code(.timedOut)
        /// The peer generated excessive load (it reset streams faster than
        /// ``HTTP2SessionConfiguration/streamResetRateLimit`` allows: rapid reset); the connection ended with
        /// GOAWAY(ENHANCE_YOUR_CALM) (RFC 9113 §5.4.1).
        package static let excessiveLoad = Code(.excessiveLoad)
        /// The peer sent frames that each need an answer (PING, SETTINGS) faster than it read the answers:
        /// libnghttp2 refused the frame past its 1000 queued answers (`NGHTTP2_ERR_FLOODED`), and the connection
        /// ended with GOAWAY(ENHANCE_YOUR_CALM) (RFC 9113 §10.5; Envoy's `outbound_control_flood`).
        package static let controlFrameFlood = Code(.controlFrameFlood)
        /// Server: a request header block took more than ``HTTP2SessionConfiguration/maxContinuationFrames``
        /// CONTINUATION frames; the connection ended with GOAWAY(ENHANCE_YOUR_CALM) (RFC 9113 §10.5.1 lets a
        /// server close the connection rather than process a header section it is not willing to handle).
        package static let headerBlockTooLarge = Code(.headerBlockTooLarge)
        /// Server: request header blocks over ``HTTP2SessionConfiguration/maxHeaderListSize`` cost more than the
        /// engine decodes for a refusal: one decoded past ``HTTP2SessionConfiguration/headerListCeiling``, or more
        /// than ``HTTP2SessionConfiguration/maxOversizedHeaderBlocks`` on the connection decoded past
        /// ``HTTP2SessionConfiguration/headerListCeilingFactor`` times the limit. HPACK lets one byte name a 4 KB table entry, so such blocks cost the gateway thousands of
        /// times what they cost the sender (security review 60, M1); the connection ended with
        /// GOAWAY(ENHANCE_YOUR_CALM) (RFC 9113 §10.5.1).
        package static let excessiveHeaderLists = Code(.excessiveHeaderLists)
        /// A bug or an allocation failure inside the engine or libnghttp2.
        package static let internalError = Code(.internalError)

        package var description: String { String(describing: self.wrapped) }
    }

    package var code: Code
    package var message: String
    /// The HTTP/2 error code sent or received in a GOAWAY, when one applies.
    package var http2ErrorCode: HTTP2ErrorCode?

    package init(_ code: Code, _ message: String, http2ErrorCode: HTTP2ErrorCode? = nil) {
        self.code = code
        self.message = message
        self.http2ErrorCode = http2ErrorCode
    }

    package var description: String {
        if let http2ErrorCode {
            return "HTTP2EngineError(\(self.code), \(http2ErrorCode)): \(self.message)"
        }
        return "HTTP2EngineError(\(self.code)): \(self.message)"
    }
}

extension HTTP2EngineError {
    /// The error code of the GOAWAY that ended the connection for what the peer sent: a connection error
    /// (RFC 9113 §5.4.1) the peer caused, which closes every stream still open. PROTOCOL_ERROR for a fatal
    /// `mem_recv` error (``Code/protocolError``); libnghttp2's own code for the GOAWAY it sent
    /// (``Code/goAwaySent``: PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, STREAM_CLOSED,
    /// COMPRESSION_ERROR…, from its `session_handle_invalid_connection`); ENHANCE_YOUR_CALM for excessive load
    /// (``Code/excessiveLoad``, ``Code/controlFrameFlood``, ``Code/headerBlockTooLarge``,
    /// ``Code/excessiveHeaderLists``). Nil for every other
    /// ending (a timeout, the transport closing, a failure of ours): the peer is not known to be at fault.
    package var peerFaultCode: HTTP2ErrorCode? {
        if self.code == .protocolError { return self.http2ErrorCode ?? .protocolError }
        if self.code == .goAwaySent { return self.http2ErrorCode }
        if self.code == .excessiveLoad || self.code == .controlFrameFlood || self.code == .headerBlockTooLarge
            || self.code == .excessiveHeaderLists
        {
            return .enhanceYourCalm
        }
        return nil
    }
}
