import NIOCore
import TriggerModel
import WireCodecs

/// The answer of an HTTP backend to one `POST /run`, before it is decoded.
///
/// No content type: the body is read as JSON whatever its label (API.md §5), and taking the label made a string
/// per call that nothing read (~270 instructions, issue 11); the stream reader reads the field itself, to tell an
/// event stream from a whole answer.
struct HTTPBackendResponse: Sendable {
    var status: Int
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
    /// Whether a call uses it, flipped by the pool as it takes and returns it, and by the connection budget
    /// when it evicts it idle (``BackendConnectionBudget``).
    let use: BackendConnectionUse
    private let handler: NIOLoopBound<HTTPBackendClientHandler>

    init(channel: any Channel, handler: HTTPBackendClientHandler, pinned: Bool, use: BackendConnectionUse) {
        self.channel = channel
        self.pinned = pinned
        self.use = use
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    var isActive: Bool { channel.isActive }

    /// Sends one request and completes with the backend's full response (bounded by `maxResponseBytes`).
    func execute(
        head: ByteBuffer,
        body: StreamedJSONBody,
        maxResponseBytes: Int
    ) -> EventLoopFuture<HTTPBackendResponse> {
        let promise = channel.eventLoop.makePromise(of: HTTPBackendResponse.self)
        execute(head: head, body: body, maxResponseBytes: maxResponseBytes) { promise.completeWith($0) }
        return promise.futureResult
    }

    /// The same reporting the response (or the failure) to `answer`, once, on the connection's loop: no promise,
    /// for a caller with a completion of its own (the transport's `UnaryRun`, issue 11: a future and its
    /// callback per call less).
    func execute(
        head: ByteBuffer,
        body: StreamedJSONBody,
        maxResponseBytes: Int,
        answer: @escaping @Sendable (Result<HTTPBackendResponse, any Error>) -> Void
    ) {
        let handler = self.handler
        // On the connection's own loop (the per-loop idle lists' case) the request goes out now: no hop, and no
        // closure (a context allocated per call when one closure served both branches).
        if channel.eventLoop.inEventLoop {
            handler.value.start(answer: answer, maxResponseBytes: maxResponseBytes)
            handler.value.send(head: head, body: body)
        } else {
            channel.eventLoop.execute {
                handler.value.start(answer: answer, maxResponseBytes: maxResponseBytes)
                handler.value.send(head: head, body: body)
            }
        }
    }

    /// Sends one request whose answer is read as a stream: the connection stops reading on its own
    /// (`autoRead` off) and reads only when `pull` finds nothing decoded yet, so a slow consumer leaves the
    /// backend's bytes in the kernel buffers and TCP flow control slows the backend down.
    ///
    /// Succeeds once the request head was handed to the channel (the runner may then run the call); fails with
    /// ``HTTPBackendClientHandler/Failure/closedBeforeSend`` when the connection had closed before anything was
    /// written, which the caller may retry elsewhere (``HTTPBackendTransport/tryFailure(_:pool:endpoint:)``).
    func startStreaming(
        head: ByteBuffer, body: StreamedJSONBody, maxResponseBytes: Int, maxEventBytes: Int,
        progress: StreamProgress? = nil
    ) -> EventLoopFuture<Void> {
        let handler = self.handler
        let channel = self.channel
        return channel.eventLoop.submit {
            try? channel.syncOptions?.setOption(.autoRead, value: false)
            handler.value.startStreaming(
                maxResponseBytes: maxResponseBytes, maxEventBytes: maxEventBytes, progress: progress)
            guard handler.value.send(head: head, body: body) else {
                throw HTTPBackendClientHandler.Failure.closedBeforeSend
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

    /// ``pull()`` for a caller on the connection's own loop (``HTTPBackendStreamSource``): no task, no promise;
    /// `receiver` is told inside this call when a decoded event was waiting.
    func pullOnLoop(to receiver: any HTTPBackendStreamReceiver) {
        channel.eventLoop.assertInEventLoop()
        handler.value.pull(to: receiver, channel: channel)
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

/// Sends one request at a time on a backend connection, collects its response and completes the waiting
/// call. The connection's bytes are its own HTTP/1.1 client codec: request heads written whole
/// (`HTTP1RequestHeadWriter`), responses read by ``HTTP1ResponseDecoder`` from the bytes as they arrive (issue
/// 11: NIO's codec cost ~7 000 instructions a call in `NIOAny` casts and generic-metadata lookups alone).
///
/// The request body is written as the socket takes it (issue 12): chunks of `StreamedJSONBody` (a blob's
/// base64 is produced `chunkBytes` at a time) go out while the channel is writable and the rest waits for
/// `channelWritabilityChanged`, so a large body costs one chunk of memory beyond its blob, not its whole
/// encoding.
///
/// A response that is too large, a decoder error, or the connection closing mid-response fails the call;
/// the pool then drops the connection instead of reusing it. So is a connection whose backend answered
/// before the whole request body was sent.
final class HTTPBackendClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Bytes of body per write: large enough to keep syscalls few, small enough to stay in cache between
    /// being encoded and being copied into the socket.
    static let chunkBytes = 256 << 10

    enum Failure: Error {
        case closedBeforeResponse
        /// The connection had closed before the request could be written: the backend saw nothing of it.
        case closedBeforeSend
        case responseTooLarge(Int)
        /// Bytes that are no answer to a request: sent while none was outstanding, or after a response on the
        /// same read.
        case unsolicitedBytes
    }

    /// Where the response in progress is reported, once; nil between requests.
    private var answer: (@Sendable (Result<HTTPBackendResponse, any Error>) -> Void)?
    /// The response being read; its body is gathered in `body` and set at its end.
    private var response: HTTPBackendResponse?
    private var body = BodyGatherer()
    private var maxResponseBytes = 0
    /// Set while a streamed answer is being read.
    private var stream: HTTPBackendSSEReader?
    /// The part of the request body not written yet.
    private var outbound: StreamedJSONBody?
    /// Set while `writeBody` runs: writability changes it causes itself are picked up by its own loop.
    private var writingBody = false
    private var context: ChannelHandlerContext?
    private var decoder = HTTP1ResponseDecoder()
    /// Bytes read and not yet decoded (a head or chunk line split across reads); nil when there are none.
    private var pending: ByteBuffer?
    /// Set once the backend's bytes could not be decoded (the connection is closing): nothing more is read.
    private var broken = false
    /// Bytes arrived after a streamed answer's end: the connection is not reused (``finishStreaming()``).
    private var bytesAfterStream = false
    /// This side closed the connection (``HTTPBackendConnection/close()``: the caller's deadline, a client gone, a
    /// probe's timeout): a body that ends with the connection did not end, it was cut (review 17, finding 1: an
    /// empty close-delimited body was read as the runner's answer, a protocol failure counted against the endpoint).
    private var closedHere = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes the request head (with a small body already in its buffer, `HTTPBackendTransport.requestParts`) and as
    /// much of `body` as the channel takes now; the rest follows as it
    /// becomes writable. False (and the call failed with ``Failure/closedBeforeSend``) when nothing was written.
    @discardableResult
    func send(head: ByteBuffer, body: StreamedJSONBody) -> Bool {
        // A pooled connection may have closed (its idle close, the runner's keep-alive close, or bytes it got while
        // idle) after it was taken and before this ran: a write would be dropped and the call would wait for its
        // deadline. Failed at once as never sent, which the transport retries like a refused connect (review 12,
        // diff review 6; streamed calls too since the sixteenth session).
        guard let context, context.channel.isActive, !broken else {
            fail(Failure.closedBeforeSend)
            return false
        }
        context.write(wrapOutboundOut(head), promise: nil)
        outbound = body
        writeBody(context: context)
        return true
    }

    private func writeBody(context: ChannelHandlerContext) {
        guard !writingBody else { return }
        writingBody = true
        defer { writingBody = false }
        // Only a relayed body ever waits (and needs a way to be woken).
        let whenReady: (@Sendable () -> Void)? = outbound?.isRelayed == true ? relayedBytesArrived(context) : nil
        while var body = outbound {
            var waiting = false
            chunks: while context.channel.isWritable {
                // A body that never waits takes the plain form: `whenReady ?? {}` made a closure and its
                // reabstraction thunk per call (2 allocations, issue 11).
                let next: StreamedJSONBody.Chunk
                if let whenReady {
                    next = body.next(maxBytes: Self.chunkBytes, whenReady: whenReady)
                } else if let bytes = body.next(maxBytes: Self.chunkBytes) {
                    next = .bytes(bytes)
                } else {
                    next = .end
                }
                switch next {
                case .bytes(let chunk):
                    context.write(wrapOutboundOut(chunk), promise: nil)
                case .end:
                    break chunks
                case .wait:
                    // A relayed body whose next bytes are still on their way from the client.
                    waiting = true
                    break chunks
                case .failed(let error):
                    // The relayed body was given up: the request is cut off mid-body, so the backend never
                    // sees a whole one, and the connection cannot carry another.
                    outbound = nil
                    context.flush()
                    fail(error)
                    context.close(promise: nil)
                    return
                }
            }
            if body.isFinished {
                outbound = nil
                // The body is framed by its Content-Length: nothing ends it but its last byte. No write
                // promise (a future and a callback per call): a write that fails closes the channel, and its
                // `channelInactive` fails the call.
                context.flush()
                return
            }
            outbound = body
            context.flush()
            if waiting { return }
            // A flush that emptied the socket's queue made the channel writable again: go on here.
            guard context.channel.isWritable else { return }
        }
    }

    /// What a relayed body calls (on the frontend's thread) when it has more bytes, or ended: the writing
    /// goes on on this connection's loop.
    private func relayedBytesArrived(_ context: ChannelHandlerContext) -> @Sendable () -> Void {
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let bound = NIOLoopBound(context, eventLoop: loop)
        return {
            let resume: @Sendable () -> Void = {
                let handler = handler.value
                if handler.outbound != nil, handler.context != nil { handler.writeBody(context: bound.value) }
            }
            if loop.inEventLoop { resume() } else { loop.execute(resume) }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, outbound != nil { writeBody(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// ``start(answer:maxResponseBytes:)`` completing `promise`.
    func start(promise: EventLoopPromise<HTTPBackendResponse>, maxResponseBytes: Int) {
        start(answer: { promise.completeWith($0) }, maxResponseBytes: maxResponseBytes)
    }

    func start(answer: @escaping @Sendable (Result<HTTPBackendResponse, any Error>) -> Void, maxResponseBytes: Int) {
        precondition(self.answer == nil, "one request at a time per backend connection")
        self.answer = answer
        self.maxResponseBytes = maxResponseBytes
        self.response = nil
    }

    func fail(_ error: any Error) {
        let answer = self.answer
        self.answer = nil
        self.response = nil
        self.body.restart(expectedLength: nil)
        self.outbound = nil
        answer?(.failure(error))
        stream?.fail(error)
    }

    func startStreaming(maxResponseBytes: Int, maxEventBytes: Int, progress: StreamProgress? = nil) {
        precondition(answer == nil && stream == nil, "one request at a time per backend connection")
        stream = HTTPBackendSSEReader(
            maxResponseBytes: maxResponseBytes, maxEventBytes: maxEventBytes, progress: progress)
    }

    func pull(channel: any Channel) -> EventLoopFuture<HTTPBackendStreamItem?> {
        guard let stream else {
            return channel.eventLoop.makeFailedFuture(Failure.closedBeforeResponse)
        }
        let promise = channel.eventLoop.makePromise(of: HTTPBackendStreamItem?.self)
        if stream.pull(promise) { channel.read() }
        return promise.futureResult
    }

    /// ``pull(channel:)`` told to `receiver` (``HTTPBackendConnection/pullOnLoop(to:)``).
    func pull(to receiver: any HTTPBackendStreamReceiver, channel: any Channel) {
        guard let stream else { return receiver.receive(.failure(Failure.closedBeforeResponse)) }
        if stream.pull(to: receiver) { channel.read() }
    }

    /// Ends streaming mode; true when the whole response was read and the connection may be reused: nothing
    /// followed it (no byte kept, the decoder between responses), as on the non-streamed path (`leftover`).
    /// Bytes after a streamed answer's end would be read as the start of the next request's answer (review 12,
    /// diff review 1: a stray head desynchronised the next call on the connection).
    func finishStreaming() -> Bool {
        defer {
            stream = nil
            outbound = nil
            bytesAfterStream = false
        }
        // A request body not sent whole leaves the connection mid-request.
        return outbound == nil && (stream?.reusable ?? false) && !bytesAfterStream && pending == nil
            && decoder.isBetweenResponses
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !broken else { return }
        guard answer != nil || stream != nil else {
            // Bytes on an idle connection answer nothing we asked (a server's 408 before its idle close, or
            // garbage): the connection is dropped rather than left to mix them into the next answer.
            broken = true
            context.close(promise: nil)
            return
        }
        var bytes = unwrapInboundIn(data)
        if var pending = self.pending.take() {
            pending.writeBuffer(&bytes)
            bytes = pending
        }
        decode(&bytes, context: context)
        if bytes.readableBytes > 0 {
            bytes.discardReadBytes()
            pending = bytes
        }
    }

    /// Hands every part decoded from `bytes` on: to the streamed answer's reader, or to the response being
    /// gathered.
    private func decode(_ bytes: inout ByteBuffer, context: ChannelHandlerContext) {
        do {
            while true {
                let part = try decoder.next(&bytes)
                if case .needMoreBytes = part { return }
                guard receive(part, context: context, leftover: bytes.readableBytes) else { return }
            }
        } catch {
            // The backend's bytes can no longer be framed: fail the call and drop the connection.
            broken = true
            bytes.clear()
            fail(error)
            context.close(promise: nil)
        }
    }

    /// One decoded part; false when the connection was closed and reading stops.
    private func receive(_ part: HTTP1ResponseDecoder.Part, context: ChannelHandlerContext, leftover: Int) -> Bool {
        if let stream {
            // After the answer's end nothing is the stream's: such bytes stay undecoded, and mark the connection.
            guard !stream.ended else {
                bytesAfterStream = true
                return false
            }
            do {
                try stream.receive(part)
            } catch {
                stream.fail(error)
                context.close(promise: nil)
                return false
            }
            if stream.ended, leftover > 0 { bytesAfterStream = true }
            return true
        }
        switch part {
        case .head(let head):
            guard answer != nil else {
                // An answer to nothing: the connection's bytes are not ours to read.
                fail(Failure.unsolicitedBytes)
                context.close(promise: nil)
                return false
            }
            response = HTTPBackendResponse(
                status: head.status,
                body: ByteBuffer(),
                keepAlive: head.keepAlive
            )
            body.restart(expectedLength: head.contentLength.map { min($0, maxResponseBytes) })
        case .body(let chunk):
            guard response != nil else { return true }
            if body.count + chunk.readableBytes > maxResponseBytes {
                fail(Failure.responseTooLarge(maxResponseBytes))
                context.close(promise: nil)
                return false
            }
            body.append(chunk)
        case .end:
            guard var response, let answer else { return true }
            self.answer = nil
            self.response = nil
            response.body = body.take()
            if outbound != nil || leftover > 0 {
                // Answered before the request body was all sent: the rest cannot follow on this connection.
                // Or bytes follow the response on the same read: nothing was asked for them.
                outbound = nil
                response.keepAlive = false
            }
            answer(.success(response))
        case .needMoreBytes:
            break  // never handed here: `decode` stops at it
        }
        return true
    }

    /// Where the response body gathered so far is stored (tests: gathering stays linear, see `BodyGatherer`).
    var gatheredStorageAddress: UInt? { body.storageAddress }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The bytes read so far did not finish an event the consumer is waiting for: read on.
        if let stream, stream.wantsMore { context.read() }
        context.fireChannelReadComplete()
    }

    /// Every close asked of the channel passes here (it starts at the pipeline's tail; this handler's own
    /// `context.close` after a decoding error does not, and needs no mark: that call has already failed).
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { closedHere = true }
        context.close(mode: mode, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A body that ends with the connection (no framing fields) ends here when the backend closed; anything
        // else begun, or any body when this side closed, is cut off.
        var bytes = pending.take() ?? ByteBuffer()
        if !broken, !closedHere {
            do {
                if let end = try decoder.finish(&bytes) { _ = receive(end, context: context, leftover: 0) }
            } catch {
                fail(error)
            }
        }
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
