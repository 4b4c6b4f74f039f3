import AbacusSurface
import GatewayConfig
import NIOCore
import TriggerDispatch
import TriggerModel
import WireCodecs

/// `/api/v0/<action>`: hands the Abacus.AI surface (`AbacusAPI`) its request and writes its envelope.
///
/// GET and HEAD run at once with the query string (HEAD is routed as GET, see `RESTRequestHead.start`); POST
/// first gathers its body raw, under the body cap, and the surface parses it. Every failure is in the
/// surface's envelope (`{"success": false, ...}`): the surface's own, and what the frontend refuses before the
/// surface sees the request (`RESTErrorFormat.abacus`: headers or a body over the caps, no `Host`).
///
/// The pipeline a call names is known only once its parameters are parsed (a POST's are in its body): the
/// surface reports it with its answer (`AbacusResponse.pipeline`), and the response carries it to the
/// request's record (`RESTResponse.naming`), so the access log and the metrics name the route it matched.
extension RESTRequestHead {
    /// `trace`: the request's trace context (``RequestContext/startTrace()``), which its runs carry. `collector`,
    /// `use`: where a POST's body reader goes (``RESTStart/readBody``).
    func abacusStart(
        _ action: String, services: FrontendServices, requestID: String, trace: TraceContext,
        collector: inout RESTBodyCollector, use: inout PendingBodyUse
    ) -> RESTStart {
        let query: RESTQuery
        do {
            query = try RESTQuery(target: target)
        } catch {
            let response = AbacusAPI.failure(AbacusError(gatewayError(from: error)), requestID: requestID)
            return .respond(.abacus(response, requestID: requestID), closeConnection: false)
        }
        let dispatcher = services.dispatcher
        let abacus = AbacusServices(
            namespace: services.abacus.namespace,
            authenticator: services.authenticator,
            limits: services.limits,
            operations: services.operations,
            runsUnavailable: services.health.status(.async) == .serving ? nil : services.health.asyncRefusal,
            // A run is checked as an async accept checks its target (the runner waited for at most its pool's
            // connect_timeout); a read asks the runner's description, as GetNamespacePipeline does.
            checkPipeline: { ref, forRun in
                if forRun {
                    try await dispatcher.checkAsyncTarget(ref)
                } else {
                    _ = try await dispatcher.pipelineDescription(ref)
                }
            },
            gatewayError: { gatewayError(from: $0, requestID: requestID) }
        )
        let request = AbacusRequest(
            action: action,
            method: method,
            query: { query[$0] },
            body: nil,
            apiKey: first("apikey"),
            // The scheme of the connection (https over TLS); `host` is Host, or HTTP/2's :authority
            // (RFC 9113 §8.3.1). An empty Host (RFC 9112 §3.2: the target has no authority) names no URL either:
            // `http://` became the client's server for every later call (protocol review 58, L6).
            baseURL: first("host").flatMap { $0.isEmpty ? nil : "\(externalScheme)://\($0)" },
            requestID: requestID,
            traceParent: trace.traceParent,
            traceState: trace.traceState,
            idempotencyKey: first("idempotency-key")
        )
        guard method == "POST" else {
            return .run(
                RESTWork(requestID: requestID) {
                    Self.abacusAnswer(await AbacusAPI.handle(request, services: abacus), dispatcher, requestID)
                }
            )
        }
        // The key is checked at the head, before the body is read (security review 60, H1): a refusal is answered
        // at once, as the Instill trigger's is, and a body that follows is discarded, not gathered (a body held
        // back for `100 Continue` closes the connection instead).
        var limits = services.limits
        var keyless = false
        switch AbacusAPI.admission(request, services: abacus) {
        case .refused(let refusal):
            return .respond(Self.abacusAnswer(refusal, dispatcher, requestID), closeConnection: false)
        case .keyless:
            limits.maxBodyBytes = min(limits.maxBodyBytes, AbacusAPI.keylessBodyBytes)
            keyless = true
        case .keyed:
            break
        }
        let declaredLength = first("content-length").flatMap(Int.init)
        if let declared = declaredLength, declared > limits.maxBodyBytes {
            let error = RESTErrors.bodyTooLarge(size: declared, limit: limits.maxBodyBytes, declared: true)
            return .respond(RESTErrorFormat.abacus.response(error, requestID: requestID), closeConnection: true)
        }
        collector = .raw(limits: limits, expectedLength: declaredLength)
        // A keyless call's body is read before (without) authentication: from a pool of its own.
        collector.unauthenticated = keyless
        use = .use(
            .work(
                RESTBodyWork(requestID: requestID, errorFormat: .abacus) { body in
                    var request = request
                    if case .bytes(let bytes) = body { request.body = bytes }
                    return Self.abacusAnswer(await AbacusAPI.handle(request, services: abacus), dispatcher, requestID)
                }
            ))
        return .readBody
    }

    /// The surface's answer as a REST response, naming the pipeline the call resolved (if any) with the route
    /// it matches, and the principal its `apiKey` named, for the request's record.
    private static func abacusAnswer(_ answer: AbacusResponse, _ dispatcher: TriggerDispatcher, _ requestID: String)
        -> RESTResponse
    {
        var response = RESTResponse.abacus(answer, requestID: requestID)
        if answer.pipeline != nil || answer.principal != nil || answer.operationID != nil {
            response.naming = RequestNaming(
                ref: answer.pipeline, mode: answer.mode, route: answer.pipeline.flatMap(dispatcher.route(for:)),
                principal: answer.principal, operationID: answer.operationID)
        }
        return response
    }
}
