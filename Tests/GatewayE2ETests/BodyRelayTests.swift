import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The streaming relay of large base64 JSON bodies to http runners (issue 12, `HTTP1BodyRelay`): the runner
/// request starts while the client's body arrives; a body that then fails validation, turns out to be of
/// another shape, or whose client goes away never reaches the runner whole. Observed from the runner's side
/// (`RecordingRunner` counts whole and cut-off requests) and with the real demo-runner (sha256 of what it got).
@Suite("Streaming relay of large JSON bodies to http runners")
struct BodyRelayTests {
    static let path = "/v1beta/namespaces/demo/pipelines/blob-info/trigger"
    static let header = "data:application/octet-stream;base64,"

    /// A JSON trigger body with one data URI of `blobBytes` random bytes, `after` right after the URI's
    /// closing quote; the payload's offset in the body and the base64 text.
    static func body(blobBytes: Int, seed: UInt64, after: String = "") -> (
        body: [UInt8], payloadStart: Int, base64: String
    ) {
        let base64 = Data(randomBytes(blobBytes, seed: seed)).base64EncodedString()
        let prefix = #"{"data": [{"variable": {"n": 7, "file": ""# + header
        let text = prefix + base64 + "\"" + after + "}}]}"
        return (Array(text.utf8), prefix.utf8.count, base64)
    }

    static func head(_ length: Int) -> String {
        "POST \(path) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(length)\r\n\r\n"
    }

    /// Reads one whole response (head and `Content-Length` body) from `socket`.
    static func response(_ socket: SlowSocket) async throws -> SlowSocket.Outcome {
        try await socket.waitForClose(timeout: .seconds(30)) { outcome in
            guard let end = outcome.received.firstRange(of: Array("\r\n\r\n".utf8)) else { return false }
            let head = String(decoding: outcome.received[..<end.lowerBound], as: UTF8.self).lowercased()
            let length =
                head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            return outcome.received.count - end.upperBound >= length
        }
    }

    /// Sends `body` in two halves, the second only once the runner has received `ahead` bytes of its request
    /// body: the runner request started before the client's body ended.
    static func sendSplit(_ socket: SlowSocket, _ body: [UInt8], runner: RecordingRunner, ahead: Int) async throws {
        let half = body.count / 2
        try await blocking {
            _ = socket.send(head(body.count)); _ = socket.send(Array(body[..<half]))
        }
        let started = await eventually(within: .seconds(20)) { runner.largestBodySeen >= ahead }
        #expect(started, "the runner got \(runner.largestBodySeen) bytes before the client's body ended")
        try await blocking { _ = socket.send(Array(body[half...])) }
    }

