package import NIOCore
package import TriggerModel

/// A transport whose `Describe` can be bounded tighter than the pool's `request_timeout` (the http and grpc
/// transports; an in-process runner answers at once).
package protocol BoundedPipelineDescribing: PipelineDescribing {
    /// As `describePipeline(_:)`, ending with `.deadlineExceeded` after `timeout` (at most `request_timeout`).
    func describePipeline(_ ref: PipelineRef, within timeout: TimeAmount) async throws -> PipelineDescription
}

extension BackendPool {
    /// The pipeline's description from this pool's runner (the runner protocol's `Describe` call): a control-
    /// plane call, made outside the pool's concurrency limit (it is small and rare; surfaces cache it).
    /// `timeout`: how long to wait for the answer, when shorter than the pool's `request_timeout` (nil: that).
    ///
    /// - Throws: `GatewayError(.unimplemented)` when the transport or the runner cannot describe pipelines;
    ///   `.notFound` when the runner does not have the pipeline; transport errors as for a run, and
    ///   `.deadlineExceeded` past `timeout`.
    package func describePipeline(_ ref: PipelineRef, within timeout: TimeAmount? = nil) async throws
        -> PipelineDescription
    {
        if let timeout, let bounded = transport as? any BoundedPipelineDescribing {
            return try await bounded.describePipeline(ref, within: timeout)
        }
        guard let describing = transport as? any PipelineDescribing else {
            throw GatewayError(.unimplemented, "pool \(name) cannot describe pipelines")
        }
        return try await describing.describePipeline(ref)
    }
}
