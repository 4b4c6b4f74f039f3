#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Logging
import NIOCore

/// Stops accepting for a moment when `accept` fails for lack of file descriptors (EMFILE, ENFILE), instead
/// of retrying at once in a loop that takes a whole core (issue 10, item 1).
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

    init(pause: TimeAmount = .seconds(1), logger: Logger) {
        self.pause = pause
        self.logger = logger
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
            self?.resume = nil
            try? options.setOption(.autoRead, value: true)
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
