package import TriggerModel

extension BackendPool {
    /// The pipeline's description from this pool's runner (the runner protocol's `Describe` call): a control-
    /// plane call, made outside the pool's concurrency limit (it is small and rare; surfaces cache it). The http
    /// and grpc transports bound it by the pool's `request_timeout`; an in-process runner answers at once.
    ///
    /// - Throws: `GatewayError(.unimplemented)` when the transport or the runner cannot describe pipelines;
    ///   `.notFound` when the runner does not have the pipeline; transport errors as for a run.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        guard let describing = transport as? any PipelineDescribing else {
            throw GatewayError(.unimplemented, "pool \(name) cannot describe pipelines")
        }
        return try await describing.describePipeline(ref)
    }
}
