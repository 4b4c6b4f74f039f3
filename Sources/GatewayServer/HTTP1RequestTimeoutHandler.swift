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
        case .head: action = machine.receivedHead()
        case .body: action = machine.receivedBody()
        case .end: action = machine.receivedEnd()
        }
        run(action, context: context)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        run(machine.readCompleted(), context: context)
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            machine.sentResponseHead()
        case .end:
            machine.sentResponseEnd()
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
        switch machine.timeoutFired() {
        case .none:
            return
        case .close:
            context.close(promise: nil)
        case .respondAndClose:
            // RFC 9110 §15.5.9: 408 when the server would not wait any longer; the connection is not reused.
            let error = GatewayError(.deadlineExceeded, "the request was not received in time")
            let requestID = RequestID.make()
            let response = RESTResponse.error(error, requestID: requestID)
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

/// Told to the handlers after the request timeout handler when it answers a request itself (408): the
/// frontend handler ends that request's record with it.
struct HTTP1RequestTimedOutEvent {
    var requestID: String
    var status: Int
    var bodyBytes: Int
}
