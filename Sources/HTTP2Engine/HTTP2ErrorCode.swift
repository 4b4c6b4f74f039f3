/// An HTTP/2 error code as carried by RST_STREAM and GOAWAY (RFC 9113 §7).
///
/// A struct rather than an enum because peers may send codes this list does not know; they round-trip
/// unchanged through `rawValue`.
package struct HTTP2ErrorCode: Hashable, Sendable, CustomStringConvertible {
    package var rawValue: UInt32

    package init(_ rawValue: UInt32) {
        self.rawValue = rawValue
    }

    package static let noError = HTTP2ErrorCode(0x0)
    package static let protocolError = HTTP2ErrorCode(0x1)
    package static let internalError = HTTP2ErrorCode(0x2)
    package static let flowControlError = HTTP2ErrorCode(0x3)
    package static let settingsTimeout = HTTP2ErrorCode(0x4)
    package static let streamClosed = HTTP2ErrorCode(0x5)
    package static let frameSizeError = HTTP2ErrorCode(0x6)
    package static let refusedStream = HTTP2ErrorCode(0x7)
    package static let cancel = HTTP2ErrorCode(0x8)
    package static let compressionError = HTTP2ErrorCode(0x9)
    package static let connectError = HTTP2ErrorCode(0xa)
    package static let enhanceYourCalm = HTTP2ErrorCode(0xb)
    package static let inadequateSecurity = HTTP2ErrorCode(0xc)
    package static let http11Required = HTTP2ErrorCode(0xd)

    package var description: String {
        switch self.rawValue {
        case 0x0: "NO_ERROR"
        case 0x1: "PROTOCOL_ERROR"
        case 0x2: "INTERNAL_ERROR"
        case 0x3: "FLOW_CONTROL_ERROR"
        case 0x4: "SETTINGS_TIMEOUT"
        case 0x5: "STREAM_CLOSED"
        case 0x6: "FRAME_SIZE_ERROR"
        case 0x7: "REFUSED_STREAM"
        case 0x8: "CANCEL"
        case 0x9: "COMPRESSION_ERROR"
        case 0xa: "CONNECT_ERROR"
        case 0xb: "ENHANCE_YOUR_CALM"
        case 0xc: "INADEQUATE_SECURITY"
        case 0xd: "HTTP_1_1_REQUIRED"
        default: "UNKNOWN(0x\(String(self.rawValue, radix: 16)))"
        }
    }
}
