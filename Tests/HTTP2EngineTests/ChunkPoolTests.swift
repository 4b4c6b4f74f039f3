import HTTP2Engine
import Testing

/// `NGHTTP2ChunkPool`, libnghttp2's per-session allocator (issue 11), through the function pointers libnghttp2
/// calls: chunks come back for reuse, each class keeps at most its bound, `calloc` zeroes, `realloc` keeps the
/// bytes, and every pointer is 16-byte aligned as `malloc`'s are. (ASan runs these too: a chunk freed to the
/// system and touched, or one leaked when the pool goes, is its report.)
@Suite("nghttp2 chunk pool")
struct ChunkPoolTests {
    @Test("A freed chunk is handed out again for a request of its class")
    func reuse() throws {
        let pool = NGHTTP2ChunkPool()
        let first = try #require(pool.allocate(200))
        pool.deallocate(first)
        #expect(pool.retainedChunks(forSize: 200) == 1)
        // 129…256 bytes share a class.
        let second = try #require(pool.allocate(256))
        #expect(second == first)
        #expect(pool.retainedChunks(forSize: 200) == 0)
        // Another class does not take it.
        pool.deallocate(second)
        let other = try #require(pool.allocate(257))
        #expect(other != first)
        #expect(pool.retainedChunks(forSize: 256) == 1)
        pool.deallocate(other)
    }

    @Test(
        "Each class keeps at most 4 KiB of free chunks (the bound, and one past it goes back to the system)",
        arguments: [1, 32, 33, 64, 100, 128, 256, 512, 1000, 1024]
    )
    func bound(size: Int) throws {
        let pool = NGHTTP2ChunkPool()
        var classSize = 32
        while classSize < size { classSize <<= 1 }
        let bound = NGHTTP2ChunkPool.maxRetainedBytesPerClass / classSize
        let chunks = try (0...bound).map { _ in try #require(pool.allocate(size)) }
        #expect(Set(chunks).count == bound + 1)
        for chunk in chunks.dropLast() { pool.deallocate(chunk) }
        #expect(pool.retainedChunks(forSize: size) == bound)
        pool.deallocate(chunks.last)
        #expect(pool.retainedChunks(forSize: size) == bound)
        // The kept ones come back, most recently freed first.
        let again = pool.allocate(size)
        #expect(again == chunks[bound - 1])
        pool.deallocate(again)
    }

    @Test("Above 1024 bytes a request goes to the system and is not kept")
    func large() throws {
        let pool = NGHTTP2ChunkPool()
        let block = try #require(pool.allocate(1025))
        block.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 1025)
        pool.deallocate(block)
        #expect(pool.retainedChunks(forSize: 1024) == 0)
        let huge = try #require(pool.allocate(1 << 20))
        huge.storeBytes(of: 7, toByteOffset: (1 << 20) - 1, as: UInt8.self)
        pool.deallocate(huge)
    }

    @Test("Every pointer is 16-byte aligned", arguments: [1, 8, 15, 16, 17, 31, 48, 200, 999, 1024, 1025, 5000])
    func alignment(size: Int) throws {
        let pool = NGHTTP2ChunkPool()
        let pointers = try (0..<3).map { _ in try #require(pool.allocate(size)) }
        for pointer in pointers {
            #expect(Int(bitPattern: pointer) % 16 == 0)
            pool.deallocate(pointer)
        }
        let zeroed = try #require(pool.allocateZeroed(3, size))
        #expect(Int(bitPattern: zeroed) % 16 == 0)
        pool.deallocate(zeroed)
    }

    @Test("calloc zeroes a reused chunk, and refuses a count × size that overflows")
    func calloc() throws {
        let pool = NGHTTP2ChunkPool()
        let dirty = try #require(pool.allocate(96))
        dirty.initializeMemory(as: UInt8.self, repeating: 0xFF, count: 96)
        pool.deallocate(dirty)
        let zeroed = try #require(pool.allocateZeroed(12, 8))
        #expect(zeroed == dirty)
        #expect(UnsafeRawBufferPointer(start: zeroed, count: 96).allSatisfy { $0 == 0 })
        pool.deallocate(zeroed)
        #expect(pool.allocateZeroed(Int.max / 2, 3) == nil)
    }

    @Test("realloc: within the chunk it stays, past it the bytes move, nil allocates, 0 frees")
    func realloc() throws {
        let pool = NGHTTP2ChunkPool()
        let start = try #require(pool.reallocate(nil, 40))
        for i in 0..<40 { start.storeBytes(of: UInt8(i), toByteOffset: i, as: UInt8.self) }
        // 40 bytes live in the 64-byte class: growing to 64 or shrinking keeps the chunk.
        #expect(pool.reallocate(start, 64) == start)
        #expect(pool.reallocate(start, 10) == start)
        // Past the class: a new chunk with the old bytes; the old one is kept for reuse.
        let grown = try #require(pool.reallocate(start, 3000))
        #expect(grown != start)
        #expect((0..<40).allSatisfy { grown.load(fromByteOffset: $0, as: UInt8.self) == UInt8($0) })
        #expect(pool.retainedChunks(forSize: 64) == 1)
        // A large block grows into a larger one, and shrinks in place.
        let larger = try #require(pool.reallocate(grown, 9000))
        #expect((0..<40).allSatisfy { larger.load(fromByteOffset: $0, as: UInt8.self) == UInt8($0) })
        #expect(pool.reallocate(larger, 2000) == larger)
        // Size 0 frees (C `realloc`'s glibc meaning) and returns nil.
        #expect(pool.reallocate(larger, 0) == nil)
        // free(NULL) is a no-op.
        pool.deallocate(nil)
    }

    @Test("A size_t past Int.max (negative here) fails like C's malloc, and a failed realloc leaves the block intact")
    func impossibleSizes() throws {
        let pool = NGHTTP2ChunkPool()
        #expect(pool.allocate(-1) == nil)
        #expect(pool.allocate(Int.max) == nil)
        #expect(pool.allocateZeroed(1, -1) == nil)
        let block = try #require(pool.allocate(24))
        block.storeBytes(of: 0xABCD, as: UInt32.self)
        #expect(pool.reallocate(block, -1) == nil)
        #expect(pool.reallocate(block, Int.max) == nil)
        // Still the caller's, with its bytes.
        #expect(block.load(as: UInt32.self) == 0xABCD)
        pool.deallocate(block)
    }
}
