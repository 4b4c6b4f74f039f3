import CTriggerProtos

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Bump allocation for the C memory of one protobuf-c message tree: every allocation is a slice of a chunk,
/// nothing is freed on its own, and ``release()`` frees it all at once.
///
/// Why (issue 11): a small gRPC trigger unpacked its Instill request and the runner's answer with protobuf-c's
/// default allocator (one `malloc` per message, string and repeated array, and a `free` per pointer walking the
/// tree afterwards) and built the runner request and the Instill answer with one allocation per node
/// (`ProtoArena`): about 50 `malloc`/`free` pairs per call. A tree lives exactly as long as one decode or
/// encode, so one region per tree is the natural owner (protobuf-c's `ProtobufCAllocator` exists for this).
///
/// Ownership: the value is a handle to its first chunk; whoever makes one calls ``release()`` exactly once,
/// after the last use of any pointer it returned (``ProtoMessage/withUnpacked(raw:as:unpack:free:_:)`` in a
/// `defer`, ``ProtoArena`` in `deinit`); the handle is not used after that. The first chunk is
/// ``chunkBytes`` and comes from the calling thread's cache of one chunk when there is one, so the steady
/// state of a loop that decodes and encodes one call at a time allocates nothing here; ``release()`` gives
/// it back to the releasing thread's cache (or frees it when that already holds one). An allocation that does
/// not fit in the current chunk's room opens a new chunk, or, when it is over a quarter of a chunk, gets a
/// block of its own (so the current chunk's room still serves the small ones after it); both are `malloc`ed
/// and freed by ``release()``. Memory is bounded by what the tree needs plus under a chunk and a quarter of
/// slack per chunk, and nothing outlives the tree but one chunk per thread.
///
/// Not thread-safe: one tree is built or read by one thread at a time (protobuf-c and our codecs run
/// synchronously).
struct ArenaMemory {
    /// The first chunk's size, header included: a small trigger's request or answer tree fits in it.
    static let chunkBytes = 8 << 10
    /// Allocations larger than this that do not fit in the current chunk get a block of their own, so a large
    /// string does not waste a chunk's rest.
    static let ownBlockBytes = chunkBytes / 4
    /// Every allocation is aligned to this (malloc's guarantee on x86_64 and arm64, which protobuf-c assumes).
    static let maxAlignment = 16

    /// Where the arena's bookkeeping lives: at the start of the first chunk, so the handle is one pointer.
    private struct State {
        /// The chunk being filled: its usable bytes start here.
        var current: UnsafeMutableRawPointer
        /// Bytes of `current` used so far.
        var used: Int
        /// Usable bytes of `current`.
        var capacity: Int
        /// Blocks beyond the first chunk, most recent first; each starts with a pointer to the next one.
        var extra: UnsafeMutableRawPointer?
    }

    /// The header of an extra block: the link to the next, padded to keep the payload 16-byte aligned.
    private static let linkBytes = 16
    private static let stateBytes = (MemoryLayout<State>.stride + maxAlignment - 1) & ~(maxAlignment - 1)
    /// Usable bytes of the first chunk (after the arena's bookkeeping); further chunks have a little more.
    static let firstChunkCapacity = chunkBytes - stateBytes

    private let first: UnsafeMutableRawPointer

    private var state: UnsafeMutablePointer<State> { first.assumingMemoryBound(to: State.self) }

    /// A fresh arena: its first chunk from this thread's cache, or newly allocated.
    init() {
        first = ChunkCache.take() ?? Self.allocateBlock(Self.chunkBytes)
        first.bindMemory(to: State.self, capacity: 1).initialize(
            to: State(
                current: first + Self.stateBytes, used: 0, capacity: Self.firstChunkCapacity, extra: nil))
    }

    /// `byteCount` bytes aligned to `alignment` (at most ``maxAlignment``), uninitialised, valid until
    /// ``release()``.
    func allocate(byteCount: Int, alignment: Int = maxAlignment) -> UnsafeMutableRawPointer {
        precondition(alignment > 0 && alignment <= Self.maxAlignment && alignment & (alignment - 1) == 0)
        let state = self.state
        let start = (state.pointee.used + alignment - 1) & ~(alignment - 1)
        if start + byteCount <= state.pointee.capacity {
            state.pointee.used = start + byteCount
            return state.pointee.current + start
        }
        return allocateSlow(byteCount: byteCount, alignment: alignment)
    }

    private func allocateSlow(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let state = self.state
        if byteCount > Self.ownBlockBytes {
            // A block of its own; the current chunk keeps its free room for the small allocations after it.
            let block = link(Self.allocateBlock(Self.linkBytes + byteCount))
            return block + Self.linkBytes
        }
        let chunk = link(Self.allocateBlock(Self.chunkBytes))
        state.pointee.current = chunk + Self.linkBytes
        state.pointee.capacity = Self.chunkBytes - Self.linkBytes
        state.pointee.used = byteCount
        return state.pointee.current
    }

    /// Puts `block` at the head of the extra blocks' list.
    private func link(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        block.storeBytes(of: state.pointee.extra, as: UnsafeMutableRawPointer?.self)
        state.pointee.extra = block
        return block
    }

    /// Frees every extra block and gives the first chunk back to this thread's cache. Every pointer this
    /// arena returned is invalid afterwards.
    func release() {
        var next = state.pointee.extra
        while let block = next {
            next = block.load(as: UnsafeMutableRawPointer?.self)
            free(block)
        }
        ChunkCache.give(first)
    }

    /// A protobuf-c allocator on this arena: `alloc` bumps, `free` does nothing (``release()`` frees it all),
    /// so a tree unpacked with it needs no `…__free_unpacked`.
    var protobufAllocator: ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in
                ArenaMemory(first: data!).allocate(byteCount: max(size, 1))
            },
            free: { _, _ in },
            allocator_data: first
        )
    }

    private init(first: UnsafeMutableRawPointer) {
        self.first = first
    }

    private static func allocateBlock(_ byteCount: Int) -> UnsafeMutableRawPointer {
        guard let block = malloc(byteCount) else { fatalError("out of memory allocating \(byteCount) bytes") }
        return block
    }

    /// The first chunk of a thread's last released arena, kept for its next one (a POSIX thread-specific
    /// value, freed by the key's destructor when the thread exits).
    enum ChunkCache {
        private static let key: pthread_key_t = {
            var key = pthread_key_t()
            let status = pthread_key_create(&key) { chunk in free(chunk) }
            precondition(status == 0, "pthread_key_create failed: \(status)")
            return key
        }()

        static func take() -> UnsafeMutableRawPointer? {
            guard let chunk = pthread_getspecific(key) else { return nil }
            pthread_setspecific(key, nil)
            return chunk
        }

        static func give(_ chunk: UnsafeMutableRawPointer) {
            if pthread_getspecific(key) == nil {
                pthread_setspecific(key, chunk)
            } else {
                free(chunk)
            }
        }
    }
}
