import Backends
package import NIOCore
import Routing
package import TriggerModel

extension TriggerDispatcher {
    /// The description of `ref` from the runner of the pool it is routed to (the runner protocol's `Describe`),
    /// waited for at most `timeout` when given (else the pool's `request_timeout`).
    ///
    /// - Throws: `.notFound` when no route matches `ref` or the runner has no such pipeline; `.unimplemented`
    ///   when the pool's transport or runner cannot describe pipelines; transport errors as for a run.
    package func describePipeline(_ ref: PipelineRef, within timeout: TimeAmount? = nil) async throws
        -> PipelineDescription
    {
        try await pool(for: ref).describePipeline(ref, within: timeout)
    }

    /// How every surface learns what a pipeline takes and whether it exists: ``describePipeline(_:within:)``, with a
    /// runner that cannot describe pipelines (UNIMPLEMENTED: runners written before `Describe` existed) taken
    /// to have every pipeline it is routed, each accepting any fields (an empty description).
    ///
    /// Used by Instill's `GetNamespacePipeline` (REST and gRPC), the Craft AI surface's descriptions, and (bounded
    /// by `timeout`) ``checkAsyncTarget(_:askRunner:)``. Answers are kept for a few seconds in this generation's
    /// ``PipelineDescriptionCache`` (one cache for every surface; a reload builds a new dispatcher, so a new,
    /// empty cache); failures are not kept, and a runner that cannot be asked gets its last description of this
    /// generation (stale-if-error: see ``PipelineDescriptionCache``).
    ///
    /// - Throws: `.notFound` when no route matches `ref` or the runner has no such pipeline; transport errors
    ///   as for a run (the runner is down, slow or broken).
    package func pipelineDescription(_ ref: PipelineRef, within timeout: TimeAmount? = nil) async throws
        -> PipelineDescription
    {
        // UNIMPLEMENTED goes through: the cache makes it the empty description, unless it keeps one the runner gave.
        try await descriptions.description(of: ref) { try await describePipeline(ref, within: timeout) }
    }
}

extension TriggerDispatcher {
    /// Refuses an async trigger of a pipeline that would only fail once run, as the sync path does at once:
    /// `notFound(_:)` when no route matches `ref`; the runner's own `.notFound` (the error a sync trigger of it
    /// gets) when `ref` matched a `*` pipeline route and the runner's `Describe` says it has no such pipeline.
    ///
    /// Nothing else refuses (README "Async"): a route naming the pipeline exactly says it exists; a runner that
    /// cannot describe pipelines decides when it runs; and a runner that is away (every endpoint ejected or
    /// failing its health check: not asked, so an accept does not wait out the describe timeout) or cannot be
    /// asked right now (down, slow, broken: any error but NOT_FOUND) leaves the operation stored, to run when
    /// the runner is back, as async triggers always are. Answers are cached (``pipelineDescription(_:within:)``).
    ///
    /// An accept waits for the runner's answer at most the pool's `connect_timeout` (2 s by default), not its
    /// `request_timeout` (60 s): a runner that took the connection and never answered held every accept that
    /// long (SDK review 56, M3). A runner that did not answer within it is not asked again by an accept for the
    /// description cache's TTL from that failure (`PipelineDescriptionCache.recentlyUnanswered(_:)`); accepts that
    /// arrive while the first ask is pending ask (and wait) too. A runner whose Describe takes longer than
    /// `connect_timeout` is never described by an accept: its accepts refuse nothing.
    ///
    /// `askRunner` false (a request with an idempotency key, whose retry must get the operation already stored
    /// under the key even if the pipeline has gone since): only the route table is asked.
    ///
    /// Also the Abacus.AI surface's check of `runPipeline`'s `pipelineId`.
    package func checkAsyncTarget(_ ref: PipelineRef, askRunner: Bool = true) async throws {
        guard let target = target(for: ref) else { throw Self.notFound(ref) }
        guard askRunner, !target.route.namesPipeline, target.pool.hasAvailableEndpoint,
            !descriptions.recentlyUnanswered(ref)
        else {
            return
        }
        do {
            _ = try await pipelineDescription(ref, within: target.pool.configuration.connectTimeout)
        } catch let error as GatewayError where error.code == .notFound {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Not known not to exist: see above.
        }
    }
}
