import HTTP2Engine
import NIOCore
import Observability
import ProtoCodec
import Routing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// One gRPC call as decided from its headers.
struct GRPCCall {
    enum Method {
        case trigger(release: Bool)
        case triggerStream
        case triggerAsync(release: Bool)
        case getOperation
        /// `GetNamespacePipeline[Release]` (`GetPipeline[Release]` in `pipeline.v1beta`): a routed pipeline's
        /// metadata (HTTP2FrontendConnection+Pipelines).
        case getPipeline(release: Bool)
        /// `ListNamespacePipelineReleases` (`ListPipelineReleases` in `pipeline.v1beta`): a page of the releases
        /// routes name for a pipeline (HTTP2FrontendConnection+Pipelines).
        case listPipelineReleases
        /// `ListNamespacePipelines` (`pipeline.pipeline.v1beta` only, the SDK's): a page of the pipelines routes
        /// serve in a namespace (HTTP2FrontendConnection+Pipelines).
        case listPipelines
        /// `ListPipelineRuns` (`pipeline.pipeline.v1beta` only, the SDK's): a page of a pipeline's stored runs
        /// (HTTP2FrontendConnection+Operations).
        case listPipelineRuns
        /// `core.mgmt.v1beta.MgmtPublicService` requester lookups (HTTP2FrontendConnection+Mgmt).
        case checkNamespace
        case getUser
        case getOrganization
        /// Instill `Liveness`: SERVING while the process answers.
        case instillHealth
        /// Instill `Readiness`: the whole gateway's status.
        case instillReadiness
        case grpcHealthCheck
        case grpcHealthWatch
        /// `grpc.reflection.v1[alpha].ServerReflection/ServerReflectionInfo` (HTTP2FrontendConnection+Reflection).
        case reflection
    }

    var method: Method
    /// Which Instill wire generation the path belongs to (the health, reflection and mgmt methods: the SDK's).
    var generation: InstillGeneration = .pipelinePipelineV1beta
    /// The call's metadata, read as every frontend reads its headers (``RequestContext``): request id,
    /// principal, the deadline from `grpc-timeout`, trace context, `idempotency-key` (for an async trigger,
    /// same key and request → same operation; for a sync one, passed to the backend so it can deduplicate),
    /// `instill-return-traces`.
    var context: RequestContext

    static let mgmtService = "/core.mgmt.v1beta.MgmtPublicService/"

    /// The methods of API.md §3 by `:path`, each with its Instill wire generation (the three pipeline
    /// services differ in package, so the path alone decides); nil → UNIMPLEMENTED. `path` is the table's own
    /// copy of the path, the same object call after call: the call's `operation` (the request metrics compare
    /// it with the last call's by identity, not byte by byte).
    static func method(path: String) -> (method: Method, generation: InstillGeneration, path: String)? {
        guard let found = methods.lookup(path) else { return nil }
        return (found.value.method, found.value.generation, found.key)
    }

    /// Every path ``method(path:)`` answers, made once. Matching prefixes and comparing substrings per call
    /// cost ~11 000 instructions (bench/README.md, "Instructions per call"); a `[String: …]` lookup ~1 000
    /// (`StaticPathTable`).
    private static let methods: StaticPathTable<(method: Method, generation: InstillGeneration)> = {
        var table: [(key: String, value: (method: Method, generation: InstillGeneration))] = []
        for generation in InstillGeneration.allCases {
            for name in pipelineMethodNames {
                if let method = pipelineMethod(Substring(name), generation) {
                    table.append((generation.servicePath + name, (method, generation)))
                }
            }
        }
        let others: [(String, Method)] = [
            (mgmtService + "Liveness", .instillHealth),
            (mgmtService + "Readiness", .instillReadiness),
            (mgmtService + "CheckNamespace", .checkNamespace),
            (mgmtService + "GetUser", .getUser),
            (mgmtService + "GetOrganization", .getOrganization),
            ("/grpc.health.v1.Health/Check", .grpcHealthCheck),
            ("/grpc.health.v1.Health/Watch", .grpcHealthWatch),
            (GRPCReflectionCall.v1Path, .reflection),
            (GRPCReflectionCall.v1alphaPath, .reflection),
        ]
        for (path, method) in others { table.append((path, (method, .pipelinePipelineV1beta))) }
        return StaticPathTable(table)
    }()

