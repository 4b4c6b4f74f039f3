import NIOCore
@testable import OperationStore
import Testing

/// `GatheringSink`: the payload writer's small writes reach the buffer (or the digest) gathered, the same bytes in
/// the same order.
@Suite("OperationStore: the payload writer's gathering sink")
struct GatheringSinkTests {
    /// A sink that records each write it receives.
    struct RecordingSink: PayloadSink {
        var writes: [[UInt8]] = []

        mutating func write(_ bytes: UnsafeRawBufferPointer) { writes.append(Array(bytes)) }
    }

    /// Writes of `sizes` bytes (each write's bytes numbered on from the last), through a gathering sink.
    static func gathered(_ sizes: [Int]) -> (writes: [[UInt8]], expected: [UInt8]) {
        var sink = GatheringSink(RecordingSink())
        var expected: [UInt8] = []
        for size in sizes {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: expected.count + $0) }
            expected += bytes
            bytes.withUnsafeBytes { sink.write($0) }
        }
        return (sink.finish().writes, expected)
    }

    @Test("small writes reach the base in one write, at finish")
    func smallWritesGathered() {
        let (writes, expected) = Self.gathered(Array(repeating: 1, count: 100) + [0, 27])
        #expect(writes == [expected])
    }

    @Test("writes that overflow the scratch are handed on in order; one larger than it goes on as it is")
    func overflowAndLargeWrites() {
        let capacity = GatheringSink<RecordingSink>.capacity
        let (writes, expected) = Self.gathered([100, 28, 1, capacity, capacity + 1, 5, 3 * capacity, 0, 7])
        #expect(writes.flatMap { $0 } == expected)
        // 100 + 28 fill the scratch exactly; 1 does not fit; `capacity` bytes do not fit after it; the
        // `capacity + 1` write and the `3 * capacity` one pass through whole, each after what was gathered.
        #expect(writes.map(\.count) == [128, 1, capacity, capacity + 1, 5, 3 * capacity, 7])
    }

    @Test("every size from 0 to three scratches, after every fill level: the same bytes in the same order")
    func everySplit() {
        let capacity = GatheringSink<RecordingSink>.capacity
        for first in 0...capacity {
            for second in stride(from: 0, through: 3 * capacity, by: 7) {
                let (writes, expected) = Self.gathered([first, second, 3])
                #expect(writes.flatMap { $0 } == expected)
                #expect(writes.allSatisfy { !$0.isEmpty })
            }
        }
    }
}
