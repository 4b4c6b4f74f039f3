package import NIOCore

/// The head of a request the gateway sends to an http runner (RFC 9112 §3, §5.1), written straight into one
/// buffer: `method SP request-target SP HTTP/1.1 CRLF`, then one `name: value CRLF` per field, then the blank
/// line (``finish()``). What NIO's `HTTPRequestEncoder` wrote from an `HTTPRequestHead`, without the
/// `HTTPHeaders` it was built from (a `String` pair per field, and ~700 instructions a field checking names
/// we own, issue 11).
///
/// Nothing is checked here: names are the caller's constants (lowercase tokens), and every value that comes
/// from outside must already be a valid field value (RFC 9110 §5.5: no CR, LF or NUL, which would split or end
/// a field line; the http transport checks the forwarded ones in `TriggerRequest.forEachForwardedField`). The
/// channel has no outbound validator, as it had none with NIO's encoder (`enableOutboundHeaderValidation:
/// false`).
package struct HTTP1RequestHeadWriter {
    private var buffer: ByteBuffer

    /// Starts a head with its request-line. `target` is the origin-form path (`{base}/run`, a health check's
    /// path): the operator's configuration, never a client's bytes.
    package init(method: StaticString, target: String, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        buffer = allocator.buffer(capacity: 512)
        buffer.writeStaticString(method)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(target)
        buffer.writeStaticString(" HTTP/1.1\r\n")
    }

    /// One field line.
    package mutating func add(_ name: String, _ value: String) {
        buffer.writeString(name)
        buffer.writeStaticString(": ")
        buffer.writeString(value)
        buffer.writeStaticString("\r\n")
    }

    /// One field line whose value is a non-negative decimal (`content-length`, `x-trigger-deadline-ms`).
    package mutating func add(_ name: String, decimal value: Int) {
        buffer.writeString(name)
        buffer.writeStaticString(": ")
        buffer.writeDecimal(value)
        buffer.writeStaticString("\r\n")
    }

    /// The head, ended by its blank line.
    package consuming func finish() -> ByteBuffer {
        buffer.writeStaticString("\r\n")
        return buffer
    }
}

extension ByteBuffer {
    /// `value` (≥ 0) in decimal ASCII digits, without making a `String` (HTTP/1.1 `Content-Length` and the like).
    package mutating func writeDecimal(_ value: Int) {
        precondition(value >= 0)
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            writeInteger(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}
