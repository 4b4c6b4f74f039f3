import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// A burst of expired calls on a gRPC pool (review 13 F8): each one resets its stream on the runner's connection,
/// hundreds a second. The demo runner allows that rate (`DemoGRPCServer.defaultStreamResetRateLimit`): every call
/// answers 504, none 502. With a limit like libnghttp2's default (burst 1000, 33 a second) the runner ends the
/// shared connection with GOAWAY and the calls still on it answer 502: the failure the raised limit removes, shown
/// over the same sockets with `--stream-reset-limit 300/10`. At the default itself (`1000/33`) it trips on a quiet
/// machine too, but not always on a loaded one, where fewer calls reach the runner before they expire (a call that
/// expires before its stream is opened resets nothing): the lower limit keeps the case from depending on speed.
@Suite("cancel bursts on a gRPC pool")
struct CancelBurstTests {
    /// 160 clients × 20 calls of `sleep` 2 s on a pool whose `request_timeout` is 100 ms: 3200 calls, each reset
    /// at 100 ms; the gateway runs on 2 event loops of its own (whatever the machine's core count: a pool keeps
    /// one runner connection per loop), which hold about 80 calls each on one runner connection, so each
    /// connection sees about 800 resets a second for 2 seconds, past the defaults' burst, and far past 300.
    @Test(
        "3200 calls expiring on pooled runner connections: all answer 504 with the demo runner's limit; some 502 at a limit like libnghttp2's default",
        arguments: [(limit: String?.none, all504: true), (limit: "300/10", all504: false)])
    func expiredCallsBurst(limit: String?, all504: Bool) async throws {
        // Two loops, so two runner connections share the burst on any machine (on NIO's singleton a 16-core
        // machine would spread it over 16, each under the default burst, and the 502 case could not fail).
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        do {
            try await expireBurst(limit: limit, all504: all504, on: loops)
        } catch {
            try? await loops.shutdownGracefully()
            throw error
        }
        try await loops.shutdownGracefully()
    }

    private func expireBurst(limit: String?, all504: Bool, on loops: MultiThreadedEventLoopGroup) async throws {
        let arguments = limit.map { ["--stream-reset-limit", $0] } ?? []
        try await withDemoRunnerProcess(transport: "grpc", arguments: arguments) { runnerPort in
            let yaml = """
                pools:
                  - {name: runner, transport: grpc, endpoints: ["127.0.0.1:\(runnerPort)"], request_timeout: 100ms}
                routes:
                  - {namespace: demo, pipeline: "*", pool: runner}
                """
            try await withTestGateway(yaml: yaml, eventLoopGroup: loops) { gateway in
                let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
                    for _ in 0..<160 {
                        group.addTask {
                            let client = try await gateway.client()
                            var statuses: [Int] = []
                            for _ in 0..<20 {
                                let response = try await client.request(
                                    "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger", headers: jsonHeaders,
                                    body: ByteBuffer(string: #"{"data":[{"variable":{"ms":2000}}]}"#))
                                statuses.append(response.status)
                            }
                            await client.close()
                            return statuses
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0 += $1 }
                }
                let counts = Dictionary(statuses.map { ($0, 1) }, uniquingKeysWith: +)
                #expect(statuses.count == 3200)
                if all504 {
                    #expect(counts == [504: 3200], "statuses: \(counts)")
                } else {
                    #expect(counts[502, default: 0] > 0, "the default limit did not trip: \(counts)")
                }
            }
        }
    }
}
