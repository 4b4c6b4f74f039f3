import NIOCore
import Testing
import TriggerModel

@testable import ProtoCodec
import TestScheduling

@Suite("Arena memory (protobuf-c trees, issue 11)")
struct ArenaMemoryTests {
    /// Fills `count` bytes at `pointer` with a pattern derived from `tag`, and checks it later.
    static func fill(_ pointer: UnsafeMutableRawPointer, _ count: Int, tag: Int) {
        for i in 0..<count {
            pointer.storeBytes(of: UInt8(truncatingIfNeeded: tag &* 31 &+ i), toByteOffset: i, as: UInt8.self)
        }
    }

    static func holds(_ pointer: UnsafeMutableRawPointer, _ count: Int, tag: Int) -> Bool {
        (0..<count).allSatisfy {
            pointer.load(fromByteOffset: $0, as: UInt8.self) == UInt8(truncatingIfNeeded: tag &* 31 &+ $0)
        }
    }

    @Test("allocations are aligned, disjoint and keep their bytes until release, across many chunks")
    func disjointAndAligned() {
        let memory = ArenaMemory()
        defer { memory.release() }
        // Sizes from 1 byte to over a quarter chunk (own blocks), well past one chunk in total.
        let sizes = (0..<600).map { [1, 3, 8, 24, 40, 100, 513, ArenaMemory.ownBlockBytes + 1][$0 % 8] }
        var blocks: [(pointer: UnsafeMutableRawPointer, count: Int)] = []
        for (tag, size) in sizes.enumerated() {
            let alignment = [1, 2, 4, 8, 16][tag % 5]
            let pointer = memory.allocate(byteCount: size, alignment: alignment)
            #expect(Int(bitPattern: pointer) % alignment == 0)
            Self.fill(pointer, size, tag: tag)
            blocks.append((pointer, size))
        }
        #expect(sizes.reduce(0, +) > 8 * ArenaMemory.chunkBytes)
        for (tag, block) in blocks.enumerated() { #expect(Self.holds(block.pointer, block.count, tag: tag)) }
        let sorted = blocks.sorted { $0.pointer < $1.pointer }
        for (a, b) in zip(sorted, sorted.dropFirst()) { #expect(a.pointer + a.count <= b.pointer) }
    }

    @Test("the first chunk is reused by the thread's next arena; a nested arena gets its own")
    func reuse() {
        let outer = ArenaMemory()
        let first = outer.allocate(byteCount: 8)
        outer.release()
        let again = ArenaMemory()
        let reused = again.allocate(byteCount: 8)
        #expect(reused == first)  // the cached chunk, its bump pointer reset
        let nested = ArenaMemory()
        let other = nested.allocate(byteCount: 8)
        #expect(other != reused)
        Self.fill(reused, 8, tag: 1)
        Self.fill(other, 8, tag: 2)
        #expect(Self.holds(reused, 8, tag: 1) && Self.holds(other, 8, tag: 2))
        nested.release()
        again.release()
        // Two released arenas, one cache slot: the next arena still gets a chunk of its own size.
        let third = ArenaMemory()
        defer { third.release() }
        let p = third.allocate(byteCount: ArenaMemory.ownBlockBytes)
        Self.fill(p, ArenaMemory.ownBlockBytes, tag: 3)
        #expect(Self.holds(p, ArenaMemory.ownBlockBytes, tag: 3))
    }

    @Test("a chunk is filled to its last byte; the next allocation opens another chunk")
    func chunkEdge() {
        let memory = ArenaMemory()
        defer { memory.release() }
        let count = ArenaMemory.firstChunkCapacity / 8
        let first = memory.allocate(byteCount: 8, alignment: 8)
        var last = first
        for _ in 1..<count {
            let next = memory.allocate(byteCount: 8, alignment: 8)
            #expect(next == last + 8)
            last = next
        }
        #expect(last + 8 == first + ArenaMemory.firstChunkCapacity)  // exactly full
        let spilled = memory.allocate(byteCount: 8, alignment: 8)
        #expect(spilled != last + 8)
        #expect(spilled + 8 <= first || spilled >= first + ArenaMemory.firstChunkCapacity)
        #expect(memory.allocate(byteCount: 8, alignment: 8) == spilled + 8)  // the new chunk goes on
    }

    @Test("past a chunk's room, a quarter chunk opens a new chunk; one byte more gets a block of its own")
    func ownBlockEdge() {
        let filled = ArenaMemory.firstChunkCapacity - 96  // leaves 96 bytes of room in the first chunk
        do {
            let memory = ArenaMemory()
            defer { memory.release() }
            let first = memory.allocate(byteCount: filled)
            let edge = memory.allocate(byteCount: ArenaMemory.ownBlockBytes)
            #expect(edge + ArenaMemory.ownBlockBytes <= first || edge >= first + ArenaMemory.firstChunkCapacity)
            // A new chunk: what follows is allocated right after it, the old chunk's room is left.
            #expect(memory.allocate(byteCount: 16) == edge + ArenaMemory.ownBlockBytes)
        }
        do {
            let memory = ArenaMemory()
            defer { memory.release() }
            let first = memory.allocate(byteCount: filled)
            let past = memory.allocate(byteCount: ArenaMemory.ownBlockBytes + 1)
            #expect(past + ArenaMemory.ownBlockBytes + 1 <= first || past >= first + ArenaMemory.firstChunkCapacity)
            // A block of its own: the chunk's last 96 bytes still serve the small allocations after it.
            #expect(memory.allocate(byteCount: 16) == first + filled)
        }
    }

    @Test("a large allocation gets a block of its own and leaves the chunk's room to later small ones", .cpuBound)
    func largeAllocations() {
        let memory = ArenaMemory()
        defer { memory.release() }
        let small = memory.allocate(byteCount: 16)
        let large = memory.allocate(byteCount: 1 << 20)
        let next = memory.allocate(byteCount: 16)
        #expect(next == small + 16)  // same chunk, right after
        #expect(large + (1 << 20) <= small || large >= small + ArenaMemory.chunkBytes)
        Self.fill(large, 1 << 20, tag: 9)
        #expect(Self.holds(large, 1 << 20, tag: 9))
    }

    @Test("a protobuf-c tree unpacked in the arena decodes as before, and malformed input fails cleanly")
    func unpackInArena() throws {
        let request = TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "echo"),
            inputs: (0..<50).map { i in
                TriggerInput(variables: [
                    "k\(i)": .string(String(repeating: "v", count: i * 40)), "n": .number(Double(i)),
                ])
            },
            requestID: "req-arena"
        )
        // Both sizes: a tree in the first chunk only, and one spilling into further chunks.
        for inputs in [Array(request.inputs.prefix(1)), request.inputs] {
            var r = request
            r.inputs = inputs
            let bytes = RunnerCodec.encodeRunRequest(r)
            #expect(bytes.readableBytes < UnpackAllocation.largeBytes)
            let decoded = try RunnerCodec.decodeRunRequest(bytes)
            #expect(decoded.inputs == inputs)
        }
        var truncated = RunnerCodec.encodeRunRequest(request)
        truncated.moveWriterIndex(to: truncated.writerIndex - 3)
        #expect(throws: GatewayError.self) { try RunnerCodec.decodeRunRequest(truncated) }
    }
}
