import Foundation
import GatewayApp
import GatewayServer
import GatewayTestSupport
import NIOCore
import Observability
import Synchronization
import Testing

/// Review 24, M1 item 3: `limits.max_buffered_request_bytes_per_connection`. One HTTP/2 connection's buffered
/// request bodies are bounded; past the bound its streams get no WINDOW_UPDATE until bytes are released, so the
/// client is held back by flow control (not answered 503) and other clients are unaffected. Over real sockets: a
/// raw HTTP/2 client that reads every frame the gateway sends (WINDOW_UPDATE per stream), the engine's client
/// (which honours flow control) and grpcio.
@Suite("HTTP/2 request bodies held by flow control: limits.max_buffered_request_bytes_per_connection")
struct RequestWindowTests {
    static let trigger = "/v1beta/namespaces/demo/pipelines/echo/trigger"

    static func metricsText(_ gateway: TestGateway) -> String {
        String(decoding: gateway.app.metrics.scrape(), as: UTF8.self)
    }

    static func drained(_ gateway: TestGateway) async -> Bool {
        await eventually(within: .seconds(10)) { gateway.app.requestBuffer.bufferedBytes == 0 }
    }

    static func bodyBytes(_ size: Int) -> [UInt8] { Array(paddedBody(size: size).readableBytesView) }

    /// Edge: stream 1 (the oldest, always granted) sends 40 000 bytes of its body, or 40 001; stream 3 then two
    /// full frames, 32 768 bytes: the second brings the connection to exactly the bound, 72 768 (window granted:
    /// libnghttp2 sends a stream's WINDOW_UPDATE once half its window, 32 767, is consumed), or one byte past it
    /// (held: none). Then stream 1 ends, the held window is granted, and both bodies complete; another
    /// connection is served meanwhile.
    @Test(
        "raw h2: at the bound a body's window is replenished; one byte past it no WINDOW_UPDATE until another ends",
        arguments: [(40_000, false), (40_001, true)])
    func edge(firstSent: Int, held: Bool) async throws {
        let bound = 72_768
        let secondSent = 32_768
        let yaml = "limits: {max_buffered_request_bytes_per_connection: \(bound)}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let socket = try await SlowSocket.connect(port: gateway.port)
            let reader = RawH2Reader(socket)
            let first = Self.bodyBytes(70_000)
            let second = Self.bodyBytes(90_000)
            var out = RawH2.preface
            out += RawH2.post(stream: 1, path: Self.trigger)
            out += RawH2.data(stream: 1, first[..<firstSent], endStream: false)
            out += RawH2.post(stream: 3, path: Self.trigger)
            out += RawH2.data(stream: 3, second[..<secondSent], endStream: false)
            // Answered after the DATA before it was processed: the WINDOW_UPDATEs it caused are out by then.
            out += RawH2.get(stream: 5, path: "/healthz")
            socket.send(out)
            var frames = try await reader.read(timeout: .seconds(10)) { RawH2.ended($0, stream: 5) }
            #expect(RawH2.ended(frames, stream: 5), "no answer on stream 5: \(RawH2.describe(frames))")
            #expect(RawH2.windowUpdate(frames, stream: 1) > 0, "the oldest body: \(RawH2.describe(frames))")
            #expect(RawH2.windowUpdate(frames, stream: 3) == (held ? 0 : secondSent), "\(RawH2.describe(frames))")
            // The process budget holds the connection's bound plus one stream window at most (claims overstate
            // each body by one growth step, 16 KiB, here).
            let buffered = gateway.app.requestBuffer.bufferedBytes
            #expect(buffered >= bound && buffered <= bound + 65_535 + 2 * (16 << 10), "\(buffered)")

            // Another connection is served meanwhile, body and all: no 503.
            let other = try await H2TestClient.connect(port: gateway.port)
            let stream = try await other.request(
                [
                    (":method", "POST"), (":scheme", "http"), (":path", Self.trigger), (":authority", "127.0.0.1"),
                    ("content-type", "application/json"),
                ], body: Self.bodyBytes(50_000))
            let seen = try await other.wait(timeout: .seconds(10)) { $0.streams[stream]?.status != nil }
            #expect(seen.streams[stream]?.status == "200")
            await other.close()

            // Stream 1 ends: its body is handed on, and stream 3's held window is granted.
            socket.send(RawH2.data(stream: 1, first[firstSent...], endStream: true))
            frames = try await reader.read(timeout: .seconds(10)) { frames in
                RawH2.ended(frames, stream: 1) && RawH2.windowUpdate(frames, stream: 3) >= secondSent
            }
            #expect(RawH2.status200(frames, stream: 1), "\(RawH2.describe(frames))")
            #expect(RawH2.windowUpdate(frames, stream: 3) == secondSent, "\(RawH2.describe(frames))")
            // And stream 3 completes: nothing accepted was lost.
            socket.send(RawH2.data(stream: 3, second[secondSent...], endStream: true))
            frames = try await reader.read(timeout: .seconds(10)) { RawH2.ended($0, stream: 3) }
            #expect(RawH2.status200(frames, stream: 3), "\(RawH2.describe(frames))")
            #expect(RawH2.body(frames, stream: 3).count > 80_000)
            socket.shutdown()
            #expect(await Self.drained(gateway))
            let holds = "trigger_gateway_request_buffer_connection_holds_total \(held ? 1 : 0)"
            #expect(Self.metricsText(gateway).contains(holds))
        }
    }

    /// The progress rule: 20 bodies of 150 000 bytes each on one connection bounded at 100 000 — every body
    /// alone is past the bound, and 20 stream windows (20 × 64 KiB) are more than the connection window (1 MiB).
    /// The oldest body always gets window, and a held stream's bytes go back to the connection window, so all
    /// complete, in order, and none is refused.
    @Test("engine client: 20 bodies each past the bound on one connection all complete (the oldest always gets window)")
    func progress() async throws {
        let bound = 100_000
        let count = 20
        let size = 150_000
        let yaml = "limits: {max_buffered_request_bytes_per_connection: \(bound)}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await H2TestClient.connect(port: gateway.port)
            let budget = gateway.app.requestBuffer
            let peak = Mutex(0)
            let sampler = Task {
                while !Task.isCancelled {
                    let now = budget.bufferedBytes
                    peak.withLock { $0 = max($0, now) }
                    try? await Task.sleep(for: .milliseconds(1))
                }
            }
            var streams: [Int32] = []
            for _ in 0..<count {
                streams.append(
                    try await client.request(
                        [
                            (":method", "POST"), (":scheme", "http"), (":path", Self.trigger),
                            (":authority", "127.0.0.1"), ("content-type", "application/json"),
                        ], body: Self.bodyBytes(size)))
            }
            // The client reads its answers (echoes as large as the bodies) as they come.
            var snapshot = client.snapshot
            for _ in 0..<600 {
                try await client.consumeAll()
                snapshot = client.snapshot
                if streams.allSatisfy({ snapshot.streams[$0]?.endStream == true }) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            sampler.cancel()
            let statuses = streams.map { snapshot.streams[$0]?.status ?? "none" }
            #expect(statuses == Array(repeating: "200", count: count), "\(statuses)")
            #expect(streams.allSatisfy { snapshot.streams[$0]?.endStream == true })
            await client.close()
            #expect(await Self.drained(gateway))
            // Held back, not refused; and what the process held stayed near the bound: the bound, a stream window
            // per held stream, the oldest body, and a growth step per claim.
            let metrics = Self.metricsText(gateway)
            #expect(!metrics.contains("trigger_gateway_request_buffer_connection_holds_total 0"))
            #expect(metrics.contains(#"trigger_gateway_requests_refused_total{reason="request_buffer"} 0"#))
            let most = peak.withLock { $0 }
            #expect(most <= bound + count * (65_535 + (16 << 10)) + size * 5 / 4, "peak \(most)")
        }
    }
}

