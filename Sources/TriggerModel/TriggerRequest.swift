package import NIOCore

/// How the client wants its answer.
package enum TriggerMode: String, Sendable, Equatable {
    /// Outputs in the response.
    case sync
    /// An operation id at once; the outputs are fetched later.
    case async
    /// Events as the backend produces them (SSE on HTTP/1.1, server-streaming on gRPC).
    case stream
}

/// One element of a trigger's batch: the variables of `data[i]` (or legacy `inputs[i]`) and its secrets.
package struct TriggerInput: Sendable, Equatable {
    package var variables: ValueObject
    package var secrets: [String: String]

    package init(variables: ValueObject = ValueObject(), secrets: [String: String] = [:]) {
        self.variables = variables
        self.secrets = secrets
    }
}

/// A trigger's batch: the model's inputs, or (issue 11) the bytes a runner's request carries them in, with the
/// inputs decoded from the client's message only if something reads them.
///
/// A bytes form is made only by a frontend that checked them to be byte for byte what the runner's encoder
/// writes for the decoded inputs: `RunnerCodec.encodeRunRequest` for a grpc runner (`InstillRequestPassthrough`),
/// `BackendHTTPBody.encode` for an http runner (`RESTRequestPassthrough`); so the runner gets the same request
/// either way. Every other reader (the other kind of runner, the in-process runner, the operation store, logs)
/// reads `inputs` as before.
package struct TriggerBatch: Sendable, Equatable {
    private enum Storage: Sendable {
        case values([TriggerInput])
        /// `RunRequest.inputs` elements.
        case runRequestInputs(WireBacked)
        /// The `data` elements of an http runner's run request.
        case httpRunData(WireBacked)
    }

    private var storage: Storage

    package init(_ inputs: [TriggerInput]) {
        self.storage = .values(inputs)
    }

    /// A batch whose `RunRequest` form is `runRequestInputs`: its `inputs` field (6), every element with its tag
    /// and length, as `RunnerCodec` writes it; `decode(source)` gives the inputs the first time they are read.
    package init(
        runRequestInputs: ByteBuffer,
        source: ByteBuffer,
        decode: @escaping @Sendable (ByteBuffer) -> [TriggerInput]
    ) {
        self.storage = .runRequestInputs(WireBacked(wire: runRequestInputs, source: source, decoder: .inputs(decode)))
    }

    /// A batch whose http run request form is `httpRunData`: the elements of its `data` array, comma-separated,
    /// as `BackendHTTPBody` writes them; `decode(source)` gives the inputs the first time they are read.
    package init(
        httpRunData: ByteBuffer,
        source: ByteBuffer,
        decode: @escaping @Sendable (ByteBuffer) -> [TriggerInput]
    ) {
        self.storage = .httpRunData(WireBacked(wire: httpRunData, source: source, decoder: .inputs(decode)))
    }

    package var inputs: [TriggerInput] {
        switch storage {
        case .values(let inputs): inputs
        case .runRequestInputs(let lazy), .httpRunData(let lazy): lazy.inputs
        }
    }

    /// The encoded `RunRequest.inputs` elements, when the batch carries them.
    package var runRequestInputs: ByteBuffer? {
        if case .runRequestInputs(let lazy) = storage { return lazy.wire }
        return nil
    }

    /// The elements of an http run request's `data` array, when the batch carries them.
    package var httpRunData: ByteBuffer? {
        if case .httpRunData(let lazy) = storage { return lazy.wire }
        return nil
    }

    package static func == (lhs: TriggerBatch, rhs: TriggerBatch) -> Bool {
        lhs.inputs == rhs.inputs
    }
}

