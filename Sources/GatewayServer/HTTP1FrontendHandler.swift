import Logging
import NIOCore
import NIOHTTP1
import Observability
import TriggerDispatch
import TriggerModel
import WireCodecs

/// Serves REST over HTTP/1.1 keep-alive on one connection: reads a request, runs it, writes the answer.
///
/// `HTTPServerPipelineHandler` sits in front and hands over one request at a time, so this handler has a
/// single request in flight. A sync trigger's backend call and a stream's relay run on this connection's event
/// loop; async-mode work (operations) runs in a `Task` whose outcome comes back to the loop. A connection
/// that closes first cancels the call, relay or task (and with it the backend's run).
final class HTTP1FrontendHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        /// Reading a request body (into `collector`, for `bodyUse`).
        case collecting(keepAlive: Bool)
        /// An answer was (or is being) sent early; the rest of this request's body is ignored.
        case discarding(keepAlive: Bool)
        /// The answer is computed in a task (async mode, operation reads).
        case running(Task<Void, Never>)
        /// A sync trigger runs on this loop (no task: DESIGN.md "Threading model").
        case calling(TriggerCancellation)
        /// Streaming SSE to the client.
        case streaming(EventRelay)
        case closed
    }

    /// The services of the request in progress: refreshed from `currentServices` when a request head
    /// arrives, so a reload applies from the next request on.
    private var services: FrontendServices
    private var servicesGeneration: Int
    private let currentServices: CurrentFrontendServices
    private var state = State.idle
    /// The id of the request in progress, for an answer the handler writes on its own (grace expiry).
    private var currentRequestID = ""
    /// The record of the request in progress, from its head until its exchange ends (`finishRequest`).
    private var open: OpenRequest?
    /// The runner request started while a large JSON or multipart body arrives (issue 12), from the head to the
    /// body's end.
    private var relay: HTTP1BodyRelay?
    /// While `collecting`: the body so far, and what it is for. Kept out of `State` so that each chunk grows
    /// the collector in place: a state payload is copied out and back (the plan's references retained and
    /// released, ~5 000 instructions a request, issue 11).
    private var collector: RESTBodyCollector?
    private var bodyUse: RESTBodyUse?

    /// Whether the connection runs over TLS (the scheme of absolute URLs handed back to clients).
    private let secure: Bool

    /// The principal the connection's verified client certificate names (see `ListenerTLS.clientPrincipal`).
    private let clientPrincipal: String?

    /// Where ``HTTP1ServerCodec`` says exactly why a request could not be decoded (nil behind NIO's decoder).
    private let decodingFailure: HTTP1ServerCodec.FailureNote?

    init(
        services current: CurrentFrontendServices, secure: Bool = false, clientPrincipal: String? = nil,
        decodingFailure: HTTP1ServerCodec.FailureNote? = nil
    ) {
        self.secure = secure
        self.decodingFailure = decodingFailure
        self.currentServices = current
        self.servicesGeneration = current.generation
        self.clientPrincipal = clientPrincipal
        self.services = current.value(clientPrincipal: clientPrincipal)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receivedHead(head, context: context)
        case .body(let chunk):
            receivedBody(chunk, context: context)
        case .end:
            receivedEnd(context: context)
        }
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        currentServices.refresh(&services, generation: &servicesGeneration, clientPrincipal: clientPrincipal)
        let requestID = RequestContext.requestID(head.headers.first(name: "request-id"))
        currentRequestID = requestID
        open = FrontendServices.openRequest(
            observers: services.requestObservers, clock: services.clock, requestID: requestID, frontend: .rest,
            httpVersion: "HTTP/1.1", method: head.method.rawValue, path: Self.pathOnly(head.uri))
        let target: String
        switch HTTP1RequestRules.check(head) {
        case .serve(let originForm):
            target = originForm
        case .reject(let error, let close):
            var response = RESTErrorFormat(path: head.uri).response(error, requestID: requestID)
            response.omitsBody = head.method == .HEAD
            state = .discarding(keepAlive: head.isKeepAlive && !close)
            write(response, keepAlive: head.isKeepAlive && !close, context: context)
            return
        }
        var restHead = RESTRequestHead(
            method: head.method.rawValue,
            target: target,
            headers: head.headers.map { (name: Self.lowercased($0.name), value: $0.value) }
        )
        if secure { restHead.scheme = "https" }
        let arrival = open!.start
        switch restHead.start(services: services, requestID: requestID, record: &open!.record, arrival: arrival) {
        case .respond(let response, let close):
            state = .discarding(keepAlive: head.isKeepAlive && !close)
            write(response, keepAlive: head.isKeepAlive && !close, context: context)
        case .run(let work):
            startWork(work.run, keepAlive: head.isKeepAlive, context: context)
        case .readBody(var collector, let use):
            state = .collecting(keepAlive: head.isKeepAlive)
            // The relay's own first test, made here so that a small body's request does not copy the services
            // and the plan into a relay that declines at once.
            if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }),
                length >= HTTP1BodyRelay.minimumBytes
            {
                relay = HTTP1BodyRelay(
                    use: use, collector: collector, headers: head.headers,
                    services: services, channel: context.channel)
                if let relay, collector.decodesMultipartBatch { collector.observeFileParts(relay) }
            }
            self.collector = collector
            self.bodyUse = use
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                // curl asks before sending bodies over 1 MiB and otherwise waits a full second.
                let interim = HTTPResponseHead(version: head.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
            }
        }
    }

    private func receivedBody(_ chunk: ByteBuffer, context: ChannelHandlerContext) {
        guard case .collecting = state, collector != nil else { return }
        open?.record.bytesIn += chunk.readableBytes
        do {
            try collector!.append(chunk)
            relay?.received(chunk)
        } catch {
            relay?.abort()
            relay = nil
            let use = takeBody().use
            // The rest of the body would still be on its way; closing is the only way not to read it.
            state = .discarding(keepAlive: false)
            write(use.errorResponse(gatewayError(from: error)), keepAlive: false, context: context)
        }
    }

    /// The collector and the body's use, moved out of the handler (no copy): the body ended or failed.
    private func takeBody() -> (collector: RESTBodyCollector, use: RESTBodyUse) {
        var collector: RESTBodyCollector? = nil
        var use: RESTBodyUse? = nil
        swap(&collector, &self.collector)
        swap(&use, &bodyUse)
        return (collector!, use!)
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch state {
        case .discarding(let keepAlive):
            state = keepAlive ? .idle : .closed
        case .collecting(let keepAlive):
            state = .idle
            var (collector, use) = takeBody()
            let relay = self.relay
            self.relay = nil
            // Where the body was gathered: the relayed blob must be a slice of it (see `HTTP1BodyRelay.finish`).
            let gatheredAddress = relay?.isRelaying == true ? collector.gatheredStorageAddress : nil
            collector.checkedAlphabet = relay?.checkedBase64(gatheredAddress: gatheredAddress)
            let body: RESTBody
            do {
                body = try collector.finishBody()
            } catch {
                relay?.abort()
                state = keepAlive ? .idle : .closed
                write(use.errorResponse(gatewayError(from: error)), keepAlive: keepAlive, context: context)
                return
            }
            let plan: RESTTriggerPlan
            let inputs: [TriggerInput]
            switch (use, body) {
            case (.trigger(let triggerPlan), .inputs(let batch)):
                (plan, inputs) = (triggerPlan, batch)
            case (.work(let work), _):
                startWork({ await work.run(body) }, keepAlive: keepAlive, context: context)
                return
            case (.trigger, .bytes), (.trigger, .parts):
                // A trigger's collector is never `raw` (see `RESTRequestHead.route`).
                preconditionFailure("a trigger body was collected raw")
            }
            let request = plan.makeRequest(inputs: inputs)
            if let relay,
                case .relayed(let call, let cancellation) = relay.finish(request, gatheredAddress: gatheredAddress)
            {
                awaitSync(call, cancellation: cancellation, request: request, keepAlive: keepAlive, context: context)
                return
            }
            if plan.mode == .stream {
                startStream(request, target: plan.target, keepAlive: keepAlive, context: context)
            } else {
                startSync(request, target: plan.target, keepAlive: keepAlive, context: context)
            }
        default:
            break
        }
    }

    private func startSync(
        _ request: TriggerRequest, target: TriggerDispatcher.Target?, keepAlive: Bool, context: ChannelHandlerContext
    ) {
        guard request.mode == .sync else {
            let services = self.services
            startWork({ await RESTOperations.run(request, services: services) }, keepAlive: keepAlive, context: context)
            return
        }
        let cancellation = TriggerCancellation()
        // Set before the call: a missing route is reported at once, inside `runSync`.
        state = .calling(cancellation)
        // Only the id is captured: the whole request in the callback's context would be copied (its strings
        // retained, its inputs kept alive) until the answer.
        let requestID = request.requestID
        // The completion form (no future: ~1 300 instructions and an allocation less per call, issue 11); it
        // is reported on this loop.
        services.dispatcher.runSync(request, target: target, on: context.eventLoop, cancellation: cancellation) {
            result in
            self.answerSync(
                result, cancellation: cancellation, requestID: requestID, keepAlive: keepAlive, context: context)
        }
    }

    /// Answers with the outcome of a sync call under way (`call`, cancelled through `cancellation`): the
    /// streaming relay's call, started while the body was arriving.
    private func awaitSync(
        _ call: EventLoopFuture<TriggerResult>, cancellation: TriggerCancellation, request: TriggerRequest,
        keepAlive: Bool, context: ChannelHandlerContext
    ) {
        state = .calling(cancellation)
        let requestID = request.requestID
        call.assumeIsolated()
            .whenComplete { result in
                self.answerSync(
                    result, cancellation: cancellation, requestID: requestID, keepAlive: keepAlive, context: context)
            }
    }

    /// Writes a sync call's outcome, unless the connection closed meanwhile (or the grace ran out).
    private func answerSync(
        _ result: Result<TriggerResult, any Error>, cancellation: TriggerCancellation, requestID: String,
        keepAlive: Bool, context: ChannelHandlerContext
    ) {
        guard case .calling(let current) = state, current === cancellation else { return }
        open?.record.endpoint = cancellation.endpoint
        let outcome = result.mapError { gatewayError(from: $0, requestID: requestID) }
        if case .failure(let error) = outcome { services.logFailure(error, of: open?.record) }
        finished(RESTOperations.response(to: outcome, requestID: requestID), keepAlive: keepAlive, context: context)
    }

    /// Computes a response off the loop (a backend call, an operation read) and writes it when done.
    private func startWork(
        _ work: @escaping @Sendable () async -> RESTResponse,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let task = Task {
            let response = await work()
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.finished(response, keepAlive: keepAlive, context: context)
            }
        }
        state = .running(task)
    }

    private func finished(_ response: RESTResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        switch state {
        case .running, .calling: break
        default: return  // the connection closed meanwhile
        }
        state = keepAlive ? .idle : .closed
        write(response, keepAlive: keepAlive, context: context)
    }

    /// SSE (API.md §2): one `event:`/`data:` block per backend event, flushed as it arrives. The next event
    /// is taken from the backend only once the previous one has been written to the socket, so a slow reader
    /// slows the relay (and, through the pull-based transports, the backend) instead of growing memory.
    ///
    /// The `200` head waits for the stream's first event (`EventRelay`'s `begin`): an error before it (unknown
    /// pipeline, backend down, the idle timeout) is answered as in sync mode, a JSON error with its status.
    ///
    /// A stream has no total deadline (the request timeout would cut long healthy streams); a backend that is
    /// silent for the idle timeout ends it with an error event instead.
    private func startStream(
        _ request: TriggerRequest, target: TriggerDispatcher.Target?, keepAlive: Bool, context: ChannelHandlerContext
    ) {
        let source: any TriggerEventSource
        do {
            source = try services.dispatcher.openStream(request, target: target, on: context.eventLoop)
        } catch {
            write(
                .error(gatewayError(from: error), requestID: request.requestID), keepAlive: keepAlive, context: context)
            return
        }
        let channel = context.channel
        let relay = EventRelay(
            source: source,
            eventLoop: context.eventLoop,
            idleTimeout: services.idleTimeout,
            begin: { [unowned self] in
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "text/event-stream")
                headers.add(name: "cache-control", value: "no-cache")
                headers.add(name: "request-id", value: request.requestID)
                if !keepAlive { headers.add(name: "connection", value: "close") }
                let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
                // Not flushed: the first event follows at once and leaves in the same write.
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                open?.sentHead = true
            },
            deliver: { [unowned self] event in
                var encoded = channel.allocator.buffer(capacity: 256)
                SSEEncoder.encode(event, into: &encoded)
                return writeEvent(encoded, context: context)
            },
            finish: { [unowned self] error in
                guard case .streaming(let relay) = state else { return }
                open?.record.endpoint = source.endpoint
                if let error { services.logFailure(error, of: open?.record) }
                state = keepAlive ? .idle : .closed
                guard relay.began else {
                    // Nothing was sent: the error is the whole answer, as in sync mode.
                    let error = error ?? GatewayError(.internalError, "the stream ended before it began")
                    write(.error(error, requestID: request.requestID), keepAlive: keepAlive, context: context)
                    return
                }
                if let error {
                    var encoded = channel.allocator.buffer(capacity: 256)
                    SSEEncoder.encode(.error(error), into: &encoded)
                    open?.record.bytesOut += encoded.readableBytes
                    context.write(wrapOutboundOut(.body(.byteBuffer(encoded))), promise: nil)
                }
                let promise = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
                finishRequest()
                if !keepAlive { promise.futureResult.whenComplete { _ in channel.close(promise: nil) } }
            }
        )
        state = .streaming(relay)
        relay.start()
    }

    /// Writes one SSE event. A client that has not taken it within the write-progress timeout (it stopped
    /// reading) is disconnected, which ends the stream and cancels the backend call (issue 10, item 4).
    private func writeEvent(_ buffer: ByteBuffer, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        open?.record.bytesOut += buffer.readableBytes
        let written = context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))))
        let channel = context.channel
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: services.slowClients.writeProgressTimeout) {
            // The gateway's decision, not the client leaving: the record says `SI`, not `DC`.
            handler.value.open?.record.termination = .streamIdleTimeout
            channel.close(promise: nil)
        }
        written.whenComplete { _ in timer.cancel() }
        return written
    }

    private func write(_ response: RESTResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        // One array of the final size, handed to `HTTPHeaders` as it is (its `add` checks each name again).
        var fields: [(String, String)] = []
        fields.reserveCapacity(response.headers.count + 2)
        for field in response.headers { fields.append((field.name, field.value)) }
        fields.append(("content-length", String(response.body.readableBytes)))
        if !keepAlive { fields.append(("connection", "close")) }
        let head = HTTPResponseHead(
            version: .http1_1,
            status: HTTPResponseStatus(statusCode: response.status),
            headers: HTTPHeaders(fields)
        )
        // The record takes what is sent, and leaves `open`, before the answer is written: the flush can close the
        // connection before it returns (NIO's pipeline handler closes a draining connection after its last
        // response), and that close must not find the request unanswered (it recorded 499, 0 bytes, and a
        // downstream disconnect for a request that got its 200 or 503; found by review, at shutdown).
        if open != nil {
            open!.record.status = response.status
            if let naming = response.naming { open!.record.name(naming) }
            open!.record.bytesOut += response.omitsBody ? 0 : response.body.readableBytes
            open!.sentHead = true
        }
        var answered: OpenRequest? = nil
        swap(&answered, &open)  // moved out, not copied: the record holds a dozen strings
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if response.body.readableBytes > 0 && !response.omitsBody {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        // A promise (a future, its callbacks) only when something waits for the write: the close after it.
        let promise = keepAlive ? nil : context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        if let answered {
            FrontendServices.finish(answered, observers: services.requestObservers, clock: services.clock)
        }
        if let promise {
            let channel = context.channel
            promise.futureResult.whenComplete { _ in Self.lingeringClose(channel) }
        }
    }

    /// The request's exchange is over (its last byte queued, or the client gone): its record goes to the
    /// observers, once.
    private func finishRequest() {
        var request: OpenRequest? = nil
        swap(&request, &open)
        guard let request else { return }
        FrontendServices.finish(request, observers: services.requestObservers, clock: services.clock)
    }

    /// The client went away (or the connection was cut) with the request unanswered or its stream open: a
    /// response head already sent keeps its status, otherwise the record says 499 (`clientClosedRequest`);
    /// either way the record is flagged with who ended it: Envoy's `DC` (the client), unless the gateway cut
    /// a client that stopped reading (`SI`, set by the write-progress timer).
    private func abandonRequest() {
        guard open != nil else { return }
        if !open!.sentHead { open!.record.status = RequestRecord.clientClosedRequest }
        if open!.record.termination == nil { open!.record.termination = .downstreamDisconnected }
        finishRequest()
    }

    /// A request target's path: the target itself (no copy) unless it has a query.
    static func pathOnly(_ target: String) -> String {
        guard let query = RESTPath.queryStart(of: target) else { return target }
        return String(target[..<query])
    }

    /// Closes our side first and lets the client's unread body drain for a moment before closing fully:
    /// closing a socket with unread input makes the kernel send RST, and a client still uploading would
    /// lose the error response we just wrote (the reason nginx has `lingering_close`).
    private static func lingeringClose(_ channel: any Channel) {
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        defer { abandonRequest() }
        relay?.abort()
        relay = nil
        collector = nil
        bodyUse = nil
        switch state {
        case .running(let task):
            task.cancel()  // the client is gone: stop the backend call
        case .streaming(let relay):
            state = .closed
            open?.record.endpoint = relay.endpoint
            relay.cancel()
        case .calling(let call):
            // Closed first: a call that completes inside `cancel()` then writes nothing.
            state = .closed
            open?.record.endpoint = call.endpoint
            call.cancel()
        default:
            break
        }
        state = .closed
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ShutdownGraceExpiredEvent {
            shutdownGraceExpired(context: context)
            return
        }
        if let timedOut = event as? HTTP1RequestTimedOutEvent {
            // The timeout handler in front answered 408 on its own: that is this request's end, and the
            // connection's (it closes once the 408 is written). Nothing read after it is served or answered: the
            // rest of a head or body arriving late, or bytes the decoder fails on.
            state = .closed
            relay?.abort()
            relay = nil
            collector = nil
            bodyUse = nil
            if open == nil {
                open = services.openRequest(
                    requestID: timedOut.requestID, frontend: .rest, httpVersion: "HTTP/1.1", method: "", path: "")
            }
            open!.record.status = timedOut.status
            open!.record.bytesOut += timedOut.bodyBytes
            finishRequest()
            return
        }
        if event is IdleStateHandler.IdleStateEvent, case .idle = state {
            // Keep-alive connection with nothing in flight for the idle timeout: reclaim it.
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The grace period ran out with this request unfinished: its client gets an answer in HTTP before the
    /// socket closes (DESIGN.md "Configuration and running"): 503 with `Retry-After` and `Connection:
    /// close` when nothing was sent yet, an SSE `error` event and the terminating chunk mid-stream.
    private func shutdownGraceExpired(context: ChannelHandlerContext) {
        let error = GatewayError(.unavailable, "the gateway is shutting down; retry the request")
        let requestID: String
        switch state {
        case .streaming(let relay) where relay.began:
            state = .closed
            relay.cancel()
            var encoded = context.channel.allocator.buffer(capacity: 128)
            SSEEncoder.encode(.error(error), into: &encoded)
            open?.record.bytesOut += encoded.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(encoded))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            finishRequest()
            return
        case .streaming(let relay):
            // Not begun: nothing was sent, so the 503 below is the answer.
            state = .closed
            relay.cancel()
            requestID = currentRequestID
        case .running(let task):
            task.cancel()
            requestID = currentRequestID
        case .calling(let call):
            // Closed first: a call that completes inside `cancel()` then writes nothing; the 503 below is the answer.
            state = .closed
            call.cancel()
            requestID = currentRequestID
        case .collecting:
            relay?.abort()
            relay = nil
            requestID = bodyUse?.requestID ?? currentRequestID
            collector = nil
            bodyUse = nil
        case .idle, .discarding, .closed:
            context.close(promise: nil)
            return
        }
        state = .closed
        let format = RESTErrorFormat(path: open?.record.path ?? "")
        write(format.response(error, requestID: requestID), keepAlive: false, context: context)
    }

    /// A field name in lowercase, without a new string when it already is (most clients send lowercase).
    private static func lowercased(_ name: String) -> String {
        // A plain loop over the bytes (`utf8.contains(where:)` cost ~400 instructions per field, per request).
        var name = name
        let hasUppercase = name.withUTF8 { bytes in
            for byte in bytes where byte &- UInt8(ascii: "A") < 26 { return true }
            return false
        }
        return hasUppercase ? name.lowercased() : name
    }

    /// llhttp's reason in words (`.invalidMethod` → "invalid method"): what was wrong, without the parser's
    /// type or case name.
    static func words(for error: HTTPParserError) -> String {
        switch error {
        case .invalidCharactersUsed: "invalid characters"
        case .trailingGarbage: "bytes after the message"
        case .invalidEOFState: "the connection ended inside a message"
        case .headerOverflow: "headers too large"
        case .closedConnection: "data after Connection: close"
        case .invalidVersion: "invalid HTTP version"
        case .invalidStatus: "invalid status"
        case .invalidMethod: "invalid method"
        case .invalidURL, .invalidHost, .invalidPort, .invalidPath, .invalidQueryString, .invalidFragment:
            "invalid request target"
        case .lfExpected: "a line must end with CRLF"
        case .invalidHeaderToken: "invalid header field"
        case .invalidContentLength: "invalid Content-Length"
        case .unexpectedContentLength: "Content-Length where none may be"
        case .invalidChunkSize: "invalid chunk size"
        case .invalidConstant: "invalid protocol constant"
        default: "not a valid request"
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Parser errors (malformed request line, headers over llhttp's own cap): answer in JSON and close;
        // this connection's stream of bytes can no longer be trusted.
        if error is HTTPParserError, case .discarding(keepAlive: false) = state {
            // The head was answered already (e.g. a Transfer-Encoding we refuse, which llhttp also fails on
            // right after the head) and a lingering close is under way: closing now could lose that answer.
            return
        }
        if error is HTTPParserError, case .closed = state {
            // A response already ended the connection (the request timeout's 408, a 503 at the grace's end) and
            // its close is under way: bytes decoded after it get no second answer, and closing now could cut
            // the first one short.
            return
        }
        if let parserError = error as? HTTPParserError, case .idle = state {
            let gatewayError: GatewayError
            switch decodingFailure?.failure {
            case .some(.headTooLarge), .some(.tooManyFields):
                gatewayError = GatewayError(.headersTooLarge, "request headers exceed the parser's limit")
            case .some(let failure) where failure.status == 501:
                gatewayError = GatewayError(.unimplemented, "malformed HTTP/1.1 request: \(failure.words)")
            case .some(let failure):
                gatewayError = GatewayError(.invalidArgument, "malformed HTTP/1.1 request: \(failure.words)")
            case .none:
                gatewayError =
                    parserError == .headerOverflow
                    ? GatewayError(.headersTooLarge, "request headers exceed the parser's limit")
                    : GatewayError(.invalidArgument, "malformed HTTP/1.1 request: \(Self.words(for: parserError))")
            }
            state = .closed
            let requestID = RequestID.make()
            // No head was parsed: method and path are unknown.
            open = services.openRequest(
                requestID: requestID, frontend: .rest, httpVersion: "HTTP/1.1", method: "", path: "")
            write(.error(gatewayError, requestID: requestID), keepAlive: false, context: context)
            return
        }
        if let parserError = error as? HTTPParserError, case .collecting = state, collector != nil {
            // Bad body framing (a chunk size that is not hex or overflows, a chunk without its CRLF): the head
            // was taken, nothing answered yet. Answer 400 in the path's error shape, as a body over the limit
            // is, and close; a relayed runner request is cut mid-body so the runner never takes it as whole.
            relay?.abort()
            relay = nil
            let use = takeBody().use
            state = .discarding(keepAlive: false)
            let words = decodingFailure?.failure?.words ?? Self.words(for: parserError)
            let gatewayError = GatewayError(.invalidArgument, "malformed HTTP/1.1 request body: \(words)")
            write(use.errorResponse(gatewayError), keepAlive: false, context: context)
            return
        }
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTP1FrontendHandler: Sendable {}
