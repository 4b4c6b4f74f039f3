package import NIOCore
package import TriggerModel

/// The `grpc` transport: h2c to a runner serving `trigger.runner.v1.Runner`, over the HTTP/2 engine's
/// client role. Until that lands, calls fail clearly instead of hanging.
package final class GRPCBackendTransport: TriggerRunner {
    private let configuration: BackendPoolConfiguration

    package init(configuration: BackendPoolConfiguration, group: any EventLoopGroup) {
        self.configuration = configuration
    }

    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        throw GatewayError(.unimplemented, "backend pool \"\(configuration.name)\": the grpc transport is not available yet")
    }

    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "the grpc transport is not available yet")) }
    }
}
