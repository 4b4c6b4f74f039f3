import HTTP2Engine
import NIOCore
import Observability
import TriggerDispatch
import TriggerModel
import WireCodecs

/// REST over h2c: the same routes and rules as HTTP/1.1 (`RESTRequestHead.start`), written as HTTP/2
/// frames.
extension HTTP2FrontendConnection {
    func restReceivedHeaders(_ headers: HTTP2Headers, stream: HTTP2StreamID, endStream: Bool) {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(headers.count)
        for field in headers where !field.name.hasPrefix(":") {
            fields.append((field.name, field.value))
        }
        // RFC 9113 §8.3.1: `:authority` is what HTTP/1.1's Host says (and replaces it); routes that name the
        // gateway's own URL (Abacus's getApiEndpoint) read it as `host`. A `Host` that names another host is
        // added as a second `host`, which ``RequestFieldRules`` refuses (the RFC's SHOULD treat as malformed).
        if let authority = headers.first(name: ":authority") {
            // Host names are case-insensitive (RFC 3986 §3.2.2); lowercased only when the bytes differ.
            if let host = fields.first(where: { $0.name == "host" })?.value {
                if host != authority && host.lowercased() != authority.lowercased() {
                    fields.append(("host", authority))
                }
            } else {
                fields.append(("host", authority))
            }
        }
        var head = RESTRequestHead(
            method: headers.first(name: ":method") ?? "GET",
            target: headers.first(name: ":path") ?? "/",
            headers: fields
        )
        if headers.first(name: ":scheme") == "https" { head.scheme = "https" }
        if headers.containsNeverIndexed { head.sensitiveFields = headers.sensitiveForwardedFields }
        let requestID = RequestContext.requestID(head.first("request-id"))
        // Given the two fields it uses, as HTTP/1.1 does: the method on the services copied them whole.
        var open = FrontendServices.openRequest(
            observers: services.requestObservers, clock: services.clock, requestID: requestID, frontend: .rest,
            httpVersion: "HTTP/2", method: head.method, path: HTTP1FrontendHandler.pathOnly(head.target), peer: peer)
        if let userAgent = head.first("user-agent") { open.record.userAgent = RequestRecord.userAgent(userAgent) }
        let arrival = open.start
        var collector = RESTBodyCollector.idle
        var use = PendingBodyUse.none
        // Lent from the shared reference held in a local: passed from the stored property, the services were
        // copied whole around the call (see `HTTP1FrontendHandler.receivedHead`).
        let shared = sharedServices
        let start = head.start(
            services: shared.value, requestID: requestID, record: &open.record, arrival: arrival,
            collector: &collector, use: &use)
        let state: StreamState
        switch start {
        case .respond: state = StreamState(phase: .done, open: consume open)
        case .run: state = StreamState(phase: .running, open: consume open)
        case .readBody:
            guard case .use(let use) = consume use else { preconditionFailure("a body to read with no use") }
            state = StreamState(
                phase: .restCollecting(StreamState.RESTBodyReading(collector: collector, use: use)),
                open: consume open)
        }
        state.requestID = requestID
        streams[stream] = state
        switch start {
        case .respond(let response, _):
            restRespond(response, stream: stream)
        case .run(let work):
            startTask(stream: stream, work.run) { connection, response in
                connection.restRespond(response, stream: stream)
            }
        case .readBody:
            if endStream {
                session(session, didReceiveData: ByteBuffer(), stream: stream, endStream: true)
            } else if let expect = headers.first(name: "expect"), expect.lowercased() == "100-continue" {
                // RFC 9110 §10.1.1: a body that is wanted gets an immediate 100 (an unwanted one got its final
                // answer from the head above). curl otherwise waits a second before sending it.
                var informational = HTTP2Headers()
                informational.add(name: ":status", value: "100")
                session.sendInformational(stream: stream, headers: informational)
            }
        }
    }

    /// Writes a complete response. When the client is still sending (an early error), the rest of its body
    /// is consumed and dropped (the stream is `.done`), up to ``droppedBodyAllowance(_:)`` (then RST_STREAM
    /// NO_ERROR after the answer; one submitted with the answer would overtake it in nghttp2's queue, and the
    /// client would see a reset instead of the error).
    func restRespond(_ response: RESTResponse, stream: HTTP2StreamID) {
        restRespond(response, state: streams[stream], stream: stream)
    }

