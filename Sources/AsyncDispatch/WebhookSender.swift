import Crypto
package import GatewayConfig
package import Logging
package import NIOCore
import NIOHTTP1
import NIOPosix
package import Observability
import Synchronization
import TriggerModel

/// Delivers completion webhooks: `POST` of the operation JSON to a route's URL, signed with
/// `trigger-gateway-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, retried with
/// doubling backoff on connection failures and non-2xx answers.
///
/// Delivery is best effort and in memory: retries pending when the process stops are not resumed (the
/// operation itself is durable and can always be read with GetOperation).
///
/// The trigger's W3C trace context (`traceparent`, `tracestate`, stored with the operation) goes with each
/// delivery, so the receiver's work joins the trace of the request that started the run (issue 16, item 3).
package final class WebhookSender: Sendable {
    private let group: any EventLoopGroup
    private let logger: Logger
    private let inFlight = Mutex(0)
    /// `trigger_gateway_webhook_*` on /metrics; nil records nothing.
    private let metrics: WebhookMetrics?
    /// What the backoff between attempts sleeps on; tests pass a manual clock to step retries.
    private let clock: any Clock<Duration>

    package init(
        group: any EventLoopGroup,
        logger: Logger,
        metrics: WebhookMetrics? = nil,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.group = group
        self.logger = logger
        self.metrics = metrics
        self.clock = clock
    }

    /// Deliveries not yet done (for tests and shutdown logs).
    package var pending: Int { inFlight.withLock { $0 } }

    /// Starts delivering `body` for operation `id` in the background, with the trigger's trace context;
    /// `requestID` (the trigger's) goes into the log lines of failed deliveries.
    package func deliver(
        _ body: ByteBuffer,
        operationID id: String,
        requestID: String? = nil,
        traceParent: String? = nil,
        traceState: String? = nil,
        to webhook: WebhookConfiguration
    ) {
        let trace = (parent: traceParent, state: traceState)
        inFlight.withLock { $0 += 1 }
        Task {
            defer { self.inFlight.withLock { $0 -= 1 } }
            var wait = webhook.backoff
            for attempt in 1...webhook.maxAttempts {
                let status: Int
                do {
                    status = try await post(body, operationID: id, trace: trace, to: webhook)
                } catch {
                    status = 0
                    logger.info(
                        "webhook delivery failed",
                        metadata: [
                            "operation.id": "\(id)", "request_id": "\(requestID ?? "")",
                            "webhook.url": "\(webhook.url)",
                            "error": "\(error)",
                        ]
                    )
                }
                metrics?.recordAttempt(
                    status == 0 ? .transportError : (200..<300).contains(status) ? .success : .httpError)
                if (200..<300).contains(status) {
                    metrics?.recordDelivery(.delivered)
                    return
                }
                if attempt == webhook.maxAttempts {
                    metrics?.recordDelivery(.givenUp)
                    logger.warning(
                        "webhook given up",
                        metadata: [
                            "operation.id": "\(id)", "request_id": "\(requestID ?? "")",
                            "webhook.url": "\(webhook.url)",
                            "http.status": "\(status)",
                        ]
                    )
                    return
                }
                try? await clock.sleep(for: wait)
                wait *= 2
            }
        }
    }

    /// The signature header value for `body` at `timestamp` (seconds since 1970).
    package static func signature(secret: String, timestamp: Int64, body: ByteBuffer) -> String {
        var message = Array("\(timestamp).".utf8)
        message += body.readableBytesView
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(timestamp),v1=\(code.lowercaseHex)"
    }

    /// One POST; returns the HTTP status.
    private func post(
        _ body: ByteBuffer,
        operationID id: String,
        trace: (parent: String?, state: String?),
        to webhook: WebhookConfiguration
    ) async throws -> Int {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: "\(webhook.endpoint.host):\(webhook.endpoint.port)")
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "connection", value: "close")
        headers.add(name: "trigger-gateway-operation", value: id)
        if let parent = trace.parent {
            headers.add(name: "traceparent", value: parent)
            if let state = trace.state { headers.add(name: "tracestate", value: state) }
        }
        if let secret = webhook.secret {
            let now = Int64(Duration.nanosecondsSince1970 / 1_000_000_000)
            headers.add(
                name: "trigger-gateway-signature", value: Self.signature(secret: secret, timestamp: now, body: body))
        }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: webhook.path, headers: headers)
        let timeout = TimeAmount.nanoseconds(
            Int64(webhook.timeout.components.seconds) * 1_000_000_000
                + webhook.timeout.components.attoseconds / 1_000_000_000)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(StatusCollector())
                }
            }
            .connect(host: webhook.endpoint.host, port: webhook.endpoint.port)
            .get()
        let status: EventLoopFuture<Int> = channel.eventLoop.flatSubmit {
            let collector = try! channel.pipeline.syncOperations.handler(type: StatusCollector.self)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
            return collector.status.futureResult
        }
        defer { channel.close(promise: nil) }
        return try await status.get()
    }
}

/// Completes with the response status once the whole response was read (or fails if the peer leaves).
private final class StatusCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    struct Closed: Error {}

    var status: EventLoopPromise<Int>!
    private var code = 0

    func handlerAdded(context: ChannelHandlerContext) {
        status = context.eventLoop.makePromise(of: Int.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): code = Int(head.status.code)
        case .body: break
        case .end: status.succeed(code)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        status.fail(Closed())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        status.fail(error)
        context.close(promise: nil)
    }
}

extension Duration {
    /// Wall-clock nanoseconds since 1970, without Foundation.
    static var nanosecondsSince1970: Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
