import Foundation
import GatewayTestSupport
import Testing

/// Stream mode over gRPC (`TriggerNamespacePipelineWithStream`, issue 5) with grpcio as the client: messages
/// per event through every backend kind, RST_STREAM and `grpc-timeout` cancelling the backend, a dying backend
/// and the idle rule.
@Suite("Stream mode: gRPC server streaming end to end", .serialized)
struct StreamGRPCTests {
    static func tokens(_ messages: [[[String: Any]]]) -> [String?] {
        messages.map { $0.first?["token"] as? String ?? $0.first?["text"] as? String }
    }

    @Test("one message per output event, then OK trailers", arguments: StreamBackend.allCases)
    func messages(backend: StreamBackend) async throws {
        try await withStreamSetup(backend) { setup in
            let answer = try await Peers.grpcio(
                "stream-run", port: setup.gateway.port, ["tokens", #"[{"prompt":"one two three","delay_ms":5}]"#]
            )
            #expect(answer["code"] as? String == "OK", "\(answer)")
            #expect(
                Self.tokens(answer["messages"] as? [[[String: Any]]] ?? []) == [
                    "one", "two", "three", "one two three",
                ], "\(answer)")
        }
    }

    @Test(
        "a client that reads one message and cancels (RST_STREAM) cancels the backend run within 1 s",
        arguments: StreamBackend.allCases)
    func rstStreamCancels(backend: StreamBackend) async throws {
        try await withStreamSetup(backend) { setup in
            let before = setup.cancellationTimes.count
            let answer = try await Peers.grpcio(
                "stream-first-cancel", port: setup.gateway.port,
                ["tokens", #"[{"prompt":"a b c d e f g h i j","delay_ms":300}]"#]
            )
            #expect(Self.tokens([answer["first"] as? [[String: Any]] ?? []]) == ["a"], "\(answer)")
            let hungUp = try #require(answer["cancelled_at"] as? Double)
            let cancelledAt = try #require(
                await setup.cancellation(after: before), "the backend run was never cancelled")
            #expect(cancelledAt - hungUp < 1.0, "\(cancelledAt - hungUp) s")
        }
    }

    @Test(
        "a passed grpc-timeout ends the call with DEADLINE_EXCEEDED and cancels the backend run",
        arguments: StreamBackend.allCases)
    func deadlineCancels(backend: StreamBackend) async throws {
        try await withStreamSetup(backend) { setup in
            let before = setup.cancellationTimes.count
            let answer = try await Peers.grpcio(
                "stream-run", port: setup.gateway.port,
                ["tokens", #"[{"prompt":"a b c d e f g h i j","delay_ms":300}]"#, "1.0"]
            )
            #expect(answer["code"] as? String == "DEADLINE_EXCEEDED", "\(answer)")
            #expect((answer["messages"] as? [Any])?.isEmpty == false, "tokens flowed before the deadline: \(answer)")
            let ended = try #require(answer["ended"] as? Double)
            let cancelledAt = try #require(
                await setup.cancellation(after: before), "the backend run was never cancelled")
            #expect(cancelledAt - ended < 1.0, "\(cancelledAt - ended) s")
        }
    }

    @Test("a backend that dies mid-stream gives an error status within 1 s", arguments: [StreamBackend.http, .grpc])
    func backendDies(backend: StreamBackend) async throws {
        try await withStreamSetup(backend) { setup in
            let runner = try #require(setup.runner)
            let progress = FileManager.default.temporaryDirectory.appendingPathComponent("tg-grpc-\(UUID().uuidString)")
                .path
            defer { try? FileManager.default.removeItem(atPath: progress) }
            async let result = Peers.grpcio(
                "stream-run", port: setup.gateway.port,
                ["tokens", #"[{"prompt":"a b c d e f g h i j k l m n o p q r s t u v w x y z","delay_ms":200}]"#],
                progressFile: progress
            )
            // Kill mid-stream: once grpcio has received two messages (the stream itself lasts 5 s).
            #expect(
                await fileContains(progress, "message\nmessage\n", within: .seconds(20)), "no message reached grpcio")
            runner.signal(SIGKILL)
            let killedAt = now
            let answer = try await result
            #expect(answer["code"] as? String == "UNAVAILABLE", "\(answer)")
            #expect((answer["messages"] as? [Any])?.isEmpty == false, "\(answer)")
            let ended = try #require(answer["ended"] as? Double)
            #expect(ended - killedAt < 1.0, "the error came \(ended - killedAt) s after the backend died")
        }
    }

    @Test(
        "a stream silent for timeouts.stream_idle ends with DEADLINE_EXCEEDED; a busy one outlives the request timeout",
        arguments: StreamBackend.allCases)
    func idleVersusTotal(backend: StreamBackend) async throws {
        try await withStreamSetup(backend, timeouts: "request: 1s, stream_idle: 1s") { setup in
            var answer = try await Peers.grpcio(
                "stream-run", port: setup.gateway.port, ["tokens", #"[{"prompt":"a b c d e f g h","delay_ms":400}]"#]
            )
            #expect(answer["code"] as? String == "OK", "\(answer)")
            #expect(Self.tokens(answer["messages"] as? [[[String: Any]]] ?? []).last == "a b c d e f g h", "\(answer)")

            answer = try await Peers.grpcio(
                "stream-run", port: setup.gateway.port, ["tokens", #"[{"prompt":"a b","delay_ms":5000}]"#]
            )
            #expect(answer["code"] as? String == "DEADLINE_EXCEEDED", "\(answer)")
            #expect(Self.tokens(answer["messages"] as? [[[String: Any]]] ?? []) == ["a"], "\(answer)")
        }
    }
}
