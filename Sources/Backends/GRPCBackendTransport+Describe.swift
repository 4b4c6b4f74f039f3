package import NIOCore
import ProtoCodec
package import TriggerModel

extension GRPCBackendTransport: BoundedPipelineDescribing {
    static let describePath = "/trigger.runner.v1.Runner/Describe"

    /// `Runner/Describe` on one endpoint the balancer picks, over its shared connections (as the active health
    /// check calls `Health/Check`). A runner that lacks the method answers UNIMPLEMENTED, which is passed on.
    /// Bounded as the pool's runs are, so a stuck runner holds the asking client no longer than a run would:
    /// a new connection by the pool's `connect_timeout`, the call by its `request_timeout` (sent as
    /// `grpc-timeout`; past it, `.deadlineExceeded`).
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        try await describePipeline(ref, within: configuration.requestTimeout)
    }

    /// As ``describePipeline(_:)``, the call bounded by `timeout` (at most `request_timeout`; a new connection
    /// by `connect_timeout` too).
    package func describePipeline(_ ref: PipelineRef, within timeout: TimeAmount) async throws -> PipelineDescription {
        let endpoint = endpoints[balancer.pick()]
        let bound = min(timeout, configuration.requestTimeout)
        let answer = try await controlCall(
            Self.describePath,
            RunnerCodec.encodeDescribeRequest(ref),
            on: endpoint,
            connectTimeout: min(configuration.connectTimeout, bound),
            timeout: bound,
            maxMessageBytes: 1 << 20
        )
        do {
            return try RunnerCodec.decodeDescribeResponse(answer)
        } catch {
            throw GatewayError(.backendFailed, "backend pool \"\(endpoint.peer.pool)\": malformed DescribeResponse")
        }
    }
}
