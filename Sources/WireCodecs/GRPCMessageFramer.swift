package import NIOCore

/// Writes the 5-byte gRPC Length-Prefixed-Message prefix (uncompressed, big-endian length) before a message.
package enum GRPCMessageFramer {
    /// The prefix and the message: the message's own buffer when the 5 bytes before its readable bytes are its
    /// prefix already (``writePrefix(intoHeadroomOf:)``), else a new buffer holding both.
    package static func frame(_ message: ByteBuffer) -> ByteBuffer {
        if let framed = framedInPlace(message) { return framed }
        var out = ByteBufferAllocator().buffer(capacity: 5 + message.readableBytes)
        frame(message, into: &out)
        return out
    }

    /// As `frame(_:)`, the message compressed with `compression` (compressed flag set) when there is one.
    package static func frame(_ message: ByteBuffer, compression: GRPCCompression?) -> ByteBuffer {
        guard let compression else { return frame(message) }
        let compressed = compression.compress(message)
        var out = ByteBufferAllocator().buffer(capacity: 5 + compressed.readableBytes)
        out.writeInteger(UInt8(1))
        out.writeInteger(UInt32(compressed.readableBytes), endianness: .big)
        out.writeImmutableBuffer(compressed)
        return out
    }

    /// Makes the 5 bytes before `message`'s readable bytes its prefix (uncompressed), when it has that room: a
    /// codec that leaves 5 bytes of headroom calls this on its fresh, unshared buffer (so nothing is copied),
    /// and ``frame(_:)`` then frames the message in place however many holders it has by then (issue 11: the
    /// Instill answer of a proxied call was copied into a new buffer behind its prefix, two allocations per
    /// unary call and per relayed stream event).
    package static func writePrefix(intoHeadroomOf message: inout ByteBuffer) {
        guard message.readerIndex >= 5, message.readableBytes <= Int(UInt32.max) else { return }
        let at = message.readerIndex - 5
        message.setInteger(UInt8(0), at: at)
        message.setInteger(UInt32(message.readableBytes), at: at + 1, endianness: .big)
    }

    /// `message` with its reader index moved back over the 5 bytes before it when those are its uncompressed
    /// prefix; nil otherwise. Whoever wrote them, the result is byte for byte the framed message.
    static func framedInPlace(_ message: ByteBuffer) -> ByteBuffer? {
        guard message.readerIndex >= 5, message.readableBytes <= Int(UInt32.max) else { return nil }
        var framed = message
        framed.moveReaderIndex(to: message.readerIndex - 5)
        guard framed.getInteger(at: framed.readerIndex, as: UInt8.self) == 0,
            framed.getInteger(at: framed.readerIndex + 1, endianness: .big, as: UInt32.self)
                == UInt32(message.readableBytes)
        else { return nil }
        return framed
    }

    /// Appends the prefix and the message to `buffer`, so several messages can share one DATA frame.
    package static func frame(_ message: ByteBuffer, into buffer: inout ByteBuffer) {
        precondition(message.readableBytes <= Int(UInt32.max), "a gRPC message is at most 4 GiB")
        buffer.reserveCapacity(minimumWritableBytes: 5 + message.readableBytes)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(message.readableBytes), endianness: .big)
        buffer.writeImmutableBuffer(message)
    }

    /// Frames a message given as consecutive buffers (`RunnerCodec.encodeRunRequestPieces`): the prefix goes
    /// into the first buffer's room before its readable bytes when it has 5 bytes of it, else in a buffer of
    /// its own; the message's bytes are not copied.
    ///
    /// `pieces` is consumed: a caller that hands over its only reference (a fresh encoding) gets the prefix
    /// written into that very storage. Borrowed, the caller's pieces still held the first buffer, so the buffer
    /// was copied to write 5 bytes (issue 11: allocations and a copy of the first piece per backend call).
    package static func frame(pieces: consuming BufferPieces) -> BufferPieces {
        let length = pieces.readableBytes
        precondition(length <= Int(UInt32.max), "a gRPC message is at most 4 GiB")
        let inPlace = pieces.withFirst { first -> Bool in
            guard first.readerIndex >= 5 else { return false }
            let at = first.readerIndex - 5
            first.setInteger(UInt8(0), at: at)
            first.setInteger(UInt32(length), at: at + 1, endianness: .big)
            first.moveReaderIndex(to: at)
            return true
        }
        if inPlace == true { return pieces }
        var prefix = ByteBufferAllocator().buffer(capacity: 5)
        prefix.writeInteger(UInt8(0))
        prefix.writeInteger(UInt32(length), endianness: .big)
        return pieces.prepending(prefix)
    }
}