extension RequestWindowTests {
    /// grpcio: six 300 000-byte unary calls at once on its one connection, bounded at 100 000.
    @Test("grpcio: six large calls at once on one connection past the bound all succeed")
    func grpcioParallelCalls() async throws {
        let yaml = "limits: {max_buffered_request_bytes_per_connection: 100000}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let answer = try await Peers.grpcio("many-sized", port: gateway.port, ["6", "300000"])
            #expect(answer["codes"] as? [String] == Array(repeating: "OK", count: 6), "\(answer)")
            #expect(await Self.drained(gateway))
            let metrics = Self.metricsText(gateway)
            #expect(!metrics.contains("trigger_gateway_request_buffer_connection_holds_total 0"), "never held")
        }
    }
}

/// Hand-built HTTP/2 frames for a client that reads what the server sends frame by frame.
enum RawH2 {
    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: Int32
        var payload: [UInt8]
    }

    static func frame(type: UInt8, flags: UInt8, stream: Int32, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        let id = UInt32(stream)
        return [
            UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags,
            UInt8(id >> 24 & 0x7f), UInt8(id >> 16 & 0xff), UInt8(id >> 8 & 0xff), UInt8(id & 0xff),
        ] + payload
    }

    static func u32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    /// The magic, SETTINGS with the largest stream window, and the largest connection window: the client never
    /// holds the answers back, so every WINDOW_UPDATE the test looks for is the gateway's own decision.
    static let preface: [UInt8] =
        Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        + frame(type: 4, flags: 0, stream: 0, [0, 4] + u32(0x7fff_ffff))
        + frame(type: 8, flags: 0, stream: 0, u32(0x7fff_ffff - 65_535))

    static func post(stream: Int32, path: String) -> [UInt8] {
        let block = SlowClientTests.literalHeaderBlock([
            (":method", "POST"), (":scheme", "http"), (":authority", "gw"), (":path", path),
            ("content-type", "application/json"),
        ])
        return frame(type: 1, flags: 4, stream: stream, block)
    }

    static func get(stream: Int32, path: String) -> [UInt8] {
        let block = SlowClientTests.literalHeaderBlock([
            (":method", "GET"), (":scheme", "http"), (":authority", "gw"), (":path", path),
        ])
        return frame(type: 1, flags: 5, stream: stream, block)
    }

    /// `bytes` as DATA frames of at most 16 384 bytes (the default SETTINGS_MAX_FRAME_SIZE).
    static func data(stream: Int32, _ bytes: ArraySlice<UInt8>, endStream: Bool) -> [UInt8] {
        var out: [UInt8] = []
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let end = min(bytes.endIndex, offset + 16_384)
            let last = end == bytes.endIndex
            out += frame(type: 0, flags: last && endStream ? 1 : 0, stream: stream, Array(bytes[offset..<end]))
            offset = end
        }
        return out
    }

    /// Complete frames in `bytes`, and how many bytes they took.
    static func parse(_ bytes: [UInt8]) -> (frames: [Frame], used: Int) {
        var frames: [Frame] = []
        var offset = 0
        while bytes.count - offset >= 9 {
            let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            guard bytes.count - offset - 9 >= length else { break }
            let id =
                Int32(bytes[offset + 5] & 0x7f) << 24 | Int32(bytes[offset + 6]) << 16
                | Int32(bytes[offset + 7]) << 8 | Int32(bytes[offset + 8])
            frames.append(
                Frame(
                    type: bytes[offset + 3], flags: bytes[offset + 4], stream: id,
                    payload: Array(bytes[(offset + 9)..<(offset + 9 + length)])))
            offset += 9 + length
        }
        return (frames, offset)
    }

    /// The WINDOW_UPDATE increments the server sent for `stream`, summed.
    static func windowUpdate(_ frames: [Frame], stream: Int32) -> Int {
        frames.filter { $0.type == 8 && $0.stream == stream }.reduce(0) { sum, frame in
            sum + Int(frame.payload.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7fff_ffff)
        }
    }

    /// The server ended `stream` (END_STREAM on DATA or HEADERS, or RST_STREAM).
    static func ended(_ frames: [Frame], stream: Int32) -> Bool {
        frames.contains { $0.stream == stream && (($0.type == 0 || $0.type == 1) && $0.flags & 1 == 1 || $0.type == 3) }
    }

    /// The answer's HEADERS begin with `:status: 200` (HPACK static index 8, 0x88, as libnghttp2 encodes it).
    static func status200(_ frames: [Frame], stream: Int32) -> Bool {
        frames.first { $0.type == 1 && $0.stream == stream }?.payload.first == 0x88
    }

    static func body(_ frames: [Frame], stream: Int32) -> [UInt8] {
        frames.filter { $0.type == 0 && $0.stream == stream }.flatMap(\.payload)
    }

    static func describe(_ frames: [Frame]) -> String {
        frames.map { "\($0.type)/\($0.stream)/\($0.payload.count)" }.joined(separator: " ")
    }
}

/// Reads a raw socket frame by frame, keeping every frame seen so far.
final class RawH2Reader: Sendable {
    private let socket: SlowSocket
    private let state = Mutex<(pending: [UInt8], frames: [RawH2.Frame])>(([], []))

    init(_ socket: SlowSocket) { self.socket = socket }

    /// Reads until `condition` holds for every frame received so far (or `timeout` passes); returns them.
    func read(timeout: Duration, until condition: @escaping @Sendable ([RawH2.Frame]) -> Bool) async throws
        -> [RawH2.Frame]
    {
        let deadline = ContinuousClock.now + timeout
        while true {
            let frames = state.withLock { $0.frames }
            if condition(frames) { return frames }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return frames }
            let outcome = try await socket.waitForClose(timeout: left) { _ in true }
            let done = state.withLock { state in
                state.pending += outcome.received
                let (parsed, used) = RawH2.parse(state.pending)
                state.pending.removeFirst(used)
                state.frames += parsed
                return outcome.closedByServer
            }
            if done { return state.withLock { $0.frames } }
        }
    }
}
