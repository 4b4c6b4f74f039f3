import NIOCore
import TriggerModel

/// What a request carries besides its pipeline and inputs, read the same way on every frontend (REST over
/// HTTP/1.1 and HTTP/2 from its headers, gRPC from its metadata: both are lowercase HTTP fields), and the one
/// builder of the `TriggerRequest` all three hand to the dispatcher (issue 11).
///
/// The fields (API.md §2 and §3, CLIENTS.md): `request-id` (echoed; made when absent or empty),
/// `authorization` (resolved to the principal by the frontend), `grpc-timeout` (gRPC only), `traceparent` /
/// `tracestate` (W3C Trace Context), `idempotency-key`, `instill-return-traces: true`.
struct RequestContext {
    var requestID: String
    /// When the request's head arrived: every deadline counts from it.
    let start: NIODeadline
    /// The configured `timeouts.request`, which set ``syncDeadline`` unless the client's deadline is earlier.
    let requestTimeout: TimeAmount
    /// The authenticated principal; nil when anonymous or not yet authenticated.
    var principal: String?
    /// The end-to-end deadline of a sync call: the earlier of the client's own (`grpc-timeout`) and the head's
    /// arrival plus the configured request timeout (`timeouts.request`). ``makeRequest(ref:mode:batch:trace:now:)``
    /// folds the pool's ``poolTimeout`` in; the result is set here, at the frontend, and carried to the transport.
    var syncDeadline: NIODeadline
    /// The client's own deadline (`grpc-timeout`), the only one a stream has (streams are otherwise bounded by
    /// the idle rule: a long healthy stream must not be cut by the request timeout).
    var clientDeadline: NIODeadline?
    /// `traceparent` and `tracestate` as received; the trace a trigger travels with is made from them
    /// (``startTrace()``) only for triggers, so other requests cost no random ids.
    var receivedTraceParent: String?
    var receivedTraceState: String?
    /// The trigger's trace context, once ``startTrace()`` made it.
    private(set) var trace: TraceContext?
    var idempotencyKey: String?
    /// `instill-return-traces: true` (any case): ask the backend for per-step traces.
    var returnTraces: Bool
    /// `instill-requester-uid`, set by the frontend only once `NamespaceDirectory.checkRequester` allowed it
    /// (the namespace the principal acts for; passed to the backend as metadata).
    var requesterUID: String?
    /// Which forwarded fields the client sent as sensitive (HTTP/2 only: HPACK never indexed); carried to the
    /// backend call (`TriggerRequest.sensitiveFields`, RFC 7541 §7.1.3). Set with ``markSensitive(_:sentRequestID:)``.
    private(set) var sensitiveFields = SensitiveFields()

    /// The route's pool's `request_timeout`, which bounds a sync call too: from the moment the request is complete
    /// and handed to the pool (`now` of ``makeRequest(ref:mode:batch:trace:now:)``), not from the head's arrival,
    /// so a client's slow upload is not charged to the pool (review 18, F1: a 300 KB body at 100 KB/s to a pool
    /// of 1 s was a 504 "did not answer within 0ms", counted against healthy runners). Envoy's route timeout
    /// likewise starts once the downstream request is fully read. `timeouts.request` stays end to end.
    private(set) var poolTimeout: TimeAmount?

    /// Sets ``poolTimeout`` (nil: the route has no pool). The deadline is still decided once, here, when the
    /// request is made; the pool and transports only enforce it.
    mutating func bound(byPoolTimeout timeout: TimeAmount?) {
        poolTimeout = timeout
    }

    /// Notes the fields the client sent as sensitive; the request id's mark is kept only when ``requestID`` is
    /// the value the client sent (`sentRequestID`), not one made for it.
    mutating func markSensitive(_ fields: SensitiveFields, sentRequestID: String?) {
        guard !fields.isEmpty else { return }
        var fields = fields
        if fields.contains(.requestID), sentRequestID != requestID { fields.remove(.requestID) }
        sensitiveFields = fields
    }

    /// The request id a client sent in `request-id`, or a new one when it sent none or one that is not
    /// acceptable (``RequestID/resolve(_:)``: empty, over 200 bytes, or not visible ASCII).
    static func requestID(_ sent: String?) -> String {
        RequestID.resolve(sent)
    }

    /// The trace context of the trigger (``TraceContext``): made on the first call, the same afterwards.
    @discardableResult
    mutating func startTrace() -> TraceContext {
        if let trace { return trace }
        let made = TraceContext(traceParent: receivedTraceParent, traceState: receivedTraceState)
        trace = made
        return made
    }

