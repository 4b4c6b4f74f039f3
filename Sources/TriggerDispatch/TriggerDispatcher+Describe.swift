import Backends
import NIOCore
import Routing
package import TriggerModel

extension TriggerDispatcher {
    /// The description of `ref` from the runner of the pool it is routed to (the runner protocol's `Describe`),
    /// waited for at most the pool's `request_timeout` (http and grpc pools).
    ///
    /// - Throws: `.notFound` when no route matches `ref` or the runner has no such pipeline; `.unimplemented`
    ///   when the pool's transport or runner cannot describe pipelines; transport errors as for a run.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        try await pool(for: ref).describePipeline(ref)
    }

    /// How every surface learns what a pipeline takes and whether it exists: ``describePipeline(_:)``, with a
    /// runner that cannot describe pipelines (UNIMPLEMENTED: runners written before `Describe` existed) taken
    /// to have every pipeline it is routed, each accepting any fields (an empty description).
    ///
    /// Used by Instill's `GetNamespacePipeline` (REST and gRPC), the Craft AI surface's descriptions, and
    /// ``checkAsyncTarget(_:askRunner:)``. Answers are kept for a few seconds in this generation's
    /// ``PipelineDescriptionCache`` (one cache for every surface; a reload builds a new dispatcher, so a new,
    /// empty cache), and concurrent callers share one ask; failures are not kept, and a runner that cannot be
    /// asked gets its last description of this generation (stale-if-error: see ``PipelineDescriptionCache``).
    ///
    /// `waitingAtMost`: how long this caller waits for the runner (nil: the ask's own bound, as above);
    /// past it, the kept description however old, or `.deadlineExceeded`, while the ask goes on.
    ///
    /// - Throws: `.notFound` when no route matches `ref` or the runner has no such pipeline; transport errors
    ///   as for a run (the runner is down, slow or broken); `.deadlineExceeded` when the wait ended first and no
    ///   description is kept; `CancellationError` when the caller is cancelled.
    package func pipelineDescription(_ ref: PipelineRef, waitingAtMost bound: Duration? = nil) async throws
        -> PipelineDescription
    {
        // UNIMPLEMENTED goes through: the cache makes it the empty description, unless it keeps one the runner gave.
        // The pool, not the dispatcher: a shared ask outlives its first caller, and may outlive a reload.
        let pool = try pool(for: ref)
        return try await descriptions.description(of: ref, waitingAtMost: bound) {
            try await pool.describePipeline(ref)
        }
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
    /// the runner is back, as async triggers always are. Answers are cached
    /// (``pipelineDescription(_:waitingAtMost:)``).
    ///
    /// An accept waits for the runner's answer at most the pool's `connect_timeout` (2 s by default), not its
    /// `request_timeout` (60 s): a runner that took the connection and never answered held every accept that
    /// long (SDK review 56, M3). Accepts that arrive while an ask is pending wait for that one ask. Once a wait
    /// ended unanswered, accepts do not wait for the runner for the description cache's TTL
    /// (`PipelineDescriptionCache.recentlyUnanswered(_:)`), and refuse nothing meanwhile. The ask goes on for up
    /// to `request_timeout`, and its answer is kept for every surface; its NOT_FOUND is not kept (failures never
    /// are), so the accepts of a pipeline a runner slower than `connect_timeout` lacks are stored, and fail when
    /// run.
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
            let bound = Duration.nanoseconds(target.pool.configuration.connectTimeout.nanoseconds)
            _ = try await pipelineDescription(ref, waitingAtMost: bound)
        } catch let error as GatewayError where error.code == .notFound {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Not known not to exist: see above.
        }
    }
}
