import Synchronization
package import TriggerModel

/// `pools[].max_async_queued`: the most async operations of a pool's pipelines stored `queued` before an async
/// trigger for that pool is refused (review 26 I2: without a bound, a runner down for hours queues everything until
/// the disk or the database is full). Envoy's per-cluster `max_pending_requests` is the model; the answer is the
/// pool's overflow (`GatewayError.Code.overloaded`: 503 + `Retry-After`, gRPC UNAVAILABLE), which clients retry.
///
/// The count is the store's, read by the async dispatcher every `AsyncDispatcher.queueCountInterval`
/// (``recordCount(byPool:)``), plus the triggers this instance admitted since: no store call per accept (issue 12).
/// So the bound can be passed by what other instances sharing the store accept within one interval, and an
/// admitted trigger that turned out to be an idempotent repeat still counts until the next read. Until the first
/// read, and while the store cannot be counted (``recordUnknown()``), every trigger is admitted: the bound is
/// against a full disk, not a reason to refuse work when the count is unknown.
package final class AsyncQueueBounds: Sendable {
    private struct State {
        /// Pool name → `max_async_queued`.
        var limits: [String: Int] = [:]
        /// Pool name → queued operations at the last read; nil: not read yet, or the read failed.
        var counted: [String: Int]?
        /// Pool name → triggers admitted since that read.
        var admittedSince: [String: Int] = [:]
    }

    /// Whether any pool has a bound: read per accept without the lock, so pools without one pay one load.
    private let active = Atomic<Bool>(false)
    private let state = Mutex(State())

    package init() {}

    /// Whether any pool has a bound (``admit(pool:)`` refuses nothing otherwise).
    package var isActive: Bool { active.load(ordering: .relaxed) }

    /// The bounds of the configuration in force (start and reload): pool name → `max_async_queued`.
    package func limit(_ limits: [String: Int]) {
        state.withLock { $0.limits = limits }
        active.store(!limits.isEmpty, ordering: .relaxed)
    }

    /// The store's queued count per pool, just read.
    package func recordCount(byPool counts: [String: Int]) {
        state.withLock {
            $0.counted = counts
            $0.admittedSince = [:]
        }
    }

    /// The store could not be counted: admit until it can.
    package func recordUnknown() {
        state.withLock {
            $0.counted = nil
            $0.admittedSince = [:]
        }
    }

    /// Admits one async trigger for `pool`, or throws `.overloaded` when its queue is at its bound.
    package func admit(pool: String) throws(GatewayError) {
        let refused: (queued: Int, limit: Int)? = state.withLock { state in
            guard let limit = state.limits[pool], let counted = state.counted else { return nil }
            let queued = counted[pool, default: 0] + state.admittedSince[pool, default: 0]
            guard queued < limit else { return (queued, limit) }
            state.admittedSince[pool, default: 0] += 1
            return nil
        }
        if let refused {
            throw GatewayError(
                .overloaded,
                "the async queue of this pipeline's pool is full (\(refused.queued) operations queued, at most "
                    + "\(refused.limit)); retry later")
        }
    }
}
