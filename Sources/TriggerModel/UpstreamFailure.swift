/// Why a call to a backend failed on the gateway's side, named by Envoy's access-log response flags
/// (envoyproxy.io, "Access logging", `%RESPONSE_FLAGS%`), so that an operator reads the gateway's access log and
/// its `trigger_gateway_backend_failures_total{reason}` as they read Envoy's.
///
/// Carried by the ``GatewayError`` the backend layer makes (``GatewayError/upstreamFailure``); the access log writes
/// it in `response_flags`, the backend metrics count it. There is no `UH` (no healthy upstream): a pool whose every
/// endpoint is ejected or failing its health check still tries one (Envoy's panic mode), so the gateway never
/// refuses a call for that alone; the try's own failure is flagged instead.
package enum UpstreamFailure: String, Sendable, CaseIterable {
    /// `UF`: connecting to the endpoint failed (refused, unreachable, timed out, the TLS handshake failed).
    case connectionFailure = "UF"
    /// `UT`: the endpoint did not answer within the call's deadline (`request_timeout` or the client's own).
    case requestTimeout = "UT"
    /// `UC`: the endpoint closed or reset the connection (or the stream) before its answer's end.
    case connectionTermination = "UC"
    /// `UO`: the pool's `max_concurrency` slots and `max_queue` were full (Envoy's circuit-breaker overflow).
    case overflow = "UO"
    /// `UPE`: the endpoint answered outside the runner protocol (not HTTP, a body that is not its JSON, a response
    /// over `max_response_bytes`, a grpc runner's bare UNKNOWN, INTERNAL or UNAVAILABLE status with no
    /// `RunResponse`: the runner protocol reports a pipeline's failure inside its answer).
    case protocolError = "UPE"
}
