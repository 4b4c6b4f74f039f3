import Foundation
import GatewayTestSupport
import Testing
import TriggerModel

/// RFC 7541 §7.1.3: an intermediary must send a field value it received as a "literal never indexed" (§6.2.3) the
/// same way. A client (Python's h2 and hpack, `Tests/InteropClients/h2_sensitive.py`) marks some of the fields the
/// gateway forwards; a relay in front of a grpc runner records the gateway's runner connection, and hpack's decoder
/// (independent of libnghttp2) says how each forwarded field came.
@Suite("Sensitive (never-indexed) fields forwarded to a grpc runner")
struct SensitiveFieldsE2ETests {
    /// Answers what the runner received of the forwarded fields, and tells `runs` each run's request id.
    struct ForwardedFields: TriggerRunner {
        let runs: AsyncStream<String>.Continuation

        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            runs.yield(request.requestID)
            return TriggerResult(outputs: [["tracestate": .string(request.traceState ?? "")]])
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "not streamed here")) }
        }
    }

    private static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

    private static func script() -> String {
        Peers.repositoryRoot.appendingPathComponent("Tests/InteropClients/h2_sensitive.py").path
    }

    @Test(
        "gRPC (sync and async) and REST over h2: a field the client marked goes never indexed to the runner, unmarked it need not"
    )
    func forwardedAsReceived() async throws {
        let (runs, ran) = AsyncStream<String>.makeStream()
        try await withGRPCBackend(runner: ForwardedFields(runs: ran)) { backendPort in
            let relay = try await RecordingRelay(backendPort: backendPort)
            let yaml = """
                pools: [{name: runner, transport: grpc, endpoints: ["127.0.0.1:\(relay.port)"]}]
                routes: [{namespace: demo, pipeline: "*", pool: runner}]
                """
            // Per call: (kind, marked). Each call's request id, idempotency key and tracestate are its own, so the
            // runner's header blocks are told apart by request id. The first call marks its fields: the gateway's
            // first message carrying `request-id`, `idempotency-key` or `traceparent` would otherwise index them
            // (HPACKNamePriming); the second, unmarked, takes that turn instead. The async calls' runs come from
            // the stored operation (OperationPayloadCodec keeps the marks), on whichever runner connection.
            let plan: [(kind: String, marked: Bool)] = [
                ("grpc", true), ("grpc", false), ("grpc", true), ("grpc", false), ("rest", true), ("rest", false),
                ("grpc-async", true), ("grpc-async", false),
            ]
            let calls: [[String: Any]] = plan.enumerated().map { index, call in
                [
                    "kind": call.kind,
                    "fields": [
                        ["request-id", "client-rid-\(index)", call.marked],
                        ["idempotency-key", "key-\(index)", call.marked],
                        // `tracestate` travels only with a `traceparent` (W3C Trace Context §3.3). Every value
                        // is the call's own: hpack's encoder sends a value already in its table as an index, marked
                        // or not (the earlier unmarked call put it there).
                        ["traceparent", "00-\(Self.traceID)-00f067aa0ba902b\(index)-01", call.marked],
                        ["tracestate", "vendor=t\(index)", call.marked],
                    ],
                ]
            }
            let spec = String(decoding: try JSONSerialization.data(withJSONObject: calls), as: UTF8.self)
            try await withTestGateway(yaml: yaml) { gateway in
                let output = try await TestProcess.run(
                    Peers.python, [Self.script(), "calls", String(gateway.port), spec])
                try #require(output.status == 0, "\(output.stderr)")
                let results = try #require(
                    try JSONSerialization.jsonObject(with: output.stdout) as? [[String: Int]])
                try #require(results.count == plan.count)
                for (index, result) in results.enumerated() {
                    #expect(result["status"] == 200, "call \(index): \(result)")
                    if plan[index].kind != "rest" { #expect(result["grpc_status"] == 0, "call \(index): \(result)") }
                }
                // Every call ran (the async ones after their answer), bounded: each run is a loopback call.
                let count = plan.count
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        var pending = Set((0..<count).map { "client-rid-\($0)" })
                        for await id in runs {
                            pending.remove(id)
                            if pending.isEmpty { return }
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: .seconds(30))
                        throw GatewayError(.deadlineExceeded, "the async runs did not all start within 30 s")
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
            await relay.close()
            // Every header block the gateway sent to the runner, each connection decoded on its own.
            var blocks: [[[Any]]] = []
            for connection in relay.connections {
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-h2-\(UUID()).bin")
                try Data(connection).write(to: file)
                defer { try? FileManager.default.removeItem(at: file) }
                let output = try await TestProcess.run(Peers.python, [Self.script(), "decode", file.path])
                try #require(output.status == 0, "\(output.stderr)")
                blocks += try #require(try JSONSerialization.jsonObject(with: output.stdout) as? [[[Any]]])
            }
            for (index, call) in plan.enumerated() {
                let block = try #require(
                    blocks.first { block in
                        block.contains {
                            ($0[0] as? String) == "request-id" && ($0[1] as? String) == "client-rid-\(index)"
                        }
                    }, "no runner request carries call \(index)'s request id")
                let async = call.kind == "grpc-async"
                for (name, value) in [
                    ("request-id", "client-rid-\(index)"), ("idempotency-key", "key-\(index)"),
                    ("traceparent", "00-\(Self.traceID)-"), ("tracestate", "vendor=t\(index)"),
                ] {
                    // An async run's key is its operation id (the gateway's), its connection's priming turn unknown.
                    if async, name == "idempotency-key" || (!call.marked && name != "tracestate") { continue }
                    let field = try #require(block.first { ($0[0] as? String) == name }, "call \(index): no \(name)")
                    // `traceparent`: the client's trace, the gateway's span (the rest of the value is its own).
                    let sent = try #require(field[1] as? String)
                    #expect(name == "traceparent" ? sent.hasPrefix(value) : sent == value, "call \(index): \(field)")
                    // Unmarked, `tracestate` is left to the encoder (indexed); the three per-message fields go
                    // never indexed anyway but on the priming turn, which the first unmarked call (1) takes.
                    let expected = call.marked || (name != "tracestate" && index != 1)
                    #expect(field[2] as? Bool == expected, "call \(index) (\(call.kind)): \(name) \(field)")
                }
            }
        }
    }
}
