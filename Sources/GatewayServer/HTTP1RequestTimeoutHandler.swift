import NIOCore
import NIOHTTP1
import TriggerModel

/// Bounds the time an HTTP/1.1 client may take to send a request (issue 10, item 2): its header block
/// within the request-header timeout of its first bytes, and each piece of its body within the
/// body-progress timeout of the previous one. Over either, the client gets 408 with `Connection: close`
/// and the connection closes. Trickling a byte at a time does not help: unlike the keep-alive idle timeout,
/// these count from the start of the head, or the last *decoded* piece of body, not from the last read.
///
/// Sits right after the request decoder, so it sees decoded parts inbound, every read's completion and the
/// response parts outbound; its ``ByteObserver``, right before the decoder, tells it when bytes arrive.
final class HTTP1RequestTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var machine: StateMachine
    /// The one timer is lazy, as nginx's are: arming for a later time than the scheduled timer leaves it
    /// alone (when it fires it re-arms itself for `due`), and cancelling only clears `due`. Most requests
    /// arm and cancel a timeout or two and never see one fire, so this saves a timer-heap insert and removal
    /// per step of every request.
    private var timer: Scheduled<Void>?
    /// When the scheduled timer fires; nil when none is scheduled.
    private var timerFiresAt: NIODeadline?
    /// When the armed timeout is due; nil when none is armed.
    private var due: NIODeadline?

    /// Reads kept going while a request is being answered (see ``ReadAhead``).
    private var readAhead = ReadAhead()

    /// The target of the request whose body is being read: a 408 then is in the error shape of the surface
    /// the path belongs to (``RESTErrorFormat``). Nil while a head is still being read (no path yet: the
    /// Instill shape, as for every error of a request no surface can be told from).
    private var target: String?

    init(headerTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.machine = StateMachine(headerTimeout: headerTimeout, bodyTimeout: bodyTimeout)
    }

    /// The raw side: notes that bytes arrived, and passes them on to the decoder.
    final class ByteObserver: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        private let owner: HTTP1RequestTimeoutHandler

        init(owner: HTTP1RequestTimeoutHandler) {
            self.owner = owner
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            owner.machine.receivedBytes()
            context.fireChannelRead(data)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let action: StateMachine.Action
        switch unwrapInboundIn(data) {
        case .head(let head):
            action = machine.receivedHead()
            readAhead.receivedHead()
            target = head.uri
        case .body:
            action = machine.receivedBody()
        case .end:
            action = machine.receivedEnd()
            readAhead.receivedEnd()
            target = nil
        }
        run(action, context: context)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        run(machine.readCompleted(), context: context)
        context.fireChannelReadComplete()
        // Asked from here, below `HTTPServerPipelineHandler`, the read reaches the channel, which then keeps the
        // socket registered for reading (see ``ReadAhead``).
        if readAhead.keepsReading { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { readAhead.quiesce() }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            machine.sentResponseHead()
        case .end:
            machine.sentResponseEnd()
            readAhead.sentResponseEnd()
        default:
            break
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
    }

    private func stopTimer() {
        timer?.cancel()
        timer = nil
        timerFiresAt = nil
        due = nil
    }

    private func run(_ action: StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .cancel:
            due = nil
        case .arm(let amount):
            // The loop's clock, not the wall clock: the same on a real loop, virtual under test (advanceTime).
            let due = context.eventLoop.now + amount
            self.due = due
            if let firesAt = timerFiresAt, firesAt <= due { return }
            timer?.cancel()
            schedule(at: due, context: context)
        }
    }

    private func schedule(at deadline: NIODeadline, context: ChannelHandlerContext) {
        timerFiresAt = deadline
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            handler.timerFiresAt = nil
            handler.timerFired(context: context)
        }
    }

    /// The scheduled timer fired: the armed timeout is over, or was moved later (re-arm), or was cancelled.
    private func timerFired(context: ChannelHandlerContext) {
        guard let due else { return }
        if due > context.eventLoop.now {
            schedule(at: due, context: context)
            return
        }
        self.due = nil
        timeoutFired(context: context)
    }

    private func timeoutFired(context: ChannelHandlerContext) {
        if machine.state == .readingHead, readAhead.unanswered > 0 {
            // The start of the next request was read while an earlier one is still being answered (pipelined):
            // NIO's pipeline handler would not have let it be read yet, so its header time has not begun either,
            // and a 408 now would overtake the earlier answer. Count again from now.
            run(.arm(machine.headerTimeout), context: context)
            return
        }
        switch machine.timeoutFired() {
        case .none:
            return
        case .close:
            context.close(promise: nil)
        case .respondAndClose:
            // RFC 9110 §15.5.9: 408 when the server would not wait any longer; the connection is not reused.
            let error = GatewayError(.deadlineExceeded, "the request was not received in time")
            let requestID = RequestID.make()
            let response = RESTErrorFormat(path: target ?? "").response(error, requestID: requestID)
            // The frontend handler records this as its request's end (`RequestRecord`).
            context.fireUserInboundEventTriggered(
                HTTP1RequestTimedOutEvent(requestID: requestID, status: 408, bodyBytes: response.body.readableBytes))
            var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
            headers.add(name: "content-length", value: String(response.body.readableBytes))
            headers.add(name: "connection", value: "close")
            let head = HTTPResponseHead(version: .http1_1, status: .requestTimeout, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }
}

@available(*, unavailable)
extension HTTP1RequestTimeoutHandler: Sendable {}

extension HTTP1RequestTimeoutHandler {
    /// When to keep reading the socket while a request is answered: the two `epoll_ctl` calls per request
    /// that NIO's `HTTPServerPipelineHandler` otherwise costs (issue 11).
    ///
    /// That handler holds back every `read()` from the time a request has fully arrived until its response
    /// has ended, so that a client pipelining requests cannot make it buffer without bound; the channel then
    /// takes the socket out of the read set and puts it back after the response: two syscalls on every
    /// request, also for the client that sends one request at a time. Here the read is let through while
    /// exactly one request is unanswered and no later request has begun: a client that pipelines is read
    /// until its next request's head has arrived, and from then on held back as before (so the bound is one
    /// more read's worth of bytes than NIO's). While the connection quiesces (graceful shutdown) nothing is
    /// let through, as in NIO's handler.
    struct ReadAhead {
        /// Requests whose head has arrived and whose response has not ended.
        private(set) var unanswered = 0
        /// A request's head has arrived and its end has not.
        private(set) var readingRequest = false
        private(set) var quiescing = false

        mutating func receivedHead() {
            unanswered += 1
            readingRequest = true
        }

        mutating func receivedEnd() {
            readingRequest = false
        }

        mutating func sentResponseEnd() {
            unanswered = max(0, unanswered - 1)
        }

        mutating func quiesce() {
            quiescing = true
        }

        /// True when NIO's handler would hold the read back only to keep a single, fully received request's
        /// answer from being overtaken, i.e. when letting it through cannot grow what is buffered beyond the
        /// next request's head.
        var keepsReading: Bool {
            unanswered == 1 && !readingRequest && !quiescing
        }
    }
}

/// Told to the handlers after the request timeout handler when it answers a request itself (408): the
/// frontend handler ends that request's record with it.
struct HTTP1RequestTimedOutEvent {
    var requestID: String
    var status: Int
    var bodyBytes: Int
}
