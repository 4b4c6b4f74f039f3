import CNghttp2

/// One HTTP/2 session's allocator for libnghttp2 (`nghttp2_mem`): freed chunks are kept on per-size-class free
/// lists and handed out again, so a steady stream of calls on a connection stops reaching `malloc` and `free`.
///
/// **Why our own.** libnghttp2 allocates about 18 times per proxied gRPC unary call (stream objects, outbound
/// items, copied header arrays, HPACK's reference-counted name and value buffers) and frees each within the
/// call: a fifth of the gateway's allocations per call (bench/README.md, branch `h2alloc`). `nghttp2_mem` is the
/// hook libnghttp2 gives for exactly this (nghttpx does not use it; Envoy's codec does not either, both leave it
/// to the process allocator). A general allocator (jemalloc, mimalloc) would be a process-wide change for a
/// few dozen instructions per allocation; these free lists are about 30 lines and the `bench/micro` row
/// "nghttp2 chunk pool" measures them against glibc's `malloc`/`free`.
///
/// **Shapes.** Size classes of 32, 64, 128, 256, 512 and 1024 bytes; a request above 1024 bytes goes to
/// `malloc` (libnghttp2's larger buffers, the frame buffer and HPACK tables, live as long as the session). Each
/// chunk has a 16-byte header before the pointer handed out (its class, or for a large block its size), so
/// every pointer is 16-byte aligned as `malloc`'s are (x86_64 and arm64 `max_align_t`).
///
/// **Bounds.** A class keeps at most ``maxRetainedBytesPerClass`` of free chunks' payload (128 of 32 bytes … 4 of
/// 1024 bytes: 24 KiB of payload, ~28 KiB with the 16-byte headers, ~30 KiB with malloc's own overhead, per
/// session once a burst has filled the lists); a chunk freed beyond that goes back to `free` at once. Everything
/// kept is freed when the pool is.
///
/// **rcbufs.** libnghttp2's reference-counted buffers (`nghttp2_rcbuf`) keep a copy of `nghttp2_mem` and free
/// through it. None outlives the session here: the engine registers `on_header_callback` (not `_callback2`), so
/// no rcbuf reaches Swift, and nothing calls `nghttp2_rcbuf_incref`. Keeping one past the session would free
/// into this pool's released state.
///
/// **Owner and lifetime.** ``NGHTTP2Session`` owns one pool per session and passes ``memory`` to
/// `nghttp2_session_*_new3`, which copies the `nghttp2_mem` struct but keeps its `mem_user_data` pointer (this
/// pool's state). The session deletes its `nghttp2_session` in its `deinit`, which runs before its stored
/// properties (this pool among them) are released, so the pool outlives every chunk libnghttp2 holds.
///
/// Not thread-safe: one session's libnghttp2 calls happen on its event loop, and its `deinit` after the last.
package final class NGHTTP2ChunkPool {
    /// The payload sizes of the classes, in bytes: `minimumClassSize << class`.
    static let minimumClassSize = 32
    static let classCount = 6
    /// The largest request served from a class; larger ones go to `malloc` (with a header as well).
    static let largestClassSize = minimumClassSize << (classCount - 1)
    /// The most free bytes one class keeps (its chunk count is this over its size).
    package static let maxRetainedBytesPerClass = 4096
    /// The bytes before each pointer handed out: word 0 is the class (or ``largeMarker``), word 1 a large
    /// block's payload size. 16 keeps the payload as aligned as `malloc`'s.
    static let headerSize = 16
    static let largeMarker = -1

    /// The pool's state, handed to libnghttp2 as `mem_user_data`: per class, the free list's head (offset
    /// `class * 8`) and its length (offset `(classCount + class) * 8`). Raw memory, not Swift properties, so the
    /// C entry points touch no reference counts.
    let state: UnsafeMutableRawPointer

    package init() {
        let bytes = 2 * Self.classCount * MemoryLayout<Int>.stride
        self.state = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: MemoryLayout<Int>.alignment)
        self.state.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit {
        for sizeClass in 0..<Self.classCount {
            var chunk = Self.head(self.state, sizeClass)
            while let current = chunk {
                chunk = current.load(as: UnsafeMutableRawPointer?.self)
                Self.releaseToSystem(payload: current)
            }
        }
        self.state.deallocate()
    }

    /// The allocator for `nghttp2_session_*_new3`; valid while this pool is.
    var memory: nghttp2_mem {
        nghttp2_mem(
            mem_user_data: self.state,
            malloc: { size, state in NGHTTP2ChunkPool.allocate(state!, size) },
            free: { pointer, state in NGHTTP2ChunkPool.deallocate(state!, pointer) },
            calloc: { count, size, state in NGHTTP2ChunkPool.allocateZeroed(state!, count, size) },
            realloc: { pointer, size, state in NGHTTP2ChunkPool.reallocate(state!, pointer, size) }
        )
    }

    // The entry points as libnghttp2 reaches them (through ``memory``'s function pointers), for tests and the
    // bench/micro row.

    package func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        let memory = self.memory
        return memory.malloc(size, memory.mem_user_data)
    }

    package func allocateZeroed(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? {
        let memory = self.memory
        return memory.calloc(count, size, memory.mem_user_data)
    }

    package func reallocate(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
        let memory = self.memory
        return memory.realloc(pointer, size, memory.mem_user_data)
    }

    package func deallocate(_ pointer: UnsafeMutableRawPointer?) {
        let memory = self.memory
        memory.free(pointer, memory.mem_user_data)
    }

    /// How many free chunks the class of `size`-byte requests holds now (tests: the bounds).
    package func retainedChunks(forSize size: Int) -> Int {
        Self.count(self.state, Self.sizeClass(of: size)!)
    }

    // MARK: The four entry points, as libnghttp2 calls them (C semantics)

    static func allocate(_ state: UnsafeMutableRawPointer, _ size: Int) -> UnsafeMutableRawPointer? {
        // A `size_t` of 2^63 or more arrives negative; C's malloc fails such a size, and so does this.
        guard size >= 0, size <= Int.max - headerSize else { return nil }
        guard let sizeClass = sizeClass(of: size) else {
            let block = systemAllocate(headerSize + size)
            block.storeBytes(of: largeMarker, as: Int.self)
            block.storeBytes(of: size, toByteOffset: 8, as: Int.self)
            return block + headerSize
        }
        if let chunk = head(state, sizeClass) {
            setHead(state, sizeClass, chunk.load(as: UnsafeMutableRawPointer?.self))
            setCount(state, sizeClass, count(state, sizeClass) - 1)
            return chunk
        }
        let block = systemAllocate(headerSize + (minimumClassSize << sizeClass))
        block.storeBytes(of: sizeClass, as: Int.self)
        return block + headerSize
    }

    static func deallocate(_ state: UnsafeMutableRawPointer, _ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return }
        let sizeClass = (pointer - headerSize).load(as: Int.self)
        guard sizeClass != largeMarker, count(state, sizeClass) < maxRetainedBytesPerClass >> (5 + sizeClass) else {
            releaseToSystem(payload: pointer)
            return
        }
        pointer.storeBytes(of: head(state, sizeClass), as: UnsafeMutableRawPointer?.self)
        setHead(state, sizeClass, pointer)
        setCount(state, sizeClass, count(state, sizeClass) + 1)
    }

    static func allocateZeroed(_ state: UnsafeMutableRawPointer, _ count: Int, _ size: Int) -> UnsafeMutableRawPointer?
    {
        let (total, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, let pointer = allocate(state, total) else { return nil }
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: total)
        return pointer
    }

    /// C `realloc`: nil grows from nothing; size 0 frees and returns nil; a size within the chunk's capacity
    /// keeps the chunk (a shrink does not move); otherwise a new one gets the old bytes and the old is freed.
    static func reallocate(
        _ state: UnsafeMutableRawPointer,
        _ pointer: UnsafeMutableRawPointer?,
        _ size: Int
    ) -> UnsafeMutableRawPointer? {
        guard let pointer else { return allocate(state, size) }
        // C realloc: a size it cannot serve fails and leaves the block as it was (libnghttp2 still owns it).
        guard size >= 0, size <= Int.max - headerSize else { return nil }
        guard size > 0 else {
            deallocate(state, pointer)
            return nil
        }
        let header = pointer - headerSize
        let sizeClass = header.load(as: Int.self)
        let capacity =
            sizeClass == largeMarker ? header.load(fromByteOffset: 8, as: Int.self) : minimumClassSize << sizeClass
        if size <= capacity { return pointer }
        guard let moved = allocate(state, size) else { return nil }
        moved.copyMemory(from: pointer, byteCount: capacity)
        deallocate(state, pointer)
        return moved
    }

    // MARK: Pieces

    /// The class serving `size` bytes (0 for 1…32, 1 for 33…64, …), nil above ``largestClassSize``.
    @inline(__always)
    static func sizeClass(of size: Int) -> Int? {
        guard size <= largestClassSize else { return nil }
        guard size > minimumClassSize else { return 0 }
        // The bit length of size - 1, less that of 32 - 1 (5): 33…64 → 1, 65…128 → 2, …
        return (Int.bitWidth - (size - 1).leadingZeroBitCount) - 5
    }

    @inline(__always)
    static func head(_ state: UnsafeMutableRawPointer, _ sizeClass: Int) -> UnsafeMutableRawPointer? {
        state.load(fromByteOffset: sizeClass * 8, as: UnsafeMutableRawPointer?.self)
    }

    @inline(__always)
    static func setHead(_ state: UnsafeMutableRawPointer, _ sizeClass: Int, _ chunk: UnsafeMutableRawPointer?) {
        state.storeBytes(of: chunk, toByteOffset: sizeClass * 8, as: UnsafeMutableRawPointer?.self)
    }

    @inline(__always)
    static func count(_ state: UnsafeMutableRawPointer, _ sizeClass: Int) -> Int {
        state.load(fromByteOffset: (classCount + sizeClass) * 8, as: Int.self)
    }

    @inline(__always)
    static func setCount(_ state: UnsafeMutableRawPointer, _ sizeClass: Int, _ value: Int) {
        state.storeBytes(of: value, toByteOffset: (classCount + sizeClass) * 8, as: Int.self)
    }

    /// Swift's allocation (glibc's `malloc` underneath for 16-byte alignment); it traps when memory is out, as
    /// every other allocation of the gateway does, where libnghttp2 would have returned NGHTTP2_ERR_NOMEM.
    @inline(__always)
    static func systemAllocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: headerSize)
    }

    @inline(__always)
    static func releaseToSystem(payload: UnsafeMutableRawPointer) {
        (payload - headerSize).deallocate()
    }
}
