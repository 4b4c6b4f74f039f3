import CTriggerProtos
import NIOCore
import TriggerModel

/// Owns every piece of C memory behind one protobuf-c message tree that Swift builds for packing.
///
/// Who frees what: protobuf-c never frees a message it did not unpack, so each struct, pointer array and
/// C string allocated here is a slice of one ``ArenaMemory`` (one bump-allocated region, issue 11: it was a
/// `malloc` per node), released in `deinit`, after the last `pack`. Blob bytes are not copied in: the
/// tree points into the `ByteBuffer`s' own storage, which the arena keeps alive by retaining it
/// (`withUnsafeReadableBytesWithStorageManagement`, NIO's sanctioned way to keep those bytes valid beyond
/// the closure) and releases in `deinit`. Use one arena per encode, through `withProtoArena`.
final class ProtoArena {
    private let memory = ArenaMemory()
    private var storages: [Unmanaged<AnyObject>] = []
    /// The `bytes` fields of at least `ProtoMessage.sharedBinaryBytes` pointed at so far, by their address:
    /// `ProtoMessage.packPieces` hands these buffers on as they are instead of copying their bytes.
    private(set) var largeBinaries: [(address: UnsafeRawPointer, buffer: ByteBuffer)] = []

    fileprivate init() {}

    deinit {
        memory.release()
        for storage in storages { storage.release() }
    }

    /// A message struct, initialised by its generated `…__init` (which sets the descriptor and defaults).
    func message<M>(_ initialize: (UnsafeMutablePointer<M>?) -> Void) -> UnsafeMutablePointer<M> {
        let raw = memory.allocate(byteCount: MemoryLayout<M>.stride, alignment: MemoryLayout<M>.alignment)
        let typed = raw.bindMemory(to: M.self, capacity: 1)
        initialize(typed)
        return typed
    }

    /// An array of `count` elements for a repeated field, zero-filled; nil for an empty field (protobuf-c
    /// reads nothing when the count is 0).
    func array<E>(of _: E.Type, count: Int) -> UnsafeMutablePointer<E>? {
        guard count > 0 else { return nil }
        let byteCount = MemoryLayout<E>.stride * count
        let raw = memory.allocate(byteCount: byteCount, alignment: MemoryLayout<E>.alignment)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        return raw.bindMemory(to: E.self, capacity: count)
    }

    /// A repeated field holding `encode(element)` for each of `elements`, in order: its count and its array
    /// (nil when empty), for a message's `n_<field>` / `<field>` pair. One place for the loop every repeated
    /// field of every codec would otherwise write out again.
    func repeated<C: Collection, E>(
        _ elements: C,
        _ encode: (C.Element) throws -> E
    ) rethrows -> (count: Int, items: UnsafeMutablePointer<E>?) {
        let items = array(of: E.self, count: elements.count)
        for (i, element) in elements.enumerated() { items![i] = try encode(element) }
        return (elements.count, items)
    }

    /// A copy of `s`'s UTF-8 for a field generated as `bytes` (a string that may hold NUL: see
    /// scripts/regen-protos.sh); `{0, NULL}` for an empty string, as protobuf-c unpacks one.
    func bytes(_ s: String) -> ProtobufCBinaryData {
        s.withUTF8Bytes { utf8 in
            guard let base = utf8.baseAddress, utf8.count > 0 else { return ProtobufCBinaryData(len: 0, data: nil) }
            let raw = memory.allocate(byteCount: utf8.count, alignment: 1)
            raw.copyMemory(from: base, byteCount: utf8.count)
            return ProtobufCBinaryData(len: utf8.count, data: raw.bindMemory(to: UInt8.self, capacity: utf8.count))
        }
    }

    /// A NUL-terminated copy of `s`. protobuf-c measures strings with `strlen`, so an embedded NUL ends
    /// the string on the wire.
    func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
        return s.withUTF8Bytes { utf8 in
            let raw = memory.allocate(byteCount: utf8.count + 1, alignment: 1)
            if let base = utf8.baseAddress { raw.copyMemory(from: base, byteCount: utf8.count) }
            raw.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
            return raw.bindMemory(to: CChar.self, capacity: utf8.count + 1)
        }
    }

    /// A `bytes` field that points at `buffer`'s readable bytes without copying them.
    func binary(_ buffer: ByteBuffer) -> ProtobufCBinaryData {
        guard buffer.readableBytes > 0 else { return ProtobufCBinaryData(len: 0, data: nil) }
        return buffer.withUnsafeReadableBytesWithStorageManagement { bytes, storage in
            storages.append(storage.retain())
            if bytes.count >= ProtoMessage.sharedBinaryBytes { largeBinaries.append((bytes.baseAddress!, buffer)) }
            let data = UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return ProtobufCBinaryData(len: bytes.count, data: data)
        }
    }
}

/// Runs `body` with a fresh arena, freed when `body` returns.
func withProtoArena<T>(_ body: (ProtoArena) throws -> T) rethrows -> T {
    let arena = ProtoArena()
    return try withExtendedLifetime(arena) { try body(arena) }
}
