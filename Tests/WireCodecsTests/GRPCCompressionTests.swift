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

    /// Review 24, H2: `limits.max_decompressed_bytes` (default 4 MiB) caps what a compressed message inflates to,
    /// under the body cap an uncompressed message keeps; the deframer says the failure was that cap.
    @Test(
        "the deframer holds compressed messages to maxDecompressedBytes: at it passes, one byte past is refused",
        arguments: [
            (GRPCCompression.gzip, 4096, true), (.gzip, 4097, false), (.deflate, 4096, true), (.deflate, 4097, false),
        ])
    func deframerDecompressedCap(encoding: GRPCCompression, size: Int, accepted: Bool) throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 65_536, maxDecompressedBytes: 4096, encoding: encoding)
        let plain = buffer([UInt8](repeating: 0x61, count: size))
        deframer.append(GRPCMessageFramer.frame(plain, compression: encoding))
        if accepted {
            #expect(try deframer.next() == plain)
            #expect(!deframer.exceededDecompressedBytes)
        } else {
            let error = gatewayError { _ = try deframer.next() }
            #expect(error?.code == .payloadTooLarge)
            #expect(
                error?.message == "decompressed message exceeds the limit of 4096 bytes (limits.max_decompressed_bytes)"
            )
            #expect(deframer.exceededDecompressedBytes)
        }
    }

    @Test("an uncompressed message keeps the body cap, above maxDecompressedBytes")
    func deframerIdentityKeepsBodyCap() throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 65_536, maxDecompressedBytes: 4096, encoding: .gzip)
        let plain = buffer([UInt8](repeating: 0x61, count: 65_536))
        deframer.append(GRPCMessageFramer.frame(plain))
        #expect(try deframer.next() == plain)
        #expect(deframer.heldBytes == 0)
        // A maxDecompressedBytes over the body cap is lowered to it.
        #expect(GRPCMessageDeframer(maxMessageBytes: 100, maxDecompressedBytes: 200).maxDecompressedBytes == 100)
    }

    /// Not the declared length: a budget counting prefixes' lengths was filled by prefixes alone.
    @Test("heldBytes is what was received of the message being received, not its declared length")
    func deframerHeldBytes() throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 65_536)
        let framed = GRPCMessageFramer.frame(buffer([UInt8](repeating: 0x61, count: 10_000)))
        deframer.append(framed.getSlice(at: 0, length: 100)!)
        #expect(try deframer.next() == nil)
        #expect(deframer.heldBytes == 95)
        deframer.append(framed.getSlice(at: 100, length: framed.readableBytes - 100)!)
        #expect(try deframer.next()?.readableBytes == 10_000)
        #expect(deframer.heldBytes == 0)
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
