#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Logging
import NIOCore

/// Stops accepting for a moment when `accept` fails for lack of file descriptors (EMFILE, ENFILE), instead
/// of retrying at once in a loop that takes a whole core (issue 10, item 1); and while too many connections refused
/// at the connection cap are still closing.
///
/// The refusals: a connection over `limits.max_connections` is refused here, on the listener's loop, as it is
/// accepted (`refuse`), and closed; its descriptor stays open until its own loop has closed it. In a flood the
/// listener accepted faster than the other loops closed, and the refused descriptors in flight outgrew the reserve
/// `GatewayServer.fitOpenFileLimit` keeps under a tiny open-file limit (the accept then hit EMFILE in 1 of ~10 runs
/// of `connectionCapFitsOpenFileLimit`). So at ``maxRefusalsClosing`` refused connections not yet closed,
/// accepting pauses until they are; the rest wait in the backlog.
///
/// Why not NIO's `AcceptBackoffHandler`: it delays the next `read()`, but in NIOPosix 2.101 a failed
/// `accept` leaves the server channel's `readPending` set, so no `read()` comes and the listening socket
/// stays registered for readability: epoll reports it again at once (seen with strace: `accept4` →
/// EMFILE, `epoll_wait`, again). Turning `autoRead` off deregisters it; turning it back on after the
/// pause registers it again. Sockets that arrive meanwhile wait in the kernel's backlog.
final class AcceptPauseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let pause: TimeAmount
    private var resume: Scheduled<Void>?
    private let logger: Logger
    /// Pauses since the last log line; logged on the first and then at most once a minute, so an operator
    /// sees the file-descriptor exhaustion without a line per second.
    private var pausesSinceLog = 0
    private var lastLog: NIODeadline?
    /// Decides an accepted connection's admission (on this loop, before it goes to its own): true when it was refused
    /// (and closed: counted, logged). Nil: every connection goes on.
    private let refuse: (@Sendable (any Channel) -> Bool)?
    /// Refused connections whose close has not completed yet.
    private var refusalsClosing = 0
    /// Accepting is paused for ``refusalsClosing``.
    private var pausedForRefusals = false
    /// The listener stops accepting for good (``StopAccepting``): nothing turns `autoRead` back on.
    private var stopped = false

    /// The most refused connections closing at once before accepting pauses: with the listener's 4 accepts per read
    /// on top, within the 16 descriptors `fitOpenFileLimit` keeps in reserve under a 64-descriptor limit.
    static let maxRefusalsClosing = 8

    /// Fired into the listener's pipeline (`GatewayServer.stopAccepting`): accepting stops for good.
    struct StopAccepting: Sendable {}

    init(
        pause: TimeAmount = .seconds(1), logger: Logger, refuse: (@Sendable (any Channel) -> Bool)? = nil
    ) {
        self.pause = pause
        self.logger = logger
        self.refuse = refuse
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = unwrapInboundIn(data)
        guard let refuse, refuse(accepted) else {
            context.fireChannelRead(data)
            return
        }
        refusalsClosing += 1
        if refusalsClosing >= Self.maxRefusalsClosing, !pausedForRefusals, let options = context.channel.syncOptions {
            pausedForRefusals = true
            try? options.setOption(.autoRead, value: false)
        }
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let options = NIOLoopBound(context.channel, eventLoop: loop)
        accepted.closeFuture.hop(to: loop).whenComplete { _ in
            handler.value.refusalClosed(options.value)
        }
    }

    private func refusalClosed(_ listener: any Channel) {
        refusalsClosing -= 1
        guard pausedForRefusals, refusalsClosing == 0 else { return }
        pausedForRefusals = false
        if resume == nil, !stopped { try? listener.syncOptions?.setOption(.autoRead, value: true) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is StopAccepting {
            stopped = true
            resume?.cancel()
            resume = nil
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, error.errnoCode == EMFILE || error.errnoCode == ENFILE else {
            context.fireErrorCaught(error)
            return
        }
        guard resume == nil, let options = context.channel.syncOptions else { return }
        pausesSinceLog += 1
        let now = NIODeadline.now()
        if lastLog.map({ now - $0 >= .seconds(60) }) ?? true {
            logger.warning(
                "accept paused: out of file descriptors; new connections wait in the backlog",
                metadata: [
                    "error": "\(String(cString: strerror(error.errnoCode)))", "pause": "\(pause)",
                    "accept.pauses": .stringConvertible(pausesSinceLog),
                ]
            )
            lastLog = now
            pausesSinceLog = 0
        }
        try? options.setOption(.autoRead, value: false)
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [weak self] in
            guard let self else { return }
            self.resume = nil
            if !self.pausedForRefusals, !self.stopped { try? options.setOption(.autoRead, value: true) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension AcceptPauseHandler: Sendable {}
