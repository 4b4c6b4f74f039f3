import NIOCore
import NIOHTTP1
import TriggerModel

/// The answer of an HTTP backend to one `POST /run`, before it is decoded.
struct HTTPBackendResponse: Sendable {
    var status: Int
    var contentType: String?
    var body: ByteBuffer
    /// False when the backend said `Connection: close` (or HTTP/1.0 without keep-alive).
    var keepAlive: Bool
}

/// One keep-alive HTTP/1.1 connection to a backend endpoint, carrying one request at a time.
///
/// The `Channel` owns the socket; this object is a thin handle the pool keeps while the connection is idle.
/// All pipeline work happens on the channel's event loop; the handle itself only holds immutable fields.
final class HTTPBackendConnection: Sendable {
    let channel: any Channel
    /// Kept idle in its event loop's own list (the loop-native path), not in the shared one.
    let pinned: Bool
    private let handler: NIOLoopBound<HTTPBackendClientHandler>

    init(channel: any Channel, handler: HTTPBackendClientHandler, pinned: Bool) {
        self.channel = channel
        self.pinned = pinned
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    var isActive: Bool { channel.isActive }

    /// Sends one request and completes with the backend's full response (bounded by `maxResponseBytes`).
    func execute(
        head: HTTPRequestHead,
        body: ByteBuffer,
        maxResponseBytes: Int
    ) -> EventLoopFuture<HTTPBackendResponse> {
        let promise = channel.eventLoop.makePromise(of: HTTPBackendResponse.self)
        let handler = self.handler
        let channel = self.channel
        let send: @Sendable () -> Void = {
            handler.value.start(promise: promise, maxResponseBytes: maxResponseBytes)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { error in
                handler.value.fail(error)
            }
        }
        // On the connection's own loop (the per-loop idle lists' case) the request goes out now, no hop.
        if channel.eventLoop.inEventLoop { send() } else { channel.eventLoop.execute(send) }
        return promise.futureResult
    }

    /// Sends one request whose answer is read as a stream: the connection stops reading on its own
    /// (`autoRead` off) and reads only when `pull` finds nothing decoded yet, so a slow consumer leaves the
    /// backend's bytes in the kernel buffers and TCP flow control slows the backend down.
    func startStreaming(head: HTTPRequestHead, body: ByteBuffer, maxResponseBytes: Int, maxEventBytes: Int) {
        let handler = self.handler
        let channel = self.channel
        channel.eventLoop.execute {
            try? channel.syncOptions?.setOption(.autoRead, value: false)
            handler.value.startStreaming(maxResponseBytes: maxResponseBytes, maxEventBytes: maxEventBytes)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { error in
                handler.value.fail(error)
            }
        }
    }

    /// The next item of a streamed answer; nil once the response ended. Must not overlap another `pull`.
    func pull() -> EventLoopFuture<HTTPBackendStreamItem?> {
        let handler = self.handler
        let channel = self.channel
        return channel.eventLoop.flatSubmit {
            handler.value.pull(channel: channel)
        }
    }

    /// After a streamed answer: true (and the connection is ready for the pool again) when the response has
    /// fully arrived on a keep-alive connection; false when it must be closed instead.
    func finishStreaming() -> EventLoopFuture<Bool> {
        let handler = self.handler
        let channel = self.channel
        return channel.eventLoop.submit {
            guard handler.value.finishStreaming(), channel.isActive else { return false }
            try? channel.syncOptions?.setOption(.autoRead, value: true)
            return true
        }
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// One piece of a streamed backend answer.
enum HTTPBackendStreamItem: Sendable {
    /// One Server-Sent Event, not yet interpreted.
    case event(name: String, data: ByteBuffer)
    /// The backend answered without SSE (an error status, or a plain JSON result): the whole response.
    case response(HTTPBackendResponse)
}

/// Collects one response at a time from a backend connection and completes the waiting promise.
///
/// A response that is too large, a decoder error, or the connection closing mid-response fails the promise;
/// the pool then drops the connection instead of reusing it.
final class HTTPBackendClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    enum Failure: Error {
        case closedBeforeResponse
        case responseTooLarge(Int)
    }

    private var promise: EventLoopPromise<HTTPBackendResponse>?
    private var response: HTTPBackendResponse?
    private var maxResponseBytes = 0
    /// Set while a streamed answer is being read.
    private var stream: HTTPBackendSSEReader?

    func start(promise: EventLoopPromise<HTTPBackendResponse>, maxResponseBytes: Int) {
        precondition(self.promise == nil, "one request at a time per backend connection")
        self.promise = promise
        self.maxResponseBytes = maxResponseBytes
        self.response = nil
    }

    func fail(_ error: any Error) {
        let promise = self.promise
        self.promise = nil
        self.response = nil
        promise?.fail(error)
        stream?.fail(error)
    }

    func startStreaming(maxResponseBytes: Int, maxEventBytes: Int) {
        precondition(promise == nil && stream == nil, "one request at a time per backend connection")
        stream = HTTPBackendSSEReader(maxResponseBytes: maxResponseBytes, maxEventBytes: maxEventBytes)
    }

    func pull(channel: any Channel) -> EventLoopFuture<HTTPBackendStreamItem?> {
        guard let stream else {
            return channel.eventLoop.makeFailedFuture(Failure.closedBeforeResponse)
        }
        let promise = channel.eventLoop.makePromise(of: HTTPBackendStreamItem?.self)
        if stream.pull(promise) { channel.read() }
        return promise.futureResult
    }

    /// Ends streaming mode; true when the whole response was read and the connection may be reused.
    func finishStreaming() -> Bool {
        defer { stream = nil }
        return stream?.reusable ?? false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let stream {
            do {
                try stream.receive(unwrapInboundIn(data))
            } catch {
                stream.fail(error)
                context.close(promise: nil)
            }
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            response = HTTPBackendResponse(
                status: Int(head.status.code),
                contentType: head.headers.first(name: "content-type"),
                body: context.channel.allocator.buffer(capacity: 0),
                keepAlive: head.isKeepAlive
            )
        case .body(var chunk):
            guard response != nil else { return }
            if response!.body.readableBytes + chunk.readableBytes > maxResponseBytes {
                fail(Failure.responseTooLarge(maxResponseBytes))
                context.close(promise: nil)
                return
            }
            if response!.body.readableBytes == 0 {
                response!.body = chunk
            } else {
                response!.body.writeBuffer(&chunk)
            }
        case .end:
            guard let response, let promise else { return }
            self.promise = nil
            self.response = nil
            promise.succeed(response)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The bytes read so far did not finish an event the consumer is waiting for: read on.
        if let stream, stream.wantsMore { context.read() }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(Failure.closedBeforeResponse)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTPBackendClientHandler: Sendable {}
