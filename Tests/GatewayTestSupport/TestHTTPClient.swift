package import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A minimal keep-alive HTTP/1.1 client for end-to-end tests: one connection, one request at a time, the
/// whole response returned. Using the same connection for several requests is how keep-alive is tested.
package final class TestHTTPClient: Sendable {
    package struct Response: Sendable {
        package var status: Int
        package var headers: [(name: String, value: String)]
        package var body: ByteBuffer

        package func header(_ name: String) -> String? {
            headers.first(where: { $0.name.lowercased() == name.lowercased() })?.value
        }

        package var bodyString: String { String(buffer: body) }
    }

    private let channel: any Channel
    private let collector: NIOLoopBound<ResponseCollector>

    private init(channel: any Channel, collector: ResponseCollector) {
        self.channel = channel
        self.collector = NIOLoopBound(collector, eventLoop: channel.eventLoop)
    }

    /// `tlsCA`: speak HTTP/1.1 over TLS (ALPN `http/1.1`), verifying the server as `localhost` against the
    /// PEM roots in that file.
    package static func connect(host: String = "127.0.0.1", port: Int, tlsCA: String? = nil) async throws
        -> TestHTTPClient
    {
        let tls: NIOSSLContext? = try tlsCA.map { file in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(file)
            configuration.applicationProtocols = ["http/1.1"]
            return try NIOSSLContext(configuration: configuration)
        }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: "localhost"))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port)
            .get()
        return try await channel.eventLoop.submit {
            TestHTTPClient(
                channel: channel,
                collector: try channel.pipeline.syncOperations.handler(type: ResponseCollector.self)
            )
        }.get()
    }

    package var isActive: Bool { channel.isActive }

    /// Sends one request; `body` is sent with Content-Length unless `chunks` is given (then chunked).
    package func request(
        _ method: String,
        _ path: String,
        headers: [(String, String)] = [],
        body: ByteBuffer? = nil,
        chunks: [ByteBuffer]? = nil
    ) async throws -> Response {
        var httpHeaders = HTTPHeaders(headers)
        if !httpHeaders.contains(name: "host") { httpHeaders.add(name: "host", value: "localhost") }
        if let body, chunks == nil, !httpHeaders.contains(name: "content-length") {
            httpHeaders.add(name: "content-length", value: String(body.readableBytes))
        }
        if chunks != nil { httpHeaders.add(name: "transfer-encoding", value: "chunked") }
        let head = HTTPRequestHead(
            version: .http1_1,
            method: HTTPMethod(rawValue: method),
            uri: path,
            headers: httpHeaders
        )
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let collector = self.collector
        let channel = self.channel
        channel.eventLoop.execute {
            // A connection the server already closed (killed, idle timeout, `Connection: close`) fails the
            // request at once: its close was reported while no request waited, and the writes below fail
            // without reaching the collector, so the request would otherwise wait forever (a hang seen once in
            // AsyncDurabilityTests.killNineSQLite, with no gateway alive).
            guard channel.isActive else {
                promise.fail(ResponseCollector.Failure.closed)
                return
            }
            collector.value.promise = promise
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let chunks {
                for chunk in chunks { channel.write(HTTPClientRequestPart.body(.byteBuffer(chunk)), promise: nil) }
            } else if let body {
                channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { error in
                // Still this request's: fail it (the collector may have failed it already, on the close).
                guard let waiting = collector.value.promise, waiting.futureResult === promise.futureResult else {
                    return
                }
                collector.value.promise = nil
                waiting.fail(error)
            }
        }
        return try await promise.futureResult.get()
    }

    package func close() async {
        try? await channel.close()
    }

    /// Waits until the server closes the connection (or the timeout passes); true when it closed.
    package func waitForClose(timeout: TimeAmount = .seconds(5)) async -> Bool {
        let closed = channel.eventLoop.makePromise(of: Bool.self)
        channel.closeFuture.whenComplete { _ in closed.succeed(true) }
        channel.eventLoop.scheduleTask(in: timeout) { closed.succeed(false) }
        return (try? await closed.futureResult.get()) ?? false
    }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    enum Failure: Error { case closed }

    var promise: EventLoopPromise<TestHTTPClient.Response>?
    private var response: TestHTTPClient.Response?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code < 200 { return }  // 100 Continue
            response = .init(
                status: Int(head.status.code),
                headers: head.headers.map { ($0.name, $0.value) },
                body: ByteBuffer()
            )
        case .body(var chunk):
            response?.body.writeBuffer(&chunk)
        case .end:
            if let response { promise?.succeed(response) }
            promise = nil
            response = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(Failure.closed)
        promise = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.close(promise: nil)
    }
}
