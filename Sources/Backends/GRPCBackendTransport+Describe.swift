import NIOCore
import ProtoCodec
package import TriggerModel

extension GRPCBackendTransport: PipelineDescribing {
    static let describePath = "/trigger.runner.v1.Runner/Describe"

    /// `Runner/Describe` on one endpoint the balancer picks, over its shared connections (as the active health
    /// check calls `Health/Check`). A runner that lacks the method answers UNIMPLEMENTED, which is passed on.
    /// Bounded as the pool's runs are, so a stuck runner holds the asking client no longer than a run would:
    /// a new connection by the pool's `connect_timeout`, the call by its `request_timeout` (sent as
    /// `grpc-timeout`; past it, `.deadlineExceeded`).
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        let endpoint = endpoints[balancer.pick()]
        let answer = try await controlCall(
            Self.describePath,
            RunnerCodec.encodeDescribeRequest(ref),
            on: endpoint,
            connectTimeout: configuration.connectTimeout,
            timeout: configuration.requestTimeout,
            maxMessageBytes: 1 << 20
        )
        do {
            return try RunnerCodec.decodeDescribeResponse(answer)
        } catch {
            throw GatewayError(.backendFailed, "backend pool \"\(endpoint.peer.pool)\": malformed DescribeResponse")
        }
    }
}
