#if canImport(Glibc)
    import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Observability
import TriggerModel
import WireCodecs

/// The errors the backend layer makes, in one place so their wording stays consistent.
///
/// What a client reads names the pool and what went wrong, never an endpoint's address: backend addresses
/// are the operator's business (as with Envoy's and nginx's 502s), so each failure of an endpoint is logged
/// here, once, with `backend.pool` and `backend.endpoint`.
enum BackendErrors {
    /// The gateway's label; the backend layer has no connection or request of its own to log against.
    private static let logger = Logger(label: "trigger-gateway")

    /// An endpoint of `pool` failed the call (`what`, in words: "closed the connection mid-stream"): logged
    /// with the endpoint, answered without it.
    ///
    /// The warning is rate-limited per endpoint and kind of failure, its flag (``failureLog``): the first failure at
    /// once, then at most one line per 10 s carrying `backend.failures_held_back`, the failures since the last line,
    /// and `backend.failures_held_back_since`, when the first of them happened; every failure is also logged at
    /// debug level, and counted by the backend metrics. Keyed by the flag too, so that an endpoint that resets and
    /// then answers 500s within the window is told of twice, not once (review 26, L2; flags are a closed set).
    ///
    /// `flag`: Envoy's response flag for it (``UpstreamFailure``); by default `UT` for a `.deadlineExceeded` and
    /// `UC` (the endpoint cut the exchange) otherwise.
    static func endpointFailure(
        _ code: GatewayError.Code = .backendFailed,
        pool: String,
        endpoint: String,
        _ what: String,
        response snippet: String? = nil,
        flag: UpstreamFailure? = nil
    ) -> GatewayError {
        var metadata: Logger.Metadata = [
            "backend.pool": "\(pool)", "backend.endpoint": "\(endpoint)", "reason": "\(what)",
        ]
        if let snippet, !snippet.isEmpty { metadata["backend.response"] = "\(snippet)" }
        let flag = flag ?? (code == .deadlineExceeded ? .requestTimeout : .connectionTermination)
        if let heldBack = failureLog.admitLine("\(pool)/\(endpoint)/\(flag.rawValue)") {
            heldBack.annotate(&metadata, countKey: "backend.failures_held_back")
            logger.warning("backend endpoint failed", metadata: metadata)
        } else {
            logger.debug("backend endpoint failed", metadata: metadata)
        }
        var error = GatewayError(code, "backend pool \"\(pool)\": \(what)")
        error.upstreamFailure = flag
        return error
    }

    /// One warning per endpoint and flag per 10 s while it keeps failing (review 8: one per try flooded the log).
    static let failureLog = FailureLogLimiter(interval: .seconds(10))

    static func overloaded(pool: String, limit: Int, queue: Int) -> GatewayError {
        var error = GatewayError(
            .overloaded,
            "backend pool \"\(pool)\" is overloaded: \(limit) \(limit == 1 ? "call" : "calls") running and \(queue) "
                + "queued; retry later"
        )
        error.upstreamFailure = .overflow
        return error
    }

    /// A new backend connection was refused before it was made: ``BackendConnectionBudget`` was spent, or the
    /// kernel said the process is out of file descriptors (`outOfDescriptors`). The gateway's own overload, as
    /// Envoy's connection circuit breaker overflows (`UO`, 503 / UNAVAILABLE): nothing was sent (``GatewayError/notSent``)
    /// and no endpoint is blamed. Only when every counted connection carries a call (an idle one is closed to make
    /// room instead): the pools' calls in flight together need more connections than the budget. Logged
    /// (rate-limited) since the operator must raise the open-file limit or lower the pools' `max_concurrency`.
    static func connectionBudgetExhausted(pool: String, limit: Int, outOfDescriptors: Bool = false) -> GatewayError {
        let why =
            outOfDescriptors
            ? "the gateway is out of file descriptors"
            : "the gateway's \(limit) backend connections are all busy with calls (none idle to close)"
        if let heldBack = failureLog.admitLine("budget/\(outOfDescriptors)") {
            var metadata: Logger.Metadata = ["backend.pool": "\(pool)", "backend.connections.limit": "\(limit)"]
            heldBack.annotate(&metadata, countKey: "backend.failures_held_back")
            logger.warning(
                "backend connection refused: \(why); raise the open-file limit (LimitNOFILE=, ulimit -n), or lower the pools' max_concurrency so that their calls in flight fit",
                metadata: metadata)
        }
        var error = GatewayError(
            .overloaded, "backend pool \"\(pool)\" is overloaded: \(why), no new connection; retry later")
        error.upstreamFailure = .overflow
        error.notSent = true
        return error
    }

