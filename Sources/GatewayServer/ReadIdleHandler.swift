import NIOCore

/// Fires a ``ReadIdleEvent`` when a connection has read nothing for `timeout` (`timeouts.idle`), as NIO's
/// `IdleStateHandler(readTimeout:)` fires its read event, but measured on the event loop's own clock
/// (`EventLoop.now`), and asked again when the consumer says when (``ReadIdleEvent/recheck``).
///
/// Why our own: NIO's handler reads `NIODeadline.now()` (the wall clock) when its timer fires, so on a testing
/// loop whose time is moved by hand it never sees the idle time pass, and the idle rule could only be tested
/// by waiting in real time (issue 19, item 5). On a real loop `EventLoop.now` is `NIODeadline.now()`, so the
/// behaviour is the same: the timer starts when the channel is active, a read in progress or a completed read
/// pushes it back by the time read since, and after firing the next check is one whole `timeout` later, or
/// the consumer's `recheck` later.
///
/// Why the consumer may defer: reads are not the only activity. An HTTP/1.1 answer that ends long after its
/// request was read leaves the connection idle from the answer's end (nginx's `keepalive_timeout` and Envoy's
/// `idle_timeout` count from there), and the read clock alone closed such a connection moments after the answer,
/// on a grid of idle periods from the connection's start, under the client's next request.
///
/// HTTP/1.1 only: on HTTP/2 a read is no sign of a request in flight (a PING, SETTINGS or WINDOW_UPDATE is a
/// read), so `HTTP2FrontendConnection` times the connection's streams instead (review 24, M3).
///
/// Inbound only: it watches reads, not writes, and an outbound handler is passed through by every write, flush
/// and read of the connection (three writes per HTTP/1.1 answer, ~1 000 instructions each, issue 11).
final class ReadIdleHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    private let timeout: TimeAmount
    private var lastRead: NIODeadline?
    private var reading = false
    private var check: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if reading {
            reading = false
            lastRead = context.eventLoop.now
        }
        context.fireChannelReadComplete()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard check == nil, timeout > .zero else { return }
        lastRead = context.eventLoop.now
        schedule(context, in: timeout)
    }

    private func stop() {
        check?.cancel()
        check = nil
    }

    private func schedule(_ context: ChannelHandlerContext, in amount: TimeAmount) {
        check = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { [self] in
            fire(context)
        }
    }

    private func fire(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        if reading {
            schedule(context, in: timeout)
            return
        }
        let idle = context.eventLoop.now - (lastRead ?? context.eventLoop.now)
        guard idle >= timeout else {
            schedule(context, in: timeout - idle)
            return
        }
        let event = ReadIdleEvent()
        context.fireUserInboundEventTriggered(event)
        // Closed by the consumer: nothing more to check (`handlerRemoved` follows).
        guard context.channel.isActive else { return }
        schedule(context, in: event.recheck.map { max($0, .nanoseconds(1)) } ?? timeout)
    }
}

/// ``ReadIdleHandler``'s event: the connection read nothing for `timeouts.idle`. A consumer that counts its idle
/// time from something later (an answer's end) sets `recheck` to the time left, and is asked again then.
/// A class: the consumer's answer goes back to the handler through it. Made once per idle period at most.
final class ReadIdleEvent {
    var recheck: TimeAmount?
}