/// The one internal model every ingress shape (REST JSON, multipart, gRPC protobuf) becomes.
///
/// It carries no protocol types; frontends fill the transport-level fields (principal, deadline, request
/// id, trace context) from headers or metadata, and backends render it onto their own wire.
package struct TriggerRequest: Sendable, Equatable {
    package var ref: PipelineRef
    package var mode: TriggerMode
    /// The batch, one element per `data[i]`; never more than the configured batch limit.
    package var batch: TriggerBatch
    /// The batch's inputs. Setting them (or changing one) makes the batch plain values.
    package var inputs: [TriggerInput] {
        get { batch.inputs }
        set { batch = TriggerBatch(newValue) }
        _modify {
            var inputs = batch.inputs
            batch = TriggerBatch([])  // `inputs` is then the array's only reference: changed in place
            defer { batch = TriggerBatch(inputs) }
            yield &inputs
        }
    }
    /// Who sent it, as resolved from the token by routing; nil when auth is off.
    package var principal: String?
    /// When the client stops waiting (from `grpc-timeout`, or the gateway's request timeout).
    package var deadline: NIODeadline?
    /// Whether ``deadline`` is the client's own (`grpc-timeout`, shorter than every timeout of the gateway's):
    /// its passing is then not the backend's failure (`GatewayError.callerDeadline`).
    package var deadlineIsClients = false
    /// The configured `timeouts.request` when it is what set ``deadline`` (counted from the request's arrival, it
    /// came before the pool's `request_timeout` counted from the body's end); nil otherwise. The pool's deadline
    /// error names it (a 2 s `timeouts.request` read "did not answer within 1.999s", a setting nobody made).
    package var requestTimeoutDeadline: TimeAmount?
    /// Echoed to the client and passed to the backend; made by the frontend when the client sent none.
    package var requestID: String
    /// W3C trace context as received, passed through untouched.
    package var traceParent: String?
    package var traceState: String?
    /// For async triggers: the same key and body give the same operation. For backend calls made by the
    /// async dispatcher: the operation id, so a backend can deduplicate a retried run.
    package var idempotencyKey: String?
    /// `Instill-Return-Traces: true`: ask the backend for per-step traces.
    package var returnTraces: Bool
    /// Instill's `instill-requester-uid` metadata: the uid of the namespace (user or organization) the principal
    /// acts for, already checked against what the principal may do; passed to the backend as the same metadata.
    package var requesterUID: String?
    /// Which of the values above the client sent as sensitive (HTTP/2: as HPACK "literal never indexed", RFC 7541
    /// §6.2.3); a backend call that speaks HPACK sends them the same way (§7.1.3: an intermediary must). Empty for
    /// HTTP/1.1 clients, which have no such form.
    package var sensitiveFields = SensitiveFields()
    /// Set by the async dispatcher: the run waits for a slot of its pool behind the callers instead of being
    /// refused as overloaded (DESIGN.md "Failures: whose fault"), and its request timeout starts with the slot.
    package var waitsForCapacity = false
    /// What a surface keeps with an async operation for its own later reads (the Craft AI surface: the
    /// deployment and the output mapping of an execution). Stored with the operation, never sent to a runner,
    /// and not part of the request digest. Keys are `<surface>.<name>`.
    package var labels: [String: String] = [:]
    /// The label naming the deployment an execution belongs to (the Craft AI surface's): stores keep its value in
    /// a column of its own, so a deployment's executions are listed by the store (`OperationFilter.deployment`).
    package static let deploymentLabel = "craft.deployment"
    /// The label naming the inputs a surface filled from the gateway's own configuration (Craft AI's
    /// `environment_variable_name` mappings: the gateway's environment): sent to the runner, never shown by a
    /// read (``shownInputs``; security review, M1). Names percent-escaped (`%`, newline) and newline-separated.
    package static let hiddenInputsLabel = "trigger.hidden_inputs"
    /// Set by the HTTP/1.1 frontend's streaming relay (issue 12): the http runner's request body, still
    /// arriving from the client, sent instead of one rendered from `inputs` (which then hold a placeholder for
    /// the large blob). Only ever set on a sync request for an http pool; nil everywhere else.
    package var relayedBody: RelayedBody?
}

// The initializers are in an extension so that the struct keeps its memberwise initializer, which they call:
// built field by field in an initializer of its own, the request was assembled in a local `self`, copied out and
// the local destroyed (every string and buffer retained and released once more per request: bench/README.md,
// "Branch hotpath2"); the memberwise initializer builds it in place.
extension TriggerRequest {
    /// A request whose batch a decoder made (a gRPC trigger's may carry the runner's bytes), with every field a
    /// frontend sets: built in place, not built with an empty batch and then changed (issue 11: that copied the
    /// whole request, a few dozen references retained and released, once more per call).
    package init(
        ref: PipelineRef,
        mode: TriggerMode,
        batch: TriggerBatch,
        principal: String?,
        deadline: NIODeadline?,
        requestID: String,
        traceParent: String?,
        traceState: String?,
        idempotencyKey: String?,
        returnTraces: Bool,
        requesterUID: String?
    ) {
        self.init(
            ref: ref, mode: mode, batch: batch, principal: principal, deadline: deadline, deadlineIsClients: false,
            requestID: requestID, traceParent: traceParent, traceState: traceState, idempotencyKey: idempotencyKey,
            returnTraces: returnTraces, requesterUID: requesterUID, waitsForCapacity: false, labels: [:],
            relayedBody: nil)
    }

