import NIOCore
import NIOHTTP1
package import TriggerModel
import WireCodecs

extension HTTPBackendTransport: PipelineDescribing {
    /// A control-plane call: small, cached by the caller, and bounded so a stuck runner cannot hold a client.
    static let describeTimeout = TimeAmount.seconds(5)

    /// `POST {base}/describe` on a connection of its own (closed after: describes are rare), to
    /// an endpoint the balancer picks. A runner without the route (404, 405 or 501) is `.unimplemented`.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        let endpoint = endpoint(at: balancer.pick())
        let connection = try await connect(endpoint, timeout: Self.describeTimeout)
        defer { connection.close() }
        let body = BackendHTTPBody.encodeDescribeRequest(ref)
        var headers = HTTPHeaders()
        headers.add(name: "host", value: endpoint.authority)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "connection", value: "close")
        let head = HTTPRequestHead(
            version: .http1_1,
            method: .POST,
            uri: endpoint.endpoint.basePath + "/describe",
            headers: headers
        )
        let timer = connection.channel.eventLoop.scheduleTask(in: Self.describeTimeout) { connection.close() }
        defer { timer.cancel() }
        let response: HTTPBackendResponse
        do {
            response = try await connection.execute(head: head, body: StreamedJSONBody(body), maxResponseBytes: 1 << 20)
                .get()
        } catch {
            throw BackendErrors.connectionLost(pool: poolName, endpoint: endpoint.endpoint.description)
        }
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
            let error = BackendHTTPBody.decodeError(status: response.status, body: response.body)
            if error.message.contains("\"\(ref.pipeline)\"") { throw GatewayError(.notFound, error.message) }
            throw GatewayError(.unimplemented, "backend pool \"\(poolName)\" does not describe its pipelines")
        default:
            throw BackendHTTPBody.decodeError(status: response.status, body: response.body)
        }
    }
}
