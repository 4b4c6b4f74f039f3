import GatewayTestSupport
import Logging
import NIOCore
import Observability
import Testing

/// A client that breaks the HTTP/2 protocol ends its connection (GOAWAY PROTOCOL_ERROR): review 26, M3. Each such
/// connection is counted (`trigger_gateway_http2_protocol_errors_total{reason}`), its streams cut by the GOAWAY are
/// flagged `DPE` (not `DC`, the client going away) on the access line and in `requests_cut_total`, and its warning
/// is held back as `request body refused` is: a client reconnecting in a loop sets no warning rate. A raw-frame
/// client over a real socket opens more streams than SETTINGS_MAX_CONCURRENT_STREAMS, as
/// `/work/review26/s/h2streams.py` did; the warnings' window runs on a clock the test moves.
@Suite("HTTP/2 protocol errors: counted, streams DPE, warnings held back")
struct HTTP2ProtocolErrorE2ETests {
    static let warning = "HTTP/2 connection ended for a protocol error"
    static let yaml = "limits: {max_concurrent_streams: 4}\n"

    /// Connects, exchanges SETTINGS (the limit holds once the client acknowledged it: before, libnghttp2 refuses
    /// the extra stream alone, RST_STREAM REFUSED_STREAM), then opens `streams` REST triggers at once, each with
    /// its body still to come. Returns the frames the gateway sent until it closed.
    static func openStreams(
        _ streams: Int, port: Int
    ) async throws -> (closed: Bool, frames: [(type: UInt8, flags: UInt8, payload: [UInt8])]) {
        let socket = try await SlowSocket.connect(port: port)
        defer { socket.shutdown() }
        #expect(
            socket.send(
                Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
                    + RapidResetE2ETests.frame(type: 0x4, flags: 0, stream: 0, payload: [])))
        let settings = try await socket.waitForClose(timeout: .seconds(10)) { outcome in
            SlowClientTests.frames(outcome.received).contains { $0.type == 0x4 && $0.flags & 1 == 0 }
        }
        var bytes = RapidResetE2ETests.frame(type: 0x4, flags: 0x1, stream: 0, payload: [])
        for i in 0..<streams { bytes += RapidResetE2ETests.headers(stream: UInt32(2 * i + 1)) }
        #expect(socket.send(bytes))
        let outcome = try await socket.waitForClose(timeout: .seconds(10))
        return (outcome.closedByServer, SlowClientTests.frames(settings.received + outcome.received))
    }

    static func scrape(_ port: Int) async throws -> Exposition {
        let client = try await TestHTTPClient.connect(port: port)
        let metrics = Exposition(try await client.request("GET", "/metrics").bodyString)
        await client.close()
        return metrics
    }

    static let protocolErrors = "trigger_gateway_http2_protocol_errors_total{reason=\"PROTOCOL_ERROR\"}"
    static func cut(_ flag: String) -> String {
        "trigger_gateway_requests_cut_total{frontend=\"rest\",response_flags=\"\(flag)\"}"
    }

    /// Whether the protocol-error count reaches `count` within 5 s. The count is taken right after the warning's
    /// decision, on the connection's loop, which may run after the client saw the close.
    static func counted(_ count: Double, port: Int) async -> Bool {
        await eventually(within: .seconds(5)) { (try? await scrape(port).samples[protocolErrors]) == count }
    }

    @Test(
        "limit of 4 streams: 4 keep the connection; 6 get GOAWAY PROTOCOL_ERROR, a count, and the 4 open streams DPE",
        arguments: [(4, false), (6, true)])
    func streamsOverTheLimit(streams: Int, refused: Bool) async throws {
        let observer = RecordingObserver()
        let log = RecordedLog()
        try await withTestGateway(yaml: Self.yaml, requestObservers: [observer], log: log) { gateway in
            let outcome = try await Self.openStreams(streams, port: gateway.port)
            let goAways = outcome.frames.filter { $0.type == 0x7 }
            if refused {
                #expect(outcome.closed)
                // Error code (payload bytes 4..<8): 0x1 PROTOCOL_ERROR; libnghttp2's reason in the debug data.
                #expect(goAways.map { Array($0.payload[4..<8]) } == [[0, 0, 0, 0x1]])
                #expect(await eventually(within: .seconds(5)) { observer.all.count == 4 }, "\(observer.all)")
                // The warning is written just before the count: once counted, it is there.
                #expect(await Self.counted(1, port: gateway.port))
                // The four triggers' records (the scrapes are requests too).
                for record in observer.all.prefix(4) {
                    #expect(record.responseFlags == "DPE", "\(record)")
                    #expect(record.status == 499, "no head went out: \(record)")
                }
                let warnings = log.lines.filter { $0.message == Self.warning && $0.level == .warning }
                #expect(warnings.count == 1, "\(log.lines)")
                #expect(warnings.first?.level == .warning)
                #expect(
                    warnings.first?.metadata["reason"]?.contains("max concurrent streams exceeded") == true,
                    "\(warnings)")
                #expect(warnings.first?.metadata["connections.held_back"] == nil)
            } else {
                // The streams stay open (their bodies never come); the client goes away: nothing logged or counted.
                #expect(!outcome.closed)
                #expect(goAways.isEmpty)
                #expect(log.lines.filter { $0.message == Self.warning }.isEmpty)
            }
            let counted = refused ? 1.0 : 0
            #expect(
                await eventually(within: .seconds(5)) {
                    (try? await Self.scrape(gateway.port).samples[Self.cut("DPE")]) == counted * 4
                })
            let metrics = try await Self.scrape(gateway.port)
            #expect(metrics.samples[Self.protocolErrors] == counted, "\(metrics.text)")
            if refused { #expect(metrics.samples[Self.cut("DC")] == 0, "the client did not go away") }
            // Every code's series is there from the start.
            #expect(metrics.samples["trigger_gateway_http2_protocol_errors_total{reason=\"FLOW_CONTROL_ERROR\"}"] == 0)
        }
    }

    @Test(
        "20 such connections: one warning, then none until 10 s after it; at 10 s one carrying the count held back"
    )
    func warningHeldBack() async throws {
        let clock = ManualDeadlineClock()
        let log = RecordedLog()
        try await withTestGateway(yaml: Self.yaml, log: log, warningClock: { clock.now }) { gateway in
            func warnings() -> [RecordedLog.Line] {
                log.lines.filter { $0.message == Self.warning && $0.level == .warning }
            }
            for _ in 0..<20 {
                let outcome = try await Self.openStreams(6, port: gateway.port)
                #expect(outcome.closed)
            }
            #expect(await Self.counted(20, port: gateway.port))
            #expect(warnings().count == 1, "one warning for 20 connections: \(warnings())")
            #expect(warnings().first?.metadata["connections.held_back"] == nil)

            // Just before the window's end: still held back.
            clock.advance(.seconds(10) - .nanoseconds(1))
            #expect(try await Self.openStreams(6, port: gateway.port).closed)
            #expect(await Self.counted(21, port: gateway.port))
            #expect(warnings().count == 1, "\(warnings())")

            // At its end: the next one is logged, with the 20 held back since the first.
            clock.advance(.nanoseconds(1))
            #expect(try await Self.openStreams(6, port: gateway.port).closed)
            // Every connection is counted, held back or not.
            #expect(await Self.counted(22, port: gateway.port))
            #expect(warnings().count == 2, "\(warnings())")
            #expect(warnings().last?.metadata["connections.held_back"] == "20", "\(warnings())")
            // When the first of them was (the wall clock's: RFC 3339, UTC, milliseconds).
            let since = try #require(warnings().last?.metadata["connections.held_back_since"], "\(warnings())")
            #expect(since.count == 24 && since.hasSuffix("Z"), "\(since)")
        }
    }
}
