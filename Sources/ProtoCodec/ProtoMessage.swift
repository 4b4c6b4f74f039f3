import CTriggerProtos
import NIOCore
import TriggerModel

/// The two doors through which messages cross between Swift and protobuf-c.
///
/// Unpacking: protobuf-c allocates the whole tree in an ``ArenaMemory`` (a message of
/// `UnpackAllocation.largeBytes` or more: with ``UnpackAllocation``, and `…__free_unpacked` frees it);
/// `withUnpacked` frees it in a `defer`, so no pointer into it can outlive the closure. protobuf-c
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
        // A message that may hold a large string is unpacked into memory a decoder can take over
        // (`UnpackAllocation`); small ones keep protobuf-c's default allocator, at no cost.
        if raw.count >= UnpackAllocation.largeBytes, let base = raw.baseAddress {
            let allocation = UnpackAllocation()
            return try withExtendedLifetime(allocation) {
                var allocator = allocation.allocator
                let message = unpack(&allocator, raw.count, base.assumingMemoryBound(to: UInt8.self))
                guard let message else {
                    throw GatewayError(.invalidArgument, "malformed protobuf: not a valid \(what)")
                }
                defer { free(message, &allocator) }
                return try UnpackAllocation.$current.withValue(allocation) { try body(UnsafePointer(message)) }
            }
        }
        // A small message's tree goes into one region (`ArenaMemory`), freed as a whole: no `malloc` per node
        // and no `…__free_unpacked` walk (issue 11). protobuf-c frees through the same allocator what it
        // allocated before failing on malformed input; that is a no-op here, and `release` frees it.
        let memory = ArenaMemory()
        defer { memory.release() }
        var allocator = memory.protobufAllocator
        // protobuf-c reads nothing when the length is 0, but is handed a non-NULL pointer on principle.
        var empty: UInt8 = 0
        let message: UnsafeMutablePointer<M>? =
            if let base = raw.baseAddress, raw.count > 0 {
                unpack(&allocator, raw.count, base.assumingMemoryBound(to: UInt8.self))
            } else {
                withUnsafePointer(to: &empty) { unpack(&allocator, 0, $0) }
            }
        guard let message else {
            throw GatewayError(.invalidArgument, "malformed protobuf: not a valid \(what)")
        }
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

    /// `bytes` fields at least this large are not copied by `packPieces`.
    static let sharedBinaryBytes = 32 << 10

    /// Packs a message built in `arena` as a list of buffers whose concatenation is the packed message: the
    /// `bytes` fields of `sharedBinaryBytes` or more (blobs) are the very buffers the arena points at, not
    /// copies; everything around them is packed into new buffers (issue 12: a 32 MiB blob was copied twice on
    /// its way to a grpc runner, by `pack` and by the gRPC framing). The first buffer keeps `headroom` bytes
    /// of writable room before its readable bytes, for a prefix such as gRPC's (`GRPCMessageFramer`).
    ///
    /// Relies on protobuf-c's `pack_to_buffer` appending a `bytes` field's data in one call with the field's
    /// own pointer; if it ever did not, the bytes would simply be copied like the rest.
    static func packPieces<M>(_ message: UnsafeMutablePointer<M>, arena: ProtoArena, headroom: Int = 0) -> [ByteBuffer]
    {
        let base = UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        let collector = PieceCollector(shared: arena.largeBinaries, headroom: headroom)
        guard !arena.largeBinaries.isEmpty else {
            // Nothing to share: one buffer, packed in place after the headroom.
            collector.current.writeWithUnsafeMutableBytes(minimumWritableBytes: max(size, 1)) { target in
                guard size > 0 else { return 0 }
                let written = protobuf_c_message_pack(base, target.baseAddress!.assumingMemoryBound(to: UInt8.self))
                precondition(written == size, "protobuf-c packed \(written) bytes, expected \(size)")
                return written
            }
            return collector.finish()
        }
        // A ProtobufCBuffer "subclass": the C struct, then a pointer back to the collector.
        let layout = MemoryLayout<ProtobufCBuffer>.stride
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: layout + MemoryLayout<UnsafeRawPointer>.stride,
            alignment: max(MemoryLayout<ProtobufCBuffer>.alignment, MemoryLayout<UnsafeRawPointer>.alignment)
        )
        defer { raw.deallocate() }
        raw.initializeMemory(as: ProtobufCBuffer.self, repeating: ProtobufCBuffer(append: pieceAppend), count: 1)
        raw.storeBytes(
            of: UnsafeRawPointer(Unmanaged.passUnretained(collector).toOpaque()), toByteOffset: layout,
            as: UnsafeRawPointer.self)
        let written = withExtendedLifetime(collector) {
            protobuf_c_message_pack_to_buffer(base, raw.assumingMemoryBound(to: ProtobufCBuffer.self))
        }
        precondition(written == size, "protobuf-c packed \(written) bytes, expected \(size)")
        return collector.finish()
    }
}

/// The `append` of `ProtoMessage.packPieces`'s buffer: finds its `PieceCollector` right after the C struct.
private let pieceAppend: @convention(c) (UnsafeMutablePointer<ProtobufCBuffer>?, Int, UnsafePointer<UInt8>?) -> Void = {
    buffer, count, data in
    guard let buffer, count > 0, let data else { return }
    let opaque = UnsafeRawPointer(buffer).load(
        fromByteOffset: MemoryLayout<ProtobufCBuffer>.stride, as: UnsafeRawPointer.self)
    Unmanaged<PieceCollector>.fromOpaque(opaque).takeUnretainedValue().append(
        UnsafeRawBufferPointer(start: data, count: count))
}

/// Gathers what protobuf-c packs: small appends into the current buffer, a shared blob as its own buffer.
private final class PieceCollector {
    private let shared: [(address: UnsafeRawPointer, buffer: ByteBuffer)]
    private var pieces: [ByteBuffer] = []
    var current: ByteBuffer

    init(shared: [(address: UnsafeRawPointer, buffer: ByteBuffer)], headroom: Int) {
        self.shared = shared
        current = ByteBufferAllocator().buffer(capacity: 256 + headroom)
        current.moveWriterIndex(forwardBy: headroom)
        current.moveReaderIndex(forwardBy: headroom)
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count >= ProtoMessage.sharedBinaryBytes,
            let match = shared.first(where: {
                $0.address == bytes.baseAddress && $0.buffer.readableBytes == bytes.count
            })
        {
            if current.readableBytes > 0 || current.readerIndex > 0 {
                pieces.append(current)
                current = ByteBufferAllocator().buffer(capacity: 256)
            }
            pieces.append(match.buffer)
        } else {
            current.writeBytes(bytes)
        }
    }

    func finish() -> [ByteBuffer] {
        if current.readableBytes > 0 || pieces.isEmpty { pieces.append(current) }
        return pieces
    }
}
