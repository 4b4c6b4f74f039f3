/// What a backend answered for a whole trigger: one output object per batch element, plus metadata.
package struct TriggerResult: Sendable, Equatable {
    package var outputs: [ValueObject]
    package var metadata: TriggerMetadata

    package init(outputs: [ValueObject], metadata: TriggerMetadata = TriggerMetadata()) {
        self.outputs = outputs
        self.metadata = metadata
    }
}

/// Per-step traces a backend may report (Instill's `TriggerMetadata.traces`), keyed by component id.
package struct TriggerMetadata: Sendable, Equatable {
    package var traces: [String: Trace]

    package init(traces: [String: Trace] = [:]) {
        self.traces = traces
    }
}

/// One component's trace, mirroring Instill's `Trace` message so gRPC clients get what they expect.
package struct Trace: Sendable, Equatable {
    package enum Status: Int, Sendable, Equatable {
        case unspecified = 0
        case completed = 1
        case skipped = 2
        case error = 3
    }

    package var statuses: [Status]
    package var inputs: [ValueObject]
    package var outputs: [ValueObject]
    package var error: ValueObject?
    package var computeTimeInSeconds: Float

    package init(
        statuses: [Status] = [],
        inputs: [ValueObject] = [],
        outputs: [ValueObject] = [],
        error: ValueObject? = nil,
        computeTimeInSeconds: Float = 0
    ) {
        self.statuses = statuses
        self.inputs = inputs
        self.outputs = outputs
        self.error = error
        self.computeTimeInSeconds = computeTimeInSeconds
    }
}

/// One piece of a streamed trigger, in the order the backend produced them.
package enum TriggerEvent: Sendable, Equatable {
    /// A status change, named as Instill names them (`PIPELINE_STATUS_UPDATED` carries e.g. `RUNNING`).
    case status(name: String, data: ValueObject)
    /// Partial or final outputs (`PIPELINE_OUTPUT_UPDATED`).
    case output(name: String, outputs: [ValueObject])
    /// The run failed after the stream began; the stream ends after this event.
    case error(GatewayError)
    /// The run is complete; carries the final result. Always the last event of a clean stream.
    case end(TriggerResult)
}
