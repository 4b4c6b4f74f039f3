import Foundation
import GatewayTestSupport
import Testing

/// The HTTP/2 rapid-reset attack (CVE-2023-44487) against the real executable over a real socket: a raw-frame
/// client opens a request and resets it at once, over and over, as the attack tools do.
@Suite("HTTP/2 rapid reset, real gateway", .serialized)
struct RapidResetE2ETests {
    static let warning = "HTTP/2 connection ended with GOAWAY ENHANCE_YOUR_CALM: rapid reset"

    /// HEADERS (END_HEADERS, no END_STREAM: the body never comes) for a REST trigger, HPACK without the
    /// dynamic table: `:method: POST` (static 3), `:scheme: http` (6), then literals without indexing for
    /// `:path` (name 4), `:authority` (1) and `content-type` (31 = 15 + 16).
    static func headers(stream: UInt32) -> [UInt8] {
        func literal(_ prefix: [UInt8], _ value: String) -> [UInt8] {
            prefix + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        let block: [UInt8] =
            [0x83, 0x86] + literal([0x04], "/v1beta/namespaces/demo/pipelines/upper/trigger")
            + literal([0x01], "gw") + literal([0x0f, 0x10], "application/json")
        return frame(type: 0x1, flags: 0x4, stream: stream, payload: block)
    }

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags]
            + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
    }

    /// The client preface, an empty SETTINGS, then `pairs` HEADERS + RST_STREAM(CANCEL) pairs.
    static func attack(pairs: Int) -> [UInt8] {
        var bytes = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(type: 0x4, flags: 0, stream: 0, payload: [])
        for i in 0..<pairs {
            let stream = UInt32(2 * i + 1)
            bytes += headers(stream: stream) + frame(type: 0x3, flags: 0, stream: stream, payload: [0, 0, 0, 0x8])
        }
        return bytes
    }

    /// 999 (burst − 1) is inside the limit however slowly the gateway reads; 1500 is past it unless reading
    /// them took over 15 s (the refill is 33/s), and past libnghttp2's own default (1000), which would have
    /// sent INTERNAL_ERROR. The exact edge (the 1000th reset within the burst) is `HTTP2EngineTests`' to
    /// show, on a stepped clock: here the gateway's real clock refills a few tokens while it reads.
    @Test(
        "burst − 1 resets keep the connection; well past the burst it gets GOAWAY ENHANCE_YOUR_CALM, one warning, a count",
        arguments: [(999, false), (1500, true)]
    )
    func rapidReset(pairs: Int, refused: Bool) async throws {
        try await ProcessTests.withGatewayProcess { server in
            let socket = try await SlowSocket.connect(port: server.port)
            #expect(socket.send(Self.attack(pairs: pairs)))
            let outcome = try await socket.waitForClose(timeout: .seconds(refused ? 10 : 2))
            let goAways = SlowClientTests.frames(outcome.received).filter { $0.type == 7 }
            if refused {
                #expect(outcome.closedByServer)
                // Error code (payload bytes 4..<8): 0xb ENHANCE_YOUR_CALM, not libnghttp2's INTERNAL_ERROR (0x2).
                #expect(goAways.map { Array($0.payload[4..<8]) } == [[0, 0, 0, 0xb]])
                #expect(await server.logOccurrences(of: Self.warning, timeout: .seconds(5)) == 1, "\(server.logged)")
                let line = try #require(server.logged.split(separator: "\n").first { $0.contains(Self.warning) })
                // `host:port`, not NIO's `[IPv4]127.0.0.1/127.0.0.1:PORT` (review 9, finding 11).
                #expect(
                    line.range(of: #"peer.address=127\.0\.0\.1:[0-9]+ "#, options: .regularExpression) != nil,
                    "the peer's address: \(line)")
                #expect(line.contains("warning"), "\(line)")
            } else {
                #expect(!outcome.closedByServer)
                #expect(goAways.isEmpty)
                #expect(!server.logged.contains(Self.warning))
            }
            socket.shutdown()
            // The count, from a client of its own (the attacked connection is gone).
            let scrape = try await TestHTTPClient.connect(port: server.port)
            let metrics = Exposition(try await scrape.request("GET", "/metrics").bodyString)
            await scrape.close()
            let series = "trigger_gateway_http2_enhance_your_calm_total{reason=\"rapid_reset\"}"
            #expect(
                metrics.samples[series] == (refused ? 1 : 0),
                "\(metrics.samples.filter { $0.key.contains("enhance_your_calm") })")
        }
    }

    /// "MadeYouReset" (CVE-2025-8671): the client never sends RST_STREAM; each HEADERS is followed by
    /// WINDOW_UPDATE(stream, 2^31 − 1), which overflows the stream's send window, so the gateway itself resets
    /// the stream (FLOW_CONTROL_ERROR). Those resets take the same tokens: 1500 are past the burst (1000).
    /// Before the fix the connection stayed open with 1500 server resets and no warning (review 24 H1).
    @Test(
        "server resets the client provokes (WINDOW_UPDATE overflow) count against the limit: GOAWAY ENHANCE_YOUR_CALM, one warning, a count"
    )
    func madeYouReset() async throws {
        try await ProcessTests.withGatewayProcess { server in
            var bytes =
                Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + Self.frame(type: 0x4, flags: 0, stream: 0, payload: [])
            for i in 0..<1500 {
                let stream = UInt32(2 * i + 1)
                bytes +=
                    Self.headers(stream: stream)
                    + Self.frame(type: 0x8, flags: 0, stream: stream, payload: [0x7f, 0xff, 0xff, 0xff])
            }
            let socket = try await SlowSocket.connect(port: server.port)
            #expect(socket.send(bytes))
            let outcome = try await socket.waitForClose(timeout: .seconds(10))
            let frames = SlowClientTests.frames(outcome.received)
            #expect(outcome.closedByServer)
            #expect(frames.filter { $0.type == 7 }.map { Array($0.payload[4..<8]) } == [[0, 0, 0, 0xb]])
            #expect(frames.contains { $0.type == 3 })  // the server's own FLOW_CONTROL_ERROR resets went first
            #expect(await server.logOccurrences(of: Self.warning, timeout: .seconds(5)) == 1, "\(server.logged)")
            socket.shutdown()
            let scrape = try await TestHTTPClient.connect(port: server.port)
            let metrics = Exposition(try await scrape.request("GET", "/metrics").bodyString)
            await scrape.close()
            #expect(metrics.samples["trigger_gateway_http2_enhance_your_calm_total{reason=\"rapid_reset\"}"] == 1)
        }
    }
}
