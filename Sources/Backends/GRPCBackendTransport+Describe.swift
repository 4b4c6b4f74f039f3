import NIOCore
import ProtoCodec
package import TriggerModel

extension GRPCBackendTransport: PipelineDescribing {
    static let describePath = "/trigger.runner.v1.Runner/Describe"
    /// A control-plane call: small, cached by the caller, and bounded so a stuck runner cannot hold a client.
    static let describeTimeout = TimeAmount.seconds(5)

    /// `Runner/Describe` on one endpoint the balancer picks, over its shared connections (as the active health
    /// check calls `Health/Check`). A runner that lacks the method answers UNIMPLEMENTED, which is passed on.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        let endpoint = endpoints[balancer.pick()]
        let answer = try await controlCall(
            Self.describePath,
            RunnerCodec.encodeDescribeRequest(ref),
            on: endpoint,
            connectTimeout: Self.describeTimeout,
            timeout: Self.describeTimeout,
            maxMessageBytes: 1 << 20
        )
        do {
            return try RunnerCodec.decodeDescribeResponse(answer)
        } catch {
            throw GatewayError(.backendFailed, "backend pool \"\(endpoint.peer.pool)\": malformed DescribeResponse")
        }
    }
}
