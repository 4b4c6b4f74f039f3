import Synchronization

/// Pipeline descriptions as runners last gave them, each kept for `ttl`: every surface asks before it acts
/// (Craft AI's `run_pipeline` reads the pipeline first, Abacus.AI's calls check `pipelineId`, Instill's
/// `GetNamespacePipeline` shows it), and a burst of calls should cost the runner one `Describe`, not one each.
///
/// Only answers are kept: a failure (an unknown pipeline, a runner that is down) is asked again next time, so
/// a pipeline that appears, or a runner that comes back, is seen at once. A runner that cannot be asked (down,
/// slow, broken: any error but `.notFound`, which is its answer) gets the description it last gave in this
/// generation, however old, as a cache serves a stale response on error (RFC 5861 §4, `stale-if-error`): a runner
/// that is down has not changed its pipelines, and clients act on what a description says (craft-ai-sdk's
/// `run_pipeline` uploads the inputs it says are files: during an outage an empty description made it send a
/// file's path as a string, and the run "succeeded" without the file). With no description kept, the error
/// stands.
///
/// One cache per configuration generation (the `TriggerDispatcher` holds it), so a reload starts empty: a route
/// that now goes to another pool is never described by the old one.
///
/// Time is `now` (monotonic; a test passes a clock it moves). An entry read `ttl` or more after it was stored
/// is stale and asked for again.
package final class PipelineDescriptionCache: Sendable {
    /// The default lifetime of an entry: short enough that a runner's changed description shows within
    /// seconds, long enough to fold an SDK's burst of calls (each `run_pipeline` asks first) into one.
    package static let defaultTTL = Duration.seconds(5)
    /// At most this many pipelines are kept; reaching it empties the cache (an id space a client can grow,
    /// behind a `*` route, must not grow memory).
    package static let capacity = 1024

    package let ttl: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let entries = Mutex<[PipelineRef: (description: PipelineDescription, storedAt: ContinuousClock.Instant)]>(
        [:])
    /// When a `describe` of each pipeline last failed (at its end) with anything but an answer (`.notFound`,
    /// `.unimplemented`) or cancellation: the runner is down, slow or broken. Cleared by its next answer; not set
    /// by a failure of an ask that began before an answer was kept.
    private let unanswered = Mutex<[PipelineRef: ContinuousClock.Instant]>([:])

    package init(
        ttl: Duration = PipelineDescriptionCache.defaultTTL,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.ttl = ttl
        self.now = now
    }

    /// The description of `ref`: the kept one while it is younger than `ttl`, else `describe`'s answer, which
    /// is kept (`.unimplemented`, a runner without `Describe`, answers the empty description, which takes any
    /// inputs, unless a non-empty one is kept); when `describe` fails with anything but `.notFound` or
    /// cancellation, the kept one however old.
    /// Throws what `describe` throws when nothing is kept, and its `.notFound` always (the kept entry is dropped
    /// then: the runner said the pipeline is gone).
    package func description(
        of ref: PipelineRef,
        describe: () async throws -> PipelineDescription
    ) async throws -> PipelineDescription {
        let asked = now()
        let kept = entries.withLock({ $0[ref] })
        if let kept, kept.storedAt.duration(to: asked) < ttl {
            return kept.description
        }
        let description: PipelineDescription
        do {
            description = try await describe()
        } catch let error as GatewayError where error.code == .notFound {
            _ = unanswered.withLock { $0.removeValue(forKey: ref) }
            if kept != nil { _ = entries.withLock { $0.removeValue(forKey: ref) } }
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as GatewayError where error.code == .unimplemented {
            _ = unanswered.withLock { $0.removeValue(forKey: ref) }
            // A runner without `Describe` (or a 404/405/501 that names no pipeline): it takes any inputs, an
            // answer kept as one. But not over a description it gave: a proxy in front of a runner that is down
            // answers so too, and the kept description is what the clients need then.
            if let kept = entries.withLock({ $0[ref] }), kept.description != PipelineDescription() {
                return kept.description
            }
            description = PipelineDescription()
        } catch {
            let failedAt = now()
            // An ask that began before another caller's answer was kept says nothing newer than that answer.
            if entries.withLock({ $0[ref].map { $0.storedAt <= asked } ?? true }) {
                unanswered.withLock { unanswered in
                    if unanswered.count >= Self.capacity { unanswered.removeAll() }
                    unanswered[ref] = failedAt
                }
            }
            // Read again: a NOT_FOUND answered meanwhile to another caller dropped it.
            guard let kept = entries.withLock({ $0[ref] }) else { throw error }
            return kept.description
        }
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll() }
            entries[ref] = (description, asked)
        }
        _ = unanswered.withLock { $0.removeValue(forKey: ref) }
        return description
    }

    /// Whether the runner failed to answer a `describe` of `ref` (down, slow, broken) less than `ttl` before now,
    /// counted from when the failure came, with no answer since. Concurrent asks are not merged: accepts that
    /// arrive while the first ask is pending each ask (and wait) too. An async accept, which only asks to refuse a pipeline the runner lacks, does not ask
    /// again then: it would wait for the same runner each time. Other callers ask each time, so a runner that
    /// comes back is seen at once.
    package func recentlyUnanswered(_ ref: PipelineRef) -> Bool {
        guard let failedAt = unanswered.withLock({ $0[ref] }) else { return false }
        return failedAt.duration(to: now()) < ttl
    }
}
