package import NIOCore

/// What a backend answered for a whole trigger: one output object per batch element, plus metadata.
///
/// A result may also carry the client's bytes as the runner sent them (issue 11): `restJSON`, the runner's own
/// sync-response text, checked to be byte for byte what `RESTResponseBody.encode(result:)` would write for it;
/// or `instillProto`, the Instill `TriggerNamespacePipelineResponse` that a grpc runner's `RunResponse` is
/// once its value tags are renumbered, checked to be byte for byte what `InstillCodec.encodeTriggerResponse`
/// would write. A client of that protocol then gets those bytes, and `outputs` is decoded from the runner's
/// message only when a consumer reads it (another frontend, the operation store, Abacus/Craft reshaping).
/// Setting `outputs` or `metadata` drops the bytes, so they never describe a result that was changed
/// afterwards.
package struct TriggerResult: Sendable, Equatable {
    private var storage: Storage
    package var metadata: TriggerMetadata {
        didSet { if case .wire(_, let lazy) = storage { storage = .values(lazy.outputs) } }
    }

    private enum Storage: Sendable {
        case values([ValueObject])
        case wire(WireForm, WireBacked)
    }

    /// Which client protocol's message the `wire` storage holds.
    private enum WireForm: Sendable {
        case restJSON
        case restOutputsJSON
        case instillProto
    }

    package init(outputs: [ValueObject], metadata: TriggerMetadata = TriggerMetadata()) {
        self.storage = .values(outputs)
        self.metadata = metadata
    }

    /// A result whose REST form is `restJSON` (a complete sync-response body, `{"outputs":[...],"metadata":{}}`
    /// in `RESTResponseBody`'s canonical form; the caller has checked it) with no traces; `decodeOutputs` turns
    /// that text into `outputs` the first time they are read, at most once.
    package init(restJSON: ByteBuffer, decodeOutputs: @escaping @Sendable (ByteBuffer) -> [ValueObject]) {
        self.storage = .wire(.restJSON, WireBacked(wire: restJSON, source: restJSON, decoder: .outputs(decodeOutputs)))
        self.metadata = TriggerMetadata()
    }

    /// A partial result (an SSE output event's, before the final one) whose REST form is `restOutputsJSON`
    /// (`{"outputs":[...]}` in `RESTResponseBody`'s canonical form; the caller has checked it); `decodeOutputs`
    /// turns that text into `outputs` the first time they are read, at most once.
    package init(restOutputsJSON: ByteBuffer, decodeOutputs: @escaping @Sendable (ByteBuffer) -> [ValueObject]) {
        self.storage = .wire(
            .restOutputsJSON,
            WireBacked(wire: restOutputsJSON, source: restOutputsJSON, decoder: .outputs(decodeOutputs)))
        self.metadata = TriggerMetadata()
    }

    /// A result whose gRPC form is `instillProto` (a complete Instill `TriggerNamespacePipelineResponse` in
    /// `InstillCodec.encodeTriggerResponse`'s canonical form, without metadata; the caller has checked it)
    /// with no traces; `decodeOutputs(runResponse)` gives `outputs` the first time they are read, at most once.
    package init(
        instillProto: ByteBuffer,
        runResponse: ByteBuffer,
        decodeOutputs: @escaping @Sendable (ByteBuffer) -> [ValueObject]
    ) {
        self.storage = .wire(
            .instillProto, WireBacked(wire: instillProto, source: runResponse, decoder: .outputs(decodeOutputs)))
        self.metadata = TriggerMetadata()
    }

    /// One output object per batch element; decoded from `restJSON` on first read when the result carries it.
    package var outputs: [ValueObject] {
        get {
            switch storage {
            case .values(let outputs): outputs
            case .wire(_, let lazy): lazy.outputs
            }
        }
        set { storage = .values(newValue) }
    }

    /// The sync-response body a REST client gets for this result, when the runner's text is that body already.
    package var restJSON: ByteBuffer? {
        if case .wire(.restJSON, let lazy) = storage { return lazy.wire }
        return nil
    }

    /// The data of the SSE output event a REST client gets for this partial result (`{"outputs":[...]}`), when the
    /// runner's event data is that text already.
    package var restOutputsJSON: ByteBuffer? {
        if case .wire(.restOutputsJSON, let lazy) = storage { return lazy.wire }
        return nil
    }

    /// The gRPC response message an Instill client gets for this result, when the runner's message is that
    /// message already (apart from its renumbered value tags).
    package var instillProto: ByteBuffer? {
        if case .wire(.instillProto, let lazy) = storage { return lazy.wire }
        return nil
    }

    package static func == (lhs: TriggerResult, rhs: TriggerResult) -> Bool {
        lhs.metadata == rhs.metadata && lhs.outputs == rhs.outputs
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
    /// Partial or final outputs (`PIPELINE_OUTPUT_UPDATED`), as a result without metadata: like a sync
    /// result, it may carry the Instill stream message a grpc runner's `OutputEvent` is once renumbered
    /// (`TriggerResult.instillProto`; Instill's `TriggerNamespacePipelineWithStreamResponse` has the unary
    /// response's layout), its outputs then decoded only if a consumer reads them (issue 11).
    case output(name: String, result: TriggerResult)
    /// The run failed after the stream began; the stream ends after this event.
    case error(GatewayError)
    /// The run is complete; carries the final result. Always the last event of a clean stream.
    case end(TriggerResult)

    /// An output event holding `outputs` (what every producer but the grpc transport's decoder makes).
    package static func output(name: String, outputs: [ValueObject]) -> TriggerEvent {
        .output(name: name, result: TriggerResult(outputs: outputs))
    }
}
