package import NIOCore

/// Decides from a connection's first bytes whether it speaks HTTP/2 (prior knowledge) or HTTP/1.1.
///
/// Each read is compared with the part of the 24-byte client preface (RFC 9113 §3.4) not yet matched, so
/// a preface split over many reads — even one byte at a time — is recognised; the first mismatching byte
/// decides HTTP/1.1. Nothing is decoded from a partial read as text (the early grpc-swift mistake).
/// Everything read while deciding is replayed, in order, to the handlers the decision installs.
package final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    enum WireProtocol: Equatable {
        case http1
        case http2
    }

    /// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
    package static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Installs the handlers for the protocol after this one; runs on the event loop.
    typealias Configure = (any Channel, WireProtocol) throws -> Void

    private let configure: Configure
    private var buffered: [ByteBuffer] = []
    private var matched = 0
    private var decided = false

    init(configure: @escaping Configure) {
        self.configure = configure
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        buffered.append(buffer)
        switch Self.match(buffer, from: matched) {
        case .mismatch:
            decide(.http1, context: context)
        case .partial(let newMatched):
            matched = newMatched
            if matched == Self.preface.count { decide(.http2, context: context) }
        }
    }

    package enum MatchResult: Equatable {
        case mismatch
        case partial(Int)
    }

    /// Compares `buffer` with the preface from offset `matched`; pure, so it is unit-tested and fuzzed.
    package static func match(_ buffer: ByteBuffer, from matched: Int) -> MatchResult {
        buffer.withUnsafeReadableBytes { bytes in
            let count = min(bytes.count, preface.count - matched)
            for i in 0..<count where bytes[i] != preface[matched + i] {  // at most 24 bytes
                return .mismatch
            }
            return .partial(matched + count)
        }
    }

    private func decide(_ proto: WireProtocol, context: ChannelHandlerContext) {
        decided = true
        do {
            try configure(context.channel, proto)
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    package func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        // Replay before leaving, so the new handlers see the bytes in their original order.
        let replay = buffered
        buffered = []
        for buffer in replay {
            context.fireChannelRead(wrapInboundOut(buffer))
        }
        if !replay.isEmpty { context.fireChannelReadComplete() }
        context.leavePipeline(removalToken: removalToken)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        buffered = []
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ProtocolSniffer: Sendable {}
