import NIOCore
import Testing
import WireCodecs

/// Gathering stays linear (issue 12): counted by how often the storage moves, never by timing.
@Suite("BodyGatherer")
struct BodyGathererTests {
    /// Appends `chunks` chunks of `size` bytes (each filled with its index) and returns how many times the
    /// gathered storage moved, plus the gathered bytes.
    static func gather(_ gatherer: inout BodyGatherer, chunks: Int, size: Int) -> (moves: Int, body: ByteBuffer) {
        var moves = 0
        var last: UInt?
        for i in 0..<chunks {
            gatherer.append(ByteBuffer(repeating: UInt8(truncatingIfNeeded: i), count: size))
            let address = gatherer.storageAddress
            if address != last { moves += 1 }
            last = address
        }
        return (moves, gatherer.take())
    }

    @Test("16 MiB in 4 KiB chunks with no declared length: O(log n) moves, every byte in order")
    func undeclared() {
        var gatherer = BodyGatherer()
        let (moves, body) = Self.gather(&gatherer, chunks: 4096, size: 4096)
        // Doubling from 4 KiB to 16 MiB is 12 moves; a copy per append would be 4096.
        #expect(moves <= 20, "storage moved \(moves) times")
        #expect(body.readableBytes == 4096 * 4096)
        #expect(body.getInteger(at: 4096 * 4095, as: UInt8.self) == UInt8(truncatingIfNeeded: 4095))
        #expect(body.getInteger(at: 4096 * 17 + 5, as: UInt8.self) == 17)
        #expect(gatherer.count == 0 && gatherer.take().readableBytes == 0)
    }

    @Test("with the declared length the storage is allocated once and never moves")
    func declared() {
        var gatherer = BodyGatherer(expectedLength: 1024 * 1024)
        let (moves, body) = Self.gather(&gatherer, chunks: 256, size: 4096)
        #expect(moves == 1)
        #expect(body.readableBytes == 1024 * 1024)
    }

    @Test("a single chunk is adopted as it is; empty chunks are ignored")
    func adopt() {
        var gatherer = BodyGatherer()
        gatherer.append(ByteBuffer())
        #expect(gatherer.storageAddress == nil)
        let chunk = ByteBuffer(string: "{\"data\":[]}")
        gatherer.append(chunk)
        #expect(gatherer.count == chunk.readableBytes)
        #expect(gatherer.take() == chunk)
    }
}
