import Logging
import NIOCore
import Observability
import TriggerDispatch
import TriggerModel
import WireCodecs

/// Serves REST over HTTP/1.1 keep-alive on one connection: the connection's one handler (behind TLS and the
/// read-idle timer), from the bytes read to the bytes written, as nghttpx's and Envoy's HTTP/1.1 codecs are one
/// connection object (issue 11, "one frontend layer").
///
/// The connection's part (`HTTP1FrontendHandler+Connection.swift`): decoding (``HTTP1RequestDecoder`` fed the
/// reads directly), one request at a time (a pipelined request's bytes are held, and reads stop, until the
/// answer before it is written, RFC 9112 §9.3.2), persistence (the decoder's decision, RFC 9112 §9.3, §6.1),
/// the request-header and body-progress timeouts (``HTTP1RequestTimeouts``), a graceful stop's drain, and the
/// answers' bytes (``HTTP1ResponseEncoder``). This file: the request's part, routing a head to its surface,
/// reading its body, running it, answering. A sync trigger's backend call and a stream's relay run on this
/// connection's event loop; async-mode work (operations) runs in a `Task` whose outcome comes back to the
/// loop. A connection that closes first cancels the call, relay or task (and with it the backend's run).
///
/// Why our own connection handler rather than NIO's HTTP/1 pipeline (`HTTPServerPipelineHandler` between our
/// codec, the timeout handler and this one): every part crossed three handlers as `NIOAny`, with an
/// `HTTPRequestHead` whose every field was a `String` in `HTTPHeaders`, copied again into the lowercased
/// `RESTRequestHead`. Measured with `bench/callgrind --only rest` (REST JSON, one call at a time; bench/README.md
/// "Branch h1conn"): 219 800 instructions and 70.0 allocations per call before, 190 600 and 64.0 after (−13 %);
/// the head is now built once from the decoder's field ranges and an answer is one buffer.
final class HTTP1FrontendHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
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

    // MARK: The request's state

    /// The services of the request in progress: refreshed from `currentServices` when a request head
    /// arrives, so a reload applies from the next request on. Held by reference: a stored
    /// `FrontendServices` was copied whole into each call that takes them. `services` reads a field; to pass the
    /// whole services to a call, lend them from the reference held in a local (`SharedFrontendServices`).
    private var sharedServices: SharedFrontendServices
    var services: FrontendServices {
        _read { yield sharedServices.value }
    }
    private var servicesGeneration: Int
    private let currentServices: CurrentFrontendServices
    var state = State.idle
    /// When the last answer's last byte was queued on a connection kept alive (``responseEnded(keepAlive:context:)``),
    /// on the services' clock: where `timeouts.idle` counts from when it is later than the last read.
    var lastAnswerEnded: NIODeadline?
    /// The id of the request in progress, for an answer the handler writes on its own (grace expiry).
    private var currentRequestID = ""
    /// Whether the request in progress is HTTP/1.0: its answers say `Connection: keep-alive` when the connection
    /// persists (RFC 9112 §9.3: persistence is opt-in there), and its streams are close-delimited, since
    /// `Transfer-Encoding` must not be sent to a request that is not HTTP/1.1 (RFC 9112 §6.1).
    private var requestIsHTTP10 = false
    /// The record of the request in progress, from its head until its exchange ends (`finishRequest`); `.none`
    /// between requests (not an Optional: see ``OpenRequest``).
    var open = OpenRequest.none
    /// The client's `host:port` (one string shared by the connection's records).
    let peer: String?
    /// The runner request started while a large JSON or multipart body arrives (issue 12), from the head to the
    /// body's end.
    var relay: HTTP1BodyRelay?
    /// While `collecting`: the body so far, and what it is for. Kept out of `State` so that each chunk grows
    /// the collector in place: a state payload is copied out and back (the plan's references retained and
    /// released, ~5 000 instructions a request, issue 11). `RESTBodyCollector.idle` and `.none` between
    /// requests, not Optionals: Swift 6.3 destroys and assigns an Optional of either (~110 and ~200 bytes)
    /// through the runtime's generic value witnesses, ~280 instructions each even when nil, seven per request;
    /// their own witnesses are called directly (branch hotpath4: −100 instructions per REST call net, since
    /// the payloads' copies remain).
    /// The head's route writes both in place (``RESTStart/readBody``).
    var collector = RESTBodyCollector.idle
    var bodyUse = PendingBodyUse.none
    /// The collector's bytes in the request-buffer budget: returned when the body is taken (``takeBody()``) or
    /// dropped, and by the handler's deinit at the latest.
    var bufferClaim = RequestBufferClaim()

    /// Whether the connection runs over TLS (the scheme of absolute URLs handed back to clients).
    private let secure: Bool

    /// The principal the connection's verified client certificate names (see `ListenerTLS.clientPrincipal`).
    private let clientPrincipal: String?

    // MARK: The connection's state (HTTP1FrontendHandler+Connection.swift)

    var decoder = HTTP1RequestDecoder()
    /// Bytes read and not yet decoded (nil when none: the next read is taken as it is, without a copy).
    var pending: ByteBuffer?
    /// Inside the decoding loop: an answer written from within it does not start a second loop.
    var decoding = false
    /// A request's head was decoded and its end has not been.
    var requestOpen = false
    /// A request's head was decoded and its answer has not ended: the next request waits (RFC 9112 §9.3.2).
    var unanswered = false
    /// No further byte is decoded: a decoding failure, the last request of the connection, a timeout, a close.
    var inputDone = false
    /// The request being read persists the connection (the decoder's decision: RFC 9112 §9.3, §6.1).
    var requestKeepAlive = true
    /// The request being answered is a HEAD (or CONNECT): its answer has no body (RFC 9110 §9.3.2).
    var answerOmitsBody = false
    /// The request-target of the request being read: a 408 then is in the error shape of its surface.
    var requestTarget: String?
    /// A `read()` held back while a pipelined request waits for the answer before it.
    var readHeld = false
    /// When the request being read must have arrived whole: its head's arrival plus `timeouts.request` (review 24,
    /// M4). Read only while its body is read (a body timer is armed for no later than it).
    var uploadDeadline = NIODeadline.distantFuture
    /// The channel is not writable (`channelWritabilityChanged`): its queued answers are over the high water
    /// mark. Between requests, no request is taken and no read passes until it is writable again (review 24, H4);
    /// a stream's relay takes no next event (``clientLag(context:)``).
    /// A stored flag rather than `channel.isWritable`, an existential call on every read and request.
    var outputBlocked = false
    /// A stream's relay waits for the client to take its queued output (``clientLag(context:)``); nil otherwise.
    var streamLag: EventLoopPromise<Void>?
    /// The write-progress watch (``watchWriteProgress(context:)``): its timer, and the connection's queued output
    /// when it was armed; nil when nothing waits for the client to read. A kept-alive answer's watch may outlive
    /// its bytes: it ends at its next firing with nothing queued, or when the next request's head arrives.
    var writeProgress: (timer: Scheduled<Void>, queued: Int)?
    /// A graceful stop asked the connection to end after the request in progress (`ChannelShouldQuiesceEvent`).
    var quiescing = false
    /// A drain's grace for an idle connection (``drainIdleGrace``): when it fires, the connection closes in
    /// stages unless a request began.
    var drainTimer: Scheduled<Void>?
    /// The gateway closed the connection (not the client leaving).
    var closedHere = false

    var timeouts: HTTP1RequestTimeouts.StateMachine
    /// The one timer is lazy, as nginx's are: arming for a later time than the scheduled timer leaves it
    /// alone (when it fires it re-arms itself for `due`), and cancelling only clears `due`. Most requests
    /// arm and cancel a timeout or two and never see one fire, so this saves a timer-heap insert and removal
    /// per step of every request.
    var timer: Scheduled<Void>?
    /// When the scheduled timer fires; nil when none is scheduled.
    var timerFiresAt: NIODeadline?
    /// When the armed timeout is due; nil when none is armed.
    var due: NIODeadline?

    /// What every request of the connection meets before the request rules and routing; nil on a serving port's
    /// connection (the usual case: one check of an optional per request, as the refusal alone was).
    enum Gate {
        /// A cleartext connection to a port that requires TLS (`ProtocolSniffer`'s `.plaintextRefused`): its
        /// request is answered with this error in its surface's shape (Instill, Craft AI, Abacus.AI:
        /// `RESTErrorFormat`), then the connection closes, as the h2c refusal answers each stream in its protocol
        /// (review 17, finding 5: craft-ai-sdk and abacusai could not read the `text/plain` 400 it used to be).
        case refusal(GatewayError)
        /// The admin listener's connection (``AdminServer``): only `/metrics` and the probes are routed; any
        /// other path is 404, as an unknown path is on the serving port, whatever it names there.
        case admin
    }

    /// See ``Gate``.
    private let gate: Gate?

    /// `peer`: the client's `host:port`, for every request's record (the access log's `peer.address`).
    /// `gate`: see ``Gate``.
    init(
        services current: CurrentFrontendServices, secure: Bool = false, clientPrincipal: String? = nil,
        peer: String? = nil, gate: Gate? = nil
    ) {
        self.gate = gate
        self.peer = peer
        self.secure = secure
        self.currentServices = current
        self.servicesGeneration = current.generation
        self.clientPrincipal = clientPrincipal
        let shared = current.shared(clientPrincipal: clientPrincipal)
        self.sharedServices = shared
        self.timeouts = HTTP1RequestTimeouts.StateMachine(
            headerTimeout: shared.value.slowClients.requestHeaderTimeout,
            bodyTimeout: shared.value.slowClients.bodyProgressTimeout)
    }

    func receivedHead(_ head: HTTP1RequestHead, context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        // A watch left by the previous answer (kept alive) ends: its baseline is that answer's queue, and this
        // request's answer adds to the queue, so it would see no progress where there is some (found by review).
        // The client is reading (a head is decoded only under the high water mark); this answer arms its own.
        if writeProgress != nil { stopWriteProgress() }
        currentServices.refresh(&sharedServices, generation: &servicesGeneration, clientPrincipal: clientPrincipal)
        var keepAlive = head.keepAlive
        let method = head.method
        let uri = head.target
        requestTarget = uri
        // Names lowercased once, from the decoder's bytes: what `RESTRequestHead` matches by equality.
        var fields = head.lowercasedFields
        var requestIDField: String? = nil
        var userAgentField: String? = nil
        // Names compared by length first (most differ in it: an equality test of two strings is ~50 instructions);
        // both are 10 bytes long. The first of each counts. By index: iterating the fields copied each (a retain
        // and a release of both strings; issue 11).
        for index in fields.indices where fields[index].name.utf8.count == 10 {
            if fields[index].name == "request-id" {
                if requestIDField == nil { requestIDField = fields[index].value }
            } else if fields[index].name == "user-agent" {
                if userAgentField == nil { userAgentField = fields[index].value }
            }
        }
        let requestID = RequestContext.requestID(requestIDField)
        currentRequestID = requestID
        requestIsHTTP10 = head.minorVersion == 0
        // A body the client holds back until `100 Continue` (RFC 9110 §10.1.1) may never come if the request is
        // answered before that: a client may then send its next request instead. So an answer sent without the
        // `100` ends the connection (RFC 9110 §10.1.1: the server may close instead of reading the body).
        let bodyHeldBack =
            head.minorVersion >= 1 && head.framing.declaresBody
            && fields.contains {
                $0.name.utf8.count == 6 && $0.name == "expect" && $0.value.lowercased() == "100-continue"
            }
        open.open(
            FrontendServices.openRequest(
                observers: services.requestObservers, clock: services.clock, requestID: requestID, frontend: .rest,
                httpVersion: "HTTP/1.1", method: method, path: Self.pathOnly(uri), peer: peer))
        if let userAgentField { open.record.userAgent = RequestRecord.userAgent(userAgentField) }
        let target: String
        let rules: HTTP1RequestRules.Outcome
        switch gate {
        case nil: rules = HTTP1RequestRules.check(minorVersion: head.minorVersion, target: uri, headers: fields)
        case .refusal(let error): rules = .reject(error, closeConnection: true)
        case .admin:
            rules = Self.adminRules(
                HTTP1RequestRules.check(minorVersion: head.minorVersion, target: uri, headers: fields),
                method: method)
        }
        switch rules {
        case .serve(let originForm, let authority):
            target = originForm
            if let authority {
                // RFC 9112 §3.2.2: the absolute-form's authority stands for the origin, not Host (the URLs the
                // surfaces build, Abacus.AI's getApiEndpoint, name it).
                fields.removeAll { $0.name == "host" }
                fields.append(("host", authority))
            }
        case .reject(let error, let close):
            var response = RESTErrorFormat(path: uri).response(error, requestID: requestID)
            response.omitsBody = answerOmitsBody
            keepAlive = keepAlive && !close && !bodyHeldBack
            state = .discarding(keepAlive: keepAlive)
            write(response, keepAlive: keepAlive, context: context)
            return
        }
        var restHead = RESTRequestHead(method: method, target: target, headers: fields)
        if secure { restHead.scheme = "https" }
        let arrival = open.start
        // Lent from the shared reference held in a local: passed from the stored property (even through its
        // `_read`), the services were copied whole around the call (bench/README.md, "Branch hotpath10").
        let shared = sharedServices
        let start = restHead.start(
            services: shared.value, requestID: requestID, record: &open.record, arrival: arrival,
            collector: &collector, use: &bodyUse)
        // Consumed (~200 instructions per REST call fewer than switching on the borrowed result; branch hotpath4).
        switch consume start {
        case .respond(let response, let close):
            keepAlive = keepAlive && !close && !bodyHeldBack
            state = .discarding(keepAlive: keepAlive)
            write(response, keepAlive: keepAlive, context: context)
        case .run(let work):
            // A route that reads no body (a refused upload: Craft's `create_pipeline`, `delete_pipeline`) is answered
            // without the `100`, so a held-back body ends the connection here too.
            startWork(work.run, keepAlive: keepAlive && !bodyHeldBack, context: context)
        case .readBody:
            state = .collecting(keepAlive: keepAlive)
            // The relay's own first test, made here so that a small body's request does not copy the services
            // and the plan into a relay that declines at once.
            if case .contentLength(let length) = head.framing, length >= HTTP1BodyRelay.minimumBytes,
                case .use(let use) = bodyUse
            {
                relay = HTTP1BodyRelay(
                    use: use, collector: self.collector, declaredLength: length,
                    services: services, channel: context.channel)
                if let relay, self.collector.decodesMultipartBatch { self.collector.observeFileParts(relay) }
            }
            // An HTTP/1.0 client's expectation is ignored (RFC 9110 §10.1.1): it cannot read a 1xx answer.
            if bodyHeldBack {
                // curl asks before sending bodies over 1 MiB and otherwise waits a full second.
                context.writeAndFlush(
                    wrapOutboundOut(
                        HTTP1ResponseEncoder.continueResponse(
                            minorVersion: head.minorVersion, allocator: context.channel.allocator)),
                    promise: nil)
            }
        }
    }

    /// The request rules' outcome on the admin listener: a request to serve stays one only for `/metrics`,
    /// `/healthz`, `/readyz` and Instill's `/v1beta/__liveness` and `/v1beta/__readiness` (any method: the route
    /// answers 405 to one they do not take); any other path, a malformed one included, is 404.
    static func adminRules(_ outcome: HTTP1RequestRules.Outcome, method: String) -> HTTP1RequestRules.Outcome {
        guard case .serve(let target, _) = outcome else { return outcome }
        switch try? RESTPath.parse(target) {
        case .metrics?, .liveness?, .readiness?:
            return outcome
        default:
            let path = pathOnly(target)
            let message =
                "no endpoint at \(method.prefix(40)) \(path): the admin listener serves /metrics, /healthz and /readyz"
            return .reject(GatewayError(.notFound, message), closeConnection: false)
        }
    }

    func receivedBody(_ chunk: ByteBuffer, context: ChannelHandlerContext) {
        guard case .collecting = state, !collector.isIdle else { return }
        if open.isOpen { open.record.bytesIn += chunk.readableBytes }
        do {
            let received = try collector.append(chunk)
            // The budget: at the first chunk, the declared length at once (one step), else in steps.
            if !bufferClaim.hold(received, from: services.bodyBudget(unauthenticated: collector.unauthenticated)) {
                throw services.refusedForBudget(unauthenticated: collector.unauthenticated, peer: peer)
            }
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
    func takeBody() -> (collector: RESTBodyCollector, use: RESTBodyUse) {
        var collector = RESTBodyCollector.idle
        var use = PendingBodyUse.none
        bufferClaim.release()
        swap(&collector, &self.collector)
        swap(&use, &bodyUse)
        switch consume use {
        case .use(let taken): return (collector, taken)
        case .none: preconditionFailure("a request body ended with no use")
        }
    }

    func receivedEnd(context: ChannelHandlerContext) {
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
            let batch: TriggerBatch
            // Switched on alone and consumed, not as a `(use, body)` tuple (which copied both).
            switch consume use {
            case .trigger(let triggerPlan):
                guard case .batch(let triggerBatch) = consume body else {
                    // A trigger's collector is never `raw` (see `RESTRequestHead.route`).
                    preconditionFailure("a trigger body was collected raw")
                }
                (plan, batch) = (triggerPlan, triggerBatch)
            case .work(let work):
                startWork({ await work.run(body) }, keepAlive: keepAlive, context: context)
                return
            }
            let request = plan.makeRequest(batch: batch, now: services.clock())
            if let relay,
                case .relayed(let call, let cancellation) = relay.finish(request, gatheredAddress: gatheredAddress)
            {
                awaitSync(call, cancellation: cancellation, request: request, keepAlive: keepAlive, context: context)
                return
            }
            // Pattern matched, here and wherever a hot path asks for another module's enum case: `==` went
            // through Equatable's dispatch thunk and the enum's witness, unspecialised (issue 11: ~25 instructions
            // each, seven per REST trigger).
            if case .stream = plan.mode {
                startStream(request, target: plan.target, keepAlive: keepAlive, context: context)
            } else {
                startSync(request, target: plan.target, keepAlive: keepAlive, context: context)
            }
        default:
            break
        }
    }

    private func startSync(
        _ request: consuming TriggerRequest, target: TriggerDispatcher.Target?, keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        guard case .sync = request.mode else {
            let shared = sharedServices
            startWork(
                { [request] in await RESTOperations.run(request, services: shared.value) }, keepAlive: keepAlive,
                context: context)
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
        if open.isOpen { open.record.upstream(of: cancellation) }
        let outcome = result.mapError { gatewayError(from: $0, requestID: requestID) }
        if case .failure(let error) = outcome { services.logFailure(error, of: open) }
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
    /// is taken from the backend only while the connection's queued output is under its high water mark
    /// (``clientLag(context:)``), so a slow reader slows the relay (and, through the pull-based transports, the
    /// backend) instead of growing memory.
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
        // HTTP/1.0 has no chunked framing: the stream ends with the connection (RFC 9112 §6.1, §6.3).
        let chunked = !requestIsHTTP10
        let keepAlive = keepAlive && chunked
        let relay = EventRelay(
            source: source,
            eventLoop: context.eventLoop,
            idleTimeout: services.streamIdleTimeout,
            firstEvent: target?.firstEventBound(cappedAt: services.requestTimeout),
            begin: { [unowned self] in
                let head = HTTP1ResponseEncoder.streamHead(
                    status: 200,
                    fields: [
                        ("content-type", "text/event-stream"), ("cache-control", "no-cache"),
                        ("request-id", request.requestID),
                    ],
                    keepAlive: keepAlive && !quiescing, chunked: chunked, allocator: channel.allocator)
                // Not flushed: the first event follows at once and leaves in the same write.
                context.write(wrapOutboundOut(head), promise: nil)
                timeouts.sentResponseHead()
                if open.isOpen { open.sentHead = true }
            },
            deliver: { [unowned self] event in
                writeEvent(event, chunked: chunked, context: context)
            },
            finish: { [unowned self] error in
                guard case .streaming(let relay) = state else { return }
                if open.isOpen { open.record.endpoint = source.endpoint }
                if let error, open.isOpen {
                    open.record.upstreamFailure = error.upstreamFailure
                    services.logFailure(error, of: open)
                }
                // A drain closes after this stream: `.closed`, so the grace's end finds its tail (below) as one.
                state = keepAlive && !quiescing ? .idle : .closed
                guard relay.began else {
                    // Nothing was sent: the error is the whole answer, as in sync mode.
                    let error = error ?? GatewayError(.internalError, "the stream ended before it began")
                    write(.error(error, requestID: request.requestID), keepAlive: keepAlive, context: context)
                    return
                }
                let end = streamEnd(error: error, chunked: chunked, allocator: channel.allocator)
                if keepAlive && !quiescing {
                    context.writeAndFlush(wrapOutboundOut(end), promise: nil)
                    // A client that stops reading at the tail would hold the connection until `timeouts.idle`:
                    // watched as a closing stream's tail is. Any bytes left count (the tail sits under the high
                    // water mark, or the relay would still be waiting); one question per stream, not per call.
                    if writeProgress == nil, Self.queuedOutput(channel) > 0 { watchWriteProgress(context: context) }
                    finishRequest()
                    responseEnded(keepAlive: true, context: context)
                    return
                }
                // The relay does not wait for each write, so up to the high water mark may still be queued: the
                // close waits for the last byte to leave, watched like the stream's events (a client that stops
                // reading at the tail is cut, `SI`); the record ends when that byte has left, or with the cut.
                let written = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(end), promise: written)
                responseEnded(keepAlive: false, context: context)
                if Self.queuedOutput(channel) > 0 { watchWriteProgress(context: context) }
                let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
                written.futureResult.whenComplete { result in
                    handler.value.stopWriteProgress()
                    // A failed write is the connection closing: its `channelInactive` records who cut it.
                    if case .success = result { handler.value.finishRequest() }
                    channel.close(promise: nil)
                }
            }
        )
        state = .streaming(relay)
        relay.start()
    }

    /// Writes one SSE event, chunk-framed in its own buffer unless the stream is HTTP/1.0's, and answers as
    /// `EventRelay`'s `deliver` does: nil when the client can take the next event now, else ``clientLag(context:)``.
    private func writeEvent(_ event: TriggerEvent, chunked: Bool, context: ChannelHandlerContext)
        -> EventLoopFuture<Void>?
    {
        let allocator = context.channel.allocator
        var buffer =
            chunked
            ? HTTP1ResponseEncoder.chunkBuffer(capacity: 256, allocator: allocator) : allocator.buffer(capacity: 256)
        SSEEncoder.encode(event, into: &buffer)
        if open.isOpen { open.record.bytesOut += buffer.readableBytes }
        if chunked { HTTP1ResponseEncoder.frameChunk(&buffer) }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        return clientLag(context: context)
    }

    /// The relay's wait for a client that lags: nil while the connection's queued output is under its high water
    /// mark (NIO's, 64 KiB: `outputBlocked`), else a future that completes once it falls under the low mark
    /// (`channelWritabilityChanged`) and fails when the connection closes, which a client that stops reading
    /// brings about (``watchWriteProgress(context:)``) and so ends the stream and cancels the backend call. One
    /// future and one timer per stall, none per event (issue 11: a write promise, a scheduled timer and its
    /// cancel for each event were a quarter of the relay's instructions per SSE event).
    private func clientLag(context: ChannelHandlerContext) -> EventLoopFuture<Void>? {
        guard outputBlocked else { return nil }
        // The relay delivers nothing while it waits: one wait at a time.
        assert(streamLag == nil, "deliver while the relay waits for the client")
        let waiter = context.eventLoop.makePromise(of: Void.self)
        streamLag = waiter
        watchWriteProgress(context: context)
        return waiter.futureResult
    }

    /// Ends the wait ``clientLag(context:)`` made, if any: succeeded when the client took its output, failed when
    /// the connection is going.
    func endClientLag(clientGone: Bool) {
        guard let waiter = streamLag else { return }
        streamLag = nil
        stopWriteProgress()
        if clientGone {
            waiter.fail(ChannelError.ioOnClosedChannel)
        } else {
            waiter.succeed()
        }
    }

    /// Cuts a client that takes none of the connection's queued output for `timeouts.write_progress` (it stopped
    /// reading; issue 10, item 4): the gateway's decision, so the record says `SI`, not `DC`. Progress is checked
    /// when the timer fires: queued output (NIO's `bufferedWritableBytes`, what the socket has not taken) that
    /// shrank since it was armed re-arms it, so a slow but steady reader is served however slowly it drains; a
    /// client that takes nothing more is cut one `write_progress` after the watch began, or, when it took bytes
    /// meanwhile, between one and two after its last progress.
    func watchWriteProgress(context: ChannelHandlerContext) {
        writeProgress?.timer.cancel()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: services.slowClients.writeProgressTimeout) {
            handler.value.writeProgressTimerFired(context: bound.value)
        }
        writeProgress = (timer, Self.queuedOutput(context.channel))
    }

    private func writeProgressTimerFired(context: ChannelHandlerContext) {
        guard let watch = writeProgress else { return }
        writeProgress = nil
        let queued = Self.queuedOutput(context.channel)
        // All taken: nothing waits for the client (a kept-alive answer's or stream tail's watch ends here; the
        // others were stopped when their wait ended).
        if queued == 0 { return }
        if queued < watch.queued {
            watchWriteProgress(context: context)
            return
        }
        // The close's `channelInactive` fails a relay's wait, which cancels the relay.
        if open.isOpen {
            open.record.termination = .streamIdleTimeout
        } else {
            // Its record went out with the answer (counted under its status): the cut is counted on its own.
            services.metrics?.requests.answerCutAfterRecord(.rest, .streamIdleTimeout)
            logAnswerCut(unsent: queued)
        }
        context.channel.close(promise: nil)
    }

    /// A write-progress cut that no open request records (a sync answer's record is written when the answer is
    /// handed to the connection, kept alive or not), or with `byShutdown` the stop's cut of such an answer at
    /// `shutdown_grace` (counted by the caller in the drain's `requests.cut`, not here): else counted in
    /// `requests_cut_total{response_flags="SI"}`
    /// (``RequestMetrics/answerCutAfterRecord(_:_:)``) and said in the log, as nginx logs its `send_timeout`
    /// ("client timed out ... while sending response to client", at info). At most one line per 10 s with the
    /// count held back (``FrontendServices/connectionErrorLog``), the others at debug: a crowd of stalled clients
    /// must not flood the log.
    private func logAnswerCut(unsent: Int, byShutdown: Bool = false) {
        let message =
            byShutdown
            ? "HTTP/1.1 connection closed: timeouts.shutdown_grace ended before the client took its answer's last bytes"
            : "HTTP/1.1 connection closed: the client took none of its answer's last bytes for timeouts.write_progress"
        var metadata: Logger.Metadata = ["peer.address": .string(peer ?? "unknown")]
        if unsent != .max { metadata["bytes.unsent"] = .stringConvertible(unsent) }
        guard
            let heldBack = services.connectionErrorLog.admitLine(
                byShutdown ? "http1.shutdown_cut" : "http1.write_progress")
        else {
            services.logger.debug("\(message)", metadata: metadata)
            return
        }
        heldBack.annotate(&metadata, countKey: "connections.held_back")
        services.logger.info("\(message)", metadata: metadata)
    }

    func stopWriteProgress() {
        writeProgress?.timer.cancel()
        writeProgress = nil
    }

    /// Bytes written to the channel that its socket has not taken; `Int.max` where the channel cannot say (the
    /// watch is then armed, and sees no progress: it cuts at its first firing).
    static func queuedOutput(_ channel: any Channel) -> Int {
        guard let options = channel.syncOptions, let queued = try? options.getOption(.bufferedWritableBytes) else {
            return .max
        }
        return queued
    }

    /// The end of an SSE response: an `error` event if it ended with one, then the last chunk (RFC 9112 §7.1)
    /// unless it is HTTP/1.0's, whose end is the close. Its bytes are counted into the record.
    private func streamEnd(error: GatewayError?, chunked: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        // Room for an error event's usual size, else for the last chunk alone.
        let capacity = error == nil ? 8 : 256
        var end =
            chunked
            ? HTTP1ResponseEncoder.chunkBuffer(capacity: capacity, allocator: allocator)
            : allocator.buffer(capacity: capacity)
        if let error {
            SSEEncoder.encode(.error(error), into: &end)
            if open.isOpen { open.record.bytesOut += end.readableBytes }
        }
        if chunked {
            HTTP1ResponseEncoder.frameChunk(&end)
            end.writeStaticString(HTTP1ResponseEncoder.lastChunk)
        }
        return end
    }

    /// Writes a whole answer in one buffer and flush, ending the request's exchange. `keepAlive` false (or a
    /// graceful stop under way) says `Connection: close` and closes after it: lingering (see
    /// ``lingeringClose(_:bound:)``) unless `lingering` is false (a 408: the client is too slow to wait for) or only
    /// the stop closes it.
    func write(
        _ response: RESTResponse, keepAlive requested: Bool, lingering: Bool = true, context: ChannelHandlerContext
    ) {
        let keepAlive = requested && !quiescing
        // The record takes what is sent, and leaves `open`, before the answer is written: the flush can close the
        // connection before it returns, and that close must not find the request unanswered (it recorded 499, 0
        // bytes, and a downstream disconnect for a request that got its 200 or 503; found by review, at shutdown).
        let omitsBody = response.omitsBody || answerOmitsBody
        if open.isOpen {
            open.record.status = response.status
            if let flag = response.upstreamFailure { open.record.upstreamFailure = flag }
            if let naming = response.naming { open.record.name(naming) }
            open.record.bytesOut += response.omitsBody ? 0 : response.body.readableBytes
            open.sentHead = true
        }
        let answered = open.take()  // moved out, not copied: the record holds a dozen strings
        let buffer = HTTP1ResponseEncoder.response(
            status: response.status, fields: response.headers, body: response.body, keepAlive: keepAlive,
            announcesKeepAlive: requestIsHTTP10, omitsBody: omitsBody, allocator: context.channel.allocator)
        // A promise (a future, its callbacks) only when something waits for the write: the close after it.
        let promise = keepAlive ? nil : context.eventLoop.makePromise(of: Void.self)
        timeouts.sentResponseHead()
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
        if answered.isOpen {
            FrontendServices.finish(answered, observers: services.requestObservers, clock: services.clock)
        }
        if let promise {
            let channel = context.channel
            // A client that stops reading an answer the socket could not take at once would hold the connection
            // for good: watched as a stream's tail is (``watchWriteProgress(context:)``).
            let watched = Self.queuedOutput(channel) > 0
            if watched { watchWriteProgress(context: context) }
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            // A drain (only `quiescing` said close): the client sent its whole request and reads its answer; a
            // plain close after it, as NIO's pipeline handler did, so the stop does not wait for a lingering close.
            let linger = lingering && !requested
            promise.futureResult.whenComplete { _ in
                if watched { handler.value.stopWriteProgress() }
                if linger { Self.lingeringClose(channel) } else { channel.close(promise: nil) }
            }
        } else if writeProgress == nil, outputBlocked {
            // Kept alive, a client that stops reading the answer would hold the connection (and one of
            // `limits.max_connections`) until `timeouts.idle` (60 s by default), not `timeouts.write_progress` (30
            // s). Watched when the channel is over its high water mark (`outputBlocked`, kept by NIO's writability
            // events, which the write above fires: 64 KiB queued beyond what the socket took): every answer passes
            // here, and the queued byte count (``queuedOutput(_:)``) is a chain of dynamic casts inside NIO. Less
            // than the mark left with a client that stopped reading waits for the idle timeout, as nginx's
            // `send_timeout` (60 s) holds it. The watch ends when nothing is left queued or the next request comes.
            watchWriteProgress(context: context)
        }
        // Last: on a persisting connection this may decode (and answer) the next pipelined request.
        responseEnded(keepAlive: keepAlive, context: context)
    }

    /// The request's exchange is over (its last byte queued, or the client gone): its record goes to the
    /// observers, once.
    func finishRequest() {
        let request = open.take()
        guard request.isOpen else { return }
        FrontendServices.finish(request, observers: services.requestObservers, clock: services.clock)
    }

    /// The client went away (or the connection was cut) with the request unanswered or its stream open: a
    /// response head already sent keeps its status, otherwise the record says 499 (`clientClosedRequest`);
    /// either way the record is flagged with who ended it: Envoy's `DC` (the client), unless the gateway cut
    /// a client that stopped reading (`SI`, set by the write-progress timer).
    private func abandonRequest() {
        guard open.isOpen else { return }
        if !open.sentHead { open.record.status = RequestRecord.clientClosedRequest }
        if open.record.termination == nil { open.record.termination = .downstreamDisconnected }
        finishRequest()
    }

    /// A request target's path: the target itself (no copy) unless it has a query.
    static func pathOnly(_ target: String) -> String {
        guard let query = RESTPath.queryStart(of: target) else { return target }
        return String(target[..<query])
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        endClientLag(clientGone: true)
        stopWriteProgress()
        drainTimer?.cancel()
        drainTimer = nil
        endOfInput(context: context)
        defer { abandonRequest() }
        relay?.abort()
        relay = nil
        collector = .idle
        bufferClaim.release()
        bodyUse = .none
        switch state {
        case .running(let task):
            task.cancel()  // the client is gone: stop the backend call
        case .streaming(let relay):
            state = .closed
            if open.isOpen { open.record.endpoint = relay.endpoint }
            relay.cancel()
        case .calling(let call):
            // Closed first: a call that completes inside `cancel()` then writes nothing.
            state = .closed
            if open.isOpen { open.record.upstream(of: call) }
            call.cancel()
        default:
            break
        }
        state = .closed
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let expired = event as? ShutdownGraceExpiredEvent {
            shutdownGraceExpired(expired, context: context)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            quiesce(context: context)
            return
        }
        if let idle = event as? ReadIdleEvent {
            guard case .idle = state else { return }
            // Idle from the last answer's end, not only from the last read (RFC 9112 §9.5; nginx's
            // keepalive_timeout): an answer that ended less than the timeout ago is asked about again then.
            if let answered = lastAnswerEnded {
                let since = services.clock() - answered
                if since < services.idleTimeout {
                    idle.recheck = services.idleTimeout - since
                    return
                }
            }
            // Keep-alive connection with nothing in flight for the idle timeout: reclaim it.
            closeConnection(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The grace period ran out with this request unfinished: its client gets an answer in HTTP before the
    /// socket closes (DESIGN.md "Configuration and running"): 503 with `Retry-After` and `Connection:
    /// close` when nothing was sent yet, an SSE `error` event and the terminating chunk mid-stream.
    private func shutdownGraceExpired(_ expired: ShutdownGraceExpiredEvent, context: ChannelHandlerContext) {
        let error = GatewayError(.unavailable, "the gateway is shutting down; retry the request")
        let requestID: String
        // A request cut here is the stop's: flagged (`cut_by=shutdown`), with the endpoint its call went to, and
        // counted for the drain's summary (review 26 L3).
        func cut() {
            guard open.isOpen else { return }
            open.record.cutAtShutdown = true
            expired.cuts.cut()
        }
        switch state {
        case .streaming(let relay) where relay.began:
            state = .closed
            if open.isOpen { open.record.endpoint = relay.endpoint }
            cut()
            relay.cancel()
            let end = streamEnd(error: error, chunked: !requestIsHTTP10, allocator: context.channel.allocator)
            let channel = context.channel
            inputDone = true
            // Recorded first: a write that completes at once closes the channel inside `writeAndFlush`, whose
            // `channelInactive` would otherwise find the request open and flag it DC, a client gone (review 17, #7).
            finishRequest()
            context.writeAndFlush(wrapOutboundOut(end)).whenComplete { _ in channel.close(promise: nil) }
            return
        case .streaming(let relay):
            // Not begun: nothing was sent, so the 503 below is the answer.
            state = .closed
            if open.isOpen { open.record.endpoint = relay.endpoint }
            cut()
            relay.cancel()
            requestID = currentRequestID
        case .running(let task):
            cut()
            task.cancel()
            requestID = currentRequestID
        case .calling(let call):
            // Closed first: a call that completes inside `cancel()` then writes nothing; the 503 below is the answer.
            state = .closed
            if open.isOpen { open.record.upstream(of: call) }
            cut()
            call.cancel()
            requestID = currentRequestID
        case .collecting:
            cut()
            relay?.abort()
            relay = nil
            requestID = bodyUse.requestID ?? currentRequestID
            collector = .idle
            bufferClaim.release()
            bodyUse = .none
        case .idle
        where !unanswered && !requestOpen && decoder.isBetweenRequests && pending == nil
            && Self.queuedOutput(context.channel) == 0:
            // Idle when the grace ran out: closed in stages, as the drain's own grace would (see `quiesce`).
            drainTimer?.cancel()
            drainTimer = nil
            closeIdleInStages(context: context)
            if context.channel.isActive, !closedHere { closeConnection(context: context) }
            return
        case .idle, .discarding, .closed:
            // A record still open here is a stream's tail still queued for a client that reads slowly: the stop
            // cuts it, recorded as such before the close (whose `channelInactive` would flag a client gone).
            if open.isOpen {
                cut()
                finishRequest()
            } else if context.channel.isActive, case let unsent = Self.queuedOutput(context.channel), unsent > 0 {
                // An answer whose record went out when it was handed to the connection, still leaving: the stop
                // cuts it, counted in the drain's `requests.cut` and said in the log (operator review 58, F1).
                expired.cuts.cut()
                logAnswerCut(unsent: unsent, byShutdown: true)
            }
            closeConnection(context: context)
            return
        }
        state = .closed
        let format = RESTErrorFormat(path: open.isOpen ? open.record.path : "")
        write(format.response(error, requestID: requestID), keepAlive: false, context: context)
    }

    /// The request could not be decoded (`failure`), or the input ended inside it (nil): answer in the path's
    /// shape, or the Instill shape when no head was taken, and close; the connection's bytes can no longer be
    /// trusted. Statuses as the decoder's ``HTTP1RequestDecoder/Failure/status`` says (400, 431, 501, 505).
    func decodingFailed(_ failure: HTTP1RequestDecoder.Failure?, context: ChannelHandlerContext) {
        let words = failure?.words ?? "the connection ended inside a message"
        switch state {
        case .discarding(keepAlive: false), .closed:
            // The head was answered already (e.g. a body over the limit) and a lingering close is under way, or a
            // response already ended the connection (the request timeout's 408, a 503 at the grace's end) and
            // its close is under way: no second answer, and closing now could cut the first one short.
            return
        case .idle:
            let gatewayError: GatewayError
            switch failure {
            case .some(.headTooLarge), .some(.tooManyFields):
                gatewayError = GatewayError(.headersTooLarge, "request headers exceed the parser's limit")
            case .some(.requestTargetTooLong):
                gatewayError = GatewayError(
                    .headersTooLarge,
                    "request target too long: the request line does not end within the head limit "
                        + "(limits.max_header_bytes)")
            case .some(.unsupportedVersion):
                gatewayError = GatewayError(.unimplemented, "HTTP version not supported: \(words)")
            case .some(let failure) where failure.status == 501:
                gatewayError = GatewayError(.unimplemented, "malformed HTTP/1.1 request: \(words)")
            default:
                gatewayError = GatewayError(.invalidArgument, "malformed HTTP/1.1 request: \(words)")
            }
            state = .closed
            let requestID = RequestID.make()
            // No head was taken; its request line, when whole and valid, names what was asked for (review 10,
            // finding 10: which endpoint draws malformed requests). The log writer escapes it like any field.
            let line = decoder.failedRequestLine
            let path = line.map { Self.pathOnly($0.target) } ?? ""
            open = services.openRequest(
                requestID: requestID, frontend: .rest, httpVersion: "HTTP/1.1", method: line?.method ?? "",
                path: path, peer: peer)
            // In the shape of the surface the request line names (Abacus's envelope, Craft's errors), as every other
            // refusal of the frontend is (protocol review 58, L5: a bad Content-Length on /api/v0/ was Instill's).
            var response = RESTErrorFormat(path: path).response(gatewayError, requestID: requestID)
            // 505 and 414 are no gRPC code's status: the body says UNIMPLEMENTED or RESOURCE_EXHAUSTED, the
            // status line what it is (protocol review 58, L1: a long request-target was 431).
            if let failure, [505, 414].contains(failure.status) { response.status = failure.status }
            write(response, keepAlive: false, context: context)
        case .collecting where !collector.isIdle:
            // Bad body framing (a chunk size that is not hex or overflows, a chunk without its CRLF): the head
            // was taken, nothing answered yet. Answer 400 in the path's error shape, as a body over the limit
            // is, and close; a relayed runner request is cut mid-body so the runner never takes it as whole.
            relay?.abort()
            relay = nil
            let use = takeBody().use
            state = .discarding(keepAlive: false)
            let gatewayError = GatewayError(.invalidArgument, "malformed HTTP/1.1 request body: \(words)")
            write(use.errorResponse(gatewayError), keepAlive: false, context: context)
        default:
            closeConnection(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // An I/O or TLS error: the connection is over.
        closeConnection(context: context)
    }
}

@available(*, unavailable)
extension HTTP1FrontendHandler: Sendable {}
