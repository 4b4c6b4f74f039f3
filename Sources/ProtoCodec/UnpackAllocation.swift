import CTriggerProtos
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The protobuf-c allocator of one large unpack: allocations of `largeBytes` or more are the storage of
/// `ByteBuffer`s, which a decoder may take over (`take(_:)`) instead of copying out of them; smaller ones are
/// plain `malloc`/`free`.
///
/// Why (issue 12): protobuf-c copies every string out of the wire bytes into memory of its own, and a data
/// URI in a `google.protobuf.Struct` was then base64-decoded into a second, new buffer (an 18 MiB blob from
/// a 24 MiB string: two body-sized allocations). `StructCodec` now takes the string's storage over and
/// decodes it in place, as the REST path does with the gathered body (`JSONValueCodec.decodeObject(inPlace:)`):
/// the blob is a slice of the memory protobuf-c unpacked the string into.
///
/// Used for the duration of one `ProtoMessage.withUnpacked` of a message of at least `largeBytes` (smaller
/// messages cannot hold a large allocation and keep protobuf-c's default allocator); `current` is set while
/// its body runs, on the unpacking thread. `@unchecked Sendable` only so that it can be a task-local value:
/// it is used by one thread at a time (protobuf-c unpacks, the decoder reads and protobuf-c frees in one call).
final class UnpackAllocation: @unchecked Sendable {
    /// Allocations from this size on are `ByteBuffer`s; the size of the data URIs decoded in place in REST
    /// bodies too (`JSONParser.inPlaceBlobBytes`).
    static let largeBytes = 64 << 10

    /// The allocation of the unpack whose result is being read on this thread, if it has one.
    @TaskLocal static var current: UnpackAllocation?

    /// Large allocations protobuf-c still owns, by address.
    private var large: [UnsafeMutableRawPointer: ByteBuffer] = [:]
    /// Large allocations taken over by `take(_:)`: protobuf-c's later `free` of them does nothing.
    private var taken: Set<UnsafeMutableRawPointer> = []
    private(set) var allocator = ProtobufCAllocator()

    init() {
        allocator.alloc = { data, size in
            Unmanaged<UnpackAllocation>.fromOpaque(data!).takeUnretainedValue().allocate(size)
        }
        allocator.free = { data, pointer in
            Unmanaged<UnpackAllocation>.fromOpaque(data!).takeUnretainedValue().release(pointer)
        }
        allocator.allocator_data = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Takes over the large allocation at `pointer` (unique: `withUnsafeMutableReadableBytes` on it does not
    /// copy); its readable bytes are all `size` bytes protobuf-c asked for. Nil when `pointer` is not the
    /// start of one.
    func take(_ pointer: UnsafeRawPointer) -> ByteBuffer? {
        let key = UnsafeMutableRawPointer(mutating: pointer)
        guard let buffer = large.removeValue(forKey: key) else { return nil }
        taken.insert(key)
        return buffer
    }

    private func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        guard size >= Self.largeBytes else { return malloc(size) }
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        var address: UnsafeMutableRawPointer?
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { target in
            address = target.baseAddress
            return size
        }
        // The storage is never written through `buffer` while protobuf-c owns it, so it is not reallocated.
        large[address!] = buffer
        return address
    }

    private func release(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return }
        if large.removeValue(forKey: pointer) != nil || taken.remove(pointer) != nil { return }
        free(pointer)
    }
}
