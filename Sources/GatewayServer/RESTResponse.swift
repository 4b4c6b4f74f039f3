import Logging
import NIOCore
import TriggerModel
import WireCodecs

/// A complete REST answer, protocol-neutral so HTTP/1.1 and HTTP/2 write it the same way.
struct RESTResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: ByteBuffer
    /// The answer to a HEAD: the headers (with the body's `content-length`) go out, the body does not
    /// (RFC 9110 §9.3.2).
    var omitsBody = false
    /// The pipeline the request turned out to name, for its record, when only the work that computed this
    /// answer could tell (``RequestNaming``); the frontend writing the response names the record with it.
    var naming: RequestNaming? = nil
    /// The backend failure this answer reports (``GatewayError/upstreamFailure``), for the record's
    /// `response_flags`.
    var upstreamFailure: UpstreamFailure? = nil

    static func json(status: Int, body: ByteBuffer, requestID: String) -> RESTResponse {
        RESTResponse(
            status: status,
            headers: [("content-type", "application/json"), ("request-id", requestID)],
            body: body
        )
    }

    /// The error body of API.md §2: `{"code": <google.rpc code>, "message": ..., "details": [...]}`.
    static func error(_ error: GatewayError, requestID: String) -> RESTResponse {
        var body = ByteBufferAllocator().buffer(capacity: 128 + error.message.utf8.count)
        RESTResponseBody.encode(error: error, into: &body)
        var response = json(status: error.code.httpStatus, body: body, requestID: requestID)
        response.upstreamFailure = error.upstreamFailure
        // Every 503 (overload, a store or pool that is down) and 429 says when to come back (RFC 9110 §10.2.3).
        if error.code.httpStatus == 503 || error.code == .tooManyRequests {
            response.headers.append(("retry-after", "1"))
        }
        if error.code.httpStatus == 401 {
            // RFC 9110 §11.6.1: a 401 "MUST send a WWW-Authenticate header field"; the scheme is Bearer
            // (RFC 6750 §3). By the status, not the code: a pipeline's own UNAUTHENTICATED (`.application(16)`)
            // is a 401 too.
            response.headers.append(("www-authenticate", "Bearer"))
        }
        return response
    }

    static func result(_ result: TriggerResult, requestID: String) -> RESTResponse {
        // The runner's own text, when it is this body already: no copy (issue 11).
        if let text = result.restJSON { return json(status: 200, body: text, requestID: requestID) }
        var body = ByteBufferAllocator().buffer(capacity: 256)
        RESTResponseBody.encode(result: result, into: &body)
        return json(status: 200, body: body, requestID: requestID)
    }

    static func text(status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8") -> RESTResponse {
        RESTResponse(status: status, headers: [("content-type", contentType)], body: ByteBuffer(string: text))
    }
}

/// Maps anything thrown below the frontend to the error the client sees. What is not a `GatewayError`
/// (a library's error, with its type name, paths or driver text) goes to the log with the request id; the
/// client gets "internal error" and the `request-id` to quote.
func gatewayError(from error: any Error, requestID: String? = nil) -> GatewayError {
    switch error {
    case let error as GatewayError: return error
    case is CancellationError: return GatewayError(.cancelled, "the request was cancelled")
    default:
        var metadata: Logger.Metadata = ["error": "\(String(reflecting: error))"]
        if let requestID { metadata["request_id"] = "\(requestID)" }
        internalErrorLogger.error("internal error", metadata: metadata)
        return GatewayError(.internalError, GatewayError.internalErrorMessage)
    }
}

/// Where `gatewayError(from:)` logs what it keeps from clients (it is called far from any connection's
/// logger; the label is the gateway's).
private let internalErrorLogger = Logger(label: "trigger-gateway")
