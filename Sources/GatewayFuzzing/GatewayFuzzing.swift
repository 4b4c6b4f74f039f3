import NIOCore
import NIOEmbedded

/// The libFuzzer entry point for one connection's worth of bytes: the input is what a client sent on a fresh
/// connection, fed to the server-side pipeline that ``FuzzPipeline/current`` installs (today the HTTP/2 engine
/// with a gRPC-decoding delegate) in a few uneven chunks, then the connection ends. The raw bytes are also
/// handed to every decoder directly (``fuzzGatewayDecoders(_:)``), so one corpus grows coverage of both.
///
/// Crashes, sanitizer reports and failed invariants (`preconditionFailure`) are the findings; everything the
/// gateway is supposed to reject must be rejected with an error, not a trap.
public func fuzzGatewayInput(_ bytes: UnsafeRawBufferPointer) {
    FuzzConnection.run(bytes, pipeline: .current)
    fuzzGatewayDecoders(bytes)
}

/// Drives only the decoders (protobuf, gRPC deframer, grpc-timeout, grpc-message, data URI) on `bytes`,
/// checking the invariants listed in ``DecoderFuzzing``.
public func fuzzGatewayDecoders(_ bytes: UnsafeRawBufferPointer) {
    DecoderFuzzing.run(bytes)
}

/// Seed inputs for the corpus: complete client sides of HTTP/2 sessions (preface, SETTINGS, gRPC and REST
/// requests) produced by the engine's own client role, plus bare protobuf messages. `scripts/fuzz.sh seeds`
/// writes them to `scripts/fuzz/corpus/`.
public func gatewayFuzzSeeds() -> [(name: String, bytes: [UInt8])] {
    FuzzSeeds.all()
}

/// Feeds one input to a fresh `EmbeddedChannel` set up by a ``FuzzPipeline``.
enum FuzzConnection {
    /// Read sizes cycled through while feeding the input: the first two split the 24-byte preface (the
    /// sniffer matches it incrementally), the rest cut frames at varied offsets.
    static let chunkSizes = [1, 23, 9, 17, 4096, 3, 65_536]

    static func run(_ bytes: UnsafeRawBufferPointer, pipeline: FuzzPipeline) {
        let channel = EmbeddedChannel()
        do {
            try pipeline.install(channel)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        } catch {
            preconditionFailure("the fuzzed pipeline could not be set up: \(error)")
        }
        var offset = 0
        var chunk = 0
        while offset < bytes.count, channel.isActive {
            let size = min(chunkSizes[chunk % chunkSizes.count], bytes.count - offset)
            var buffer = channel.allocator.buffer(capacity: size)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)]))
            // An inbound error is the pipeline rejecting the input: that is allowed, and ends the connection.
            do { try channel.writeInbound(buffer) } catch { break }
            offset += size
            chunk += 1
            drainOutbound(channel)
        }
        pipeline.finish(channel)
        drainOutbound(channel)
        if channel.isActive { _ = try? channel.close().wait() }
        drainOutbound(channel)
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    /// The answers the pipeline wrote are not checked, only produced; dropping them keeps memory flat.
    static func drainOutbound(_ channel: EmbeddedChannel) {
        while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    }
}