    /// The method names ``pipelineMethod(_:_:)`` knows, in any generation.
    private static let pipelineMethodNames = [
        "Liveness", "Readiness", "GetOperation",
        "TriggerPipeline", "TriggerPipelineRelease", "TriggerPipelineWithStream", "TriggerAsyncPipeline",
        "TriggerAsyncPipelineRelease", "GetPipeline", "GetPipelineRelease",
        "TriggerNamespacePipeline", "TriggerNamespacePipelineRelease", "TriggerNamespacePipelineWithStream",
        "TriggerAsyncNamespacePipeline", "TriggerAsyncNamespacePipelineRelease", "GetNamespacePipeline",
        "GetNamespacePipelineRelease", "ListNamespacePipelineReleases", "ListPipelineReleases",
        "ListNamespacePipelines", "ListPipelineRuns",
    ]

    /// A `PipelinePublicService` method of `generation`: the namespace/pipeline-id names of 2024 and 2025, the
    /// resource-name ones of 2026.
    private static func pipelineMethod(_ name: Substring, _ generation: InstillGeneration) -> Method? {
        switch name {
        case "Liveness": return .instillHealth
        case "Readiness": return .instillReadiness
        case "GetOperation": return .getOperation
        default: break
        }
        if generation == .pipelineV1beta {
            switch name {
            case "TriggerPipeline": return .trigger(release: false)
            case "TriggerPipelineRelease": return .trigger(release: true)
            case "TriggerPipelineWithStream": return .triggerStream
            case "TriggerAsyncPipeline": return .triggerAsync(release: false)
            case "TriggerAsyncPipelineRelease": return .triggerAsync(release: true)
            case "GetPipeline": return .getPipeline(release: false)
            case "GetPipelineRelease": return .getPipeline(release: true)
            case "ListPipelineReleases": return .listPipelineReleases
            default: return nil
            }
        }
        switch name {
        case "TriggerNamespacePipeline": return .trigger(release: false)
        case "TriggerNamespacePipelineRelease": return .trigger(release: true)
        case "TriggerNamespacePipelineWithStream": return .triggerStream
        case "TriggerAsyncNamespacePipeline": return .triggerAsync(release: false)
        case "TriggerAsyncNamespacePipelineRelease": return .triggerAsync(release: true)
        case "GetNamespacePipeline": return .getPipeline(release: false)
        case "GetNamespacePipelineRelease": return .getPipeline(release: true)
        case "ListNamespacePipelineReleases": return .listPipelineReleases
        // Not in the 2024 `vdp.pipeline.v1beta` subset (protos/vdp): its clients do not call it here.
        case "ListNamespacePipelines" where generation == .pipelinePipelineV1beta: return .listPipelines
        case "ListPipelineRuns" where generation == .pipelinePipelineV1beta: return .listPipelineRuns
        default: return nil
        }
    }

    /// Health checks answer without a token: load balancers and the SDK's readiness probe call them first.
    static func needsAuth(_ method: Method) -> Bool {
        switch method {
        case .instillHealth, .instillReadiness, .grpcHealthCheck, .grpcHealthWatch: false
        default: true
        }
    }
}

