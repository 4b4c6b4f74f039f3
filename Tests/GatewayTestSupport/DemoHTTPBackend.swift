import DemoRunner
import NIOCore
import NIOPosix
package import TriggerModel

/// Runs `body` with an http-transport backend serving `runner` on an ephemeral loopback port.
package func withHTTPBackend<T>(runner: any TriggerRunner, _ body: (Int) async throws -> T) async throws -> T {
    let channel = try await DemoHTTPServer.bind(
        host: "127.0.0.1", port: 0, runner: runner, group: MultiThreadedEventLoopGroup.singleton
    )
    do {
        let result = try await body(channel.localAddress!.port!)
        try? await channel.close()
        return result
    } catch {
        try? await channel.close()
        throw error
    }
}

/// Runs `body` with a grpc-transport backend (`trigger.runner.v1.Runner`) serving `runner` on an ephemeral
/// loopback port.
package func withGRPCBackend<T>(runner: any TriggerRunner, _ body: (Int) async throws -> T) async throws -> T {
    let channel = try await DemoGRPCServer.bind(
        host: "127.0.0.1", port: 0, runner: runner, group: MultiThreadedEventLoopGroup.singleton
    )
    do {
        let result = try await body(channel.localAddress!.port!)
        try? await channel.close()
        return result
    } catch {
        try? await channel.close()
        throw error
    }
}