    /// Whether `error` is ``connectionBudgetExhausted(pool:limit:outOfDescriptors:)``'s: the gateway's own
    /// refusal, not an endpoint's failure.
    static func isConnectionRefusedLocally(_ error: any Error) -> Bool {
        guard let error = error as? GatewayError else { return false }
        return error.code == .overloaded && error.upstreamFailure == .overflow
    }

    static func deadline(pool: String, after: String) -> GatewayError {
        var error = GatewayError(.deadlineExceeded, "backend pool \"\(pool)\" did not answer within \(after)")
        error.upstreamFailure = .requestTimeout
        return error
    }

    /// The client's own deadline (`grpc-timeout`, shorter than the gateway's timeouts) passed first: see
    /// `GatewayError.callerDeadline`.
    static func clientDeadline(pool: String, after: String) -> GatewayError {
        var error = GatewayError(
            .deadlineExceeded,
            "the client's deadline passed before backend pool \"\(pool)\" answered, \(after) after the call reached it")
        error.upstreamFailure = .requestTimeout
        error.callerDeadline = true
        return error
    }

    /// The request's deadline (the client's `grpc-timeout` or `timeouts.request`, from the head's arrival) passed
    /// before its call to `pool` could start: the client's upload or the wait for a slot took it all. Not the
    /// backend's failure (no `UT`, not counted against an endpoint: nothing was sent to one), so marked
    /// `GatewayError.callerDeadline`.
    static func deadlineBeforeCall(pool: String) -> GatewayError {
        var error = GatewayError(
            .deadlineExceeded, "the request's deadline passed before its call to backend pool \"\(pool)\" could start")
        error.callerDeadline = true
        return error
    }

    /// A sync call waited in `pool`'s queue until its deadline passed, or until less of it was left than is worth
    /// sending (``BackendPool/minimumTimeToSend(timeout:)``): the pool was too small for its load (review 21, M1).
    /// Nothing was sent to a runner, so no endpoint is blamed; it is flagged `UT` with no endpoint (README: "a `UT`
    /// whose call had none yet", `endpoint=""`), as Envoy flags a request timed out while pending in its connection
    /// pool, and is a `trigger failed` warning like any other 5xx the gateway made. `waited`: the time in the queue.
    /// A client's own deadline (`grpc-timeout`) stays ``GatewayError/callerDeadline``: counted nowhere, no warning.
    static func queueDeadline(pool: String, waited: String, clientDeadline: Bool) -> GatewayError {
        var error = GatewayError(
            .deadlineExceeded,
            "the request's deadline passed before its call to backend pool \"\(pool)\" could start "
                + "(it waited \(waited) for a slot)")
        error.upstreamFailure = .requestTimeout
        error.callerDeadline = clientDeadline
        error.notSent = true
        return error
    }

    /// A call that waited `waited` for one of `pool`'s slots, then did not finish in the `left` that remained of
    /// its deadline: the message says where the time went (review 21, M2: "did not answer within 74ms" read as the
    /// runner's fault when the queue had taken 2.9 s of a 3 s timeout).
    static func deadlineAfterQueue(pool: String, left: String, waited: String) -> GatewayError {
        var error = GatewayError(
            .deadlineExceeded,
            "backend pool \"\(pool)\" did not answer within the \(left) left after \(waited) waiting for a slot")
        error.upstreamFailure = .requestTimeout
        return error
    }

