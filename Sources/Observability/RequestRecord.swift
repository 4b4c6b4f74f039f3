package import TriggerModel

/// One finished request as its frontend saw it: the access log writes one line of it and the request metrics
/// count it.
///
/// Built exactly once per request — REST over HTTP/1.1, REST over HTTP/2 and gRPC alike — when the exchange
/// ends: the response's last byte queued, or the stream reset / connection closed under it. Every outcome
/// produces one: routing errors, authentication failures, 4xx, 5xx, cancellations.
///
/// Two kinds of fields: those that may carry what the client sent (`path`, `namespace`, `pipeline`,
/// `requestID`: for the log, unbounded) and those with bounded cardinality, safe as metric labels
/// (`frontend`, `operation`, `route`, `mode`, `status`, `grpcStatus`, `pool`, `endpoint`).
package struct RequestRecord: Sendable {
    /// Which frontend answered (the `frontend` label).
    package enum Frontend: String, Sendable {
        case rest
        case grpc
    }

    /// The `request-id` the client sent, or the one the gateway made (echoed in the response).
    package var requestID: String
    package var frontend: Frontend
    /// "HTTP/1.1" or "HTTP/2".
    package var httpVersion: String
    /// The request method ("POST", "GET"); gRPC requests are "POST".
    package var method: String
    /// The request target's path as received (REST: "/v1beta/users/u/pipelines/p/trigger", no query;
    /// gRPC: "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerUserPipeline"). Unbounded: log only.
    package var path: String
    /// The API operation the request matched, bounded: the OpenAPI `operationId` for REST (e.g.
    /// "triggerNamespacePipeline"), the full gRPC method path for gRPC, "unmatched" when nothing matched.
    package var operation: String
    /// The route the pipeline matched, as written in the configuration (`namespace/pipeline` patterns, e.g.
    /// "demo/*"): bounded by the config, never raw ids. Nil when the request named no pipeline or none matched.
    package var route: String?
    /// The authenticated principal (token name or certificate subject); nil when anonymous.
    package var principal: String?
    /// The namespace and pipeline the request named, raw (log only).
    package var namespace: String?
    package var pipeline: String?
    /// The backend pool the trigger was routed to, and the endpoint (as configured) that answered it.
    package var pool: String?
    package var endpoint: String?
    /// "sync", "async" or "stream"; nil when the request was not a trigger.
    package var mode: String?
    /// The HTTP status of the response (gRPC: 200 unless the request was refused before the call began).
    /// A REST client that went away before any response head was sent is recorded as 499 (nginx's "client
    /// closed request", which nginx too logs only when no response head was sent); one that went away
    /// mid-answer (an SSE stream it hung up on) keeps the status that was sent, and
    /// ``downstreamDisconnected`` says the answer was cut.
    package var status: Int
    /// The gRPC status code sent in the trailers; nil for REST. A call the client cancelled (RST_STREAM, the
    /// connection closed) before its status went out is recorded as 1, CANCELLED.
    package var grpcStatus: Int?
    /// Who ended the exchange before its answer's end, in Envoy's response flags; nil when it ended normally.
    package enum Termination: String, Sendable {
        /// `DC`, "downstream connection termination": the client closed the connection or reset the stream.
        case downstreamDisconnected = "DC"
        /// `SI`, "stream idle timeout": the gateway cut it, the client having taken nothing of the answer for
        /// `timeouts.write_progress` (Envoy's `stream_idle_timeout` fires on such a stalled reader too).
        case streamIdleTimeout = "SI"
        /// `DT`, Envoy's "duration timeout" (a downstream's `max_stream_duration` reached), here the client's own
        /// duration: a gRPC call answered DEADLINE_EXCEEDED once its `grpc-timeout` had passed. The client gave up
        /// on the call (grpc-go, grpcio and the others end it locally at that instant), whether the gateway's timer
        /// or a backend's late answer ended it, or the client's reset at that instant did (from a slack before it,
        /// the client's timer having started a network trip earlier: `grpcStatus` 4, what the client reports);
        /// a DEADLINE_EXCEEDED of the gateway's own timeouts
        /// (`timeouts.request`, a pool's `request_timeout`) before the client's deadline is not flagged. REST has
        /// no client deadline: a REST client that gives up closes, which is `DC`.
        case downstreamDeadline = "DT"
        /// `DPE`, Envoy's "downstream protocol error": the gateway ended the client's HTTP/2 connection with a
        /// GOAWAY carrying an error code for what the client sent (a protocol error: PROTOCOL_ERROR,
        /// FLOW_CONTROL_ERROR, COMPRESSION_ERROR…; or excessive load: ENHANCE_YOUR_CALM), which cut this exchange
        /// (RFC 9113 §5.4.1: a connection error closes every stream). The client did not go away (`DC`): it broke
        /// the connection it shared with this request (review 26, M3).
        case downstreamProtocolError = "DPE"
    }

    /// Set when the exchange was cut before the answer's end, on any frontend (REST over HTTP/1.1 and HTTP/2,
    /// gRPC), naming who cut it; Envoy logs the flag next to the status it had sent, and so do we. With it,
    /// `status` is 499 when no head went out and the sent status otherwise, and gRPC's `grpcStatus` is
    /// CANCELLED when no status went out.
    package var termination: Termination?

    /// Set when the answer is (or carries) a failure the gateway made on a backend's behalf (connect failed, timed
    /// out, connection cut, garbage, overflow), from the error's ``GatewayError/upstreamFailure``.
    package var upstreamFailure: UpstreamFailure?

    /// The client's address, `host:port` (`[::1]:5000` for IPv6), as the connection's other log lines write it.
    package var peerAddress: String?

    /// Envoy's `%RESPONSE_FLAGS%`: the upstream failure's flag, then the termination's, joined by `,` as Envoy
    /// joins several; `-` when neither.
    package var responseFlags: String {
        switch (upstreamFailure, termination) {
        case (nil, nil): "-"
        case (let upstream?, nil): upstream.rawValue
        case (nil, let cut?): cut.rawValue
        case (let upstream?, let cut?): upstream.rawValue + "," + cut.rawValue
        }
    }

    /// The client went away before the answer's end (``Termination/downstreamDisconnected``).
    package var downstreamDisconnected: Bool {
        get { termination == .downstreamDisconnected }
        set { termination = newValue ? .downstreamDisconnected : nil }
    }
    /// Request body bytes received and response body bytes sent (gRPC: message frames included).
    package var bytesIn: Int
    package var bytesOut: Int
    /// From the request head's arrival to the end of the exchange, in nanoseconds.
    package var durationNanoseconds: Int64
    /// The W3C trace id (32 lowercase hex digits) the request carried or the gateway started: a view of the
    /// `traceparent` the gateway sent on (its bytes 3..<35), not a string of its own (issue 11: one allocation
    /// fewer per trigger; bench/README.md, "Branch hotpath12").
    package var traceID: Substring?
    /// The async operation the request created (`trigger-async`, a Craft AI execution, an Abacus.AI run, a
    /// schedule's manual trigger), or the one it read or cancelled (`GET …/operations/{id}`, `:cancel`, the
    /// surfaces' reads of one): its id, as the client holds it (`operations/<id>`'s last segment). Log only.
    package var operationID: String? = nil
    /// What the sync call's tries to the runner told (``UpstreamDetail``): `attempts`, `upstream_status`,
    /// `upstream_duration_us`, `queue_duration_us`. Empty (no try) for requests that made no backend call.
    package var upstream = UpstreamDetail()
    /// The request's `User-Agent` header (gRPC: `user-agent`), at most ``userAgentLimit`` bytes of it. Log only.
    package var userAgent: String? = nil
    /// The gateway's stop cut the request at `timeouts.shutdown_grace` (`cut_by=shutdown`): its answer (503, gRPC
    /// UNAVAILABLE, an SSE error event) is the gateway's, not the runner's, whose call was cancelled (review 26 L3:
    /// such a line looked like a runner's own 503).
    package var cutAtShutdown = false

    /// The longest `user_agent` logged, in bytes (cut at a UTF-8 character boundary): nginx logs the header
    /// whole, but a line must stay within one `write(2)` a pipe keeps whole (PIPE_BUF, 4096 bytes, POSIX), and
    /// real agents (`grpc-python/1.76.0 grpc-c/51.0.0 (linux; chttp2)`, `curl/8.5.0`) are far shorter.
    package static let userAgentLimit = 256

    /// `value` as ``userAgent`` keeps it: whole (the header's own string, no copy) up to ``userAgentLimit`` bytes,
    /// else its first characters that fit.
    package static func userAgent(_ value: String) -> String {
        let utf8 = value.utf8
        guard utf8.count > userAgentLimit else { return value }
        var end = utf8.index(utf8.startIndex, offsetBy: userAgentLimit)
        // Back to the start of a character: a UTF-8 continuation byte is 10xxxxxx.
        while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        return String(decoding: utf8[utf8.startIndex..<end], as: UTF8.self)
    }
}

