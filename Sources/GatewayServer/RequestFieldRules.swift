import TriggerModel

/// Field rules the same for every protocol of the port (HTTP/1.1 and h2c REST, gRPC), checked before a request is
/// routed or authenticated.
enum RequestFieldRules {
    /// `Authorization` is a singleton field (RFC 9110 §11.6.2, not a list): with two, a proxy in front that
    /// authenticates or strips by the last one and a gateway that takes the first would disagree on the principal
    /// (review 24, L3). Refused as the duplicate `Host` is: 400 / `INVALID_ARGUMENT`.
    static let repeatedAuthorization = GatewayError(
        .invalidArgument, "the request has more than one Authorization header; send exactly one")

    /// Whether `headers` (names in lowercase) hold more than one `authorization` field line. Names compared by
    /// length first (see ``RESTRequestHead/first(_:)``).
    static func repeatsAuthorization(_ headers: [(name: String, value: String)]) -> Bool {
        var seen = false
        for field in headers where field.name.utf8.count == 13 && field.name == "authorization" {
            if seen { return true }
            seen = true
        }
        return false
    }
}
