/// The one error vocabulary of the gateway: every failure, wherever it happens, becomes a `GatewayError`,
/// and the frontend renders it in the client's protocol (HTTP status + JSON body, or gRPC status).
///
/// `Code` is a struct over a private enum (as GRPCCore's `RPCError.Code`), so adding a code is not a
/// source-breaking change for `switch`es, and each code knows both of its renderings.
package struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    package var code: Code
    package var message: String
    /// Extra structured details for the JSON `details` array (each a small object).
    package var details: [ValueObject]
    /// True when the call failed before any of it reached a backend (every try's connection was refused or
    /// timed out, the streams were refused): the pipeline did not run, so an async run waits for its backend
    /// instead of spending an attempt (`AsyncDispatcher`). How the error came about, not what it says: not
    /// rendered, and not part of `==`.
    package var notSent = false
    /// Set by the backend layer on a failure of its own making (connect, timeout, reset, garbage, overflow): the
    /// access log's response flag and the backend failures counter's `reason`. Not rendered, not part of `==`.
    package var upstreamFailure: UpstreamFailure?
    /// Set on a `.deadlineExceeded` whose deadline was the client's own (`grpc-timeout`, shorter than
    /// `timeouts.request` and the pool's `request_timeout`): the backend was not late by any measure of the
    /// gateway's, so `trigger_gateway_backend_failures_total` does not count it and `trigger failed` is not a
    /// warning (review 12, finding 3); the access log still flags `UT`, as Envoy does. Not rendered, not part
    /// of `==`.
    package var callerDeadline = false

    package init(_ code: Code, _ message: String, details: [ValueObject] = []) {
        self.code = code
        self.message = message
        self.details = details
    }

    /// Equal code, message and details (``notSent`` is where the error came from, not the error).
    package static func == (lhs: GatewayError, rhs: GatewayError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.details == rhs.details
    }

    package var description: String { "\(code): \(message)" }

    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case invalidArgument, unauthenticated, permissionDenied, notFound, methodNotAllowed
            case conflict, failedPrecondition, payloadTooLarge, unsupportedMediaType, notAcceptable, headersTooLarge
            case tooManyRequests, overloaded, backendFailed, deadlineExceeded, unavailable
            case requestBufferFull
            case cancelled, unimplemented, internalError, dataLoss
            /// A pipeline's own failure, carrying its google.rpc code as the runner reported it.
            case application(Int)
        }

        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// Malformed input: bad JSON, multipart, base64, protobuf, batch too large, nesting too deep.
        package static let invalidArgument = Code(.invalidArgument)
        /// No or unknown credentials.
        package static let unauthenticated = Code(.unauthenticated)
        package static let permissionDenied = Code(.permissionDenied)
        /// Unknown pipeline, route, operation or path.
        package static let notFound = Code(.notFound)
        /// A known path with the wrong HTTP method.
        package static let methodNotAllowed = Code(.methodNotAllowed)
        /// Idempotency key reused with another body.
        package static let conflict = Code(.conflict)
        /// The operation is in a state that does not allow the request (e.g. cancelling a finished one).
        package static let failedPrecondition = Code(.failedPrecondition)
        /// Body or message over the configured cap.
        package static let payloadTooLarge = Code(.payloadTooLarge)
        package static let unsupportedMediaType = Code(.unsupportedMediaType)
        /// No representation the route offers is acceptable by the request's `Accept` (RFC 9110 §15.5.7).
        package static let notAcceptable = Code(.notAcceptable)
        package static let headersTooLarge = Code(.headersTooLarge)
        /// Per-client rate limit.
        package static let tooManyRequests = Code(.tooManyRequests)
        /// The pool's concurrency limit and queue are full: the gateway's own overflow, 503 + UNAVAILABLE as
        /// Envoy answers its pool overflow (`UO`). UNAVAILABLE, not RESOURCE_EXHAUSTED: gRPC's HTTP mapping
        /// reads 503 as UNAVAILABLE, google.rpc maps RESOURCE_EXHAUSTED to 429, and retry policies (gRFC A6)
        /// retry UNAVAILABLE — the answer says "retry later" (review 18, F9).
        package static let overloaded = Code(.overloaded)
        /// The process-wide budget of buffered request-body bytes (`limits.max_buffered_request_bytes`) is spent:
        /// the gateway's own memory pressure, not this request's fault. 503 for REST (RFC 9110 §15.6.4: a
        /// temporary overload), RESOURCE_EXHAUSTED for gRPC, as gRPC core answers when its resource quota
        /// refuses a call's memory (review 24, M1).
        package static let requestBufferFull = Code(.requestBufferFull)
        /// The backend failed, refused the connection or answered garbage.
        package static let backendFailed = Code(.backendFailed)
        /// The client's deadline or the backend timeout passed.
        package static let deadlineExceeded = Code(.deadlineExceeded)
        /// A dependency of the gateway (the store, every endpoint of a pool) is unavailable.
        package static let unavailable = Code(.unavailable)
        /// The client went away or cancelled.
        package static let cancelled = Code(.cancelled)
        package static let unimplemented = Code(.unimplemented)
        package static let internalError = Code(.internalError)
        /// Stored data the gateway needs is gone or unreadable for good (an async operation's input file missing
        /// from the data directory): 500 and DATA_LOSS ("unrecoverable data loss or corruption", google/rpc/code.proto),
        /// never retried, so the client is not told to retry what cannot succeed (review 27, H1).
        package static let dataLoss = Code(.dataLoss)

        /// A pipeline that ran and failed (DESIGN.md "Failures: whose fault"): its google.rpc code reaches the
        /// client unchanged, it never counts against the endpoint and is never retried. A code outside
        /// 1...16 (0 is not a failure) becomes UNKNOWN.
        package static func application(_ rpcCode: Int) -> Code {
            Code(.application((1...16).contains(rpcCode) ? rpcCode : 2))
        }

        /// True for ``application(_:)`` codes: the pipeline's answer, not the gateway's or the transport's.
        package var isApplication: Bool {
            if case .application = wrapped { return true }
            return false
        }

        /// The HTTP status a REST client sees.
        package var httpStatus: Int {
            switch wrapped {
            case .invalidArgument: 400
            case .unauthenticated: 401
            case .permissionDenied: 403
            case .notFound: 404
            case .methodNotAllowed: 405
            case .notAcceptable: 406
            case .conflict, .failedPrecondition: 409
            case .payloadTooLarge: 413
            case .unsupportedMediaType: 415
            case .headersTooLarge: 431
            case .tooManyRequests: 429
            case .cancelled: 499
            case .internalError, .dataLoss: 500
            case .unimplemented: 501
            case .backendFailed: 502
            case .overloaded, .unavailable, .requestBufferFull: 503
            case .deadlineExceeded: 504
            case .application(let code): Self.httpStatus(rpcCode: code)
            }
        }

        /// The google.rpc code number: the JSON body's `code`, and the gRPC status a gRPC client sees.
        package var rpcCode: Int {
            switch wrapped {
            case .cancelled: 1
            case .invalidArgument, .unsupportedMediaType, .notAcceptable: 3
            case .deadlineExceeded: 4
            case .notFound: 5
            case .conflict: 6  // ALREADY_EXISTS
            case .permissionDenied: 7
            case .payloadTooLarge, .headersTooLarge, .tooManyRequests, .requestBufferFull: 8  // RESOURCE_EXHAUSTED
            case .failedPrecondition: 9
            case .methodNotAllowed, .unimplemented: 12
            case .internalError: 13
            case .dataLoss: 15
            case .backendFailed, .unavailable, .overloaded: 14  // UNAVAILABLE, as gRPC maps HTTP 502/503
            case .unauthenticated: 16
            case .application(let code): code
            }
        }

        /// google.rpc's own HTTP mapping (google/rpc/code.proto), for codes a pipeline reports.
        private static func httpStatus(rpcCode: Int) -> Int {
            switch rpcCode {
            case 1: 499
            case 3, 9, 11: 400
            case 4: 504
            case 5: 404
            case 6, 10: 409
            case 7: 403
            case 8: 429
            case 12: 501
            case 14: 503
            case 16: 401
            default: 500  // UNKNOWN, INTERNAL, DATA_LOSS
            }
        }

        /// The google.rpc code names (google/rpc/code.proto), index = code.
        package static let rpcCodeNames = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]

        /// This code's google.rpc name (`NOT_FOUND`, ...): ``rpcCodeNames`` at ``rpcCode``.
        package var rpcCodeName: String {
            Self.rpcCodeNames.indices.contains(rpcCode) ? Self.rpcCodeNames[rpcCode] : "UNKNOWN"
        }

        /// The inverse of `rpcCode` for statuses received from a gRPC backend.
        package static func fromRPCCode(_ code: Int) -> Code {
            switch code {
            case 1: .cancelled
            case 3, 11: .invalidArgument
            case 4: .deadlineExceeded
            case 5: .notFound
            case 6, 10: .conflict
            case 7: .permissionDenied
            case 8: .tooManyRequests  // a quota: 429 and RESOURCE_EXHAUSTED again (google.rpc's mapping)
            case 9: .failedPrecondition
            case 12: .unimplemented
            case 14: .unavailable
            case 16: .unauthenticated
            default: .backendFailed
            }
        }

        /// A status a backend reported for its own run, as the gateway's client should see it: the backend's
        /// own UNAVAILABLE / INTERNAL / UNKNOWN mean "the backend failed" (502), not that the gateway is
        /// unavailable; the others (bad input, not found, deadline...) pass through.
        package static func fromBackendRPCCode(_ code: Int) -> Code {
            switch code {
            case 2, 13, 14, 15: .backendFailed
            default: fromRPCCode(code)
            }
        }

        /// `backendFailed`, `application(13)`: stable, since the operation store keeps codes by this name.
        package var description: String { "\(wrapped)" }

        /// The inverse of `description`, for the codes a store kept.
        package static func named(_ name: String) -> Code? {
            if name.hasPrefix("application("), name.hasSuffix(")"),
                let code = Int(name.dropFirst("application(".count).dropLast())
            {
                return .application(code)
            }
            return all.first { $0.description == name }
        }

        /// Every code but the application ones.
        package static let all: [Code] = [
            .invalidArgument, .unauthenticated, .permissionDenied, .notFound, .methodNotAllowed, .conflict,
            .failedPrecondition, .payloadTooLarge, .unsupportedMediaType, .notAcceptable, .headersTooLarge,
            .tooManyRequests, .overloaded, .backendFailed, .deadlineExceeded, .unavailable, .cancelled,
            .unimplemented, .internalError, .requestBufferFull, .dataLoss,
        ]
    }
}

extension GatewayError {
    /// What a client is told about an error the gateway did not expect: fixed words, since the error itself
    /// may name library types or server paths (issue 9 item 5). Whoever answers with it logs the error.
    package static let internalErrorMessage = "internal error; the gateway log has the details"
}
