import Logging
package import NIOCore
import NIOHTTP1
import NIOPosix
package import TriggerModel
package import WireCodecs

/// Serves the demo pipelines over the `http` backend transport: `POST /run` (API.md §5).
///
/// This is the backend side of the hop, so it is deliberately plain: one request at a time per
/// connection, the body gathered up to the cap, the answer written whole (or as SSE when asked).
package enum DemoHTTPServer {
    /// Binds and returns the server channel; close it to stop.
    package static func bind(
        host: String,
        port: Int,
        runner: any TriggerRunner,
        group: any EventLoopGroup,
        limits: CodecLimits = .defaults
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // TCP_NODELAY (IPPROTO_TCP): NIO sets it on the listener and Linux copies it to accepted sockets; said
            // again per connection so it does not rest on that. Never `.socketOption(.tcp_nodelay)`: that is
            // SOL_SOCKET option 1, SO_DEBUG, which needs CAP_NET_ADMIN and fails every accept for other users.
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(DemoHTTPHandler(runner: runner, limits: limits))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

/// One connection of the demo runner's HTTP server.
final class DemoHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let runner: any TriggerRunner
    private let limits: CodecLimits
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var tooLarge = false
    /// A streaming run or a `describe`.
    private var task: Task<Void, Never>?
    /// The sync run in progress (loop-native: ``TriggerRunner/run(_:on:cancellation:)``).
    private var cancellation: TriggerCancellation?

    init(runner: any TriggerRunner, limits: CodecLimits) {
        self.runner = runner
        self.limits = limits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = nil
            self.tooLarge = false
        case .body(var chunk):
            let size = (body?.readableBytes ?? 0) + chunk.readableBytes
            if size > limits.maxBodyBytes / 3 * 4 + (1 << 20) {
                tooLarge = true
                body = nil
            } else if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            handle(head, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?").first
        if head.method == .GET, path == "/healthz" {
            // What a pool's active health check asks (`health_check.path`, default /healthz).
            respond(status: .ok, body: ByteBuffer(string: #"{"status":"SERVING"}"#), context: context)
            return
        }
        if head.method == .POST, path == "/describe" {
            describe(body ?? ByteBuffer(), context: context)
            return
        }
        guard head.method == .POST, path == "/run" else {
            respond(
                error: GatewayError(
                    .notFound, "the demo runner serves POST /run, POST /describe and GET /healthz only"),
                context: context
            )
            return
        }
        guard !tooLarge else {
            respond(error: GatewayError(.payloadTooLarge, "request body too large"), context: context)
            return
        }
        var request: TriggerRequest
        do {
            // Not held to the client's `maxJSONMembers` again: the gateway checked the client's body, and its run
            // request adds members of its own (the ids), so a body at the cap would be refused here.
            request = try BackendHTTPBody.decodeRequest(body ?? ByteBuffer(), limits: limits.forBackendAnswers)
        } catch {
            respond(error: error as? GatewayError ?? GatewayError(.invalidArgument, "\(error)"), context: context)
            return
        }
        request.requestID = head.headers.first(name: "request-id") ?? request.requestID
        request.idempotencyKey = head.headers.first(name: "idempotency-key")
        request.traceParent = head.headers.first(name: "traceparent")
        request.principal = head.headers.first(name: "x-trigger-principal")
        request.requesterUID = head.headers.first(name: "instill-requester-uid")
        request.traceState = head.headers.first(name: "tracestate")
        if let ms = head.headers.first(name: "x-trigger-deadline-ms").flatMap(Int64.init) {
            request.deadline = .now() + .milliseconds(ms)
        }
        // The http transport asks for the run's events with `accept: text/event-stream`. Parsed as RFC 9110's
        // list (`AcceptHeader`): `String.contains` cost ~20 k instructions a call (bench/README "Branch
        // backendcost").
        if AcceptHeader(lines: head.headers["accept"]).namesExplicitly(SSEEncoder.contentType) {
            startStream(request, context: context)
            return
        }
        // The runner's loop-native form: `echo` and the other immediate pipelines are answered from this read,
        // with no task and no hop (as the gateway's in-process path is, issue 11); the rest run in a task of the
        // runner's. `cancellation` stops it when the gateway hangs up.
        let cancellation = TriggerCancellation()
        self.cancellation = cancellation
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        runner.run(request, on: context.eventLoop, cancellation: cancellation).whenComplete { outcome in
            let (handler, context) = bound.value
            guard handler.cancellation === cancellation else { return }  // the connection closed meanwhile
            handler.cancellation = nil
            switch outcome {
            case .success(let result):
                var buffer = context.channel.allocator.buffer(capacity: 256)
                RESTResponseBody.encode(result: result, into: &buffer)
                handler.respond(status: .ok, body: buffer, context: context)
            case .failure(let error as GatewayError):
                handler.respond(error: error, context: context)
            case .failure:
                handler.respond(error: GatewayError(.cancelled, "run cancelled"), context: context)
            }
        }
    }

    /// `POST /describe` with `{"namespace","pipeline","release"?}` → `{"inputs":[{"name","data_type"}],
    /// "outputs":[...]}` (the http transport's `Describe`, API.md §5 via README).
    private func describe(_ body: ByteBuffer, context: ChannelHandlerContext) {
        let ref: PipelineRef
        do {
            ref = try BackendHTTPBody.decodeDescribeRequest(body, limits: limits)
        } catch {
            respond(error: error as? GatewayError ?? GatewayError(.invalidArgument, "\(error)"), context: context)
            return
        }
        let runner = self.runner
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        task = Task {
            let outcome: Result<PipelineDescription, GatewayError>
            if let describing = runner as? any PipelineDescribing {
                do {
                    outcome = .success(try await describing.describePipeline(ref))
                } catch {
                    outcome = .failure(error as? GatewayError ?? GatewayError(.internalError, "\(error)"))
                }
            } else {
                outcome = .failure(GatewayError(.unimplemented, "this runner does not describe its pipelines"))
            }
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.task = nil
                switch outcome {
                case .success(let description):
                    handler.respond(
                        status: .ok, body: BackendHTTPBody.encode(description: description), context: context)
                case .failure(let error):
                    handler.respond(error: error, context: context)
                }
            }
        }
    }

    private func startStream(_ request: TriggerRequest, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-cache")
        context.writeAndFlush(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        let events = runner.runStreaming(request)
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let allocator = context.channel.allocator
        task = Task {
            do {
                for try await event in events {
                    var encoded = allocator.buffer(capacity: 256)
                    SSEEncoder.encode(event, into: &encoded)
                    let buffer = encoded
                    try await eventLoop.flatSubmit {
                        let (handler, context) = bound.value
                        return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(buffer))))
                    }.get()
                }
            } catch {
                var encoded = allocator.buffer(capacity: 256)
                SSEEncoder.encode(
                    .error(error as? GatewayError ?? GatewayError(.backendFailed, "\(error)")), into: &encoded)
                let buffer = encoded
                _ = try? await eventLoop.flatSubmit {
                    let (handler, context) = bound.value
                    return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(buffer))))
                }.get()
            }
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.task = nil
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    private func respond(error: GatewayError, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 128)
        RESTResponseBody.encode(error: error, into: &buffer)
        respond(status: HTTPResponseStatus(statusCode: error.code.httpStatus), body: buffer, context: context)
    }

    private func respond(status: HTTPResponseStatus, body: ByteBuffer, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The gateway hung up: stop the run (the `tokens` pipeline counts this).
        task?.cancel()
        task = nil
        cancellation?.cancel()
        cancellation = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension DemoHTTPHandler: Sendable {}
