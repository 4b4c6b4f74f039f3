import Backends
package import TriggerModel

extension TriggerDispatcher {
    /// The description of `ref` from the runner of the pool it is routed to (the runner protocol's `Describe`).
    ///
    /// - Throws: `.notFound` when no route matches `ref` or the runner has no such pipeline; `.unimplemented`
    ///   when the pool's transport or runner cannot describe pipelines; transport errors as for a run.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        try await pool(for: ref).describePipeline(ref)
    }
}
