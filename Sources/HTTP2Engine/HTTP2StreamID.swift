/// The identifier of one HTTP/2 stream on one connection (RFC 9113 §5.1.1).
///
/// Client-initiated streams are odd, server-initiated (push, never used here) are even; 0 is the connection
/// itself and never names a stream handed to the owner.
package struct HTTP2StreamID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The 31-bit stream identifier as it travels in frame headers.
    package var rawValue: Int32

    package init(_ rawValue: Int32) {
        precondition(rawValue >= 0, "HTTP/2 stream ids are 31-bit non-negative integers")
        self.rawValue = rawValue
    }

    /// Stream 0: the connection (used as the last-stream-id of a GOAWAY that accepted no stream).
    package static let connection = HTTP2StreamID(0)

    package static func < (lhs: HTTP2StreamID, rhs: HTTP2StreamID) -> Bool { lhs.rawValue < rhs.rawValue }

    package var description: String { String(self.rawValue) }
}
