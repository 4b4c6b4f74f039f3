package import TriggerModel

/// What `OperationStore.list` returns: every operation, or only one pipeline's and/or one state's.
package struct OperationFilter: Sendable, Equatable {
    /// `namespace/pipeline` (releases of the pipeline included).
    package var pipeline: String?
    package var state: OperationState?

    package init(pipeline: String? = nil, state: OperationState? = nil) {
        self.pipeline = pipeline
        self.state = state
    }

    /// The key stores index operations by, for `ref`.
    package static func pipelineKey(_ ref: PipelineRef) -> String {
        "\(ref.namespace)/\(ref.pipeline)"
    }
}
