package import NIOCore
package import TriggerModel

/// Serves the demo pipelines over the `grpc` backend transport (`trigger.runner.v1.Runner` over h2c).
package enum DemoGRPCServer {
    package static func bind(
        host: String,
        port: Int,
        runner: any TriggerRunner,
        group: any EventLoopGroup
    ) async throws -> any Channel {
        throw GatewayError(.unimplemented, "the grpc transport of the demo runner is not available yet")
    }
}
