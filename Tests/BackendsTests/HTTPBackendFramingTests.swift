@testable import Backends
import GatewayTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TriggerModel
import WireCodecs

/// The http transport's own HTTP/1.1 client codec over real sockets: a runner that answers chunked (in
/// pieces that split a chunk line), one that ends its body by closing, one that sends `100 Continue` first,
/// and one whose answer frames itself twice; with whether the connection was kept for the next call.
@Suite("http backend: response framing over real sockets")
struct HTTPBackendFramingTests {
    static let answer = #"{"outputs":[{"x":1}]}"#

    static func transport(port: Int) -> HTTPBackendTransport {
        HTTPBackendTransport(
            configuration: BackendPoolConfiguration(
                name: "scripted", transport: .http, endpoints: [.init(host: "127.0.0.1", port: port)],
                connectTimeout: .seconds(30)),
            group: MultiThreadedEventLoopGroup.singleton, codecLimits: .defaults)
    }

    static func expected() throws -> [ValueObject] {
        try BackendHTTPBody.decodeResult(ByteBuffer(string: answer), limits: .defaults).outputs
    }

    /// Two calls; returns how many connections the runner accepted.
    static func twoCalls(_ reply: ScriptedBackend.Reply) async throws -> Int {
        let backend = try await ScriptedBackend.start(reply)
        let transport = Self.transport(port: backend.port)
        for _ in 0..<2 {
            let result = try await transport.run(makeRequest("echo"))
            #expect(try result.outputs == Self.expected())
        }
        transport.retire()
        let accepted = backend.accepted
        try await backend.stop()
        return accepted
    }

    @Test("a chunked answer in pieces (a chunk-size line split across writes): read whole, connection kept")
    func chunked() async throws {
        let body = Array(Self.answer.utf8)
        let pieces = [
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
            "5;name=value\r\n" + String(decoding: body[..<5], as: UTF8.self) + "\r\n",
            String(body.count - 5, radix: 16).prefix(1).description,
            String(String(body.count - 5, radix: 16).dropFirst()) + "\r\n" + String(decoding: body[5...], as: UTF8.self)
                + "\r\n0\r\nx-trailer: t\r\n\r\n",
        ]
        #expect(try await Self.twoCalls(.init(pieces: pieces, close: false)) == 1)
    }

    @Test("an answer without Content-Length ends with the connection; the next call connects again")
    func closeDelimited() async throws {
        let pieces = ["HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n", Self.answer]
        #expect(try await Self.twoCalls(.init(pieces: pieces, close: true)) == 2)
    }

    @Test("100 Continue before the answer is skipped; the connection is kept")
    func continueFirst() async throws {
        let pieces = [
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(Self.answer.utf8.count)\r\n\r\n"
                + Self.answer,
        ]
        #expect(try await Self.twoCalls(.init(pieces: pieces, close: false)) == 1)
    }

    /// Review 12, diff review 1: bytes after a streamed (SSE) answer's end were left for the next request on the
    /// kept connection, which then read a shifted answer.
    @Test(
        "a streamed answer followed by stray bytes: the connection is not reused; without them, it is",
        arguments: [true, false])
    func bytesAfterStream(stray: Bool) async throws {
        let events = "event: result\ndata: {\"outputs\":[{\"x\":1}],\"metadata\":{}}\n\n"
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: \(events.utf8.count)\r\n\r\n"
            + events + (stray ? "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc" : "")
        let backend = try await ScriptedBackend.start(.init(pieces: [answer], close: false))
        let transport = Self.transport(port: backend.port)
        for _ in 0..<2 {
            var ended: [TriggerEvent] = []
            for try await event in transport.runStreaming(makeRequest("echo")) { ended.append(event) }
            guard case .end(let result)? = ended.last else {
                Issue.record("no final event: \(ended)")
                continue
            }
            #expect(try result.outputs == Self.expected())
        }
        transport.retire()
        #expect(backend.accepted == (stray ? 2 : 1))
        try await backend.stop()
    }

    /// Review 17, finding 9: the runner's SSE comments (`: ping`) reach the relay's idle rule as the stream's
    /// `lastProgress`; before, they were dropped where they were decoded.
    @Test("a runner's keep-alive comment after an event shows as the stream's last progress")
    func keepAliveIsProgress() async throws {
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
            + "event: PIPELINE_STATUS_UPDATED\ndata: {\"status\":\"RUNNING\"}\n\n"
        let backend = try await ScriptedBackend.start(.init(pieces: [answer, ": ping\n\n"], close: false))
        let transport = Self.transport(port: backend.port)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let started = NIODeadline.now()
        // Loop-bound (called on `loop` only); `lastProgress` is readable from any thread.
        final class Opened: @unchecked Sendable {
            var source: (any TriggerEventSource)?
        }
        let opened = Opened()
        let first = try await loop.flatSubmit {
            let source = transport.openStream(makeRequest("echo"), on: loop)
            opened.source = source
            return source.next()
        }.get()
        guard case .status? = first else {
            Issue.record("not the status event: \(String(describing: first))")
            return
        }
        // The next event is awaited; the comment is read meanwhile.
        let second = loop.flatSubmit { opened.source!.next() }
        #expect(await eventually(within: .seconds(10)) { opened.source?.lastProgress.map { $0 >= started } ?? false })
        try await loop.submit { opened.source?.cancel() }.get()
        _ = try? await second.get()
        transport.retire()
        try await backend.stop()
    }

