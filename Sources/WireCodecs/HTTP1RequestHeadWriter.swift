package import NIOCore
import TriggerModel

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
    /// Where ``addContentLengthOfBody()`` left room for the `content-length` value's digits.
    private var contentLengthDigitsAt: Int?
    /// The room for a `content-length` value decided after the body is written: `Int.max`'s 19 digits (their
    /// placeholder is never sent: the digits are written over it and the rest moved over what is left).
    static let contentLengthRoom: StaticString = "0000000000000000000"

    /// Starts a head with its request-line. `target` is the origin-form path (`{base}/run`, a health check's
    /// path): the operator's configuration, never a client's bytes.
    /// `extraCapacity`: bytes to leave room for after the head (a small body the caller appends to it).
    package init(
        method: StaticString, target: String, extraCapacity: Int = 0,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        buffer = allocator.buffer(capacity: 512 + extraCapacity)
        // One write (`PieceWriter`): four cost ~1 000 instructions.
        buffer.writePieces(atMost: method.utf8CodeUnitCount + target.utf8.count + 12) { line in
            line.write(method)
            line.write(byte: UInt8(ascii: " "))
            line.write(target)
            line.write(" HTTP/1.1\r\n")
        }
    }

    /// One field line.
    package mutating func add(_ name: String, _ value: String) {
        name.withUTF8Bytes { name in
            value.withUTF8Bytes { value in addLine(UnsafeRawBufferPointer(name), UnsafeRawBufferPointer(value)) }
        }
    }

    /// One field line whose value is a non-negative decimal (`content-length`, `x-trigger-deadline-ms`).
    package mutating func add(_ name: String, decimal value: Int) {
        withDecimalDigits(value) { digits in name.withUTF8Bytes { addLine(UnsafeRawBufferPointer($0), digits) } }
    }

    /// `name: value CRLF` in one write: each `ByteBuffer` write checks uniqueness and capacity and moves the
    /// writer index (with its exclusivity checks), so a line written in four pieces cost ~1 000 instructions
    /// (issue 11; bench/README "Branch restalloc").
    private mutating func addLine(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        buffer.writePieces(atMost: name.count + value.count + 4) { line in
            line.write(name)
            line.write(": ")
            line.write(value)
            line.write("\r\n")
        }
    }

    /// A `content-length` field whose value is the length of the body ``finish(body:)`` writes after the head,
    /// in the head's own buffer: a small body and its head go as one buffer, in one channel write, without the
    /// body being rendered into a buffer of its own first and copied (issue 11). Room for the longest value is
    /// left here; `finish(body:)` writes the digits into it and moves what follows over the room not used.
    package mutating func addContentLengthOfBody() {
        precondition(contentLengthDigitsAt == nil, "one content-length per head")
        let room = Self.contentLengthRoom.utf8CodeUnitCount
        buffer.writePieces(atMost: 16 + room + 2) { line in
            line.write("content-length: ")
            line.write(Self.contentLengthRoom)
            line.write("\r\n")
        }
        contentLengthDigitsAt = buffer.writerIndex - room - 2
    }

    /// The head, ended by its blank line.
    package consuming func finish() -> ByteBuffer {
        precondition(contentLengthDigitsAt == nil, "a content-length of the body needs finish(body:)")
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The head, ended by its blank line, then the body `write` appends, in one buffer: the message as it goes on
    /// the wire (RFC 9112 §6). The `content-length` field added by ``addContentLengthOfBody()`` says how many
    /// bytes `write` wrote. One move of the bytes after the digits (the rest of the head and the body) closes
    /// the room the digits did not take; for the small bodies this is for, less than a buffer of their own.
    package consuming func finish(body write: (inout ByteBuffer) -> Void) -> ByteBuffer {
        guard let digitsAt = contentLengthDigitsAt else {
            preconditionFailure("finish(body:) needs addContentLengthOfBody()")
        }
        buffer.writeStaticString("\r\n")
        let bodyStart = buffer.writerIndex
        write(&buffer)
        let bodyLength = buffer.writerIndex - bodyStart
        let room = Self.contentLengthRoom.utf8CodeUnitCount
        withDecimalDigits(bodyLength) { digits in
            buffer.setBytes(digits, at: digitsAt)
            let unused = room - digits.count
            let tail = digitsAt + room
            // Overlapping is allowed (memmove).
            _ = try! buffer.copyBytes(at: tail, to: tail - unused, length: buffer.writerIndex - tail)
            buffer.moveWriterIndex(to: buffer.writerIndex - unused)
        }
        return buffer
    }
}

extension ByteBuffer {
    /// `value` (≥ 0) in decimal ASCII digits, without making a `String` (HTTP/1.1 `Content-Length` and the like),
    /// in one write.
    package mutating func writeDecimal(_ value: Int) {
        withDecimalDigits(value) { _ = writeBytes($0) }
    }
}

/// Calls `body` with `value` (≥ 0) in decimal ASCII digits, formatted on the stack (no `String`, no buffer).
@inline(__always)
func withDecimalDigits<Result>(_ value: Int, _ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
    precondition(value >= 0)
    var storage: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: Int.max has 19 digits
    return try withUnsafeMutableBytes(of: &storage) { digits in
        var rest = value
        var start = digits.count
        repeat {
            start -= 1
            digits[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
        } while rest > 0
        return try body(UnsafeRawBufferPointer(rebasing: digits[start...]))
    }
}