/// gRPC over HTTP/2 (PROTOCOL-HTTP2.md): 5-byte framed messages, status in trailers, Trailers-Only for
/// errors before any message.
extension HTTP2FrontendConnection {
    /// `codec`: the `+codec` of the call's `content-type` (`proto` when absent), as the caller parsed it.
    func grpcReceivedHeaders(_ headers: HTTP2Headers, codec: String, stream: HTTP2StreamID, endStream: Bool) {
        let head = GRPCRequestHead(headers)
        let requestID = RequestContext.requestID(head.requestID)
        let path = head.path ?? ""
        let httpMethod = head.method
        let open = FrontendServices.openRequest(
            observers: services.requestObservers, clock: services.clock, requestID: requestID, frontend: .grpc,
            httpVersion: "HTTP/2", method: httpMethod ?? "", path: path, peer: peer)
        // Read here: `state.open!.start` below copied the whole record out of the state (issue 11).
        let start = open.start
        let state = StreamState(phase: .done, open: consume open)
        state.wire = .grpc
        state.requestID = requestID
        // Changed in place in the state: changing the local first made its move into the state a copy.
        state.open.record.trace(head.traceParent)
        if let userAgent = head.userAgent { state.open.record.userAgent = RequestRecord.userAgent(userAgent) }
        streams[stream] = state
        guard httpMethod == "POST" else {
            grpcFinish(stream, error: GatewayError(.unimplemented, "gRPC requires POST"))
            return
        }
        guard let (method, generation, knownPath) = GRPCCall.method(path: path) else {
            grpcFinish(stream, error: GatewayError(.unimplemented, "unknown method \(path)"))
            return
        }
        // A known method's path is bounded (the method table): it is the operation, as the table's string.
        state.open.record.operation = knownPath
        if codec != "proto" {
            grpcFinish(
                stream,
                error: GatewayError(.unimplemented, "codec \(codec) is not supported: use application/grpc+proto")
            )
            return
        }
        var requestEncoding: GRPCCompression?
        if let encoding = head.encoding, encoding != "identity" {
            guard let supported = GRPCCompression(rawValue: encoding) else {
                // gRPC compression.md: an unsupported message encoding is UNIMPLEMENTED, with the encodings we
                // do accept in grpc-accept-encoding so the client can retry with one of them.
                grpcFinish(
                    stream, error: GatewayError(.unimplemented, "grpc-encoding \(encoding) is not supported"),
                    extraHeaders: [("grpc-accept-encoding", GRPCCompression.acceptEncoding)]
                )
                return
            }
            requestEncoding = supported
        }
        state.responseEncoding = GRPCCompression.responseEncoding(
            request: requestEncoding, acceptEncoding: head.acceptEncoding
        )
        if let field = head.repeatedSingleton {
            grpcFinish(stream, error: RequestFieldRules.repeated(field))
            return
        }
        var principal: String?
        var requesterUID: String?
        if GRPCCall.needsAuth(method) {
            do {
                principal = try services.authenticator.authenticate(authorization: head.authorization)
                state.open.record.principal = principal
            } catch {
                grpcFinish(stream, error: gatewayError(from: error))
                return
            }
            // Instill's requester: the namespace the principal acts for (refused unless it may). Reflection has
            // no requester: grpcurl sends a call's -H headers on its reflection calls too, where a bad one would
            // fail the lookup instead of the call (review 8).
            let isReflection: Bool
            if case .reflection = method { isReflection = true } else { isReflection = false }
            if let requester = head.requesterUID, !requester.isEmpty, !isReflection {
                do {
                    requesterUID = try services.namespaces.checkRequester(uid: requester, principal: principal)
                } catch {
                    grpcFinish(stream, error: gatewayError(from: error))
                    return
                }
            }
        }
        var clientTimeout: TimeAmount?
        if let timeout = head.timeout {
            guard let amount = GRPCTimeout.parse(timeout) else {
                grpcFinish(stream, error: GatewayError(.invalidArgument, "malformed grpc-timeout \"\(timeout)\""))
                return
            }
            clientTimeout = amount
            // The deadline ends the call whatever it is doing (PROTOCOL-HTTP2.md: the server cancels too). Said
            // in s/ms as the pool's deadline is, not in the header's wire units ("501m" is 501 ms).
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            state.clientDeadline = start + amount
            state.clientDeadlineResetFrom = start + amount - Self.deadlineResetSlack(amount)
            state.deadlineTimer = eventLoop.scheduleTask(in: amount) {
                bound.value.grpcFinish(
                    stream,
                    error: GatewayError(.deadlineExceeded, "deadline of \(EventRelay.describe(amount)) exceeded"))
            }
        }
        let maxMessageBytes = services.limits.maxBodyBytes
        let maxDecompressedBytes = services.maxDecompressedBytes
        if case .reflection = method {
            state.phase = .grpcReflection(
                GRPCReflectionCall(
                    deframer: GRPCMessageDeframer(
                        maxMessageBytes: maxMessageBytes, maxDecompressedBytes: maxDecompressedBytes,
                        encoding: requestEncoding)))
        } else {
            // Built in place in the state, not in a local moved there (issue 11: a dozen strings retained and
            // released per copy; the move was a copy and a destroy).
            state.grpcCall = GRPCCall(
                method: method, generation: generation,
                context: RequestContext(
                    requestID: requestID, start: start, requestTimeout: services.requestTimeout,
                    clientTimeout: clientTimeout, traceParent: head.traceParent, traceState: head.traceState,
                    idempotencyKey: head.idempotencyKey, returnTraces: head.returnTraces, principal: principal,
                    requesterUID: requesterUID))
            if headers.containsNeverIndexed {
                state.grpcCall!.context.markSensitive(
                    headers.sensitiveForwardedFields, sentRequestID: headers.first(name: "request-id"))
            }
            state.deframer = GRPCMessageDeframer(
                maxMessageBytes: maxMessageBytes, maxDecompressedBytes: maxDecompressedBytes, encoding: requestEncoding)
            state.phase = .grpcCollecting
        }
        if endStream {
            session(session, didReceiveData: ByteBuffer(), stream: stream, endStream: true)
        }
    }

