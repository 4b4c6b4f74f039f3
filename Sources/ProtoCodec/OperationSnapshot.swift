package import TriggerModel

/// What a `google.longrunning.Operation` says about an async trigger at one moment: the shape of the
/// `operation` field of the async trigger and GetOperation responses, without protobuf types.
package struct OperationSnapshot: Sendable, Equatable {
    /// `operations/<id>`.
    package var name: String
    package var done: Bool
    /// The failure of a finished operation (sent as `google.rpc.Status`; wins over `result` if both are set).
    package var error: GatewayError?
    /// The outputs of a finished operation (sent as an `Any` holding a `TriggerNamespacePipelineResponse`).
    package var result: TriggerResult?
    /// State, pipeline, times, attempts… (sent as an `Any` holding a `google.protobuf.Struct`).
    package var metadata: ValueObject?

    package init(
        name: String,
        done: Bool,
        error: GatewayError? = nil,
        result: TriggerResult? = nil,
        metadata: ValueObject? = nil
    ) {
        self.name = name
        self.done = done
        self.error = error
        self.result = result
        self.metadata = metadata
    }
}
