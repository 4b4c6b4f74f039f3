import DemoRunner
import NIOCore
import NIOPosix
package import TriggerModel

/// Runs `body` with a grpc-transport backend (the runner protocol over h2c) serving `runner` on an ephemeral
/// loopback port: `withHTTPBackend`'s counterpart.
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
