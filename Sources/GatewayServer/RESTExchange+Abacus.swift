import AbacusSurface
import GatewayConfig
import NIOCore
import TriggerDispatch
import TriggerModel
import WireCodecs

/// `/api/v0/<action>`: hands the Abacus.AI surface (`AbacusAPI`) its request and writes its envelope.
///
/// GET and HEAD run at once with the query string (HEAD is routed as GET, see `RESTRequestHead.start`); POST
/// first gathers its body raw, under the body cap, and the surface parses it. Failures of the surface's own come back in its envelope (`{"success": false, ...}`);
/// only what the frontend refuses before the surface sees the request (headers or body over the caps) is in
/// the gateway's usual error shape.
extension RESTRequestHead {
    /// `trace`: the request's trace context (``RequestContext/startTrace()``), which its runs carry.
    func abacusStart(_ action: String, services: FrontendServices, requestID: String, trace: TraceContext) -> RESTStart
    {
        let query: RESTQuery
        do {
            query = try RESTQuery(target: target)
        } catch {
            let response = AbacusAPI.failure(AbacusError(gatewayError(from: error)), requestID: requestID)
            return .respond(Self.restResponse(response, requestID: requestID), closeConnection: false)
        }
        let dispatcher = services.dispatcher
        let abacus = AbacusServices(
            namespace: services.abacus.namespace,
            authenticator: services.authenticator,
            limits: services.limits,
            operations: services.operations,
            runsUnavailable: services.health.status(.async) == .serving ? nil : HealthRegistry.asyncUnavailable,
            checkRoute: { ref in _ = try dispatcher.pool(for: ref) },
            gatewayError: { gatewayError(from: $0, requestID: requestID) }
        )
        let request = AbacusRequest(
            action: action,
            method: method,
            query: { query[$0] },
            body: nil,
            apiKey: first("apikey"),
            // The scheme of the connection (https over TLS); `host` is Host, or HTTP/2's :authority
            // (RFC 9113 §8.3.1).
            baseURL: first("host").map { "\(externalScheme)://\($0)" },
            requestID: requestID,
            traceParent: trace.traceParent,
            traceState: trace.traceState,
            idempotencyKey: first("idempotency-key")
        )
        guard method == "POST" else {
            return .run(
                RESTWork(requestID: requestID) {
                    Self.restResponse(await AbacusAPI.handle(request, services: abacus), requestID: requestID)
                }
            )
        }
        let declaredLength = first("content-length").flatMap(Int.init)
        if let declared = declaredLength, declared > services.limits.maxBodyBytes {
            let error = RESTErrors.bodyTooLarge(size: declared, limit: services.limits.maxBodyBytes, declared: true)
            return .respond(.error(error, requestID: requestID), closeConnection: true)
        }
        return .readBody(
            .raw(limits: services.limits, expectedLength: declaredLength),
            .work(
                RESTBodyWork(requestID: requestID) { body in
                    var request = request
                    if case .bytes(let bytes) = body { request.body = bytes }
                    return Self.restResponse(await AbacusAPI.handle(request, services: abacus), requestID: requestID)
                }
            )
        )
    }

    /// A method the action does not take, refused in the surface's envelope (the client reads every answer
    /// of `/api/v0/` as one) with `Allow` listing the methods it does take (RFC 9110 §15.5.6).
    func abacusMethodNotAllowed(_ action: String, allow: String, requestID: String) -> RESTResponse {
        let error = AbacusError(.methodNotAllowed, "\(action) takes \(allow), not \(method)", httpStatus: 405)
        var response = Self.restResponse(AbacusAPI.failure(error, requestID: requestID), requestID: requestID)
        response.headers.removeAll { $0.name == "allow" }
        response.headers.append(("allow", allow))
        return response
    }

    private static func restResponse(_ response: AbacusResponse, requestID: String) -> RESTResponse {
        var rest = RESTResponse.json(status: response.status, body: response.body, requestID: requestID)
        rest.headers.append(contentsOf: response.headers)
        return rest
    }
}