    /// The model of the trigger, whichever frontend and wire it came from. The deadline follows the mode:
    /// sync calls get the earlier of ``syncDeadline`` and `now` (the request complete, on the frontend's clock)
    /// plus ``poolTimeout``; streams only the client's own; async triggers none (their run's timeout starts when
    /// it gets a slot, in the async dispatcher).
    mutating func makeRequest(
        ref: PipelineRef, mode: TriggerMode, inputs: [TriggerInput], now: NIODeadline
    ) -> TriggerRequest {
        makeRequest(ref: ref, mode: mode, batch: TriggerBatch(inputs), now: now)
    }

    /// As `makeRequest(ref:mode:inputs:now:)`, with the batch as a decoder made it (a gRPC trigger's may carry the
    /// runner's bytes: `TriggerBatch`).
    mutating func makeRequest(
        ref: PipelineRef, mode: TriggerMode, batch: TriggerBatch, now: NIODeadline
    ) -> TriggerRequest {
        // Started first, not as the argument: `self` is read before the arguments are evaluated, so a mutating
        // argument made a copy of the whole context (~330 instructions per gRPC call).
        let trace = startTrace()
        return makeRequest(ref: ref, mode: mode, batch: batch, trace: trace, now: now)
    }

    /// As `makeRequest(ref:mode:batch:now:)`, with the trace ``startTrace()`` made.
    func makeRequest(
        ref: PipelineRef, mode: TriggerMode, batch: TriggerBatch, trace: TraceContext, now: NIODeadline
    ) -> TriggerRequest {
        var deadline: NIODeadline?
        // `timeouts.request` (from the head's arrival) is the binding deadline when it comes before the pool's.
        var requestTimeoutFirst = false
        switch mode {
        case .sync:
            deadline = syncDeadline
            if let poolTimeout {
                let poolDeadline = now + poolTimeout
                requestTimeoutFirst = syncDeadline < poolDeadline
                if !requestTimeoutFirst { deadline = poolDeadline }
            }
        case .stream: deadline = clientDeadline
        case .async: deadline = nil
        }
        var request = TriggerRequest(
            ref: ref,
            mode: mode,
            batch: batch,
            principal: principal,
            deadline: deadline,
            requestID: requestID,
            traceParent: trace.traceParent,
            traceState: trace.traceState,
            idempotencyKey: idempotencyKey,
            returnTraces: returnTraces,
            requesterUID: requesterUID
        )
        request.sensitiveFields = sensitiveFields
        // The client's own deadline is the binding one: its passing is not the backend's failure.
        if let deadline, let clientDeadline { request.deadlineIsClients = clientDeadline <= deadline }
        if requestTimeoutFirst, !request.deadlineIsClients { request.requestTimeoutDeadline = requestTimeout }
        return request
    }
}

// The initializers are in an extension so that the struct keeps its memberwise initializer, which they call: one
// that set the fields itself assembled the context in a local `self`, copied it out and destroyed the local (its
// strings retained and released once more per request: bench/README.md, "Branch hotpath2").
extension RequestContext {
    /// Reads the context from a request's fields; `field` answers a lowercase name with its first value.
    /// `start` is the head's arrival, `requestTimeout` the configured `timeouts.request`, `clientTimeout` the
    /// client's parsed `grpc-timeout`.
    init(
        requestID: String,
        start: NIODeadline,
        requestTimeout: TimeAmount,
        clientTimeout: TimeAmount? = nil,
        field: (String) -> String?
    ) {
        self.init(
            requestID: requestID, start: start, requestTimeout: requestTimeout, clientTimeout: clientTimeout,
            traceParent: field("traceparent"), traceState: field("tracestate"),
            idempotencyKey: field("idempotency-key"), returnTraces: field("instill-return-traces"))
    }

    /// The context from fields already read (a gRPC call reads its header block in one pass, `GRPCRequestHead`):
    /// `traceParent`, `traceState`, `idempotencyKey` and `returnTraces` are the values of `traceparent`,
    /// `tracestate`, `idempotency-key` and `instill-return-traces` as received, nil when absent; `principal` and
    /// `requesterUID` as the frontend checked them (``principal``, ``requesterUID``).
    init(
        requestID: String,
        start: NIODeadline,
        requestTimeout: TimeAmount,
        clientTimeout: TimeAmount?,
        traceParent: String?,
        traceState: String?,
        idempotencyKey: String?,
        returnTraces: String?,
        principal: String? = nil,
        requesterUID: String? = nil
    ) {
        let clientDeadline = clientTimeout.map { start + $0 }
        self.init(
            requestID: requestID, start: start, requestTimeout: requestTimeout, principal: principal,
            syncDeadline: min(start + requestTimeout, clientDeadline ?? .distantFuture), clientDeadline: clientDeadline,
            receivedTraceParent: traceParent, receivedTraceState: traceState, trace: nil,
            idempotencyKey: idempotencyKey,
            returnTraces: returnTraces.map { $0.lowercased() == "true" } ?? false, requesterUID: requesterUID)
    }
}
