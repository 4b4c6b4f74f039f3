import HTTP2Engine
import NIOCore
import ProtoCodec
package import TriggerModel
import WireCodecs

extension GRPCBackendTransport: PipelineDescribing {
    static let describePath = "/trigger.runner.v1.Runner/Describe"
    /// A control-plane call: small, cached by the caller, and bounded so a stuck runner cannot hold a client.
    static let describeTimeout = TimeAmount.seconds(5)

    /// `Runner/Describe` on one endpoint the balancer picks, over its shared connections (as the active health
    /// check calls `Health/Check`). A runner that lacks the method answers UNIMPLEMENTED, which is passed on.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        let endpoint = endpoints[balancer.pick()]
        let connection = try await endpoint.acquire(group: group, connectTimeout: Self.describeTimeout)
        let promise = connection.eventLoop.makePromise(of: ByteBuffer.self)
        let call = NIOLoopBoundBox.makeBoxSendingValue(
            GRPCBackendCall(raw: promise, peer: endpoint.peer, maxMessageBytes: 1 << 20),
            eventLoop: connection.eventLoop
        )
        let headers: HTTP2Headers = [
            ":method": "POST",
            ":scheme": scheme,
            ":path": Self.describePath,
            ":authority": endpoint.authority,
            "content-type": "application/grpc",
            "te": "trailers",
            "grpc-timeout": GRPCTimeout.encode(Self.describeTimeout),
        ]
        let message = [GRPCMessageFramer.frame(RunnerCodec.encodeDescribeRequest(ref))]
        let answer = try await withTaskCancellationHandler {
            connection.start(call, headers: headers, message: message, deadline: .now() + Self.describeTimeout)
            return try await promise.futureResult.get()
        } onCancel: {
            call.eventLoop.execute { call.value.cancel(GatewayError(.cancelled, "the describe call was cancelled")) }
        }
        do {
            return try RunnerCodec.decodeDescribeResponse(answer)
        } catch {
            throw GatewayError(.backendFailed, "backend pool \"\(endpoint.peer.pool)\": malformed DescribeResponse")
        }
    }
}
