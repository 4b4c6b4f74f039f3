import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("gRPC message compression (gzip, deflate)")
struct GRPCCompressionTests {
    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let next = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<next], radix: 16)!)
            i = next
        }
        return out
    }

    /// `b"hello, gRPC"` as Python's `gzip.compress(..., mtime=0)` and `zlib.compress(...)` write it: an
    /// independent encoder.
    static let pythonGzip = bytes(hex: "1f8b0800000000000203cb48cdc9c9d751480f0a700600be60bbdb0b000000")
    static let pythonDeflate = bytes(hex: "789ccb48cdc9c9d751480f0a70060017c703ad")

    @Test(
        "what another zlib user wrote decodes",
        arguments: [
            (GRPCCompression.gzip, pythonGzip), (.deflate, pythonDeflate),
        ])
    func independentEncoder(encoding: GRPCCompression, compressed: [UInt8]) throws {
        let plain = try encoding.decompress(buffer(compressed), maxBytes: 64)
        #expect(plain.text == "hello, gRPC")
    }

    @Test(
        "compress then decompress returns the message, empty and large ones too",
        arguments: [
            (GRPCCompression.gzip, 0), (.gzip, 1), (.gzip, 300_000), (.deflate, 0), (.deflate, 70_000),
        ])
    func roundTrip(encoding: GRPCCompression, size: Int) throws {
        var random = XorShift(seed: UInt64(size) + 1)
        let message = buffer((0..<size).map { _ in UInt8(random.next(below: 16)) })
        let compressed = encoding.compress(message)
        #expect(try encoding.decompress(compressed, maxBytes: size) == message)
    }

    @Test(
        "the cap applies to the decompressed size: at the cap passes, one byte over is RESOURCE_EXHAUSTED",
        arguments: [(65_536, true), (65_537, false)])
    func decompressedCap(size: Int, accepted: Bool) throws {
        // Zeros compress about 1000:1, so the compressed message is far below the cap either way.
        let compressed = GRPCCompression.gzip.compress(buffer([UInt8](repeating: 0, count: size)))
        #expect(compressed.readableBytes < 1_000)
        if accepted {
            #expect(try GRPCCompression.gzip.decompress(compressed, maxBytes: 65_536).readableBytes == size)
        } else {
            let error = gatewayError { _ = try GRPCCompression.gzip.decompress(compressed, maxBytes: 65_536) }
            #expect(error?.code == .payloadTooLarge)
        }
    }

    @Test(
        "corrupt, truncated, wrong-wrapper and trailing-garbage messages are INTERNAL",
        arguments: [
            (GRPCCompression.gzip, Array(pythonGzip.dropLast(3))),
            (.gzip, [UInt8]()),
            (.gzip, pythonDeflate),
            (.deflate, pythonGzip),
            (.gzip, pythonGzip + [0]),
            (.deflate, [0x78, 0x9c, 0xFF, 0xFF, 0xFF]),
        ])
    func malformed(encoding: GRPCCompression, compressed: [UInt8]) {
        let error = gatewayError { _ = try encoding.decompress(buffer(compressed), maxBytes: 1 << 20) }
        #expect(error?.code == .internalError)
    }

    @Test("the deframer decompresses flagged messages when the call has an encoding, and leaves others alone")
    func deframer() throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 64, encoding: .gzip)
        var input = GRPCMessageFramer.frame(buffer("plain"))
        input.writeImmutableBuffer(GRPCMessageFramer.frame(buffer("packed"), compression: .gzip))
        // Byte at a time: the compressed message is only decoded once whole.
        for i in 0..<input.readableBytes { deframer.append(input.getSlice(at: i, length: 1)!) }
        #expect(try deframer.next()?.text == "plain")
        #expect(try deframer.next()?.text == "packed")
        #expect(try deframer.next() == nil)
        #expect(!deframer.hasPartialMessage)
    }

    @Test(
        "grpc-accept-encoding decides whether the answer mirrors the request's encoding",
        arguments: [
            (GRPCCompression?.none, "identity, deflate, gzip", GRPCCompression?.none),
            (.gzip, "identity, deflate, gzip", .gzip),
            (.gzip, nil, .gzip),
            (.deflate, "identity,gzip", nil),
        ] as [(GRPCCompression?, String?, GRPCCompression?)])
    func responseEncoding(request: GRPCCompression?, accept: String?, expected: GRPCCompression?) {
        #expect(GRPCCompression.responseEncoding(request: request, acceptEncoding: accept) == expected)
    }
}

private struct XorShift {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next(below bound: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Int(state % UInt64(bound))
    }
}
