package import DemoRunner
import GatewayApp
package import GatewayConfig
import GatewayServer
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A gateway running in the test process on 127.0.0.1 with an ephemeral port.
package struct TestGateway: Sendable {
    package let port: Int
    package let configuration: GatewayConfiguration

    /// A fresh keep-alive connection to the gateway.
    package func client() async throws -> TestHTTPClient {
        try await TestHTTPClient.connect(port: port)
    }
}

/// Runs `body` against a gateway built from `yaml` (nil: the embedded default) exactly as the executable
/// builds it, then shuts it down gracefully, also when `body` throws. `inProcessRunner` serves the embedded
/// default's `demo` namespace; pass one to watch its `cancellations`.
package func withTestGateway<T: Sendable>(
    yaml: String? = nil,
    inProcessRunner: DemoPipelines = DemoPipelines(),
    _ body: (TestGateway) async throws -> T
) async throws -> T {
    var configuration = try yaml.map { try GatewayConfiguration.parse(yaml: $0, source: "test.yaml") } ?? .defaults
    configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
    var logger = Logger(label: "test-gateway")
    logger.logLevel = .warning
    let app = GatewayApp(
        configuration: configuration,
        group: MultiThreadedEventLoopGroup.singleton,
        inProcessRunner: inProcessRunner,
        logger: logger
    )
    let serviceGroup = ServiceGroup(
        configuration: .init(services: [.init(service: app.server)], gracefulShutdownSignals: [], logger: logger)
    )
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await serviceGroup.run() }
        let outcome: Result<T, any Error>
        do {
            let address = try await app.server.localAddress()
            outcome = .success(try await body(TestGateway(port: address.port!, configuration: configuration)))
        } catch {
            outcome = .failure(error)
        }
        await serviceGroup.triggerGracefulShutdown()
        try await group.waitForAll()
        return try outcome.get()
    }
}
