import NIOCore
import TriggerModel

extension HealthRegistry {
    /// What an async trigger gets, at once, while the store is not ready (down, or refusing the role a privilege; instead of waiting out the store's
    /// own timeout): 503 with `Retry-After` on REST, UNAVAILABLE on gRPC.
    static let asyncUnavailable = GatewayError(
        .unavailable,
        "async triggers are unavailable: the operation store is not ready; retry later"
    )
}

extension RESTRequestHead {
    /// `GET /readyz[?component=NAME]` and `GET /v1beta/__readiness`: 200 when serving, else 503.
    ///
    /// `/v1beta/__readiness` keeps Instill's body (`health_check_response.status`) and answers for the whole
    /// gateway. `/readyz` lists every component; with `?component=` it answers for that one (404 when the
    /// gateway has no such component, e.g. `async` with async mode off). `reasons` (only when there is one) says
    /// why a component is NOT_SERVING where more is known than "not ready" (`HealthRegistry.reason`).
    func readinessResponse(health: HealthRegistry, requestID: String) -> RESTResponse {
        if pathOnly != "/readyz" {
            let serving = health.status(.gateway) == .serving
            let status = serving ? "SERVING_STATUS_SERVING" : "SERVING_STATUS_NOT_SERVING"
            return .json(
                status: serving ? 200 : 503,
                body: ByteBuffer(string: "{\"health_check_response\":{\"status\":\"\(status)\"}}"),
                requestID: requestID
            )
        }
        let components = health.components
        var overall = health.status(.gateway) ?? .notServing
        if let name = (try? RESTQuery(target: target))?["component"] {
            guard let component = HealthRegistry.Component(rawValue: name), let status = health.status(component)
            else {
                return .error(GatewayError(.notFound, "no readiness component \"\(name)\""), requestID: requestID)
            }
            overall = status
        }
        let listed = components.map { "\"\($0.component.rawValue)\":\"\($0.status.name)\"" }
        // Why a component is NOT_SERVING, where the registry knows more than "not ready" (a full disk, a stalled
        // async dispatcher): gateway-written text, with nothing JSON must escape but what is escaped here.
        let reasons = components.compactMap { entry in
            health.reason(entry.component).map { reason in
                let escaped = reason.replacing("\\", with: "\\\\")
                    .replacing("\"", with: "\\\"")
                return "\"\(entry.component.rawValue)\":\"\(escaped)\""
            }
        }
        var body = "{\"status\":\"\(overall.name)\",\"components\":{\(listed.joined(separator: ","))}"
        if !reasons.isEmpty { body += ",\"reasons\":{\(reasons.joined(separator: ","))}" }
        body += "}"
        return .json(status: overall == .serving ? 200 : 503, body: ByteBuffer(string: body), requestID: requestID)
    }
}
