import PostgresNIO
import TriggerModel

/// What an operator reads in the log when a PostgreSQL call fails, instead of a Swift error dump
/// (`_ConnectionPoolModule.ConnectionPoolError(base: …poolShutdown)`, review 8): the kind of failure in words,
/// and the server's own message and SQLSTATE when the server answered. `PSQLError`'s `description` is generic
/// on purpose (it may hold query data); this keeps to its code, the server's message and the SQLSTATE.
enum PostgresErrorDescription {
    static func describe(_ error: any Error) -> String {
        if let error = error as? GatewayError { return error.message }
        if let error = error as? PSQLError {
            switch error.code {
            case .server:
                let message = error.serverInfo?[.message] ?? "no message"
                let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return "PostgreSQL refused the statement: \(message)\(state)"
            case .connectionError:
                let cause = error.underlying.map { ": \(String(describing: $0))" } ?? ""
                return "cannot connect to PostgreSQL\(cause)"
            case .serverClosedConnection, .uncleanShutdown:
                return "the connection to PostgreSQL was lost (server stopped or restarted, or the network failed)"
            case .clientClosedConnection, .poolClosed:
                return "the PostgreSQL connection was closed by the gateway (shutting down or reconnecting)"
            case .queryCancelled:
                return "the PostgreSQL statement was cancelled"
            case .sslUnsupported, .failedToAddSSLHandler, .receivedUnencryptedDataAfterSSLRequest:
                return "TLS with PostgreSQL failed (\(error.code))"
            case .unsupportedAuthMechanism, .authMechanismRequiresPassword, .saslError:
                return "PostgreSQL authentication failed (\(error.code))"
            default:
                return "PostgreSQL error \(error.code)"
            }
        }
        // The pool's error type lives in an underscored module (`_ConnectionPoolModule`) that is not imported
        // here: known by its public constants.
        let reflected = String(reflecting: error)
        if reflected.contains("ConnectionPoolError") {
            if reflected.contains("poolShutdown") {
                return "the PostgreSQL connection pool is shut down (the gateway is stopping or reconnecting)"
            }
            if reflected.contains("connectionCreationCircuitBreakerTripped") {
                return "cannot connect to PostgreSQL: new connections keep failing (server down or unreachable)"
            }
            if reflected.contains("requestCancelled") {
                return "waiting for a PostgreSQL connection was cancelled"
            }
        }
        return reflected
    }
}
