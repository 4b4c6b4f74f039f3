import AsyncDispatch
import Clocks
import Foundation
import GatewayApp
import GatewayConfig
import GatewayTestSupport
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Observability
import Synchronization
import Testing

/// Completion webhooks: a route's webhook gets the finished operation's JSON, signed, retried on failure.
@Suite("async completion webhooks")
struct AsyncWebhookTests {
    /// How long `delivered` watches for a delivery that must not come: four times its route's retry backoff
    /// (50 ms), so a repeat would have been sent well within it.
    static let noMoreDeliveriesWindow = Duration.milliseconds(200)

    @Test("a finished operation is POSTed to its route's webhook, HMAC-signed, after a 500 is retried")
    func delivered() async throws {
        let receiver = try await WebhookReceiver.start(failFirst: 1)
        defer { Task { await receiver.stop() } }
        let yaml = """
            pools:
              - {name: demo, transport: inprocess}
            routes:
              - namespace: demo
                pipeline: upper
                pool: demo
                webhook: {url: "http://127.0.0.1:\(receiver.port)/hooks/done", secret: s3cret, backoff: 50ms}
              - {namespace: demo, pool: demo}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let (_, body) = try await client.trigger(
                "upper", ["w": "hook me"], headers: [("traceparent", traceParent), ("tracestate", "vendor=a")]
            )
            let name = try #require(body.operationName)
            _ = try await client.waitDone(name)
            // An operation of a route without a webhook posts nothing.
            let (_, other) = try await client.trigger("echo", ["w": "silent"])
            _ = try await client.waitDone(try #require(other.operationName))

            #expect(await eventually(within: .seconds(10)) { receiver.requests.count >= 2 })
            // Nothing more comes (no third POST: the delivered one is not sent again, the route without a
            // webhook sends none): a window in which nothing must happen, four times the retry backoff.
            try await Task.sleep(for: Self.noMoreDeliveriesWindow)
            let requests = receiver.requests
            try #require(requests.count == 2, "\(requests.count) deliveries")
            #expect(requests[0].body == requests[1].body)
            let request = requests[1]
            #expect(request.path == "/hooks/done")
            #expect(request.headers["trigger-gateway-operation"] == String(name.dropFirst("operations/".count)))
            // The trigger's trace context, stored with the operation, goes with the delivery: the client's trace,
            // continued as the gateway's span (TraceContext).
            let delivered = try #require(request.headers["traceparent"])
            #expect(delivered.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "\(delivered)")
            #expect(delivered.hasSuffix("-01") && delivered.count == 55 && delivered != traceParent, "\(delivered)")
            #expect(request.headers["tracestate"] == "vendor=a")
            let operation = try #require(try json(ByteBuffer(bytes: request.body))["operation"] as? [String: Any])
            #expect(operation["name"] as? String == name)
            #expect(operation["done"] as? Bool == true)
            #expect(operation.firstOutput?["w"] as? String == "HOOK ME", "\(operation)")

            // The signature verifies with an independent HMAC (Python's hmac module).
            let signature = try #require(request.headers["trigger-gateway-signature"])
            let parts = Dictionary(
                uniqueKeysWithValues: signature.split(separator: ",").map {
                    let kv = $0.split(separator: "=", maxSplits: 1)
                    return (String(kv[0]), String(kv[1]))
                })
            let timestamp = try #require(parts["t"])
            let check = try await TestProcess.run(
                "/usr/bin/python3",
                [
                    "-c",
                    "import hmac,hashlib,sys; print(hmac.new(b's3cret', sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
                ],
                stdin: Data("\(timestamp).".utf8) + request.body
            )
            #expect(
                parts["v1"] == check.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines), "\(check.stderr)")

            // /metrics: one delivery, delivered on its second POST (the first answered 500).
            let deliveredSeries = #"trigger_gateway_webhook_deliveries_total{route="demo/upper",outcome="delivered"}"#
            var scrape = Exposition("")
            _ = try await eventually(within: .seconds(5)) {
                scrape = Exposition(try await client.client.request("GET", "/metrics").bodyString)
                return scrape.samples[deliveredSeries] == 1
            }
            #expect(scrape.samples[deliveredSeries] == 1, "\(scrape.text)")
            #expect(
                scrape.samples[#"trigger_gateway_webhook_deliveries_total{route="demo/upper",outcome="given_up"}"#] == 0
            )
            #expect(
                scrape.samples[#"trigger_gateway_webhook_attempts_total{route="demo/upper",outcome="http_error"}"#] == 1
            )
            #expect(
                scrape.samples[#"trigger_gateway_webhook_attempts_total{route="demo/upper",outcome="success"}"#] == 1)
            #expect(
                scrape.samples[#"trigger_gateway_webhook_attempts_total{route="demo/upper",outcome="transport_error"}"#]
                    == 0)
        }
    }
}

extension AsyncWebhookTests {
    @Test(
        "retries wait the backoff on the sender's clock: with a one-hour backoff the retries come as a manual clock moves",
        .timeLimit(.minutes(1))
    )
    func backoffOnManualClock() async throws {
        let receiver = try await WebhookReceiver.start(failFirst: 2)
        defer { Task { await receiver.stop() } }
        let clock = TestClock()
        var logger = Logger(label: "webhook-test")
        logger.logLevel = .critical
        let sender = WebhookSender(group: MultiThreadedEventLoopGroup.singleton, logger: logger, clock: clock)
        // An hour between attempts: a sender sleeping on the wall clock would not retry within the time limit.
        let webhook = WebhookConfiguration(
            url: "http://127.0.0.1:\(receiver.port)/hooks",
            endpoint: BackendEndpoint(host: "127.0.0.1", port: receiver.port),
            path: "/hooks", maxAttempts: 3, backoff: .seconds(3600)
        )
        sender.deliver(ByteBuffer(string: #"{"operation":{}}"#), operationID: "op-1", to: webhook, route: "acme/*")
        #expect(await eventually(within: .seconds(10)) { receiver.requests.count == 1 })

        /// Moves the clock a backoff at a time until `count` POSTs have arrived (bounded in wall time). The clock
        /// moves only while the sender waits on it (`checkSuspension` throws then), as in HTTPHealthProbeTests:
        /// a step taken while a POST is in flight would only move `now`, and then the wait it starts ends
        /// at once or at the next step, depending on the machine's load.
        func step(until count: Int) async -> Bool {
            await eventually(within: .seconds(20), interval: .milliseconds(5)) {
                // Read after seeing the sender wait, so no POST is in flight: the count is its last word.
                let senderWaits = (try? await clock.checkSuspension()) == nil
                if receiver.requests.count >= count { return true }
                guard senderWaits else { return false }
                await clock.advance(by: .seconds(3600))
                return receiver.requests.count >= count
            }
        }
        #expect(await step(until: 2), "no retry after the backoff")
        #expect(await step(until: 3), "no third attempt after the doubled backoff")
        // The third answered 204: delivered, nothing more is pending.
        #expect(await eventually(within: .seconds(10)) { sender.pending == 0 })
        #expect(receiver.requests.count == 3)
        await sender.shutdown()
    }

    @Test(
        "a delivery given up says why and after how many attempts: a receiver that is down (no http.status), one that answers 500"
    )
    func givenUpSaysWhy() async throws {
        let receiver = try await WebhookReceiver.start(failFirst: 100)
        defer { Task { await receiver.stop() } }
        let reserved = try ReservedPort()
        defer { withExtendedLifetime(reserved) {} }
        let closedPort = reserved.port
        let log = RecordedLog()
        let sender = WebhookSender(
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "webhook-test") { _ in log })
        for port in [closedPort, receiver.port] {
            let webhook = WebhookConfiguration(
                url: "http://127.0.0.1:\(port)/hooks", endpoint: BackendEndpoint(host: "127.0.0.1", port: port),
                path: "/hooks", maxAttempts: 2, backoff: .milliseconds(10), timeout: .seconds(1))
            // One route each: `webhook given up` is rate-limited per route.
            sender.deliver(ByteBuffer(string: "{}"), operationID: "op-\(port)", to: webhook, route: "acme/p\(port)")
        }
        #expect(await eventually(within: .seconds(20)) { sender.pending == 0 })
        await sender.shutdown()
        let givenUp = log.lines.filter { $0.message == "webhook given up" }
        let down = try #require(givenUp.first { $0.metadata["operation.id"] == "op-\(closedPort)" }, "\(log.lines)")
        #expect(down.metadata["webhook.attempts"] == "2")
        #expect(down.metadata["error"] == "Connection refused", "\(down)")
        #expect(down.metadata["http.status"] == nil, "no answer came: \(down)")
        let failing = try #require(givenUp.first { $0.metadata["operation.id"] == "op-\(receiver.port)" })
        #expect(failing.metadata["http.status"] == "500" && failing.metadata["error"] == "HTTP 500", "\(failing)")
        #expect(receiver.requests.count == 2)
        // Each failed attempt is an info line, a 500 as much as a refused connect (review 26 M4).
        let attempts = log.lines.filter { $0.message == "webhook delivery failed" }
        for (operation, error) in [("op-\(closedPort)", "Connection refused"), ("op-\(receiver.port)", "HTTP 500")] {
            let lines = attempts.filter { $0.metadata["operation.id"] == operation }
            #expect(lines.map { $0.metadata["webhook.attempt"] } == ["1", "2"], "\(lines)")
            #expect(lines.allSatisfy { $0.metadata["error"] == error }, "\(lines)")
        }
        #expect(attempts.filter { $0.metadata["http.status"] == "500" }.count == 2, "\(attempts)")
    }

    /// Review 26 M4: a receiver answering 500 to every operation of a route was one `webhook given up` warning per
    /// operation, and the counters could not say which route's receiver it was.
    @Test(
        "webhook given up is rate-limited per route (the first at once, then one per 10 s with the held-back count and the latest operation, not 1 ms sooner); the counters have the route"
    )
    func givenUpRateLimitedPerRoute() async throws {
        let receiver = try await WebhookReceiver.start(failFirst: 1000)
        defer { Task { await receiver.stop() } }
        let clock = TestClock()
        let log = RecordedLog()
        let metrics = GatewayMetrics()
        let sender = WebhookSender(
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "webhook-test") { _ in log },
            metrics: metrics.webhooks, clock: clock)
        // One attempt each: every delivery is given up after one POST answered 500, with no back-off to wait.
        let webhook = WebhookConfiguration(
            url: "http://127.0.0.1:\(receiver.port)/hooks",
            endpoint: BackendEndpoint(host: "127.0.0.1", port: receiver.port),
            path: "/hooks", maxAttempts: 1, backoff: .seconds(1), timeout: .seconds(5))
        var sent = 0
        func deliver(_ operations: [String], route: String) async {
            for operation in operations {
                sender.deliver(ByteBuffer(string: "{}"), operationID: operation, to: webhook, route: route)
            }
            sent += operations.count
            #expect(await eventually(within: .seconds(20)) { sender.pending == 0 && receiver.requests.count == sent })
        }
        func givenUp() -> [[String: String]] {
            log.lines.filter { $0.message == "webhook given up" }.map(\.metadata)
        }

        await deliver(["op-1"], route: "acme/*")
        #expect(givenUp().map { $0["operation.id"] } == ["op-1"])
        #expect(givenUp().last?["webhook.given_up_held_back"] == nil && givenUp().last?["route"] == "acme/*")
        await deliver(["op-2", "op-3"], route: "acme/*")
        #expect(givenUp().count == 1, "held back within 10 s: \(givenUp())")
        // Another route's receiver is another condition: its first line comes at once.
        await deliver(["op-4"], route: "other/*")
        #expect(givenUp().map { $0["operation.id"] } == ["op-1", "op-4"])

        await clock.advance(by: WebhookSender.givenUpWarningInterval - .milliseconds(1))
        await deliver(["op-5"], route: "acme/*")
        #expect(givenUp().count == 2, "1 ms before the interval: still held back")
        await clock.advance(by: .milliseconds(1))
        await deliver(["op-6"], route: "acme/*")
        let line = try #require(givenUp().last)
        #expect(givenUp().count == 3)
        #expect(line["operation.id"] == "op-6" && line["webhook.given_up_held_back"] == "3", "\(line)")
        #expect(line["http.status"] == "500" && line["route"] == "acme/*", "\(line)")
        // Every attempt is still its info line, and every give-up is counted, under its route.
        #expect(log.lines.filter { $0.message == "webhook delivery failed" }.count == 6)
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[#"trigger_gateway_webhook_deliveries_total{route="acme/*",outcome="given_up"}"#] == 5)
        #expect(scrape.samples[#"trigger_gateway_webhook_deliveries_total{route="other/*",outcome="given_up"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_webhook_attempts_total{route="acme/*",outcome="http_error"}"#] == 5)
        #expect(scrape.samples[#"trigger_gateway_webhook_attempts_total{route="other/*",outcome="http_error"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_webhook_deliveries_total{route="acme/*",outcome="delivered"}"#] == 0)
        #expect(try promtoolFindings(scrape.text) == "", "\(scrape.text)")
        await sender.shutdown()
    }

    @Test(
        "shutdown cuts a backoff wait short (its retries are dropped) and later deliveries are not sent; both count as dropped"
    )
    func shutdownDropsRetries() async throws {
        let receiver = try await WebhookReceiver.start(failFirst: 1)
        defer { Task { await receiver.stop() } }
        let clock = TestClock()
        var logger = Logger(label: "webhook-test")
        logger.logLevel = .critical
        let metrics = GatewayMetrics()
        // As the gateway does for each route with a webhook: its series from the start, at 0.
        metrics.webhooks.register(route: "acme/*")
        let sender = WebhookSender(
            group: MultiThreadedEventLoopGroup.singleton, logger: logger, metrics: metrics.webhooks, clock: clock)
        func count(_ outcome: String) -> Double? {
            Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
                .samples[#"trigger_gateway_webhook_deliveries_total{route="acme/*",outcome="\#(outcome)"}"#]
        }
        let webhook = WebhookConfiguration(
            url: "http://127.0.0.1:\(receiver.port)/hooks",
            endpoint: BackendEndpoint(host: "127.0.0.1", port: receiver.port),
            path: "/hooks", maxAttempts: 3, backoff: .seconds(3600)
        )
        sender.deliver(ByteBuffer(string: "{}"), operationID: "op-1", to: webhook, route: "acme/*")
        #expect(await eventually(within: .seconds(10)) { receiver.requests.count == 1 })
        // The 500 answered, the delivery waits an hour of a clock nobody moves; shutdown ends it at once.
        #expect(count("dropped") == 0)
        try await withTimeout(.seconds(10)) { await sender.shutdown() }
        #expect(sender.pending == 0)
        #expect(count("dropped") == 1, "the retry cut short")
        sender.deliver(ByteBuffer(string: "{}"), operationID: "op-2", to: webhook, route: "acme/*")
        #expect(sender.pending == 0)
        #expect(count("dropped") == 2, "the delivery refused while stopping")
        #expect(count("given_up") == 0)
        await clock.advance(by: .seconds(7200))
        #expect(receiver.requests.count == 1)
    }
}

extension AsyncWebhookTests {
    /// An https receiver: the recording receiver behind a TLS front with the test PKI's `localhost` certificate.
    static func withHTTPSReceiver<T>(
        _ pki: TestCertificates,
        _ body: (WebhookReceiver, TLSTerminator) async throws -> T
    ) async throws -> T {
        let receiver = try await WebhookReceiver.start(failFirst: 0)
        let front = try await TLSTerminator(
            certFile: pki.serverCert, keyFile: pki.serverKey, applicationProtocols: ["http/1.1"],
            backendPort: receiver.port)
        defer {
            Task {
                await front.close()
                await receiver.stop()
            }
        }
        return try await body(receiver, front)
    }

    @Test("an https:// webhook is POSTed over TLS, the receiver's certificate verified against the route's ca_file")
    func https() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withHTTPSReceiver(pki) { receiver, front in
            let yaml = """
                pools:
                  - {name: demo, transport: inprocess}
                routes:
                  - namespace: demo
                    pool: demo
                    webhook: {url: "https://localhost:\(front.port)/hooks/tls", secret: s3cret, ca_file: \(pki.caFile)}
                """
            try await withTestGateway(yaml: yaml) { gateway in
                let client = try await AsyncClient.connect(port: gateway.port)
                var names: [String] = []
                // Two deliveries: the second reuses the first's connection (the client's pool keeps it alive).
                for word in ["one", "two"] {
                    let (_, body) = try await client.trigger("upper", ["w": word])
                    let name = try #require(body.operationName)
                    _ = try await client.waitDone(name)
                    names.append(name)
                    #expect(await eventually(within: .seconds(10)) { receiver.requests.count == names.count })
                }
                let requests = receiver.requests
                try #require(requests.count == 2)
                #expect(requests.map(\.path) == ["/hooks/tls", "/hooks/tls"])
                #expect(
                    requests.map { $0.headers["trigger-gateway-operation"] }
                        == names.map { String($0.dropFirst("operations/".count)) })
                #expect(requests[1].headers["trigger-gateway-signature"]?.contains(",v1=") == true)
                #expect(requests[1].headers["host"] == "localhost:\(front.port)")
                #expect(front.handshakeFailures.isEmpty, "\(front.handshakeFailures)")
                #expect(front.clientSubjects.count == 1, "\(front.clientSubjects.count) handshakes")
            }
        }
    }

    @Test(
        "a webhook's ca_file is read with the config (start, check-config, reload): unreadable or not PEM is an error")
    func caFileChecked() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let cases: [(file: String, error: String?)] = [
            (
                "\(pki.directory)/nope.pem",
                "routes[0].webhook.ca_file: cannot read \(pki.directory)/nope.pem: no such file"
            ),
            (pki.clientKey, "routes[0].webhook.ca_file: "),
            (pki.caFile, nil),
        ]
        for (file, expected) in cases {
            let path = "\(pki.directory)/config-\(UUID().uuidString).yaml"
            try """
            pools: [{name: demo, transport: inprocess}]
            routes:
              - {namespace: demo, pool: demo, webhook: {url: "https://localhost:1/h", ca_file: \(file)}}
            """.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                let loaded = try ConfigFile.load(path: path)
                #expect(expected == nil, "accepted \(file)")
                #expect(loaded.configuration.routes.first?.webhook?.caFile == file)
            } catch {
                let expected = try #require(expected, "\(error)")
                #expect(error.description.contains(expected), "\(error)")
            }
        }
    }

    @Test(
        "an https:// webhook whose certificate does not verify is not delivered: a CA that did not sign it, or none (system store)",
        arguments: [true, false])
    func httpsUnverified(otherCA: Bool) async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withHTTPSReceiver(pki) { receiver, front in
            var logger = Logger(label: "webhook-test")
            logger.logLevel = .critical
            let sender = WebhookSender(group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            let webhook = WebhookConfiguration(
                url: "https://localhost:\(front.port)/hooks",
                endpoint: BackendEndpoint(host: "localhost", port: front.port, scheme: .https),
                // One attempt of one second: AsyncHTTPClient reconnects until the attempt's deadline.
                path: "/hooks", maxAttempts: 1, timeout: .seconds(1), caFile: otherCA ? pki.otherCAFile : nil
            )
            sender.deliver(ByteBuffer(string: "{}"), operationID: "op-1", to: webhook, route: "acme/*")
            #expect(await eventually(within: .seconds(10)) { sender.pending == 0 })
            await sender.shutdown()
            #expect(receiver.requests.isEmpty)
            // The receiver's side of the refused handshake (the gateway's alert).
            #expect(await eventually(within: .seconds(5)) { !front.handshakeFailures.isEmpty })
            #expect(front.clientSubjects.isEmpty)
        }
    }
}

/// A tiny HTTP/1.1 server that records webhook POSTs, answering 500 to the first `failFirst` of them.
final class WebhookReceiver: Sendable {
    struct Request: Sendable {
        var path: String
        var headers: [String: String]
        var body: Data
    }

    let port: Int
    private let channel: any Channel
    private let state: State

    final class State: Sendable {
        let requests = Mutex<[Request]>([])
        let failFirst: Int
        init(failFirst: Int) { self.failFirst = failFirst }
    }

    private init(port: Int, channel: any Channel, state: State) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    var requests: [Request] { state.requests.withLock { $0 } }

    /// `port`: 0 for any free one; a given port lets a test start the receiver after the gateway already posts there.
    static func start(failFirst: Int, port: Int = 0) async throws -> WebhookReceiver {
        let state = State(failFirst: failFirst)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            // A given port is a ReservedPort's, still held: binding it alongside needs SO_REUSEADDR.
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return WebhookReceiver(port: channel.localAddress!.port!, channel: channel, state: state)
    }

    func stop() async { try? await channel.close() }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let state: State
        var head: HTTPRequestHead?
        var body = Data()
        init(state: State) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = Data()
            case .body(let chunk):
                body.append(contentsOf: chunk.readableBytesView)
            case .end:
                guard let head else { return }
                var headers: [String: String] = [:]
                for (name, value) in head.headers { headers[name.lowercased()] = value }
                let count = state.requests.withLock { list in
                    list.append(Request(path: head.uri, headers: headers, body: body))
                    return list.count
                }
                let status: HTTPResponseStatus = count <= state.failFirst ? .internalServerError : .noContent
                var responseHeaders = HTTPHeaders()
                responseHeaders.add(name: "content-length", value: "0")
                context.write(
                    wrapOutboundOut(
                        .head(HTTPResponseHead(version: .http1_1, status: status, headers: responseHeaders))),
                    promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

extension AsyncWebhookTests {
    /// A receiver that reads the request and closes the connection without answering.
    final class Hangup: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.close(promise: nil) }
    }

    /// The `error` of the one `webhook given up` line of a one-attempt delivery to `url`.
    static func givenUpError(_ url: String, timeout: Duration, caFile: String? = nil) async throws -> String {
        let log = RecordedLog()
        let sender = WebhookSender(
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "webhook-test") { _ in log })
        let parsed = try #require(URLComponents(string: url))
        let webhook = WebhookConfiguration(
            url: url,
            endpoint: BackendEndpoint(
                host: parsed.host!, port: parsed.port!, scheme: parsed.scheme == "https" ? .https : .http),
            path: parsed.path, maxAttempts: 1, timeout: timeout, caFile: caFile)
        sender.deliver(ByteBuffer(string: "{}"), operationID: "op-1", to: webhook, route: "acme/*")
        #expect(await eventually(within: .seconds(20)) { sender.pending == 0 })
        await sender.shutdown()
        let line = try #require(log.lines.first { $0.message == "webhook given up" }, "\(log.lines)")
        return try #require(line.metadata["error"], "\(line)")
    }

    @Test(
        "each webhook failure line says what happened in operator words: refused, timeout after N, closed, TLS, HTTP status"
    )
    func failureWords() async throws {
        // Refused: nothing listens on the port.
        let reserved = try ReservedPort()
        defer { withExtendedLifetime(reserved) {} }
        let closedPort = reserved.port
        var error = try await Self.givenUpError("http://127.0.0.1:\(closedPort)/h", timeout: .milliseconds(500))
        #expect(error == "Connection refused")
        // Timeout: the connection is accepted (by the kernel) and never answered.
        let silent = try SilentListener()
        error = try await Self.givenUpError("http://127.0.0.1:\(silent.port)/h", timeout: .milliseconds(500))
        #expect(error == "timeout after 500ms")
        // Closed before answering.
        let hangup = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Hangup()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        error = try await Self.givenUpError(
            "http://127.0.0.1:\(hangup.localAddress!.port!)/h", timeout: .seconds(2))
        #expect(error == "the receiver closed the connection before answering")
        try await hangup.close()
        // HTTP status: the receiver answered 500.
        let receiver = try await WebhookReceiver.start(failFirst: 100)
        error = try await Self.givenUpError("http://127.0.0.1:\(receiver.port)/h", timeout: .seconds(2))
        #expect(error == "HTTP 500")
        // TLS to a receiver that speaks plain HTTP.
        error = try await Self.givenUpError("https://localhost:\(receiver.port)/h", timeout: .milliseconds(500))
        #expect(error.hasPrefix("TLS handshake failed: the receiver does not speak TLS"), "\(error)")
        await receiver.stop()
        // TLS with a certificate the webhook's CA did not sign.
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withHTTPSReceiver(pki) { _, front in
            let error = try await Self.givenUpError(
                "https://localhost:\(front.port)/h", timeout: .milliseconds(500), caFile: pki.otherCAFile)
            #expect(error.hasPrefix("TLS handshake failed: the receiver's certificate did not verify"), "\(error)")
        }
        withExtendedLifetime(silent) {}
    }
}
