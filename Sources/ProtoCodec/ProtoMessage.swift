import CTriggerProtos
import NIOCore
import TriggerModel

/// The two doors through which messages cross between Swift and protobuf-c.
///
/// Unpacking: protobuf-c allocates the whole tree with the default allocator and `…__free_unpacked` frees
/// it; `withUnpacked` frees it in a `defer`, so no pointer into it can outlive the closure. protobuf-c
/// returns NULL for any malformed input (bad varint, truncated field, wrong wire type, bad UTF-8 is not
/// checked) and for allocation failure; both become `.invalidArgument`, since a 32 MiB cap bounds what a
/// peer can make it allocate. Packing: sized first, then packed straight into the output buffer.
enum ProtoMessage {
    typealias Unpack<M> = (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) ->
        UnsafeMutablePointer<M>?
    typealias Free<M> = (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void

    /// Unpacks `bytes` as message `M` and runs `body` on it. `what` names the message in the error.
    static func withUnpacked<M, T>(
        _ bytes: ByteBuffer,
        as what: String,
        unpack: Unpack<M>,
        free: Free<M>,
        _ body: (UnsafePointer<M>) throws -> T
    ) throws -> T {
        try bytes.withUnsafeReadableBytes { raw in
            try withUnpacked(raw: raw, as: what, unpack: unpack, free: free, body)
        }
    }

    /// As above, from raw bytes (an `Any`'s value inside another unpacked message).
    static func withUnpacked<M, T>(
        raw: UnsafeRawBufferPointer,
        as what: String,
        unpack: Unpack<M>,
        free: Free<M>,
        _ body: (UnsafePointer<M>) throws -> T
    ) throws -> T {
        // protobuf-c reads nothing when the length is 0, but is handed a non-NULL pointer on principle.
        var empty: UInt8 = 0
        let message: UnsafeMutablePointer<M>? =
            if let base = raw.baseAddress, raw.count > 0 {
                unpack(nil, raw.count, base.assumingMemoryBound(to: UInt8.self))
            } else {
                withUnsafePointer(to: &empty) { unpack(nil, 0, $0) }
            }
        guard let message else {
            throw GatewayError(.invalidArgument, "malformed protobuf: not a valid \(what)")
        }
        defer { free(message, nil) }
        return try body(UnsafePointer(message))
    }

    /// Packs a message built in an arena (its `base` must have been set by the generated `…__init`).
    static func pack<M>(_ message: UnsafeMutablePointer<M>) -> ByteBuffer {
        let base = UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        var out = ByteBufferAllocator().buffer(capacity: max(size, 1))
        if size > 0 {
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { target in
                let written = protobuf_c_message_pack(base, target.baseAddress!.assumingMemoryBound(to: UInt8.self))
                // protobuf_c_message_pack returns the packed size; any other value is a protobuf-c bug.
                precondition(written == size, "protobuf-c packed \(written) bytes, expected \(size)")
                return written
            }
        }
        return out
    }
}