    @Test("a 4 MiB canonical data URI: the runner request starts before the body ends and carries the same JSON")
    func relayedAhead() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let (body, _, base64) = Self.body(blobBytes: 3 << 20, seed: 21)
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendSplit(socket, body, runner: runner, ahead: 1 << 20)
            let answer = try await Self.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(300))")
            let whole = try #require(runner.wholeBodies.first)
            #expect(runner.wholeBodies.count == 1 && runner.cutOff == 0)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(whole)) as? [String: Any])
            #expect(json["namespace"] as? String == "demo" && json["pipeline"] as? String == "blob-info")
            let item = try #require((json["data"] as? [[String: Any]])?.first)
            let variable = try #require(item["variable"] as? [String: Any])
            #expect(variable["file"] as? String == Self.header + base64)
            #expect(variable["n"] as? Int == 7)
            #expect(item["secret"] as? [String: String] == [:])
        }
    }

    @Test("bad base64 near the end: 400 naming its offset; the runner saw a cut-off request, never a whole one")
    func badBase64Aborted() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            var (body, payloadStart, base64) = Self.body(blobBytes: 3 << 20, seed: 22)
            let badOffset = base64.utf8.count - 1_000
            body[payloadStart + badOffset] = UInt8(ascii: "*")
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendSplit(socket, body, runner: runner, ahead: 1 << 20)
            let answer = try await Self.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 400"), "\(answer.text.prefix(300))")
            #expect(answer.text.contains("payload offset \(badOffset)"), "\(answer.text.prefix(400))")
            #expect(await eventually(within: .seconds(10)) { runner.cutOff == 1 })
            #expect(runner.wholeBodies.isEmpty)
        }
    }

    @Test("a bad base64 character early: the runner request is cut off at its piece, before the body ends")
    func badBase64CutAtItsPiece() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            var (bad, payloadStart, _) = Self.body(blobBytes: 3 << 20, seed: 26)
            // In the first half, after the relay started (its first 64 KiB).
            let badOffset = 1 << 20
            bad[payloadStart + badOffset] = UInt8(ascii: "*")
            let body = bad
            let socket = try await SlowSocket.connect(port: gateway.port)
            let (early, half) = (payloadStart + (512 << 10), body.count / 2)
            try await blocking {
                _ = socket.send(Self.head(body.count)); _ = socket.send(Array(body[..<early]))
            }
            // The runner request is under way, then the piece with the bad character comes.
            #expect(await eventually(within: .seconds(20)) { runner.largestBodySeen >= 256 << 10 })
            try await blocking { _ = socket.send(Array(body[early..<half])) }
            // Cut off while the client still holds half of its body.
            #expect(await eventually(within: .seconds(20)) { runner.cutOff == 1 })
            #expect(runner.wholeBodies.isEmpty)
            try await blocking { _ = socket.send(Array(body[half...])) }
            let answer = try await Self.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 400"), "\(answer.text.prefix(300))")
            #expect(answer.text.contains("payload offset \(badOffset)"), "\(answer.text.prefix(400))")
            #expect(runner.wholeBodies.isEmpty)
        }
    }

    @Test("the client gone mid-body: the runner request is cut off, and the gateway serves the next upload")
    func clientGoneMidBody() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let (body, _, _) = Self.body(blobBytes: 3 << 20, seed: 23)
            let socket = try await SlowSocket.connect(port: gateway.port)
            let half = body.count / 2
            try await blocking {
                _ = socket.send(Self.head(body.count)); _ = socket.send(Array(body[..<half]))
            }
            #expect(await eventually(within: .seconds(20)) { runner.largestBodySeen >= 1 << 20 })
            socket.shutdown()
            #expect(await eventually(within: .seconds(10)) { runner.cutOff == 1 })
            #expect(runner.wholeBodies.isEmpty)
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", Self.path, headers: jsonHeaders, body: ByteBuffer(bytes: body))
            #expect(response.status == 200, "\(response.bodyString.prefix(300))")
            #expect(runner.wholeBodies.count == 1)
            await client.close()
        }
    }

    /// A runner (or a proxy or auth layer in front of it) may answer before it read the whole request. The
    /// request sent ahead was made: it stays the only one, and its answer is the client's (the reviewer saw
    /// 13 runs for 10 such uploads before: the body was sent again on a new connection).
    @Test("the runner answers before the body's end: its answer is the client's, and the request is not sent again")
    func earlyAnswerNotSentAgain() async throws {
        let runner = try await RecordingRunner.start(.answerEarly(afterBytes: 64 << 10))
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let (body, _, _) = Self.body(blobBytes: 3 << 20, seed: 25)
            let socket = try await SlowSocket.connect(port: gateway.port)
            // The runner answers at 64 KiB, and the gateway stops sending to it then.
            try await Self.sendSplit(socket, body, runner: runner, ahead: 64 << 10)
            let answer = try await Self.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(300))")
            #expect(answer.text.contains(#""outputs""#), "\(answer.text.prefix(300))")
            #expect(runner.requestsStarted == 1)
        }
    }

    /// A runner connection reset mid-body: the request may have started a run, so it is not retried
    /// (`max_tries` default), as for a body that is not relayed.
    @Test("the runner resets mid-body: 502, and the request is not sent again")
    func resetMidBodyNotSentAgain() async throws {
        let runner = try await RecordingRunner.start(.reset(afterBytes: 512 << 10))
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let (body, _, _) = Self.body(blobBytes: 3 << 20, seed: 26)
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await blocking {
                _ = socket.send(Self.head(body.count)); _ = socket.send(Array(body[..<(body.count / 2)]))
            }
            #expect(
                await eventually(within: .seconds(20)) {
                    runner.requestsStarted == 1 && runner.largestBodySeen >= 512 << 10
                })
            try await blocking { _ = socket.send(Array(body[(body.count / 2)...])) }
            let answer = try await Self.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 502"), "\(answer.text.prefix(300))")
            #expect(runner.requestsStarted == 1)
        }
    }

    /// The relay assumes the blob is the body's last value; a value after it shows only at the end: the
    /// request sent ahead is cut off and the body is served the ordinary way.
    @Test("a value after the blob: the request sent ahead is cut off, the ordinary one answers 200")
    func otherShapeServedOrdinarily() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            // `,"mmm":1` (8 bytes) keeps the length the relay derives a whole number of base64 quanta: it starts.
            let (body, _, base64) = Self.body(blobBytes: 3 << 20, seed: 24, after: #","mmm":1"#)
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendSplit(socket, body, runner: runner, ahead: 1 << 20)
            let answer = try await Self.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(300))")
            #expect(await eventually(within: .seconds(10)) { runner.cutOff == 1 })
            let whole = try #require(runner.wholeBodies.first)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(whole)) as? [String: Any])
            let variable = try #require(((json["data"] as? [[String: Any]])?.first)?["variable"] as? [String: Any])
            #expect(variable["file"] as? String == Self.header + base64)
            #expect(variable["mmm"] as? Int == 1)
        }
    }

    @Test("relayed uploads reach demo-runner with the same sha256; one cut off mid-body leaves it serving")
    func demoRunner() async throws {
        try await withDemoRunnerProcess(transport: "http") { runnerPort in
            try await withTestGateway(yaml: httpPoolConfig(port: runnerPort)) { gateway in
                let bytes = randomBytes(6 << 20, seed: 25)
                let base64 = Data(bytes).base64EncodedString()
                let body = Array((#"{"data":[{"variable":{"blob":""# + Self.header + base64 + #""}}]}"#).utf8)
                let socket = try await SlowSocket.connect(port: gateway.port)
                try await blocking {
                    _ = socket.send(Self.head(body.count)); _ = socket.send(Array(body[..<(4 << 20)]))
                }
                socket.shutdown()
                let client = try await gateway.client()
                for _ in 0..<2 {
                    let response = try await client.request(
                        "POST", Self.path, headers: jsonHeaders, body: ByteBuffer(bytes: body))
                    #expect(response.status == 200, "\(response.bodyString.prefix(300))")
                    let info = try outputs(response.body).first?["blob"] as? [String: Any]
                    #expect(info?["size"] as? Int == bytes.count)
                    #expect(info?["sha256"] as? String == (try sha256Hex(bytes)))
                }
                await client.close()
            }
        }
    }
}

/// An http runner that records what reaches it: each whole request body (and answers it with an empty result),
/// and each request whose connection closed before its `Content-Length` was reached (cut off).
final class RecordingRunner: Sendable {
    /// How the runner treats a request body.
    enum Behaviour: Sendable {
        /// Answers 200 once the whole body is in.
        case answerAtEnd
        /// Answers 200 once this many body bytes are in, and reads on (as a runner, or a proxy or auth layer
        /// in front of one, that answers before the whole request arrived).
        case answerEarly(afterBytes: Int)
        /// Closes the connection (RST) once this many body bytes are in.
        case reset(afterBytes: Int)
    }

    private struct Record {
        var wholeBodies: [[UInt8]] = []
        var cutOff = 0
        var largestBodySeen = 0
        /// Request heads received: every request the gateway started, whole or not.
        var requestsStarted = 0
    }

    private let record = Mutex(Record())
    private let channel: any Channel
    let behaviour: Behaviour
    var port: Int { channel.localAddress!.port! }

    private init(channel: any Channel, behaviour: Behaviour) {
        self.channel = channel
        self.behaviour = behaviour
    }

    var wholeBodies: [[UInt8]] { record.withLock { $0.wholeBodies } }
    var cutOff: Int { record.withLock { $0.cutOff } }
    /// The most body bytes one request has had so far.
    var largestBodySeen: Int { record.withLock { $0.largestBodySeen } }
    var requestsStarted: Int { record.withLock { $0.requestsStarted } }

    /// A runner on an ephemeral loopback port that treats bodies per `behaviour`. `readEvery`: a slow runner, which reads once per interval
    /// (16 KiB reads, no automatic reads, a 256 KiB socket receive buffer: with 16 KiB, under load, loopback's
    /// 64 KiB segments left its receive window shut for longer than a request's timeout), so a relay can be
    /// ahead of it.
    static func start(_ behaviour: Behaviour = .answerAtEnd, readEvery: TimeAmount? = nil) async throws
        -> RecordingRunner
    {
        let box = Mutex<RecordingRunner?>(nil)
        var bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if readEvery != nil {
            bootstrap = bootstrap.childChannelOption(.autoRead, value: false)
                .childChannelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 16 << 10))
                .childChannelOption(.socketOption(.so_rcvbuf), value: 256 << 10)
        }
        let channel =
            try await bootstrap
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(runner: { box.withLock { $0! } }))
                    if let readEvery {
                        // One read per interval for as long as the connection is open.
                        let reads = channel.eventLoop.scheduleRepeatedTask(initialDelay: readEvery, delay: readEvery) {
                            _ in channel.read()
                        }
                        channel.closeFuture.whenComplete { _ in reads.cancel() }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let runner = RecordingRunner(channel: channel, behaviour: behaviour)
        box.withLock { $0 = runner }
        return runner
    }

    func stop() {
        channel.close(promise: nil)
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let runner: @Sendable () -> RecordingRunner
        var pending: [UInt8] = []
        var contentLength: Int?
        /// Body bytes of the current request consumed so far (an early answer consumes as it reads).
        var consumed = 0
        var answered = false

        init(runner: @escaping @Sendable () -> RecordingRunner) { self.runner = runner }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pending += unwrapInboundIn(data).readableBytesView
            let runner = runner()
            while true {
                if contentLength == nil {
                    guard let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
                    let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self).lowercased()
                    let line = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    contentLength =
                        line.flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
                        ?? 0
                    pending.removeSubrange(..<end.upperBound)
                    (consumed, answered) = (0, false)
                    runner.record.withLock { $0.requestsStarted += 1 }
                }
                let length = contentLength!
                let seen = consumed + min(pending.count, length - consumed)
                runner.record.withLock { $0.largestBodySeen = max($0.largestBodySeen, seen) }
                switch runner.behaviour {
                case .answerAtEnd:
                    break
                case .answerEarly(let afterBytes):
                    if !answered, seen >= afterBytes {
                        answered = true
                        answer(context)
                    }
                    // Read on without keeping the bytes.
                    let take = min(pending.count, length - consumed)
                    consumed += take
                    pending.removeSubrange(..<take)
                    guard consumed == length else { return }
                    runner.record.withLock { $0.wholeBodies.append([]) }
                    (contentLength, consumed) = (nil, 0)
                    continue
                case .reset(let afterBytes):
                    if seen >= afterBytes {
                        context.close(promise: nil)
                        return
                    }
                }
                guard pending.count >= length else { return }
                let body = Array(pending[..<length])
                pending.removeSubrange(..<length)
                contentLength = nil
                runner.record.withLock { $0.wholeBodies.append(body) }
                answer(context)
            }
        }

        private func answer(_ context: ChannelHandlerContext) {
            let answer = #"{"outputs":[{}]}"#
            context.writeAndFlush(
                NIOAny(
                    ByteBuffer(
                        string:
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(answer.utf8.count)\r\n\r\n\(answer)"
                    )),
                promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            if contentLength != nil { runner().record.withLock { $0.cutOff += 1 } }
            context.fireChannelInactive()
        }
    }
}
