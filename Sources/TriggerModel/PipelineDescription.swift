/// What a runner says about one pipeline's inputs and outputs: their names and data types.
///
/// Surfaces whose clients need a pipeline's signature before they trigger it ask for it (Craft AI's SDK
/// uploads exactly the inputs whose `data_type` is `file` as files: CLIENTS.md §3.4). An empty list means the
/// pipeline takes any inputs (the demo pipelines other than `blob-info`).
package struct PipelineDescription: Sendable, Equatable {
    /// One declared input or output.
    package struct Parameter: Sendable, Equatable {
        package var name: String
        /// Craft AI's data types: `string`, `number`, `boolean`, `json`, `array` or `file`.
        package var dataType: String

        package init(name: String, dataType: String) {
            self.name = name
            self.dataType = dataType
        }
    }

    package var inputs: [Parameter]
    package var outputs: [Parameter]

    package init(inputs: [Parameter] = [], outputs: [Parameter] = []) {
        self.inputs = inputs
        self.outputs = outputs
    }

    /// The data types a parameter may have (Craft AI's `INPUT_OUTPUT_TYPES`).
    package static let dataTypes = ["string", "number", "boolean", "json", "array", "file"]
}

/// A runner that can describe its pipelines (the runner protocol's `Describe` call).
package protocol PipelineDescribing: Sendable {
    /// The pipeline's declared inputs and outputs. Throws `GatewayError(.notFound)` for a pipeline the runner
    /// does not have, `.unimplemented` when the runner cannot describe pipelines at all.
    func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription
}