    /// The leak class of the gRPC transport (thirteenth session): the run's handler on the caller's cancellation
    /// held the run, which holds the cancellation. A try that failed (the runner closed without answering) left
    /// it in place.
    @Test("a call that failed keeps nothing alive: its cancellation (and the run its handler held) is freed")
    func failedCallIsFreed() async throws {
        let backend = try await ScriptedBackend.start(.init(pieces: [], close: true))
        let transport = Self.transport(port: backend.port)
        for pinned in [true, false] {
            weak var released: TriggerCancellation?
            do {
                let cancellation = TriggerCancellation()
                released = cancellation
                let loop = MultiThreadedEventLoopGroup.singleton.next()
                let future = transport.call(makeRequest("echo"), on: loop, pinned: pinned, cancellation: cancellation)
                await #expect(throws: GatewayError.self) { try await future.get() }
            }
            #expect(await eventually(within: .seconds(10)) { released == nil }, "pinned: \(pinned)")
        }
        transport.retire()
        try await backend.stop()
    }

    /// Review 17, finding 8: an http pool in front of a grpc runner read "invalid status line" and nothing more.
    @Test("an HTTP/2 server's first bytes (its SETTINGS frame) are named with the likely cause: the pool's transport")
    func http2Answer() async throws {
        let settings = String(decoding: [0, 0, 0, 4, 0, 0, 0, 0, 0] as [UInt8], as: UTF8.self)
        let backend = try await ScriptedBackend.start(.init(pieces: [settings], close: true))
        let transport = Self.transport(port: backend.port)
        let error = await #expect(throws: GatewayError.self) { try await transport.run(makeRequest("echo")) }
        #expect(error?.code == .backendFailed)
        #expect(error?.message.contains("check the pool's transport") == true, "\(error?.message ?? "")")
        transport.retire()
        try await backend.stop()
    }

    @Test("an answer with both Transfer-Encoding and Content-Length is refused: 502 naming the problem")
    func framedTwice() async throws {
        let backend = try await ScriptedBackend.start(
            .init(
                pieces: [
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n"
                ], close: false))
        let transport = Self.transport(port: backend.port)
        let error = await #expect(throws: GatewayError.self) { try await transport.run(makeRequest("echo")) }
        #expect(error?.code == .backendFailed)
        #expect(
            error?.message.contains("not an HTTP/1.1 response (both Content-Length and Transfer-Encoding)") == true,
            "\(String(describing: error?.message))")
        transport.retire()
        try await backend.stop()
    }
}

/// A runner that reads each request whole (with the frontend's request decoder) and answers it with fixed
/// pieces, each written and flushed on its own; with `close`, it closes the connection after the answer.
/// ``closeConnections()`` closes every open connection on command (a keep-alive timeout at a chosen instant).
final class ScriptedBackend: Sendable {
    struct Reply: Sendable {
        var pieces: [String]
        var close: Bool
    }

    let port: Int
    private let channel: any Channel
    private let counter: Counter

    final class Counter: Sendable {
        let accepted = Atomic(0)
        let requests = Atomic(0)
        /// The connections not closed yet, by their channel's identity.
        let open = Mutex<[ObjectIdentifier: any Channel]>([:])
    }

    /// Connections accepted so far.
    var accepted: Int { counter.accepted.load(ordering: .relaxed) }
    /// Connections open now (not closed by either side).
    var openConnections: Int { counter.open.withLock { $0.count } }
    /// Requests read whole so far (each answered).
    var requests: Int { counter.requests.load(ordering: .relaxed) }

    private init(port: Int, channel: any Channel, counter: Counter) {
        self.port = port
        self.channel = channel
        self.counter = counter
    }

    static func start(_ reply: Reply) async throws -> ScriptedBackend {
        let counter = Counter()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                counter.accepted.add(1, ordering: .relaxed)
                let id = ObjectIdentifier(channel)
                counter.open.withLock { $0[id] = channel }
                channel.closeFuture.whenComplete { _ in _ = counter.open.withLock { $0.removeValue(forKey: id) } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(reply: reply, counter: counter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedBackend(port: channel.localAddress!.port!, channel: channel, counter: counter)
    }

    func stop() async throws {
        try await channel.close()
    }

    /// Closes every open connection (as a keep-alive timeout would), returning once they are closed on this side.
    func closeConnections() async {
        for connection in counter.open.withLock({ Array($0.values) }) { try? await connection.close() }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: Reply
        let counter: Counter
        var decoder = HTTP1RequestDecoder()
        var buffer = ByteBuffer()

        init(reply: Reply, counter: Counter) {
            self.reply = reply
            self.counter = counter
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            buffer.writeBuffer(&bytes)
            while let part = try? decoder.next(&buffer) {
                if case .needMoreBytes = part { break }
                guard case .end = part else { continue }
                counter.requests.add(1, ordering: .relaxed)
                for piece in reply.pieces {
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: piece)), promise: nil)
                }
                if reply.close { context.close(promise: nil) }
            }
            buffer.discardReadBytes()
        }
    }
}
