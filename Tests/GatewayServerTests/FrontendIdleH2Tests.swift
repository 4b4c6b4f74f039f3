import GatewayConfig
@testable import GatewayServer
import GatewayTestSupport
import HTTP2Engine
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

/// `timeouts.idle` on HTTP/2 counts the time with no stream open (review 24, M3), on the event loop's clock: a
/// client that sends only connection-level frames (PING, SETTINGS, WINDOW_UPDATE) every third of the timeout
/// gets the shutdown GOAWAY at the timeout, not a nanosecond before, and the close a second period later; a
/// connection with a stream running is not shut down however long it runs, and its idle period starts when the
/// stream closes. The gateway's connection runs on NIO's testing loop (`FrontendDeadlineTests.connection`), the
/// client's bytes are written to it by hand; the real-socket tests are in SlowClientTests.
@Suite("HTTP/2 idle timeout: streams, not frames, on the event loop's clock")
struct FrontendIdleH2Tests {
    static let idle = TimeAmount.hours(3)
    /// A third and a half of ``idle``.
    static let third = TimeAmount.hours(1)
    static let half = TimeAmount.minutes(90)
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// A frame's bytes (RFC 9113 §4.1): 24-bit length, type, flags, stream id.
    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags]
            + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
    }

    /// The connection-level frames a client may send to look alive.
    enum KeepAlive: String, CaseIterable, Sendable {
        case ping
        case settings
        case windowUpdate

        var bytes: [UInt8] {
            switch self {
            case .ping: FrontendIdleH2Tests.frame(type: 6, Array("pingping".utf8))
            case .settings: FrontendIdleH2Tests.frame(type: 4)
            // WINDOW_UPDATE(0, 1): one more byte of connection window.
            case .windowUpdate: FrontendIdleH2Tests.frame(type: 8, [0, 0, 0, 1])
            }
        }
    }

    /// What the gateway sent so far on `channel`, all of it (the frames of a server's byte stream are contiguous).
    final class ServerBytes {
        var bytes: [UInt8] = []

        func read(_ channel: NIOAsyncTestingChannel) async throws {
            while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
                bytes += buffer.readableBytesView
            }
        }

        /// The frame types in them, in order.
        var frameTypes: [UInt8] {
            var types: [UInt8] = []
            var offset = 0
            while bytes.count - offset >= 9 {
                let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
                types.append(bytes[offset + 3])
                offset += 9 + length
            }
            return types
        }

        var goAways: Int { frameTypes.filter { $0 == 7 }.count }
    }

    @Test(
        "a connection that sends only PING, SETTINGS or WINDOW_UPDATE every idle/3 gets GOAWAY at timeouts.idle, then is closed a second idle period later",
        .timeLimit(.minutes(1)), arguments: KeepAlive.allCases)
    func keepAliveFramesDoNotCount(keepAlive: KeepAlive) async throws {
        let (loop, channel) = try await FrontendDeadlineTests.connection(
            requestTimeout: .hours(100), poolTimeout: .hours(100), runner: FrontendDeadlineTests.Hanging(),
            idleTimeout: Self.idle, wire: .http2)
        let server = ServerBytes()
        try await channel.writeInbound(ByteBuffer(bytes: Self.preface + Self.frame(type: 4)))
        try await server.read(channel)
        #expect(server.frameTypes.first == 4, "the gateway's SETTINGS first: \(server.frameTypes)")

        // Two keep-alive frames, at 1/3 and 2/3 of the period: nothing but their answers (ACKs) comes back.
        for _ in 0..<2 {
            await loop.advanceTime(by: Self.third)
            try await channel.writeInbound(ByteBuffer(bytes: keepAlive.bytes))
        }
        await loop.advanceTime(by: Self.third - .nanoseconds(1))
        try await server.read(channel)
        #expect(server.goAways == 0, "GOAWAY before timeouts.idle: \(server.frameTypes)")
        #expect(channel.isActive)

        // On the edge: the shutdown notice (GOAWAY with last stream 2^31-1) and its PING.
        await loop.advanceTime(by: .nanoseconds(1))
        try await server.read(channel)
        #expect(server.goAways == 1, "no GOAWAY at timeouts.idle: \(server.frameTypes)")

        // Still sending keep-alives, never answering the shutdown PING: closed a second period later.
        for _ in 0..<2 {
            await loop.advanceTime(by: Self.third)
            try await channel.writeInbound(ByteBuffer(bytes: keepAlive.bytes))
        }
        await loop.advanceTime(by: Self.third - .nanoseconds(1))
        #expect(channel.isActive, "closed before the second idle period")
        await loop.advanceTime(by: .nanoseconds(1))
        #expect(await eventually(within: .seconds(20)) { !channel.isActive }, "open after two idle periods")
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    @Test(
        "a connection with a call running is not shut down however long it runs; its idle period starts when the stream closes",
        .timeLimit(.minutes(1)))
    func openStreamHoldsConnection() async throws {
        let runner = FrontendDeadlineTests.Hanging()
        // The call ends at its deadline, ten and a half idle periods in, with no byte read from the client since
        // its request: an idle period counted from the last read would end half a period after it.
        let deadline = TimeAmount.minutes(10 * 180 + 90)
        let (loop, channel) = try await FrontendDeadlineTests.connection(
            requestTimeout: deadline, poolTimeout: .hours(100), runner: runner, idleTimeout: Self.idle,
            wire: .http2)
        let client = try await FrontendDeadlineH2Tests.Client(server: channel)
        let server = ServerBytes()
        // The client's bytes go to the gateway; the gateway's are recorded, then handed to the client.
        func exchange() async throws {
            var moved = true
            while moved {
                moved = false
                while let bytes = try await client.channel.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    try await channel.writeInbound(bytes)
                }
                while let bytes = try await channel.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    server.bytes += bytes.readableBytesView
                    try await client.channel.writeInbound(bytes)
                }
            }
        }
        try await FrontendDeadlineH2Tests.grpcTrigger(client, timeout: nil)
        try await exchange()
        await loop.run()
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })

        // Ten idle periods with the call running and nothing sent either way: no GOAWAY.
        for _ in 0..<10 {
            await loop.advanceTime(by: Self.idle)
            try await exchange()
        }
        #expect(server.goAways == 0, "GOAWAY with a call running: \(server.frameTypes)")
        #expect(channel.isActive)

        // The deadline answers the call (DEADLINE_EXCEEDED) and closes its stream: the idle period starts there.
        await loop.advanceTime(by: Self.half)
        #expect(
            await eventually(within: .seconds(20)) {
                try? await exchange()
                return (try? await client.onLoop { _, recorder in recorder.closed != nil }) ?? false
            }, "the call was not answered at its deadline")
        await loop.advanceTime(by: Self.idle - .nanoseconds(1))
        try await exchange()
        #expect(server.goAways == 0, "GOAWAY before timeouts.idle after the stream closed: \(server.frameTypes)")
        await loop.advanceTime(by: .nanoseconds(1))
        try await exchange()
        // The notice, and the final GOAWAY once the client's engine answered the shutdown PING.
        #expect(server.goAways >= 1, "no GOAWAY at timeouts.idle after the stream closed: \(server.frameTypes)")
        await client.finish()
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }
}