    /// `state`: `stream`'s current state, in the caller's hand (issue 11: each lookup a retain and a release).
    func grpcReceivedRequest(
        _ message: ByteBuffer, call: consuming GRPCCall, state: StreamState, stream: HTTP2StreamID
    ) {
        switch call.method {
        case .instillHealth:
            grpcRespond(stream, message: InstillCodec.encodeHealthCheckResponse(serving: true))
        case .instillReadiness:
            let serving = services.health.status(.gateway) == .serving
            grpcRespond(stream, message: InstillCodec.encodeHealthCheckResponse(serving: serving))
        case .grpcHealthCheck:
            grpcHealthCheck(message, stream: stream)
        case .grpcHealthWatch:
            grpcHealthWatch(message, stream: stream)
        case .triggerAsync(let release):
            grpcTriggerAsync(message, release: release, call: call, stream: stream)
        case .getOperation:
            grpcGetOperation(message, call: call, stream: stream)
        case .getPipeline(let release):
            grpcGetPipeline(message, release: release, call: call, stream: stream)
        case .listPipelineReleases:
            grpcListPipelineReleases(message, call: call, stream: stream)
        case .listPipelines:
            grpcListPipelines(message, stream: stream)
        case .listPipelineRuns:
            grpcListPipelineRuns(message, call: call, stream: stream)
        case .checkNamespace, .getUser, .getOrganization:
            grpcMgmt(message, call: call, stream: stream)
        case .trigger(let release):
            grpcTrigger(message, release: release, stream: call, state: state, on: stream, mode: .sync)
        case .triggerStream:
            grpcTrigger(message, release: false, stream: call, state: state, on: stream, mode: .stream)
        case .reflection:
            preconditionFailure("a reflection call is answered message by message, never collected")
        }
    }

    private func grpcTrigger(
        _ message: ByteBuffer, release: Bool, stream call: consuming GRPCCall, state: StreamState,
        on stream: HTTP2StreamID, mode: TriggerMode
    ) {
        let request: TriggerRequest
        let target: TriggerDispatcher.Target?
        let generation = call.generation
        // Moved out of the call, not copied (issue 11: a dozen strings retained and released).
        var context = (consume call).context
        do {
            // A grpc runner may get the batch as the client sent it, renumbered (issue 11).
            let decoded = try InstillCodec.decodeTriggerBatch(
                message, generation: generation, release: release, maxBatch: services.limits.maxBatch,
                maxMembers: services.limits.maxJSONMembers)
            // Resolved once: the record's route, the pool's timeout and the call all use this one.
            target = services.dispatcher.target(for: decoded.ref)
            context.bound(byPoolTimeout: target?.requestTimeout)
            request = context.makeRequest(ref: decoded.ref, mode: mode, batch: decoded.batch, now: services.clock())
            // Not through `updateRecord`'s closure: capturing `request` copied the whole request (its dozen strings
            // retained, then released; ~600 instructions per call).
            if state.open.isOpen {
                state.open.record.name(request.ref, mode: mode, route: target?.route)
                state.open.record.traceID = context.trace?.traceID
            }
        } catch {
            grpcFinish(state, stream: stream, error: gatewayError(from: error))
            return
        }
        if case .stream = mode {  // pattern matched: `==` on TriggerMode is a witness call (see HTTP1FrontendHandler)
            grpcStream(request, target: target, stream: stream)
            return
        }
        // Moved: the call's transport keeps it (a `let` assigned in the `do` above is copied unless consumed).
        runSync(consume request, target: target, state: state, stream: stream) {
            connection, state, stream, _, outcome in
            switch outcome {
            case .success(let result):
                connection.grpcRespond(state, stream: stream, message: InstillCodec.encodeTriggerResponse(result))
            case .failure(let error):
                connection.grpcFinish(state, stream: stream, error: error)
            }
        }
    }