    /// The request's deadline was the gateway's `timeouts.request` of `timeout` (from the head's arrival, the
    /// upload included), which came before the pool's `request_timeout`, and the call did not finish in the `left`
    /// that remained of it (nil: all of it, to within 10 ms). The message names that setting, where the time alone
    /// ("within 1.999s" under a 2 s `timeouts.request`) read as a pool setting nobody made. Still the endpoint's
    /// `UT`: it had all that was left and did not answer.
    static func deadlineOfRequest(pool: String, timeout: String, left: String?) -> GatewayError {
        let within =
            left.map { "the \($0) left of timeouts.request (\(timeout), " } ?? "\(timeout) (timeouts.request, "
        var error = GatewayError(
            .deadlineExceeded,
            "backend pool \"\(pool)\" did not answer within \(within)counted from the request's arrival)")
        error.upstreamFailure = .requestTimeout
        return error
    }

    /// Outlier detection took an endpoint out of picking (it comes back by itself after `length`).
    static func logEjection(pool: String, endpoint: String, for length: TimeAmount) {
        logger.warning(
            "backend endpoint ejected after transport failures",
            metadata: ["backend.pool": "\(pool)", "backend.endpoint": "\(endpoint)", "ejection": "\(describe(length))"]
        )
    }

    /// An endpoint that was ejected answered again (a call or a health probe), `after` its first ejection.
    static func logAvailableAgain(pool: String, endpoint: String, after: TimeAmount) {
        logger.info(
            "backend endpoint available again",
            metadata: ["backend.pool": "\(pool)", "backend.endpoint": "\(endpoint)", "out_for": "\(describe(after))"]
        )
    }

    static func connectFailed(pool: String, endpoint: String, reason: String) -> GatewayError {
        endpointFailure(
            pool: pool, endpoint: endpoint, "cannot connect to an endpoint: \(reason)", flag: .connectionFailure)
    }

    static func connectTimeout(pool: String, endpoint: String, after timeout: TimeAmount) -> GatewayError {
        endpointFailure(
            .deadlineExceeded, pool: pool, endpoint: endpoint,
            "connecting to an endpoint timed out after \(describe(timeout))", flag: .connectionFailure)
    }

    static func connectionLost(pool: String, endpoint: String) -> GatewayError {
        endpointFailure(pool: pool, endpoint: endpoint, "an endpoint closed the connection before answering")
    }

    static func badResponse(pool: String, endpoint: String, reason: String) -> GatewayError {
        endpointFailure(
            pool: pool, endpoint: endpoint, "an endpoint answered garbage: \(reason)", flag: .protocolError)
    }

    /// The error a non-2xx answer of an endpoint stands for: the pipeline's own JSON error unchanged, or else (an
    /// HTML error page, an empty 500) an endpoint failure the client reads in our words, with the pool and the
    /// status; the start of the body goes to the endpoint's warning only (review 9, finding 5: a framework's
    /// error page can hold a stack trace or internal host names).
    static func errorAnswer(pool: String, endpoint: String, status: Int, body: ByteBuffer) -> GatewayError {
        if let error = BackendHTTPBody.pipelineError(in: body) { return error }
        return endpointFailure(
            pool: pool, endpoint: endpoint,
            "an endpoint answered HTTP \(status) (not the runner protocol's error JSON)",
            response: BackendHTTPBody.logSnippet(body), flag: .protocolError)
    }

