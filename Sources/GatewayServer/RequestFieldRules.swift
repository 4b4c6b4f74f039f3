import TriggerModel

/// Field rules the same for every protocol of the port (HTTP/1.1 and h2c REST, gRPC), checked before a request is
/// routed or authenticated.
///
/// Singleton fields (RFC 9110 §5.3: a field that is not a list appears once) whose repetition lets two readers of
/// the same request disagree are refused, as a repeated `Host` is (RFC 9112 §3.2): 400 / `INVALID_ARGUMENT`.
/// - `Authorization` (RFC 9110 §11.6.2): a proxy in front that authenticates or strips by the last one and a
///   gateway that takes the first would disagree on the principal (review 24, L3).
/// - `Content-Type` (RFC 9110 §8.3): a proxy that filters by the last and a gateway that decodes by the first
///   would disagree on the codec; `application/grpc` then `application/grpc+json` was read as protobuf
///   (review 24, I5).
/// - `Host`: over HTTP/1.1 ``HTTP1RequestRules`` refuses a second one first; over h2 a `Host` that differs from
///   `:authority` is added as a second (RFC 9113 §8.3.1: such a request SHOULD be treated as malformed), since
///   the Abacus surface builds its URLs from the host (review 24, I3).
enum RequestFieldRules {
    /// The refusal of a request with more than one `field` line (`field` as RFC 9110 spells it).
    static func repeated(_ field: String) -> GatewayError {
        if field == "Host" {
            return GatewayError(
                .invalidArgument,
                "the request names more than one host (two Host headers, or a Host other than its :authority); "
                    + "send exactly one")
        }
        return GatewayError(.invalidArgument, "the request has more than one \(field) header; send exactly one")
    }

    /// The first singleton field `headers` (names in lowercase) repeat, as RFC 9110 spells it (nil: none). Names
    /// compared by length first (see ``RESTRequestHead/first(_:)``).
    static func repeatedSingleton(_ headers: [(name: String, value: String)]) -> String? {
        var authorization = false
        var contentType = false
        var host = false
        // By index: iterating the fields copied each (a retain and a release of both strings; issue 11).
        for index in headers.indices {
            let name = headers[index].name
            switch name.utf8.count {
            case 4 where name == "host":
                if host { return "Host" }
                host = true
            case 12 where name == "content-type":
                if contentType { return "Content-Type" }
                contentType = true
            case 13 where name == "authorization":
                if authorization { return "Authorization" }
                authorization = true
            default: break
            }
        }
        return nil
    }
}