    /// Server-streaming trigger: one response message per output event, then trailers. Each message waits
    /// for the stream to be writable, so a slow client slows the backend relay.
    /// The call's own `grpc-timeout` (if any) bounds it in total; otherwise only the idle rule applies.
    private func grpcStream(_ request: TriggerRequest, target: TriggerDispatcher.Target?, stream: HTTP2StreamID) {
        let source: any TriggerEventSource
        do {
            source = try services.dispatcher.openStream(request, target: target, on: eventLoop)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let compression = streams[stream]?.responseEncoding
        let relay = EventRelay(
            source: source,
            eventLoop: eventLoop,
            idleTimeout: services.streamIdleTimeout,
            firstEvent: target?.firstEventBound(cappedAt: services.requestTimeout),
            deliver: { [unowned self] event in
                let message: ByteBuffer
                switch event {
                // Instill's stream response has no status message.
                case .status: return nil
                case .output(_, let result): message = InstillCodec.encodeTriggerResponse(result)
                case .end(let result): message = InstillCodec.encodeTriggerResponse(result)
                case .error(let error):
                    grpcFinish(stream, error: error)
                    return nil
                }
                if let tooLarge = grpcMessageTooLarge(message) {
                    grpcFinish(stream, error: tooLarge)
                    return nil
                }
                grpcSendHeaders(stream)
                sendBody(stream: stream, GRPCMessageFramer.frame(message, compression: compression), endStream: false)
                return lagWait(stream)
            },
            finish: { [unowned self] error in
                if let state = streams[stream] {
                    state.updateRecord { $0.endpoint = source.endpoint }
                    if let error { services.logFailure(error, of: state.open) }
                }
                streams[stream]?.relay = nil
                grpcFinish(stream, error: error)
            }
        )
        streams[stream]?.relay = relay
        relay.start()
    }

    /// A unary success: headers, the one framed message, `grpc-status: 0`; RESOURCE_EXHAUSTED instead for a
    /// message over the cap (``grpcMessageTooLarge(_:)``).
    func grpcRespond(_ stream: HTTP2StreamID, message: ByteBuffer) {
        guard let state = streams[stream] else { return }  // closed: nothing to answer
        grpcRespond(state, stream: stream, message: message)
    }

    /// ``grpcRespond(_:message:)`` with `stream`'s current state in hand: one lookup fewer for each of its steps
    /// (issue 11: each a retain and a release, atomic operations).
    func grpcRespond(_ state: StreamState, stream: HTTP2StreamID, message: ByteBuffer) {
        if let tooLarge = grpcMessageTooLarge(message) {
            grpcFinish(state, stream: stream, error: tooLarge)
            return
        }
        grpcSendHeaders(state, stream: stream)
        let framed = GRPCMessageFramer.frame(message, compression: state.responseEncoding)
        sendBody(state, stream: stream, framed, endStream: false)
        grpcFinish(state, stream: stream, error: nil)
    }

    /// A response message over the message cap, `limits.max_body_bytes` (API.md §3: "Max message 32 MiB by
    /// default, the same cap as REST"), as RESOURCE_EXHAUSTED naming both sizes; nil within it. Checked before it
    /// is sent: a client whose receive limit is that cap (instill-sdk sets 32 MiB) fails such a message itself with
    /// a RESOURCE_EXHAUSTED the gateway never sees, and the call was logged `grpc_status=0` (review 17, finding 4).
    /// A runner may answer up to ``BackendPoolConfiguration``'s response bound, above the cap (base64 growth).
    func grpcMessageTooLarge(_ message: ByteBuffer) -> GatewayError? {
        let limit = services.limits.maxBodyBytes
        guard message.readableBytes > limit else { return nil }
        return GatewayError(
            .payloadTooLarge,
            "response message of \(message.readableBytes) bytes exceeds the limit of \(limit) bytes (limits.max_body_bytes)"
        )
    }

    /// A response message framed for `stream`: compressed when the call negotiated an encoding.
    func grpcFramed(_ message: ByteBuffer, stream: HTTP2StreamID) -> ByteBuffer {
        GRPCMessageFramer.frame(message, compression: streams[stream]?.responseEncoding)
    }

    func grpcSendHeaders(_ stream: HTTP2StreamID) {
        guard let state = streams[stream] else { return }
        grpcSendHeaders(state, stream: stream)
    }

    /// `state`: `stream`'s current state, in the caller's hand.
    func grpcSendHeaders(_ state: StreamState, stream: HTTP2StreamID) {
        guard !state.sentHeaders else { return }
        state.sentHeaders = true
        let headers =
            state.responseEncoding == nil
            ? Self.identityResponseHeaders : HTTP2Headers(GRPCResponseFields.headers(encoding: state.responseEncoding))
        session.sendResponseHeaders(stream: stream, headers: headers, endStream: false)
    }

    /// How long before the gateway's view of a client's `grpc-timeout` a reset of the unanswered call still counts
    /// as that deadline (`DT`, DEADLINE_EXCEEDED) rather than a cancel of the client's choosing (`DC`), review 21
    /// I1. The client's deadline starts when it sends (grpcio: the time left at the send, in the header's units),
    /// the gateway's when the headers are read, one network trip and a read's delay later: so at the deadline the
    /// client's reset reaches the gateway before, or in the same read as, the gateway's own timer (seen 2.6 ms
    /// late on a loaded host). 10 ms covers a loaded loopback and a data-centre hop; a tenth of a shorter timeout,
    /// so a 20 ms call cancelled at 10 ms is still a cancel.
    static func deadlineResetSlack(_ timeout: TimeAmount) -> TimeAmount {
        min(.milliseconds(10), .nanoseconds(timeout.nanoseconds / 10))
    }

    /// The response headers and the OK trailers of most calls, built once (not two arrays and a header block
    /// per call).
    private static let identityResponseHeaders = HTTP2Headers(GRPCResponseFields.headers(encoding: nil))
    private static let okTrailers = HTTP2Headers(GRPCResponseFields.status(code: 0, message: nil))

    /// Ends the call with its status: in trailers after headers went out, or Trailers-Only before.
    func grpcFinish(_ stream: HTTP2StreamID, error: GatewayError?, extraHeaders: [(String, String)] = []) {
        guard let state = streams[stream] else { return }
        grpcFinish(state, stream: stream, error: error, extraHeaders: extraHeaders)
    }

    /// `state`: `stream`'s current state, in the caller's hand (issue 11: each lookup a retain and a release).
    func grpcFinish(
        _ state: StreamState, stream: HTTP2StreamID, error: GatewayError?, extraHeaders: [(String, String)] = []
    ) {
        // What the answer needs of `error`, read once (each `error?.…` copied the optional error first, through
        // the runtime's generic value witnesses: ~80 instructions per call; issue 11).
        var code = 0
        var message: String?
        var upstreamFailure: UpstreamFailure?
        var deadlineExceeded = false
        var failed = false
        if case .some(let error) = error {
            failed = true
            code = error.code.rpcCode
            message = error.message
            upstreamFailure = error.upstreamFailure
            if case .deadlineExceeded = error.code { deadlineExceeded = true }
        }
        if case .done = state.phase, !state.hasWork, state.sentHeaders == false, !failed { return }
        // Answered before its message was complete (an error, the deadline): what was read of it is dropped.
        if case .grpcCollecting = state.phase { state.dropRequestBody() }
        state.phase = .done
        requestBodyEnded(state, stream: stream)
        state.stopWork()
        state.deadlineTimer?.cancel()
        state.deadlineTimer = nil
        state.answered = true
        // A DEADLINE_EXCEEDED once the client's own deadline has passed: the client had given up (`DT`), whichever
        // timer ended the call; one of the gateway's timeouts that ended it earlier is not the client's.
        let clientsDeadline = deadlineExceeded && state.clientDeadline.map { services.clock() >= $0 } == true
        state.updateRecord {
            $0.grpcStatus = code
            if let upstreamFailure { $0.upstreamFailure = upstreamFailure }
            if clientsDeadline, $0.termination == nil { $0.termination = .downstreamDeadline }
        }
        if state.sentHeaders {
            let trailers =
                failed ? HTTP2Headers(GRPCResponseFields.status(code: code, message: message)) : Self.okTrailers
            session.sendTrailers(stream: stream, trailers)
        } else {
            state.sentHeaders = true
            let fields = GRPCResponseFields.trailersOnly(code: code, message: message, extra: extraHeaders)
            session.sendResponseHeaders(stream: stream, headers: HTTP2Headers(fields), endStream: true)
        }
        // When the client is still sending, its remaining DATA is consumed and dropped (`.done`) rather than
        // refused with RST_STREAM: nghttp2 sends RST_STREAM ahead of queued HEADERS, and clients such as
        // grpcio then report INTERNAL instead of the status we just wrote.
    }
}