    /// A grpc runner's bare UNKNOWN (2), INTERNAL (13) or UNAVAILABLE (14) status, with no `RunResponse`: the
    /// endpoint failed, outside the runner protocol, which reports a pipeline's own failure inside its answer
    /// (`RunResponse.error`, as an http runner's error JSON). So it is the grpc twin of an http runner's non-JSON
    /// 5xx (``errorAnswer(pool:endpoint:status:body:)``), flagged `UPE` like it: the access line's
    /// `response_flags`, `trigger_gateway_backend_failures_total{reason="UPE"}` and the `backend endpoint failed`
    /// warning then agree with the ejection these failures make (review 26 M1: the ejection had no failure
    /// counted behind it). Envoy has no flag for an upstream's 5xx answer; `UPE` keeps the flags Envoy's.
    ///
    /// `message`: the runner's `grpc-message` (percent-decoded), or our words when it sent none; the client reads
    /// it unchanged, as before, and the warning carries it as `backend.response`.
    static func runnerStatus(pool: String, endpoint: String, code: Int, message: String) -> GatewayError {
        var error = endpointFailure(
            pool: pool, endpoint: endpoint,
            "an endpoint answered grpc-status \(code) (\(GatewayError.Code.rpcCodeNames[code])), not a runner answer",
            response: message, flag: .protocolError)
        error.message = message
        return error
    }

    /// A 2xx answer whose body is not the runner protocol's JSON result (an HTML page from a proxy, a truncated
    /// or plain-text body; `problem` is the decoder's words): a 502 the client reads in our words, the start of
    /// the body in the endpoint's warning only (as ``errorAnswer(pool:endpoint:status:body:)``).
    static func unreadableResult(
        pool: String, endpoint: String, status: Int, body: ByteBuffer, problem: String
    ) -> GatewayError {
        endpointFailure(
            pool: pool, endpoint: endpoint, "an endpoint's HTTP \(status) answer is not a runner result: \(problem)",
            response: BackendHTTPBody.logSnippet(body), flag: .protocolError)
    }

    /// An HTTP exchange with an endpoint that failed after the request went out, saying what happened: the
    /// endpoint reset the connection (a crashed runner, a proxy's RST), closed it inside the response (a body
    /// shorter than its `content-length`, a chunked body without its last chunk), or sent something that is
    /// not HTTP/1.1.
    static func exchangeFailed(pool: String, endpoint: String, _ error: any Error) -> GatewayError {
        switch error {
        case let error as IOError where error.errnoCode == ECONNRESET || error.errnoCode == EPIPE:
            endpointFailure(pool: pool, endpoint: endpoint, "an endpoint reset the connection")
        case HTTP1ResponseDecoder.Failure.closedMidResponse:
            endpointFailure(pool: pool, endpoint: endpoint, "an endpoint closed the connection mid-response")
        case HTTP1ResponseDecoder.Failure.invalidStatusLine:
            // What an HTTP/2-only server (a grpc runner) sends first, its SETTINGS frame, reads as (review 17, #8).
            badResponse(
                pool: pool, endpoint: endpoint,
                reason: "not an HTTP/1.1 response (invalid status line); an endpoint that speaks only HTTP/2, "
                    + "such as a grpc runner, answers so: check the pool's transport")
        case let failure as HTTP1ResponseDecoder.Failure:
            badResponse(pool: pool, endpoint: endpoint, reason: "not an HTTP/1.1 response (\(failure.words))")
        default:
            badResponse(pool: pool, endpoint: endpoint, reason: reason(error))
        }
    }

    /// What went wrong on a backend connection, in words a client can use: the system's text for an errno
    /// ("connection refused"), never a library's type name or a syscall signature (issue 9 item 5).
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as GatewayError:
            return error.message
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return reason(first.error) }
            return error.dnsAError != nil || error.dnsAAAAError != nil
                ? "the host name did not resolve" : "cannot connect"
        case let error as ChannelError:
            switch error {
            case .connectTimeout: return "connecting timed out"
            case .eof, .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed: return "the connection closed"
            default: return "connection error"
            }
        case is SocketAddressError:
            return "the address is not valid"
        default:
            return "transport error"
        }
    }
}
