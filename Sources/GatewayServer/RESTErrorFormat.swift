import AbacusSurface
import TriggerModel

/// The error body a REST request gets, chosen by the API family its path belongs to: each surface's client
/// reads only its own shape, so every error answered on a surface's path is in that surface's shape, whether
/// the surface itself refused the request or the frontend did before the surface saw it (a missing `Host`,
/// headers or a body over the caps, a malformed target, a body that ends badly, the shutdown grace running out).
///
/// - `instill`: API.md §2, `{"code": <google.rpc code>, "message", "details"}` (`RESTResponse.error`).
/// - `abacus` (`/api/v0/`): the Abacus.AI envelope `{"success": false, "error", "errorType", "requestId"}`
///   (CLIENTS.md §4.2): the `abacusai` client raises the exception class `errorType` names; any other body
///   becomes a bare `ApiException` whose message is the whole response (and the client logs the request body).
/// - `craft` (`/api/v1/`, `/endpoints/`): `{"message", "name", "request_id"}` (CLIENTS.md §3.3:
///   craft-ai-sdk raises `SdkException` with `message`).
///
/// The status and the headers an error calls for (`Retry-After`, `WWW-Authenticate`) follow the error's code
/// in every format.
enum RESTErrorFormat: Equatable {
    case instill
    case abacus
    case craft

    /// The format of the request target or path `path` (origin-form; a query is ignored, as it never starts
    /// with these prefixes).
    init(path: some StringProtocol) {
        if path.hasPrefix("/api/v0/") {
            self = .abacus
        } else if path.hasPrefix("/api/v1/") || path.hasPrefix("/endpoints/") {
            self = .craft
        } else {
            self = .instill
        }
    }

    /// The answer to `error` in this format.
    func response(_ error: GatewayError, requestID: String) -> RESTResponse {
        switch self {
        case .instill: .error(error, requestID: requestID)
        case .abacus:
            RESTResponse.abacus(AbacusAPI.failure(AbacusError(error), requestID: requestID), requestID: requestID)
        case .craft: CraftAnswer.error(error, requestID: requestID)
        }
    }
}

extension RESTResponse {
    /// An answer of the Abacus.AI surface, with the headers it calls for besides the JSON content type.
    static func abacus(_ response: AbacusResponse, requestID: String) -> RESTResponse {
        var rest = RESTResponse.json(status: response.status, body: response.body, requestID: requestID)
        rest.headers.append(contentsOf: response.headers)
        return rest
    }
}
