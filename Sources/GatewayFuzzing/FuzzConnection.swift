import NIOCore
import NIOEmbedded

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
