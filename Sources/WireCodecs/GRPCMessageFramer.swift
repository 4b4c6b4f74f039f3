package import NIOCore

/// Writes the 5-byte gRPC Length-Prefixed-Message prefix (uncompressed, big-endian length) before a message.
package enum GRPCMessageFramer {
    /// A new buffer holding the prefix and the message.
    package static func frame(_ message: ByteBuffer) -> ByteBuffer {
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
    /// written into that very storage. Borrowed, the caller's array still held the first buffer, so the array
    /// and then the buffer were copied to write 5 bytes (issue 11: 3 allocations and a copy of the first piece
    /// per backend call).
    package static func frame(pieces: consuming [ByteBuffer]) -> [ByteBuffer] {
        let length = pieces.reduce(0) { $0 + $1.readableBytes }
        precondition(length <= Int(UInt32.max), "a gRPC message is at most 4 GiB")
        if var first = pieces.first, first.readerIndex >= 5 {
            pieces[0] = ByteBuffer()  // `first` is then the only reference: the prefix is written in place
            let at = first.readerIndex - 5
            first.setInteger(UInt8(0), at: at)
            first.setInteger(UInt32(length), at: at + 1, endianness: .big)
            first.moveReaderIndex(to: at)
            pieces[0] = first
            return pieces
        }
        var prefix = ByteBufferAllocator().buffer(capacity: 5)
        prefix.writeInteger(UInt8(0))
        prefix.writeInteger(UInt32(length), endianness: .big)
        return [prefix] + pieces
    }
}
