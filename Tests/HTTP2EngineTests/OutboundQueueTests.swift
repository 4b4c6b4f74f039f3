import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// The stream's outbound queue holds its first buffer inline and the rest in a ring (issue 11); whatever the sizes
/// of the buffers and of the reads, the bytes come out in order, each once.
@Suite("HTTP/2 outbound queue")
struct OutboundQueueTests {
    @Test("reads of any size return the queued bytes in order", arguments: [1, 3, 7, 64, 4096])
    func readsInOrder(readSize: Int) {
        // Buffer sizes 1...50 in a fixed, uneven order (a linear congruential sequence).
        var state: UInt32 = 12_345
        var queue = HTTP2OutboundQueue()
        var expected: [UInt8] = []
        var next: UInt8 = 0
        #expect(queue.isEmpty)
        for _ in 0..<20 {
            state = state &* 1_103_515_245 &+ 12_345
            let count = Int((state >> 16) % 50) + 1
            var buffer = ByteBuffer()
            for _ in 0..<count {
                buffer.writeInteger(next)
                expected.append(next)
                next &+= 1
            }
            queue.append(buffer)
        }
        var received: [UInt8] = []
        var scratch = [UInt8](repeating: 0, count: readSize)
        while !queue.isEmpty {
            let n = scratch.withUnsafeMutableBytes { queue.readFirst(into: $0) }
            #expect(n > 0 && n <= readSize)
            received += scratch[..<n]
        }
        #expect(received == expected)
        #expect(scratch.withUnsafeMutableBytes { queue.readFirst(into: $0) } == 0)
    }

    @Test("appending after the queue ran empty, and removing everything")
    func reuseAndRemoveAll() {
        var queue = HTTP2OutboundQueue()
        queue.append(ByteBuffer(string: "ab"))
        var scratch = [UInt8](repeating: 0, count: 8)
        #expect(scratch.withUnsafeMutableBytes { queue.readFirst(into: $0) } == 2)
        #expect(queue.isEmpty)
        queue.append(ByteBuffer(string: "cd"))
        queue.append(ByteBuffer(string: "ef"))
        queue.append(ByteBuffer(string: "gh"))
        #expect(!queue.isEmpty)
        queue.removeAll()
        #expect(queue.isEmpty)
        queue.append(ByteBuffer(string: "ij"))
        let n = scratch.withUnsafeMutableBytes { queue.readFirst(into: $0) }
        #expect(String(decoding: scratch[..<n], as: UTF8.self) == "ij")
    }

    /// A session keeps its drain output buffer for the next drain (issue 11); a drain must never send bytes of an
    /// earlier one, whether the earlier write is still held (EmbeddedChannel keeps every write until it is read),
    /// was read already, or was larger than what a session keeps.
    @Test("answers of mixed sizes arrive intact, with earlier writes held or read", arguments: [false, true])
    func outputBufferReuse(readBetween: Bool) throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        try pair.interact()
        let sizes = [5, 40_000, 3, 20_000, 1, 700]
        var held: [ByteBuffer] = []
        for (index, size) in sizes.enumerated() {
            let body = String(repeating: Character(UnicodeScalar(UInt8(97 + index))), count: size)
            let stream = try pair.startRequest(body: body)
            #expect(stream == HTTP2StreamID(Int32(2 * index + 1)))
            // Move the request over; the server's answer either sits in its channel until the end (so the next
            // drain finds the kept buffer still referenced) or is delivered and dropped at once (so it is reused).
            while let bytes = try pair.client.readOutbound(as: ByteBuffer.self) { try pair.server.writeInbound(bytes) }
            if readBetween {
                while let bytes = try pair.server.readOutbound(as: ByteBuffer.self) {
                    try pair.client.writeInbound(bytes)
                }
            }
        }
        while let bytes = try pair.server.readOutbound(as: ByteBuffer.self) { held.append(bytes) }
        for bytes in held { try pair.client.writeInbound(bytes) }
        try pair.interact()
        for (index, size) in sizes.enumerated() {
            let expected = String(repeating: Character(UnicodeScalar(UInt8(97 + index))), count: size)
            #expect(pair.clientDelegate.body(Int32(2 * index + 1)) == expected)
        }
    }
}
