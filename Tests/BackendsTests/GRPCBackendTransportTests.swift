import Backends
import DemoRunner
import GatewayTestSupport
import NIOCore
import Synchronization
import Testing
import TriggerModel
import TestScheduling

@Suite("gRPC backend transport against the demo gRPC server")
struct GRPCBackendTransportTests {
    @Test("a unary echo carries a 1 MiB blob byte for byte, with strings, numbers and key order intact", .cpuBound)
    func unaryEchoBlob() async throws {
        try await withGRPCBackend { backend in
            var bytes = ByteBuffer()
            var x: UInt32 = 0x1234_5678
            for _ in 0..<(1 << 20) {
                x = x &* 1_664_525 &+ 1_013_904_223  // LCG: every byte differs from a shifted copy
                bytes.writeInteger(UInt8(truncatingIfNeeded: x >> 24))
            }
            let variables: ValueObject = [
                "zeta": .string("héllo ✓"),
                "file": .blob(Blob(contentType: "application/x-test", fileName: "a.bin", bytes: bytes)),
                "n": .number(42.5),
                "alpha": .list([.bool(true), .null]),
            ]
            let result = try await backend.transport.run(makeRequest("echo", variables))
            #expect(result.outputs.count == 1)
            #expect(result.outputs.first?.keys == ["zeta", "file", "n", "alpha"])
            let blob = try #require(result.outputs.first?["file"]?.blobValue)
            #expect(blob.count == 1 << 20)
            #expect(blob.bytes == bytes)
            #expect(blob.contentType == "application/x-test")
            #expect(blob.fileName == "a.bin")
            #expect(result.outputs.first == variables)
        }
    }

    @Test("metadata travels: request id, trace context, principal, idempotency key, deadline, mode")
    func metadata() async throws {
        try await withGRPCBackend { backend in
            let created = NIODeadline.now()
            // Far off: with every unit suite in parallel on two cores, a call's answer once waited ~30 s for a
            // thread to resume on (a 30 s deadline here then passed first).
            var request = makeRequest("meta", deadline: created + .seconds(600))
            request.requestID = "rid-123"
            request.traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            request.traceState = "congo=t61rcWkgMzE"
            request.principal = "alice"
            request.idempotencyKey = "op-42"
            request.ref.release = "v1.2.0"
            let result = try await backend.transport.run(request)
            let out = try #require(result.outputs.first)
            #expect(out["request_id"] == .string("rid-123"))
            #expect(out["traceparent"] == .string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
            #expect(out["tracestate"] == .string("congo=t61rcWkgMzE"))
            #expect(out["principal"] == .string("alice"))
            #expect(out["idempotency_key"] == .string("op-42"))
            #expect(out["mode"] == .string("sync"))
            #expect(out["release"] == .string("v1.2.0"))
            let ms = try #require(out["deadline_ms"]?.numberValue)
            // What is left when the call left, so at least 600 s less the time the call took (a loaded machine
            // can take seconds), less 1 ms for grpc-timeout's rounding.
            let tookMS = Double((NIODeadline.now() - created).nanoseconds) / 1e6
            #expect(ms > 600_000 - tookMS - 1 && ms <= 600_000, "deadline_ms \(ms), call took \(tookMS) ms")
        }
    }

    @Test("absent metadata stays absent, and a value with a control character is not sent")
    func metadataAbsent() async throws {
        try await withGRPCBackend { backend in
            var request = makeRequest("meta")
            request.principal = "evil\r\nx-injected: 1"
            let out = try #require(try await backend.transport.run(request).outputs.first)
            #expect(out["principal"] == .null)
            #expect(out["traceparent"] == .null)
            #expect(out["deadline_ms"] == .null)
        }
    }

    /// Calls at once → connections: a connection carries up to 100 streams (the peer's default
    /// SETTINGS_MAX_CONCURRENT_STREAMS), one more opens a second connection.
    @Test(
        "concurrent calls are multiplexed: up to 100 share one connection, more open another",
        arguments: [(1, 1), (100, 1), (101, 2)]
    )
    func concurrentCallsShareConnections(calls: Int, connections: Int) async throws {
        try await withGRPCBackend { backend in
            let answers = try await withThrowingTaskGroup(of: (Int, ValueObject?).self) { group in
                for i in 0..<calls {
                    group.addTask {
                        let variables: ValueObject = ["i": .number(Double(i)), "delay_ms": .number(100)]
                        let result = try await backend.transport.run(makeRequest("echo", variables))
                        return (i, result.outputs.first)
                    }
                }
                var answers: [Int: ValueObject?] = [:]
                for try await (i, output) in group { answers[i] = output }
                return answers
            }
            #expect(answers.count == calls)
            for (i, output) in answers { #expect(output?["i"] == .number(Double(i))) }
            #expect(backend.transport.connectionCount == connections)
        }
    }

    @Test("a connection the backend closed is replaced on the next call")
    func deadConnectionReplaced() async throws {
        let runner = TestRunner()
        let first = try await DemoGRPCServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: testGroup)
        let port = first.localAddress!.port!
        let transport = makeTransport(port: port)
        defer { transport.close() }
        #expect(try await transport.run(makeRequest("echo", ["a": .number(1)])).outputs.first?["a"] == .number(1))
        try await first.close()
        let second = try await DemoGRPCServer.bind(host: "127.0.0.1", port: port, runner: runner, group: testGroup)
        defer { second.close(promise: nil) }
        // The next call goes out once the transport has seen the old connection go (a call racing the close may
        // reach the backend on it and fails, by design: it is not retried). Waiting on that event, not a fixed
        // sleep that a loaded machine outruns.
        let noticed = await eventually(within: .seconds(20), interval: .milliseconds(2)) {
            transport.connectionCount == 0
        }
        #expect(noticed, "the closed connection is still counted as usable")
        #expect(try await transport.run(makeRequest("echo", ["a": .number(2)])).outputs.first?["a"] == .number(2))
        #expect(transport.connectionCount == 1)
    }
}
