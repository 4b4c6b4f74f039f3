import Backends
import DemoRunner
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing
import TriggerModel
import WireCodecs

/// The runner protocol's `Describe` call is bounded by the pool's `request_timeout` (and its connect by
/// `connect_timeout`), as runs are, on both transports, over real sockets (review 17, leftover 1: it was a
/// fixed 5 s whatever the pool said).
@Suite("Describe: bounded by the pool's request_timeout")
struct DescribeTimeoutTests {
    enum Transport: String, CaseIterable, Sendable { case grpc, http }

    /// A runner whose `Describe` answers after `delay` (its runs are never called here).
    struct SlowDescriber: TriggerRunner, PipelineDescribing {
        let delay: Duration

        func run(_ request: TriggerRequest) async throws -> TriggerResult { TriggerResult(outputs: []) }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish() }
        }

        func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
            try await Task.sleep(for: delay)
            return PipelineDescription(inputs: [.init(name: "text", dataType: "string")], outputs: [])
        }
    }

    static func transport(_ kind: Transport, port: Int, requestTimeout: TimeAmount) -> any PipelineDescribing {
        let configuration = BackendPoolConfiguration(
            name: "slow-pool", transport: kind == .grpc ? .grpc : .http,
            endpoints: [.init(host: "127.0.0.1", port: port)],
            connectTimeout: .seconds(30), requestTimeout: requestTimeout)
        switch kind {
        case .grpc: return GRPCBackendTransport(configuration: configuration, group: testGroup)
        case .http:
            return HTTPBackendTransport(configuration: configuration, group: testGroup, codecLimits: .defaults)
        }
    }

    static let ref = PipelineRef(namespace: "test", pipeline: "echo")

    @Test(
        "a silent endpoint (connection accepted, never answered): DEADLINE_EXCEEDED, not before request_timeout",
        arguments: Transport.allCases)
    func silentEndpoint(_ kind: Transport) async throws {
        let silent = try SilentListener()
        let transport = Self.transport(kind, port: silent.port, requestTimeout: .seconds(1))
        let start = ContinuousClock.now
        let error = await #expect(throws: GatewayError.self) { try await transport.describePipeline(Self.ref) }
        let waited = ContinuousClock.now - start
        #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
        #expect(error?.message.contains("slow-pool") == true, "\(String(describing: error))")
        // Not before the configured second (the edge). How soon after is wall time, which a loaded machine
        // stretches (21 s seen with every unit suite in parallel on 2 cores): the tests below show the
        // configuration, not the former fixed 5 s, deciding.
        #expect(waited >= .milliseconds(990), "\(waited)")
        withExtendedLifetime(silent) {}
    }

    @Test(
        "a runner answering Describe after 5.5 s, within a request_timeout of 60 s, is described (not cut at 5 s)",
        arguments: Transport.allCases)
    func slowAnswerWithinTimeout(_ kind: Transport) async throws {
        let runner = SlowDescriber(delay: .milliseconds(5500))
        let server =
            switch kind {
            case .grpc: try await DemoGRPCServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: testGroup)
            case .http: try await DemoHTTPServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: testGroup)
            }
        let transport = Self.transport(kind, port: server.localAddress!.port!, requestTimeout: .seconds(60))
        let description = try await transport.describePipeline(Self.ref)
        #expect(description.inputs.map(\.name) == ["text"])
        try? await server.close()
    }

    @Test(
        "the same runner past a request_timeout of 300 ms: DEADLINE_EXCEEDED",
        arguments: Transport.allCases)
    func slowAnswerPastTimeout(_ kind: Transport) async throws {
        let runner = SlowDescriber(delay: .seconds(30))
        let server =
            switch kind {
            case .grpc: try await DemoGRPCServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: testGroup)
            case .http: try await DemoHTTPServer.bind(host: "127.0.0.1", port: 0, runner: runner, group: testGroup)
            }
        let transport = Self.transport(kind, port: server.localAddress!.port!, requestTimeout: .milliseconds(300))
        // The runner answers after 30 s: the call ends at the pool's timeout instead (how soon after 300 ms is
        // wall time, which a loaded machine stretches; the test above shows the configuration deciding).
        let error = await #expect(throws: GatewayError.self) { try await transport.describePipeline(Self.ref) }
        #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
        try? await server.close()
    }
}
