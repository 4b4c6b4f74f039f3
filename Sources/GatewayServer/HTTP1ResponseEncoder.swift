import NIOCore
import NIOHTTP1
import WireCodecs

/// The bytes of the HTTP/1.1 frontend's answers (RFC 9112 §4, §6, §7.1), each response written into one
/// buffer sized up front: status line, field lines and, where the body is known, the body, so that an answer
/// leaves in one write. The framing is what NIO's `HTTPResponseEncoder` did for this frontend before
/// (`Content-Length` for a known body, `Transfer-Encoding: chunked` for a stream; no body and no framing
/// fields for 1xx, 204 and 304, RFC 9110 §6.4.1; a HEAD request's answer keeps its `Content-Length` and loses
/// its body, RFC 9110 §9.3.2), and the reason phrases are NIO's.
enum HTTP1ResponseEncoder {
    /// A complete response. `fields` go out in order, then `content-length` (unless the status has no body),
    /// then `connection: close` when the connection ends after it (`keepAlive` false), or `connection:
    /// keep-alive` when it persists and `announcesKeepAlive` (an HTTP/1.0 request, whose client assumes a close
    /// unless told otherwise: RFC 9112 §9.3, RFC 2068 §19.7.1).
    static func response(
        status: Int, fields: [(name: String, value: String)], body: ByteBuffer, keepAlive: Bool,
        announcesKeepAlive: Bool = false, omitsBody: Bool, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let hasBody = mayHaveBody(status)
        let bodyBytes = hasBody && !omitsBody ? body.readableBytes : 0
        let reason = HTTPResponseStatus(statusCode: status).reasonPhrase
        let headBound = headBound(reason: reason, fields: fields)
        var buffer = allocator.buffer(capacity: headBound + bodyBytes)
        buffer.writePieces(atMost: headBound) { head in
            writeStatusLine(status, reason: reason, into: &head)
            writeFields(fields, into: &head)
            if hasBody {
                head.write("content-length: ")
                head.write(decimal: body.readableBytes)
                head.write("\r\n")
            }
            if !keepAlive {
                head.write("connection: close\r\n")
            } else if announcesKeepAlive {
                head.write("connection: keep-alive\r\n")
            }
            head.write("\r\n")
        }
        if bodyBytes > 0 {
            var body = body
            buffer.writeBuffer(&body)
        }
        return buffer
    }

    /// The head of a response whose body follows as chunks (``chunk(_:allocator:)``, ``lastChunk``): SSE.
    /// Not `chunked` (an HTTP/1.0 request, RFC 9112 §6.1): no framing field, the body ends with the connection
    /// (RFC 9112 §6.3), so the caller passes `keepAlive` false.
    static func streamHead(
        status: Int, fields: [(name: String, value: String)], keepAlive: Bool, chunked: Bool = true,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let reason = HTTPResponseStatus(statusCode: status).reasonPhrase
        let headBound = headBound(reason: reason, fields: fields)
        var buffer = allocator.buffer(capacity: headBound)
        buffer.writePieces(atMost: headBound) { head in
            writeStatusLine(status, reason: reason, into: &head)
            writeFields(fields, into: &head)
            if !keepAlive { head.write("connection: close\r\n") }
            head.write(chunked ? "transfer-encoding: chunked\r\n\r\n" : "\r\n")
        }
        return buffer
    }

    /// Room kept in front of a chunk's data for its size line: 8 hex digits (a chunk under 4 GiB) and CRLF.
    static let chunkSizeRoom = 10

    /// An empty buffer for one chunk's data, with ``chunkSizeRoom`` bytes kept in front of its reader index: the
    /// data is written into it, then ``frameChunk(_:)`` writes the size line into that room and the closing CRLF
    /// after it. One buffer and no copy per chunk (issue 11: a second buffer, a copy and a hex `String` per chunk
    /// were ~1 k instructions of each relayed SSE event).
    static func chunkBuffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: chunkSizeRoom + capacity + 2)
        // Only reserved: the bytes before the reader index are never sent; `frameChunk` sets those it uses.
        buffer.moveWriterIndex(forwardBy: chunkSizeRoom)
        buffer.moveReaderIndex(forwardBy: chunkSizeRoom)
        return buffer
    }

    /// Frames the data of a ``chunkBuffer(capacity:allocator:)`` as one chunk (RFC 9112 §7.1): its size in hex and
    /// CRLF just before it, CRLF after it. Empty data is left empty: an empty chunk would end the body.
    static func frameChunk(_ buffer: inout ByteBuffer) {
        let size = buffer.readableBytes
        guard size > 0 else { return }
        precondition(buffer.readerIndex >= chunkSizeRoom && size <= Int(UInt32.max), "not a chunkBuffer")
        var digits = 1
        while size >> (4 * digits) > 0 { digits += 1 }
        let start = buffer.readerIndex - digits - 2
        let hex: StaticString = "0123456789abcdef"
        for place in 0..<digits {
            let nibble = (size >> (4 * (digits - 1 - place))) & 0xF
            buffer.setInteger(hex.utf8Start[nibble], at: start + place)
        }
        buffer.setInteger(UInt16(0x0D0A), at: start + digits)  // CRLF, big-endian by default
        buffer.moveReaderIndex(to: start)
        buffer.writeStaticString("\r\n")
    }

    /// The end of a chunked body: the last chunk and no trailer.
    static let lastChunk: StaticString = "0\r\n\r\n"

    /// `100 Continue` (RFC 9110 §10.1.1), in the request's HTTP/1.x version.
    static func continueResponse(minorVersion: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 32)
        buffer.writeStaticString("HTTP/1.")
        buffer.writeDecimal(minorVersion)
        buffer.writeStaticString(" 100 Continue\r\n\r\n")
        return buffer
    }

    /// Whether a response with `status` may have content (RFC 9110 §6.4.1: not 1xx, 204, 304).
    static func mayHaveBody(_ status: Int) -> Bool {
        !(status < 200 || status == 204 || status == 304)
    }

    /// At least the bytes of a head with `fields` and the status line's `reason`: the fields' lines, and 128 for
    /// the rest (the status line's `HTTP/1.1 `, status, SP and CRLF: at most 31; then at most 37 for
    /// `content-length`, 24 for `connection: keep-alive` and 30 for `transfer-encoding: chunked` and the blank
    /// line).
    private static func headBound(reason: String, fields: [(name: String, value: String)]) -> Int {
        var size = 128 + reason.utf8.count
        for index in fields.indices { size += fields[index].name.utf8.count + fields[index].value.utf8.count + 4 }
        return size
    }

    private static func writeStatusLine(_ status: Int, reason: String, into head: inout PieceWriter) {
        head.write("HTTP/1.1 ")
        head.write(decimal: status)
        head.write(byte: UInt8(ascii: " "))
        head.write(reason)
        head.write("\r\n")
    }

    private static func writeFields(_ fields: [(name: String, value: String)], into head: inout PieceWriter) {
        // By index: iterating copied each field (a retain and release of both strings).
        for index in fields.indices {
            head.write(fields[index].name)
            head.write(": ")
            head.write(fields[index].value)
            head.write("\r\n")
        }
    }
}
