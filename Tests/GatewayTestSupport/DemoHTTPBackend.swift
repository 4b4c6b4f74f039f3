import DemoRunner
import NIOCore
import NIOPosix
package import Observability
package import TriggerModel

/// Runs `body` with an http-transport backend serving `runner` on an ephemeral loopback port.
package func withHTTPBackend<T>(runner: any TriggerRunner, _ body: (Int) async throws -> T) async throws -> T {
    try await withBackend("http", runner: runner, body)
}

/// Runs `body` with a grpc-transport backend (`trigger.runner.v1.Runner`) serving `runner` on an ephemeral
/// loopback port.
package func withGRPCBackend<T>(runner: any TriggerRunner, _ body: (Int) async throws -> T) async throws -> T {
    try await withBackend("grpc", runner: runner, body)
}

/// Runs `body` with a backend of pool transport `transport` (`grpc`, or else `http`) serving `runner` on an
/// ephemeral loopback port, closed when `body` returns or throws.
package func withBackend<T>(
    _ transport: String,
    runner: any TriggerRunner,
    _ body: (Int) async throws -> T
) async throws -> T {
    let group = MultiThreadedEventLoopGroup.singleton
    let channel =
        transport == "grpc"
        ? try await DemoGRPCServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: group)
        : try await DemoHTTPServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: group)
    do {
        let result = try await body(channel.localAddress!.port!)
        try? await channel.close()
        return result
    } catch {
        try? await channel.close()
        throw error
    }
}

/// Runs `body` with a test gateway in front of one `transport` backend serving `runner` (``withBackend(_:runner:_:)``):
/// pool `pool` holds that endpoint, and the route `namespace`/`pipeline` goes to it.
package func withGatewayOverBackend<T: Sendable>(
    _ runner: any TriggerRunner,
    transport: String = "http",
    pool: String = "runner",
    namespace: String = "demo",
    pipeline: String = "*",
    requestObservers: [any RequestObserver] = [],
    _ body: (TestGateway) async throws -> T
) async throws -> T {
    try await withBackend(transport, runner: runner) { port in
        let yaml = """
            pools: [{name: \(pool), transport: \(transport), endpoints: ["127.0.0.1:\(port)"]}]
            routes: [{namespace: \(namespace), pipeline: "\(pipeline)", pool: \(pool)}]
            """
        return try await withTestGateway(yaml: yaml, requestObservers: requestObservers, body)
    }
}
