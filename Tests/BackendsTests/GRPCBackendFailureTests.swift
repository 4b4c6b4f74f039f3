import Backends
import GatewayTestSupport
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
import TriggerModel

@Suite("gRPC backend transport: failures, deadlines and cancellation")
struct GRPCBackendFailureTests {
    /// What the runner throws (as a google.rpc code; nil: a plain Swift error → UNKNOWN) and what the
    /// gateway reports after the hop.
    static let statusCases: [(thrown: Int?, expected: GatewayError.Code)] = [
        (3, .invalidArgument),
        (5, .notFound),
        (7, .permissionDenied),
        (8, .tooManyRequests),
        (9, .failedPrecondition),
        (12, .unimplemented),
        (16, .unauthenticated),
        (4, .deadlineExceeded),
        (14, .backendFailed),  // UNAVAILABLE from a backend is the backend failing
        (13, .backendFailed),  // INTERNAL
        (nil, .backendFailed),  // UNKNOWN
    ]

    @Test("a backend's grpc-status maps to the gateway's error, message percent-decoded", arguments: statusCases)
    func statusMapping(thrown: Int?, expected: GatewayError.Code) async throws {
        try await withGRPCBackend { backend in
            var variables: ValueObject = ["message": .string("nope: 100% ünïcode\nline 2")]
            if let thrown { variables["code"] = .number(Double(thrown)) }
            let error = await #expect(throws: GatewayError.self) {
                try await backend.transport.run(makeRequest("fail", variables))
            }
            #expect(error?.code == expected)
            #expect(error?.message == "nope: 100% ünïcode\nline 2")
        }
    }

    @Test("a long error message is shortened to fit the trailers instead of resetting the stream")
    func longErrorMessage() async throws {
        try await withGRPCBackend { backend in
            let long = String(repeating: "é", count: 20_000)
            let error = await #expect(throws: GatewayError.self) {
                try await backend.transport.run(makeRequest("fail", ["code": .number(3), "message": .string(long)]))
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == String(repeating: "é", count: 1024) + "…")
        }
    }

    @Test("an unknown pipeline comes back as notFound through Trailers-Only")
    func trailersOnly() async throws {
        try await withGRPCBackend { backend in
            let error = await #expect(throws: GatewayError.self) {
                try await backend.transport.run(makeRequest("missing"))
            }
            #expect(error?.code == .notFound)
            #expect(error?.message == "no pipeline test/missing")
        }
    }

    @Test("a refused port is backendFailed naming the pool and the reason, not the endpoint's address")
    func refusedPort() async throws {
        let server = try await RawBackend.bind { _ in nil }
        let port = server.localAddress!.port!
        try await server.close()
        let transport = makeTransport(port: port)
        defer { transport.close() }
        let error = await #expect(throws: GatewayError.self) {
            try await transport.run(makeRequest("echo"))
        }
        #expect(error?.code == .backendFailed)
        #expect(
            error?.message.hasSuffix("cannot connect to an endpoint: connection refused") == true,
            "\(error?.message ?? "")")
        #expect(error?.message.contains("\(port)") == false, "backend addresses stay in the log")
    }

    /// Fake backends answering with bytes that are not a valid gRPC response.
    static let garbageCases: [(reason: String, answer: @Sendable (ByteBuffer) -> ByteBuffer?)] = [
        // Review 17, finding 8: the message names the likely cause (an http runner behind a grpc pool).
        (
            "an HTTP/2 protocol error",
            { _ in ByteBuffer(string: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") }
        ),
        (
            "no grpc-status",
            { received in
                H2Bytes.hasRequestHeaders(received) ? H2Bytes.answer(headerBlock: [0x88]) : nil
            }
        ),
        (
            "grpc-status \"abc\"",
            { received in
                H2Bytes.hasRequestHeaders(received)
                    ? H2Bytes.answer(headerBlock: [0x88] + H2Bytes.literal("grpc-status", "abc")) : nil
            }
        ),
        (
            "HTTP status 500",
            { received in
                H2Bytes.hasRequestHeaders(received) ? H2Bytes.answer(headerBlock: [0x8E]) : nil
            }
        ),
    ]

    @Test("a backend answering garbage is backendFailed, not a hang", arguments: 0..<garbageCases.count)
    func garbage(index: Int) async throws {
        let server = try await RawBackend.bind(answer: Self.garbageCases[index].answer)
        defer { server.close(promise: nil) }
        let transport = makeTransport(port: server.localAddress!.port!)
        defer { transport.close() }
        let reason = Self.garbageCases[index].reason
        let error = await #expect(throws: GatewayError.self, "\(reason)") {
            try await transport.run(makeRequest("echo", deadline: .now() + .seconds(10)))
        }
        #expect(error?.code == .backendFailed)
        // An HTTP/1.1 answer can arrive (and the peer close) before our HEADERS left: then the stream is
        // refused rather than answered with garbage; either way the call fails at once as backendFailed.
        let message = error?.message ?? ""
        #expect(
            message.contains("answered garbage: \(reason)") || (index == 0 && message.contains("refused")), "\(message)"
        )
        if index == 0, !message.contains("refused") {
            #expect(message.contains("check the pool's transport"), "\(message)")
        }
    }

    @Test("a deadline ends the call with deadlineExceeded promptly and cancels the run on the backend")
    func deadline() async throws {
        try await withGRPCBackend { backend in
            let error = await #expect(throws: GatewayError.self) {
                try await backend.transport.run(makeRequest("slow", deadline: .now() + .milliseconds(200)))
            }
            // The slow pipeline runs for a minute and then answers: an error at all shows the deadline cut it. No
            // wall-clock bound: with every suite in parallel beside the side builds this call took 25 s
            // (thirty-ninth session) and 29 s (twenty-sixth) to come back, where alone it takes 0.2 s.
            #expect(error?.code == .deadlineExceeded)
            #expect(await backend.probe.wait(for: "slow.cancelled", within: .seconds(20)))
        }
    }

    @Test("through a BackendPool, the pool's timeout cancels the call and the backend's run")
    func poolTimeout() async throws {
        try await withGRPCBackend { backend in
            // The pool's `async` calls and their timers run on a testing loop whose clock only moves when told:
            // the call is sure to have reached the backend before the timeout fires, however loaded the machine.
            // Its clock starts at the real uptime, so the deadline the transport and the backend are given (wall
            // time, two minutes away) is not what ends the run: the pool's timer is.
            let loop = NIOAsyncTestingEventLoop()
            await loop.advanceTime(to: .now())
            var configuration = backend.configuration
            configuration.requestTimeout = .seconds(120)
            let pool = BackendPool(configuration: configuration, transport: backend.transport, eventLoopGroup: loop)
            let call = Task { try await pool.run(makeRequest("slow", ["ms": .number(600_000)])) }
            #expect(await backend.probe.wait(for: "slow.started", within: .seconds(30)))
            await loop.advanceTime(by: .seconds(120) - .nanoseconds(1))
            #expect(backend.probe.count("slow.cancelled") == 0, "cut before the pool's timeout")
            await loop.advanceTime(by: .nanoseconds(1))
            let error = await #expect(throws: GatewayError.self) { try await call.value }
            #expect(error?.code == .deadlineExceeded)
            #expect(error?.message.contains("120s") == true, "\(String(describing: error))")
            #expect(await backend.probe.wait(for: "slow.cancelled", within: .seconds(20)))
            #expect(await eventually(within: .seconds(20)) { pool.slotsInUse == 0 }, "the slot is given back")
            await loop.shutdownGracefully()
        }
    }

    @Test("cancelling the calling task resets only its stream; the backend's run is cancelled, others go on")
    func cancellation() async throws {
        try await withGRPCBackend { backend in
            let transport = backend.transport
            let slow = Task { try await transport.run(makeRequest("slow")) }
            let other = Task { try await transport.run(makeRequest("slow", ["ms": .number(300)])) }
            #expect(await backend.probe.wait(for: "slow.started", atLeast: 2))
            slow.cancel()
            let error = await #expect(throws: GatewayError.self) { try await slow.value }
            #expect(error?.code == .cancelled)
            #expect(await backend.probe.wait(for: "slow.cancelled"))
            let survivor = try await other.value
            #expect(survivor.outputs.first?["slept"] == .bool(true))
            #expect(backend.probe.count("slow.cancelled") == 1)
            #expect(transport.connectionCount == 1)
        }
    }
}
