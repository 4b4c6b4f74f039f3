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
    /// The call's metadata, read as every frontend reads its headers (``RequestContext``): request id,
    /// principal, the deadline from `grpc-timeout`, trace context, `idempotency-key` (for an async trigger,
    /// same key and request → same operation; for a sync one, passed to the backend so it can deduplicate),
    /// `instill-return-traces`.
    var context: RequestContext

    static let pipelineService = "/pipeline.pipeline.v1beta.PipelinePublicService/"

    /// The methods of API.md §3 by `:path`; nil → UNIMPLEMENTED.
    static func method(path: String) -> Method? {
        switch path {
        case pipelineService + "TriggerNamespacePipeline": .trigger(release: false)
        case pipelineService + "TriggerNamespacePipelineRelease": .trigger(release: true)
        case pipelineService + "TriggerNamespacePipelineWithStream": .triggerStream
        case pipelineService + "TriggerAsyncNamespacePipeline": .triggerAsync(release: false)
        case pipelineService + "TriggerAsyncNamespacePipelineRelease": .triggerAsync(release: true)
        case pipelineService + "GetOperation": .getOperation
        case pipelineService + "Liveness", "/core.mgmt.v1beta.MgmtPublicService/Liveness": .instillHealth
        case pipelineService + "Readiness", "/core.mgmt.v1beta.MgmtPublicService/Readiness": .instillReadiness
        case "/grpc.health.v1.Health/Check": .grpcHealthCheck
        case "/grpc.health.v1.Health/Watch": .grpcHealthWatch
        case GRPCReflectionCall.v1Path, GRPCReflectionCall.v1alphaPath: .reflection
        default: nil
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
    func grpcReceivedHeaders(_ headers: HTTP2Headers, stream: HTTP2StreamID, endStream: Bool) {
        let requestID = RequestContext.requestID(headers.first(name: "request-id"))
        let state = StreamState(phase: .done)
        state.wire = .grpc
        state.requestID = requestID
        let path = headers.first(name: ":path") ?? ""
        state.open = services.openRequest(
            requestID: requestID, frontend: .grpc, httpVersion: "HTTP/2", method: headers.first(name: ":method") ?? "",
            path: path
        )
        state.open?.record.trace(headers.first(name: "traceparent"))
        streams[stream] = state
        guard headers.first(name: ":method") == "POST" else {
            grpcFinish(stream, error: GatewayError(.unimplemented, "gRPC requires POST"))
            return
        }
        guard let method = GRPCCall.method(path: path) else {
            grpcFinish(stream, error: GatewayError(.unimplemented, "unknown method \(path)"))
            return
        }
        // A known method's path is bounded (the method table): it is the operation.
        state.open?.record.operation = path
        if case .grpc(let codec) = GRPCContentType(header: headers.first(name: "content-type")), codec != "proto" {
            grpcFinish(
                stream,
                error: GatewayError(.unimplemented, "codec \(codec) is not supported: use application/grpc+proto")
            )
            return
        }
        var requestEncoding: GRPCCompression?
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
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
            request: requestEncoding, acceptEncoding: headers.first(name: "grpc-accept-encoding")
        )
        var principal: String?
        if GRPCCall.needsAuth(method) {
            do {
                principal = try services.authenticator.authenticate(authorization: headers.first(name: "authorization"))
                state.open?.record.principal = principal
            } catch {
                grpcFinish(stream, error: gatewayError(from: error))
                return
            }
        }
        var clientTimeout: TimeAmount?
        if let timeout = headers.first(name: "grpc-timeout") {
            guard let amount = GRPCTimeout.parse(timeout) else {
                grpcFinish(stream, error: GatewayError(.invalidArgument, "malformed grpc-timeout \"\(timeout)\""))
                return
            }
            clientTimeout = amount
            // The deadline ends the call whatever it is doing (PROTOCOL-HTTP2.md: the server cancels too).
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            state.deadlineTimer = eventLoop.scheduleTask(in: amount) {
                bound.value.grpcFinish(
                    stream, error: GatewayError(.deadlineExceeded, "deadline of \(timeout) exceeded"))
            }
        }
        var context = RequestContext(
            requestID: requestID, start: state.open!.start, requestTimeout: services.requestTimeout,
            clientTimeout: clientTimeout
        ) { headers.first(name: $0) }
        context.principal = principal
        let call = GRPCCall(method: method, context: context)
        let deframer = GRPCMessageDeframer(maxMessageBytes: services.limits.maxBodyBytes, encoding: requestEncoding)
        if case .reflection = method {
            state.phase = .grpcReflection(GRPCReflectionCall(deframer: deframer))
        } else {
            state.phase = .grpcCollecting(deframer, call, nil)
        }
        if endStream {
            session(session, didReceiveData: ByteBuffer(), stream: stream, endStream: true)
        }
    }

    func grpcReceivedRequest(_ message: ByteBuffer, call: GRPCCall, stream: HTTP2StreamID) {
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
        case .trigger(let release):
            grpcTrigger(message, release: release, stream: call, on: stream, mode: .sync)
        case .triggerStream:
            grpcTrigger(message, release: false, stream: call, on: stream, mode: .stream)
        case .reflection:
            preconditionFailure("a reflection call is answered message by message, never collected")
        }
    }

    private func grpcTrigger(
        _ message: ByteBuffer, release: Bool, stream call: GRPCCall, on stream: HTTP2StreamID, mode: TriggerMode
    ) {
        let request: TriggerRequest
        var context = call.context
        do {
            let decoded = try InstillCodec.decodeTriggerRequest(
                message, release: release, maxBatch: services.limits.maxBatch)
            let resolved = services.dispatcher.route(for: decoded.ref)
            context.bound(byPoolTimeout: resolved.flatMap { services.dispatcher.requestTimeout(ofPool: $0.pool) })
            request = context.makeRequest(ref: decoded.ref, mode: mode, inputs: decoded.inputs)
            if let state = streams[stream] {
                state.open?.record.name(request.ref, mode: mode, route: resolved)
                state.open?.record.traceID = context.trace?.traceID
            }
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        if mode == .stream {
            grpcStream(request, stream: stream)
            return
        }
        runSync(request, stream: stream) { connection, outcome in
            switch outcome {
            case .success(let result):
                connection.grpcRespond(stream, message: InstillCodec.encodeTriggerResponse(result))
            case .failure(let error):
                connection.grpcFinish(stream, error: error)
            }
        }
    }

    /// Server-streaming trigger: one response message per output event, then trailers. Each message waits
    /// for the stream to be writable, so a slow client slows the backend relay.
    /// The call's own `grpc-timeout` (if any) bounds it in total; otherwise only the idle rule applies.
    private func grpcStream(_ request: TriggerRequest, stream: HTTP2StreamID) {
        let source: any TriggerEventSource
        do {
            source = try services.dispatcher.openStream(request, on: eventLoop)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
            return
        }
        let compression = streams[stream]?.responseEncoding
        let relay = EventRelay(
            source: source,
            eventLoop: eventLoop,
            idleTimeout: services.idleTimeout,
            deliver: { [unowned self] event in
                let message: ByteBuffer
                switch event {
                // Instill's stream response has no status message.
                case .status: return eventLoop.makeSucceededVoidFuture()
                case .output(_, let outputs):
                    message = InstillCodec.encodeTriggerResponse(TriggerResult(outputs: outputs))
                case .end(let result): message = InstillCodec.encodeTriggerResponse(result)
                case .error(let error):
                    grpcFinish(stream, error: error)
                    return eventLoop.makeSucceededVoidFuture()
                }
                grpcSendHeaders(stream)
                sendBody(stream: stream, GRPCMessageFramer.frame(message, compression: compression), endStream: false)
                return waitUntilWritable(stream)
            },
            finish: { [unowned self] error in
                streams[stream]?.open?.record.endpoint = source.endpoint
                if let error { services.logFailure(error, of: streams[stream]?.open?.record) }
                streams[stream]?.relay = nil
                grpcFinish(stream, error: error)
            }
        )
        streams[stream]?.relay = relay
        relay.start()
    }

    /// A unary success: headers, the one framed message, `grpc-status: 0`.
    func grpcRespond(_ stream: HTTP2StreamID, message: ByteBuffer) {
        grpcSendHeaders(stream)
        sendBody(stream: stream, grpcFramed(message, stream: stream), endStream: false)
        grpcFinish(stream, error: nil)
    }

    /// A response message framed for `stream`: compressed when the call negotiated an encoding.
    func grpcFramed(_ message: ByteBuffer, stream: HTTP2StreamID) -> ByteBuffer {
        GRPCMessageFramer.frame(message, compression: streams[stream]?.responseEncoding)
    }

    func grpcSendHeaders(_ stream: HTTP2StreamID) {
        guard let state = streams[stream], !state.sentHeaders else { return }
        state.sentHeaders = true
        var headers: HTTP2Headers = [":status": "200", "content-type": "application/grpc"]
        if let encoding = state.responseEncoding {
            headers.add(name: "grpc-encoding", value: encoding.rawValue)
            headers.add(name: "grpc-accept-encoding", value: GRPCCompression.acceptEncoding)
        }
        session.sendResponseHeaders(stream: stream, headers: headers, endStream: false)
    }

    /// Ends the call with its status: in trailers after headers went out, or Trailers-Only before.
    func grpcFinish(_ stream: HTTP2StreamID, error: GatewayError?, extraHeaders: [(String, String)] = []) {
        guard let state = streams[stream] else { return }
        if case .done = state.phase, !state.hasWork, state.sentHeaders == false, error == nil { return }
        state.phase = .done
        state.stopWork()
        state.deadlineTimer?.cancel()
        state.deadlineTimer = nil
        state.answered = true
        state.open?.record.grpcStatus = error?.code.rpcCode ?? 0
        var status = HTTP2Headers()
        status.add(name: "grpc-status", value: String(error?.code.rpcCode ?? 0))
        if let error { status.add(name: "grpc-message", value: GRPCStatusMessage.percentEncode(error.message)) }
        if state.sentHeaders {
            session.sendTrailers(stream: stream, status)
        } else {
            state.sentHeaders = true
            var headers: HTTP2Headers = [":status": "200", "content-type": "application/grpc"]
            for (name, value) in extraHeaders { headers.add(name: name, value: value) }
            for field in status { headers.add(name: field.name, value: field.value) }
            session.sendResponseHeaders(stream: stream, headers: headers, endStream: true)
        }
        // When the client is still sending, its remaining DATA is consumed and dropped (`.done`) rather than
        // refused with RST_STREAM: nghttp2 sends RST_STREAM ahead of queued HEADERS, and clients such as
        // grpcio then report INTERNAL instead of the status we just wrote.
    }
}
