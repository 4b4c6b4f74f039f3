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
}
