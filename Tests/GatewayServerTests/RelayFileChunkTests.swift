@testable import GatewayServer
import Testing

/// Which of a relayed multipart file's encoded chunks take a buffer from the relay's pool (`HTTP1BodyRelay`):
/// the pool's buffers are all of one capacity, and the relay's back-pressure counts bytes queued, not
/// capacity, so only chunks of about a read's size may take one (a review found 4-byte chunks each holding
/// 128 KiB).
@Suite("HTTP1BodyRelay file chunks")
struct RelayFileChunkTests {
    @Test("a chunk takes a pooled buffer from the minimum to the pool's capacity, not one byte outside")
    func pooledRange() {
        let minimum = HTTP1BodyRelay.pooledChunkMinimum
        let capacity = HTTP1BodyRelay.pooledChunkCapacity
        #expect(!HTTP1BodyRelay.takesPooledBuffer(encodedBytes: 4))
        #expect(!HTTP1BodyRelay.takesPooledBuffer(encodedBytes: minimum - 1))
        #expect(HTTP1BodyRelay.takesPooledBuffer(encodedBytes: minimum))
        #expect(HTTP1BodyRelay.takesPooledBuffer(encodedBytes: capacity))
        #expect(!HTTP1BodyRelay.takesPooledBuffer(encodedBytes: capacity + 1))
        // A 64 KiB read, with or without a held-back quantum, fits; a pooled buffer holds at most 2.7× its chunk
        // once NIO rounds the capacity up to a power of two.
        #expect(HTTP1BodyRelay.takesPooledBuffer(encodedBytes: 87_384))
        #expect(capacity.nextPowerOfTwo <= minimum * 27 / 10)
    }
}

extension Int {
    fileprivate var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}
