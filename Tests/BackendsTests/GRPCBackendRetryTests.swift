import Backends
import DemoRunner
import NIOCore
import Synchronization
import Testing
import TriggerModel

/// Safe retries on the gRPC transport: a stream the backend refused (GOAWAY before processing it) goes to
/// another endpoint.
@Suite("gRPC backend transport: safe retries")
struct GRPCBackendRetryTests {
    @Test("a GOAWAY that refuses every stream before processing sends each call to the other endpoint")
    func goAwayGoesElsewhere() async throws {
        let connections = Atomic(0)
        // Answers the client's preface with SETTINGS, an ACK, and GOAWAY(last stream 0, NO_ERROR): no stream was
        // processed (RFC 9113 §6.8), so the client may send it again anywhere.
        let refusing = try await RawBackend.bind { received in
            guard received.readableBytes >= H2Bytes.preface.count else { return nil }
            connections.add(1, ordering: .relaxed)
            let bytes =
                H2Bytes.frame(type: 0x4, flags: 0, stream: 0, payload: [])
                + H2Bytes.frame(type: 0x4, flags: 0x1, stream: 0, payload: [])
                + H2Bytes.frame(type: 0x7, flags: 0, stream: 0, payload: [0, 0, 0, 0, 0, 0, 0, 0])
            return ByteBuffer(bytes: bytes)
        }
        let live = try await DemoGRPCServer.bind(host: "127.0.0.1", port: 0, runner: TestRunner(), group: testGroup)
        let transport = GRPCBackendTransport(
            configuration: BackendPoolConfiguration(
                name: "test-pool",
                transport: .grpc,
                endpoints: [
                    .init(host: "127.0.0.1", port: refusing.localAddress!.port!),
                    .init(host: "127.0.0.1", port: live.localAddress!.port!),
                ]
            ),
            group: testGroup
        )
        defer {
            transport.close()
            Task {
                try? await refusing.close()
                try? await live.close()
            }
        }
        for i in 0..<20 {
            let result = try await transport.run(makeRequest("echo", ["i": .number(Double(i))]))
            #expect(result.outputs.first?["i"] == .number(Double(i)))
        }
        #expect(connections.load(ordering: .relaxed) >= 1, "the refusing endpoint was tried")
        #expect(transport.balancer.retriesInFlightCount == 0, "every retry gave its budget back")
    }
}