    package init(
        ref: PipelineRef,
        mode: TriggerMode = .sync,
        inputs: [TriggerInput],
        principal: String? = nil,
        deadline: NIODeadline? = nil,
        requestID: String = "",
        traceParent: String? = nil,
        traceState: String? = nil,
        idempotencyKey: String? = nil,
        returnTraces: Bool = false
    ) {
        self.init(
            ref: ref, mode: mode, batch: TriggerBatch(inputs), principal: principal, deadline: deadline,
            requestID: requestID, traceParent: traceParent, traceState: traceState, idempotencyKey: idempotencyKey,
            returnTraces: returnTraces, requesterUID: nil)
    }
}

extension TriggerRequest {
    /// The inputs no client may read back (``hiddenInputsLabel``); empty when the label is absent.
    package var hiddenInputNames: Set<String> {
        get {
            guard let label = labels[Self.hiddenInputsLabel] else { return [] }
            return Set(
                label.split(separator: "\n", omittingEmptySubsequences: false).map {
                    String($0).replacing("%0A", with: "\n").replacing("%25", with: "%")
                })
        }
        set {
            labels[Self.hiddenInputsLabel] =
                newValue.isEmpty
                ? nil
                : newValue.sorted().map { $0.replacing("%", with: "%25").replacing("\n", with: "%0A") }
                    .joined(separator: "\n")
        }
    }

    /// Each item's variables as a read shows them (an operation's status, its runs, one input): without the
    /// ``hiddenInputNames``.
    package var shownInputs: [ValueObject] {
        let hidden = hiddenInputNames
        guard !hidden.isEmpty else { return inputs.map(\.variables) }
        return inputs.map { input in
            var variables = input.variables
            for name in hidden { variables[name] = nil }
            return variables
        }
    }
}

/// A set of a request's own forwarded fields (``TriggerRequest/sensitiveFields``), one bit each; the raw value is
/// what stores keep (`OperationPayloadCodec`), so the bits never change meaning.
///
/// Not an `OptionSet`: its members come from generic `SetAlgebra` extensions that callers in other modules ran
/// unspecialised (an array literal went through `SetAlgebra.init<S: Sequence>`, metadata lookups and iterator
/// witnesses: ~2 400 instructions per gRPC call, bench/README.md "Forty-ninth session"). `public`, with
/// `@inlinable` members, for the reason `PercentDecoding` gives: Swift 6.3.1 serialises no `@inlinable` body of a
/// `package` type, and each member called across modules was a call (~160 instructions per REST trigger).
public struct SensitiveFields: Hashable, Sendable {
    public var rawValue: UInt8

    /// None.
    @inlinable public init() { rawValue = 0 }
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `request-id` (only when the value is the client's own: a made one is the gateway's).
    @inlinable public static var requestID: SensitiveFields { SensitiveFields(rawValue: 1 << 0) }
    /// `traceparent`: the gateway sends its own span id with the client's trace id.
    @inlinable public static var traceParent: SensitiveFields { SensitiveFields(rawValue: 1 << 1) }
    @inlinable public static var traceState: SensitiveFields { SensitiveFields(rawValue: 1 << 2) }
    @inlinable public static var idempotencyKey: SensitiveFields { SensitiveFields(rawValue: 1 << 3) }
    @inlinable public static var requesterUID: SensitiveFields { SensitiveFields(rawValue: 1 << 4) }

    @inlinable public var isEmpty: Bool { rawValue == 0 }

    /// Whether every field of `other` is in the set.
    @inlinable public func contains(_ other: SensitiveFields) -> Bool { rawValue & other.rawValue == other.rawValue }

    @inlinable public mutating func insert(_ other: SensitiveFields) { rawValue |= other.rawValue }

    @inlinable public mutating func remove(_ other: SensitiveFields) { rawValue &= ~other.rawValue }

    /// The member for a forwarded field's wire name (lowercase, as HTTP/1.1 headers and gRPC metadata both name
    /// it: `request-id`, `traceparent`, `tracestate`, `idempotency-key`, `instill-requester-uid`); nil for any
    /// other name.
    public init?(fieldName name: String) {
        switch name {
        case "request-id": self = .requestID
        case "traceparent": self = .traceParent
        case "tracestate": self = .traceState
        case "idempotency-key": self = .idempotencyKey
        case "instill-requester-uid": self = .requesterUID
        default: return nil
        }
    }
}
