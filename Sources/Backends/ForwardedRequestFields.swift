import TriggerModel
import WireCodecs

extension TriggerRequest {
    /// The request's own fields that every backend receives, as HTTP/1.1 headers (http runners) or gRPC metadata
    /// (grpc runners), with the same names: `request-id`, `traceparent` and `tracestate` (W3C Trace Context),
    /// `idempotency-key`, `x-trigger-principal` (the principal a token or certificate named) and
    /// `instill-requester-uid`. Each is handed to `body` only when present and a valid field value (RFC 9110 §5.5:
    /// no control character but HTAB): these values come from outside, and a CR or LF would split an HTTP/1.1
    /// field while an HTTP/2 stack rejects the whole stream. Checked here, on the few values that vary, rather than
    /// on every field of every request (NIO's `NIOHTTPRequestHeadersValidator` cost ~5 000 instructions a call,
    /// issue 11). `sensitive`: the client sent the value as sensitive (``TriggerRequest/sensitiveFields``; the
    /// principal is the gateway's own, never).
    func forEachForwardedField(_ body: (_ name: String, _ value: String, _ sensitive: Bool) -> Void) {
        let sensitive = sensitiveFields
        func forward(_ name: String, _ value: String?, _ isSensitive: Bool) {
            guard let value, !value.isEmpty else { return }
            // Eight bytes at a time (`utf8.contains(where:)` cost ~700 instructions per value, a byte loop ~400).
            if value.withUTF8Bytes({ isFieldValue(UnsafeRawBufferPointer($0)) }) { body(name, value, isSensitive) }
        }
        forward("request-id", requestID, sensitive.contains(.requestID))
        forward("traceparent", traceParent, sensitive.contains(.traceParent))
        forward("tracestate", traceState, sensitive.contains(.traceState))
        forward("idempotency-key", idempotencyKey, sensitive.contains(.idempotencyKey))
        forward("x-trigger-principal", principal, false)
        forward("instill-requester-uid", requesterUID, sensitive.contains(.requesterUID))
    }
}
