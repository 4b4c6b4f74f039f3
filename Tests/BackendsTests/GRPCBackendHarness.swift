import Backends
import DemoRunner
import NIOCore
import NIOPosix
import Synchronization
import TriggerModel

/// A demo gRPC server (serving a fresh ``TestRunner``) on 127.0.0.1:0 and a transport pointed at it.
struct GRPCBackendFixture {
    let runner: TestRunner
    let server: any Channel
    let port: Int
    let transport: GRPCBackendTransport
    let configuration: BackendPoolConfiguration

    var probe: Probe { runner.probe }
}

let testGroup = MultiThreadedEventLoopGroup.singleton

/// Runs `body` against a fresh server and transport; both are closed afterwards, also when `body` throws.
/// `group`: where both run (the process-wide singleton unless a test wants loops no other test shares).
func withGRPCBackend<T>(
    group: any EventLoopGroup = testGroup,
    configure: (inout BackendPoolConfiguration) -> Void = { _ in },
    _ body: (GRPCBackendFixture) async throws -> T
) async throws -> T {
    let runner = TestRunner()
    let server = try await DemoGRPCServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: group)
    let port = server.localAddress!.port!
    var configuration = BackendPoolConfiguration(
        name: "test-pool",
        transport: .grpc,
        endpoints: [.init(host: "127.0.0.1", port: port)],
        connectTimeout: .seconds(2)
    )
    configure(&configuration)
    let transport = GRPCBackendTransport(configuration: configuration, group: group)
    let fixture = GRPCBackendFixture(
        runner: runner,
        server: server,
        port: port,
        transport: transport,
        configuration: configuration
    )
    do {
        let result = try await body(fixture)
        transport.close()
        try? await server.close()
        return result
    } catch {
        transport.close()
        try? await server.close()
        throw error
    }
}

/// A transport for a pool with one endpoint at `port`.
func makeTransport(port: Int, connectTimeout: TimeAmount = .seconds(2)) -> GRPCBackendTransport {
    GRPCBackendTransport(
        configuration: BackendPoolConfiguration(
            name: "test-pool",
            transport: .grpc,
            endpoints: [.init(host: "127.0.0.1", port: port)],
            connectTimeout: connectTimeout
        ),
        group: testGroup
    )
}

func makeRequest(
    _ pipeline: String,
    _ variables: ValueObject = [:],
    deadline: NIODeadline? = nil,
    mode: TriggerMode = .sync
) -> TriggerRequest {
    TriggerRequest(
        ref: PipelineRef(namespace: "test", pipeline: pipeline),
        mode: mode,
        inputs: [TriggerInput(variables: variables)],
        deadline: deadline,
        requestID: "req-\(pipeline)"
    )
}

/// A TCP server that is not a gRPC backend: it collects what the client sends and, when `answer` returns
/// bytes for what it has so far, writes them (once) and keeps the connection open.
enum RawBackend {
    static func bind(answer: @escaping @Sendable (ByteBuffer) -> ByteBuffer?) async throws -> any Channel {
        try await ServerBootstrap(group: testGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawBackendHandler(answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }
}

final class RawBackendHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answer: @Sendable (ByteBuffer) -> ByteBuffer?
    private var received = ByteBuffer()
    private var answered = false

    init(answer: @escaping @Sendable (ByteBuffer) -> ByteBuffer?) {
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.writeBuffer(&chunk)
        guard !answered, let bytes = answer(received) else { return }
        answered = true
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }
}

/// Hand-made HTTP/2 frames for a fake backend (RFC 9113 §4.1), so the client's handling of a malformed
/// answer is tested against bytes, not against our own server.
enum H2Bytes {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
            + payload
    }

    /// HPACK "literal header field without indexing, new name" (RFC 7541 §6.2.2), short strings only.
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
    }

    /// Whether `received` (what the client sent) contains a HEADERS frame for stream 1 yet.
    static func hasRequestHeaders(_ received: ByteBuffer) -> Bool {
        var buffer = received
        guard buffer.readableBytes >= preface.count else { return false }
        buffer.moveReaderIndex(forwardBy: preface.count)
        while buffer.readableBytes >= 9 {
            let bytes = buffer.readBytes(length: 9)!
            let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
            let stream =
                UInt32(bytes[5] & 0x7F) << 24 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 8 | UInt32(bytes[8])
            if bytes[3] == 0x1, stream == 1 { return true }
            guard buffer.readableBytes >= length else { return false }
            buffer.moveReaderIndex(forwardBy: length)
        }
        return false
    }

    /// Server SETTINGS, an ACK of the client's, then one HEADERS block ending stream 1.
    static func answer(headerBlock: [UInt8]) -> ByteBuffer {
        let bytes =
            frame(type: 0x4, flags: 0, stream: 0, payload: [])
            + frame(type: 0x4, flags: 0x1, stream: 0, payload: [])
            + frame(type: 0x1, flags: 0x5, stream: 1, payload: headerBlock)
        return ByteBuffer(bytes: bytes)
    }
}