// The initializer is in an extension so that the struct keeps its memberwise initializer, which it calls: one that
// set the fields itself assembled the record in a local `self`, copied it out and destroyed the local (a dozen
// optional strings retained and released once more per request: bench/README.md, "Branch hotpath2").
extension RequestRecord {
    /// `peerAddress`: the client's `host:port`, nil when unknown.
    package init(
        requestID: String,
        frontend: Frontend,
        httpVersion: String,
        method: String,
        path: String,
        operation: String,
        status: Int,
        durationNanoseconds: Int64,
        peerAddress: String? = nil
    ) {
        self.init(
            requestID: requestID, frontend: frontend, httpVersion: httpVersion, method: method, path: path,
            operation: operation, route: nil, principal: nil, namespace: nil, pipeline: nil, pool: nil, endpoint: nil,
            mode: nil, status: status, grpcStatus: nil, termination: nil, upstreamFailure: nil,
            peerAddress: peerAddress, bytesIn: 0, bytesOut: 0, durationNanoseconds: durationNanoseconds, traceID: nil)
    }
}

/// Told of every finished request (the access log, the request metrics).
///
/// Called on the connection's event loop, once per request, on the hot path: an observer must not block,
/// hop executors, or take a lock shared across event loops per call (issue 11); it caches what it looks up.
package protocol RequestObserver: Sendable {
    /// A request's head arrived (where the record's duration starts): told once per request, before its
    /// ``requestFinished(_:)``. Same rules as that (hot path, the connection's event loop).
    func requestStarted(_ frontend: RequestRecord.Frontend)
    func requestFinished(_ record: RequestRecord)
}

extension RequestObserver {
    /// Most observers (the access log) only care about finished requests.
    package func requestStarted(_ frontend: RequestRecord.Frontend) {}
}
