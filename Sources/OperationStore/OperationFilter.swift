package import TriggerModel

/// What `OperationStore.list` returns: every operation, or only one pipeline's, one state's and/or one
/// deployment's.
package struct OperationFilter: Sendable, Equatable {
    /// `namespace/pipeline` (releases of the pipeline included).
    package var pipeline: String?
    package var state: OperationState?
    /// Only operations whose request carries this `TriggerRequest.deploymentLabel` (a Craft AI deployment's
    /// executions). Stores match it on a column of its own, indexed with the insertion order, so the newest
    /// executions of a deployment are found without reading the other deployments' (operations stored by a
    /// gateway before this filter existed have no value there and are not found by it).
    package var deployment: String?

    package init(pipeline: String? = nil, state: OperationState? = nil, deployment: String? = nil) {
        self.pipeline = pipeline
        self.state = state
        self.deployment = deployment
    }

    /// The key stores index operations by, for `ref`.
    package static func pipelineKey(_ ref: PipelineRef) -> String {
        "\(ref.namespace)/\(ref.pipeline)"
    }
}

/// Which operations a `claim` may take, by pipeline key (`OperationFilter.pipelineKey`).
///
/// The async dispatcher claims per backend pool, no more than each pool can take (issue 13, item 6): the keys
/// it knows to be routed to a pool with free slots (`only`), then one operation among the keys it has not seen
/// yet (`excluding` every key it knows), which teaches it the next key's pool.
package enum ClaimScope: Sendable, Equatable {
    case all
    case only(Set<String>)
    case excluding(Set<String>)
}

/// Which expired leases a `claim` may take over (review 25 H1).
///
/// A lease expires when its owner stops renewing it: the owner died, or it could not reach the store. In an outage
/// of the store longer than a lease every lease expires, the living owners' too, and the first claim after it took
/// them all over, so the runs still in progress elsewhere ran twice (8 of 12 in the review's run). So a dispatcher
/// takes over other owners' expired leases only once every living owner has had a lease period to renew them:
/// while it cannot say so, only its own (`ownPrefix`: its earlier processes', and its own runs' that adopt the
/// claim, `AsyncDispatcher.adopt`) are taken, and queued operations are claimed as always.
package enum LeaseTakeover: Sendable, Hashable {
    /// Every expired lease (the store contract's tests, tools).
    case any
    /// Expired leases whose owner starts with `ownPrefix`, at once; other owners' only when `others` (the caller
    /// has reached the store without a failure for a lease period) and the store's server has been up for a lease
    /// period (PostgreSQL: `pg_postmaster_start_time()`; a server that restarted may have ended an outage).
    /// A store with one instance (SQLite: one process holds it) has no other owners and takes every expired lease.
    case guarded(ownPrefix: String, others: Bool)
}
