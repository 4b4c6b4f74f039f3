package import TriggerModel

/// A failure as the `abacusai` client reads it (CLIENTS.md §4.2): the envelope's `error` text, the `errorType`
/// the client turns into an exception class by name (`DataNotFoundError` → `abacusai.DataNotFoundError`; an
/// unknown name → `ApiException`), and the HTTP status.
///
/// The client decides success from the JSON `success` flag only, so the status is for everyone else (proxies,
/// logs, curl). It matters to the client in three cases, which the mapping below respects: 429 always becomes
/// `TooManyRequestsError`, 504 always `GatewayTimeoutError`, and any status above 502 other than 503 becomes
/// `InternalServerError` whatever `errorType` says.
package struct AbacusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The exception class name the client looks up (`abacusai/client.py`, `_ApiExceptionFactory`).
    package struct ErrorType: RawRepresentable, Hashable, Sendable {
        package var rawValue: String
        package init(rawValue: String) { self.rawValue = rawValue }

        package static let dataNotFound = ErrorType(rawValue: "DataNotFoundError")
        package static let invalidParameter = ErrorType(rawValue: "InvalidParameterError")
        package static let missingParameter = ErrorType(rawValue: "MissingParameterError")
        package static let permissionDenied = ErrorType(rawValue: "PermissionDeniedError")
        package static let methodNotAllowed = ErrorType(rawValue: "MethodNotAllowed")
        package static let conflict = ErrorType(rawValue: "ConflictError")
        package static let invalidRequest = ErrorType(rawValue: "InvalidRequest")
        package static let notReady = ErrorType(rawValue: "NotReadyError")
        package static let tooManyRequests = ErrorType(rawValue: "TooManyRequestsError")
        package static let failedDependency = ErrorType(rawValue: "FailedDependencyError")
        /// The client maps this name to its `RequestTimeoutError`.
        package static let timeout = ErrorType(rawValue: "TimeoutError")
        package static let generic404 = ErrorType(rawValue: "Generic404Error")
        package static let internalServer = ErrorType(rawValue: "InternalServerError")
        package static let apiException = ErrorType(rawValue: "ApiException")
    }

    package var type: ErrorType
    package var message: String
    package var httpStatus: Int

    package init(_ type: ErrorType, _ message: String, httpStatus: Int) {
        self.type = type
        self.message = message
        self.httpStatus = httpStatus
    }

    package var description: String { "\(type.rawValue)(\(httpStatus)): \(message)" }

    /// A required parameter is absent or null (400).
    package static func missingParameter(_ message: String) -> AbacusError {
        AbacusError(.missingParameter, message, httpStatus: 400)
    }

    /// A parameter is present but has the wrong type or value (400).
    package static func invalidParameter(_ message: String) -> AbacusError {
        AbacusError(.invalidParameter, message, httpStatus: 400)
    }

    /// No such pipeline or pipeline version (404).
    package static func dataNotFound(_ message: String) -> AbacusError {
        AbacusError(.dataNotFound, message, httpStatus: 404)
    }

    /// The gateway's own error, named as the Abacus client knows it. The status stays the gateway's
    /// (`GatewayError.Code.httpStatus`), so a surface answers the same status for the same failure.
    package init(_ error: GatewayError) {
        let type: ErrorType
        switch error.code {
        case .invalidArgument, .payloadTooLarge: type = .invalidParameter
        case .unauthenticated, .permissionDenied: type = .permissionDenied
        case .notFound: type = .dataNotFound
        case .methodNotAllowed: type = .methodNotAllowed
        case .conflict, .failedPrecondition: type = .conflict
        case .unsupportedMediaType, .notAcceptable, .headersTooLarge, .unimplemented: type = .invalidRequest
        case .tooManyRequests, .overloaded, .requestBufferFull: type = .tooManyRequests
        case .unavailable: type = .notReady
        case .backendFailed: type = .failedDependency
        case .deadlineExceeded: type = .timeout
        case .cancelled: type = .apiException
        default: type = .internalServer
        }
        self.init(type, error.message, httpStatus: error.code.httpStatus)
    }
}
