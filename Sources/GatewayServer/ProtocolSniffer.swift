package import NIOCore

/// Decides from a connection's first bytes whether it speaks HTTP/2 (prior knowledge) or HTTP/1.1.
///
/// Each read is compared with the part of the 24-byte client preface (RFC 9113 §3.4) not yet matched, so
/// a preface split over many reads — even one byte at a time — is recognised; the first mismatching byte
/// decides HTTP/1.1. Nothing is decoded from a partial read as text (the early grpc-swift mistake).
/// Everything read while deciding is replayed, in order, to the handlers the decision installs.
///
/// With TLS on the port (issue 17), the very first byte is looked at first: 0x16 (a TLS handshake record,
/// RFC 8446 §5.1) decides `.tls`, after which the listener installs TLS and a second sniffer for what runs
/// inside it; any other first byte is cleartext, served when the port allows it and otherwise refused
/// (`.plaintextRefused`) in the client's own protocol, once the preface tells which: an HTTP/1.1 400 for HTTP/1.1;
/// for h2c and gRPC an HTTP/2 session that answers each request with the reason (400, INVALID_ARGUMENT) and then
/// GOAWAY (review 10, finding 4). Neither `P` (the h2 preface) nor an HTTP/1.1 method starts with 0x16, so nothing
/// is guessed.
///
/// A connection that has not decided within `timeout` of becoming active (silent, or stalled part-way
/// through the preface) is closed, as nghttpd closes it (issue 10, item 1).
///
/// At a graceful stop (`ChannelShouldQuiesceEvent`) an undecided connection is not closed at once: a client that
/// has just connected (a proxy opening an upstream connection for a request) may have its first request on the
/// wire, and a close then answers it with RST (review 18, F10, for idle keep-alive connections). It gets the same
/// grace as an idle HTTP/1.1 connection (`HTTP1FrontendHandler.drainIdleGrace`): first bytes within it decide the
/// protocol as usual and the handlers installed for it get the drain notice after them (HTTP/1.1 serves that
/// request with `Connection: close`; HTTP/2 sends GOAWAY); still silent after it, the connection closes in stages
/// (FIN, then what arrives is read and dropped for `HTTP1FrontendHandler.drainLingerBound`).
package final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    enum WireProtocol: Equatable {
        case http1
        case http2
        /// A TLS ClientHello on a port with TLS.
        case tls
        /// Cleartext on a port that requires TLS: HTTP/2 prior knowledge (the whole preface) or HTTP/1.1.
        case plaintextRefused(http2: Bool)
    }

    /// What the port accepts besides cleartext HTTP.
    package enum TLSMode: Sendable {
        /// No TLS: every connection is cleartext.
        case off
        /// TLS only.
        case required
        /// TLS or cleartext (`tls.allow_plaintext`).
        case optional
    }

    /// The first byte of every TLS record that opens a connection: the handshake content type.
    package static let tlsHandshakeRecord: UInt8 = 0x16

    /// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
    package static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Installs the handlers for the protocol after this one; runs on the event loop.
    typealias Configure = (any Channel, WireProtocol) throws -> Void

    private let configure: Configure
    private var buffered: [ByteBuffer] = []
    private var matched = 0
    private var decided = false
    private let timeout: TimeAmount?
    private let tls: TLSMode
    private var timer: Scheduled<Void>?
    /// A graceful stop began while undecided: the handlers the decision installs get the notice too.
    private var quiescing = false
    /// The drain's grace passed with nothing decided: the connection is closing, what arrives is dropped.
    private var closing = false

    init(timeout: TimeAmount? = nil, tls: TLSMode = .off, configure: @escaping Configure) {
        self.timeout = timeout
        self.tls = tls
        self.configure = configure
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context: context) }
    }

    package func channelActive(context: ChannelHandlerContext) {
        startTimer(context: context)
        context.fireChannelActive()
    }

    private func startTimer(context: ChannelHandlerContext) {
        guard let timeout, timer == nil, !decided else { return }
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self, !self.decided else { return }
            channel.close(promise: nil)
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !decided {
            guard !quiescing else { return }
            quiescing = true
            timer?.cancel()
            let channel = context.channel
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: HTTP1FrontendHandler.drainIdleGrace) {
                [weak self] in
                guard let self, !self.decided else { return }
                self.buffered = []
                self.closing = true
                HTTP1FrontendHandler.lingeringClose(channel, bound: HTTP1FrontendHandler.drainLingerBound)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let buffer = unwrapInboundIn(data)
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        if buffered.isEmpty, tls != .off, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) {
            buffered.append(buffer)
            if first == Self.tlsHandshakeRecord {
                decide(.tls, context: context)
                return
            }
        } else {
            buffered.append(buffer)
        }
        // Cleartext: served, or (TLS required) refused in the protocol the preface names.
        let refused = tls == .required
        switch Self.match(buffer, from: matched) {
        case .mismatch:
            decide(refused ? .plaintextRefused(http2: false) : .http1, context: context)
        case .partial(let newMatched):
            matched = newMatched
            if matched == Self.preface.count {
                decide(refused ? .plaintextRefused(http2: true) : .http2, context: context)
            }
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
        timer?.cancel()
        timer = nil
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
        // The drain began before the decision: the new handlers learn it first, so the request the replay brings is
        // served as one that arrived during the drain (HTTP/1.1: with `Connection: close`, the connection ending
        // after it; HTTP/2: within the GOAWAY notice's round trip).
        if quiescing { context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
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
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ProtocolSniffer: Sendable {}
