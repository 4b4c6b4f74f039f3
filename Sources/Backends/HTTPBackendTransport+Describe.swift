import NIOCore
package import TriggerModel
import WireCodecs

extension HTTPBackendTransport: PipelineDescribing {
    /// `POST {base}/describe` on a connection of its own (closed after: describes are rare), to
    /// an endpoint the balancer picks. A runner without the route (404, 405 or 501) is `.unimplemented`.
    /// Bounded as the pool's runs are, so a stuck runner holds the asking client no longer than a run would:
    /// the connect by the pool's `connect_timeout`, the whole exchange by its `request_timeout`.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        let endpoint = self.endpoint(at: balancer.pick())
        let response = try await controlRequest(
            "POST",
            "/describe",
            body: BackendHTTPBody.encodeDescribeRequest(ref),
            to: endpoint,
            timeout: configuration.requestTimeout,
            maxResponseBytes: 1 << 20
        )
        switch response.status {
        case 200..<300:
            do {
                return try BackendHTTPBody.decodeDescription(response.body, limits: limits)
            } catch {
                throw GatewayError(.backendFailed, "backend pool \"\(poolName)\": malformed describe answer")
            }
        case 405, 501:
            throw GatewayError(.unimplemented, "backend pool \"\(poolName)\" does not describe its pipelines")
        case 404:
            // A runner with the route answers an unknown pipeline with a 404 whose error names the pipeline (the
            // demo runner does); a runner without the route answers some other 404: it cannot describe.
            if let error = BackendHTTPBody.pipelineError(in: response.body),
                error.message.contains("\"\(ref.pipeline)\"")
            {
                throw GatewayError(.notFound, error.message)
            }
            throw GatewayError(.unimplemented, "backend pool \"\(poolName)\" does not describe its pipelines")
        default:
            throw BackendErrors.errorAnswer(
                pool: poolName, endpoint: endpoint.endpoint.description, status: response.status, body: response.body)
        }
    }
}