    /// `state`: `stream`'s current state if the caller has it (no lookup: issue 11), nil if the stream has none.
    func restRespond(_ response: RESTResponse, state: StreamState?, stream: HTTP2StreamID) {
        var headers = HTTP2Headers()
        headers.add(name: ":status", value: String(response.status))
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        headers.add(name: "content-length", value: String(response.body.readableBytes))
        let empty = response.body.readableBytes == 0 || response.omitsBody
        if let state {
            state.phase = .done
            // An early answer drops the body: what still comes is consumed and dropped, a held window granted.
            requestBodyEnded(state, stream: stream)
            if state.open.isOpen {
                state.open.record.status = response.status
                if let flag = response.upstreamFailure { state.open.record.upstreamFailure = flag }
                if let naming = response.naming { state.open.record.name(naming) }
                state.open.sentHead = true
            }
            if empty { state.answered = true }
        }
        session.sendResponseHeaders(stream: stream, headers: headers, endStream: empty)
        guard !empty else { return }
        if let state {
            sendBody(state, stream: stream, response.body, endStream: true)
        } else {
            session.sendData(stream: stream, response.body, endStream: true)
        }
    }

    /// `target`: the request's route as resolved from its head (``RESTTriggerPlan/target``).
    /// `request` is consumed: a sync call's moves down to the transport (issue 11). `state`: `stream`'s current state.
    func restRun(
        _ request: consuming TriggerRequest, target: TriggerDispatcher.Target?, state: StreamState,
        stream: HTTP2StreamID
    ) {
        if request.mode == .stream {
            restStream(request, target: target, stream: stream)
            return
        }
        if request.mode == .sync {
            runSync(consume request, target: target, state: state, stream: stream) {
                connection, state, stream, requestID, outcome in
                connection.restRespond(
                    RESTOperations.response(to: outcome, requestID: requestID), state: state, stream: stream)
            }
            return
        }
        // Captured by value: a `consuming` parameter captured by reference would be boxed on entry.
        let shared = sharedServices
        startTask(stream: stream) { [request] in
            await RESTOperations.run(request, services: shared.value)
        } deliver: { connection, response in
            connection.restRespond(response, stream: stream)
        }
    }

    /// SSE over HTTP/2: each event is one DATA frame, sent only while the stream can take more.
    /// Like HTTP/1.1, the `200` HEADERS wait for the first event and an error before it is a plain error
    /// response; no total deadline but the idle rule: see `HTTP1FrontendHandler.startStream`.
    private func restStream(_ request: TriggerRequest, target: TriggerDispatcher.Target?, stream: HTTP2StreamID) {
        let source: any TriggerEventSource
        do {
            source = try services.dispatcher.openStream(request, target: target, on: eventLoop)
        } catch {
            restRespond(.error(gatewayError(from: error), requestID: request.requestID), stream: stream)
            return
        }
        let relay = EventRelay(
            source: source,
            eventLoop: eventLoop,
            idleTimeout: services.streamIdleTimeout,
            firstEvent: target?.firstEventBound(cappedAt: services.requestTimeout),
            begin: { [unowned self] in
                session.sendResponseHeaders(
                    stream: stream,
                    headers: [
                        ":status": "200", "content-type": "text/event-stream", "cache-control": "no-cache",
                        "request-id": request.requestID,
                    ],
                    endStream: false
                )
                streams[stream]?.wire = .eventStream
                if let state = streams[stream], state.open.isOpen { state.open.sentHead = true }
            },
            deliver: { [unowned self] event in
                var encoded = ByteBuffer()
                SSEEncoder.encode(event, into: &encoded)
                sendBody(stream: stream, encoded, endStream: false)
                return lagWait(stream)
            },
            finish: { [unowned self] error in
                if let state = streams[stream] {
                    state.updateRecord { $0.endpoint = source.endpoint }
                    if let error {
                        state.updateRecord { $0.upstreamFailure = error.upstreamFailure }
                        services.logFailure(error, of: state.open)
                    }
                }
                let began = streams[stream]?.relay?.began ?? true
                streams[stream]?.relay = nil
                guard began else {
                    // Nothing was sent: the error is the whole answer, as in sync mode.
                    let error = error ?? GatewayError(.internalError, "the stream ended before it began")
                    restRespond(.error(error, requestID: request.requestID), stream: stream)
                    return
                }
                streams[stream]?.phase = .done
                var last = ByteBuffer()
                if let error { SSEEncoder.encode(.error(error), into: &last) }
                sendBody(stream: stream, last, endStream: true)
            }
        )
        streams[stream]?.relay = relay
        relay.start()
    }
}
