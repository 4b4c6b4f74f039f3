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
