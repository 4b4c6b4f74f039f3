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
    /// Only the operations this caller may see (``Viewer``), when set: the store applies the rule in its query and
    /// never decodes (nor reads the blobs of) another principal's operations. Nil: every operation (the stores'
    /// own tests, tools). Security review 60, M3: the surfaces listed every principal's operations and dropped the
    /// ones the caller may not see afterwards, so a `page_size=1` list by one principal read another's blob files
    /// (~570 MB) inside SQLite's serial gate, and every enqueue waited for it (2 ms became 1.3 s).
    ///
    /// Not part of a page token's tag (``OperationPaging/makeToken(afterID:filter:)``): it is who asks, not what
    /// the client filtered by, and tokens made before it existed stay good.
    package var viewer: Viewer?

    package init(
        pipeline: String? = nil, state: OperationState? = nil, deployment: String? = nil, viewer: Viewer? = nil
    ) {
        self.pipeline = pipeline
        self.state = state
        self.deployment = deployment
        self.viewer = viewer
    }

    /// The caller a list is for, and the one rule of which operations it may see (`Operation.isVisible(to:)` is
    /// this rule): its own (made with its principal; nil is "anonymous", a principal of its own), and every
    /// schedule's runs (no principal, and an idempotency key that ``ScheduleRunKey`` parses).
    package struct Viewer: Sendable, Equatable {
        package var principal: String?

        package init(principal: String?) {
            self.principal = principal
        }

        /// Whether this caller sees an operation made with `owner` (its request's principal) under `idempotencyKey`.
        package func sees(owner: String?, idempotencyKey: String?) -> Bool {
            owner == principal || (owner == nil && idempotencyKey.flatMap(ScheduleRunKey.init(parsing:)) != nil)
        }

        /// The value of the stores' `principal` column for an operation made with `principal` (``NewOperation``):
        /// the principal, or "" for none. NULL there is an operation an earlier gateway stored, whose principal
        /// only its stored request tells (``OperationRow/storedOwner``).
        package static func column(_ principal: String?) -> String {
            principal ?? ""
        }
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
