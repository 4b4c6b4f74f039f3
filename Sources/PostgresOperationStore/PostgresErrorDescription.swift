import NIOSSL
import PostgresNIO
import TriggerModel

/// What an operator reads in the log when a PostgreSQL call fails, instead of a Swift error dump
/// (`_ConnectionPoolModule.ConnectionPoolError(base: …poolShutdown)`, review 8): the kind of failure in words,
/// and the server's own message and SQLSTATE when the server answered. `PSQLError`'s `description` is generic
/// on purpose (it may hold query data); this keeps to its code, the server's message and the SQLSTATE.
enum PostgresErrorDescription {
    /// Whether the server refused a statement for lack of disk space (`disk_full`, SQLSTATE 53100): the client
    /// then reads `OperationStoreErrors.diskFullMessage` and async readiness fails at once, as for SQLite.
    static func isDiskFull(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "53100"
    }

    /// `sslMode`: the URL's `sslmode`, named in the words for a TLS failure (at `open`'s probe).
    static func describe(_ error: any Error, sslMode: String? = nil) -> String {
        let mode = sslMode.map { " (sslmode=\($0))" } ?? ""
        if let error = error as? GatewayError { return error.message }
        if let error = error as? PSQLError {
            switch error.code {
            case .server:
                let message = error.serverInfo?[.message] ?? "no message"
                let sqlState = error.serverInfo?[.sqlState]
                let state = sqlState.map { " (SQLSTATE \($0))" } ?? ""
                // At connect time no statement is involved (review 12, finding 7): class 28 is the login
                // (`invalid_authorization_specification`: a wrong password, an unknown role), 3D000 the
                // database the URL names.
                if sqlState?.hasPrefix("28") == true {
                    return "PostgreSQL refused the login of store.url's user: \(message)\(state)"
                }
                if sqlState == "3D000" { return "PostgreSQL has no database of store.url's name: \(message)\(state)" }
                // 53300 too_many_connections (the server's max_connections or the role's CONNECTION LIMIT),
                // 53000 insufficient_resources, 57P03 cannot_connect_now (starting up, shutting down, recovering).
                if sqlState == "53300" || sqlState == "53000" || sqlState == "57P03" {
                    return "PostgreSQL refused a new connection: \(message)\(state)"
                }
                return "PostgreSQL refused the statement: \(message)\(state)"
            case .connectionError, .failedToAddSSLHandler:
                if let tlsError = error.underlying.flatMap(tlsFailure) {
                    return "the TLS handshake with PostgreSQL failed\(mode): \(tlsError)"
                }
                let cause = error.underlying.map { ": \(String(describing: $0))" } ?? ""
                return "cannot connect to PostgreSQL\(cause)"
            case .serverClosedConnection, .uncleanShutdown:
                return "the connection to PostgreSQL was lost (server stopped or restarted, or the network failed)"
            case .clientClosedConnection, .poolClosed:
                return "the PostgreSQL connection was closed by the gateway (shutting down or reconnecting)"
            case .queryCancelled:
                return "the PostgreSQL statement was cancelled"
            case .sslUnsupported:
                return
                    "the PostgreSQL server does not accept TLS connections, and sslmode\(mode.isEmpty ? "" : "=" + (sslMode ?? "")) "
                    + "requires TLS (turn ssl on in the server, or use sslmode=prefer or disable)"
            case .receivedUnencryptedDataAfterSSLRequest:
                return "TLS with PostgreSQL failed (\(error.code))"
            case .authMechanismRequiresPassword:
                return "PostgreSQL asks for a password and store.url has none (postgres://user:password@host/db)"
            case .unsupportedAuthMechanism:
                return "PostgreSQL asks for an authentication method the gateway does not support (use "
                    + "scram-sha-256, md5, password or trust in pg_hba.conf)"
            case .saslError:
                return "PostgreSQL's SCRAM authentication failed (a wrong password, or a proxy in between)"
            default:
                return "PostgreSQL error \(error.code)"
            }
        }
        // The pool's error type lives in an underscored module (`_ConnectionPoolModule`) that is not imported
        // here: known by its public constants.
        let reflected = String(reflecting: error)
        if reflected.contains("ConnectionPoolError") {
            if reflected.contains("poolShutdown") {
                // Calls in flight on a pool being replaced: during an outage the store reconnects with a new one.
                return "the PostgreSQL connection pool was closed: the gateway is reconnecting (or stopping)"
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

    /// Whether `error` is a call that waited for one of the pool's connections in vain: the pool gave up opening one
    /// (its circuit breaker) or the wait was cut. The server's reason is then in no error the pool passes on.
    static func isConnectionWait(_ error: any Error) -> Bool {
        let reflected = String(reflecting: error)
        return reflected.contains("ConnectionPoolError")
            && (reflected.contains("requestCancelled") || reflected.contains("connectionCreationCircuitBreakerTripped"))
    }

    /// A TLS handshake failure in operator words: an untrusted certificate, or one that does not name the host.
    private static func tlsFailure(_ error: any Error) -> String? {
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "the server's certificate does not name the host of the URL (sslmode=verify-full): \(error)"
        }
        guard let error = error as? NIOSSLError else { return nil }
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate is not signed by a CA in sslrootcert (\(text))"
        }
        return text
    }

    /// A statement refused for a missing privilege (SQLSTATE 42501, `insufficient_privilege`: "permission
    /// denied for …", "must be owner of …"). The store is reachable; what the operator needs is the GRANT.
    struct Privilege: Error {
        /// The server's message, e.g. `permission denied for schema public`.
        var message: String

        init?(_ error: any Error) {
            guard let error = error as? PSQLError, error.code == .server,
                error.serverInfo?[.sqlState] == "42501", let message = error.serverInfo?[.message]
            else { return nil }
            self.message = message
        }

        /// A privilege found missing before any statement needed it (a routine this role cannot execute), worded as
        /// the server words it (`permission denied for function <name>`).
        init(message: String) {
            self.message = message
        }

        /// The message in operator words with the grant that fixes it for `role` (README "PostgreSQL roles").
        func advice(role: String) -> String {
            let said =
                "the PostgreSQL role \(role) lacks a privilege the operation store needs: \(message) (SQLSTATE 42501)"
            let object = message.split(separator: " ").last.map(String.init) ?? ""
            let fix: String
            if message.hasPrefix("permission denied for schema") {
                fix =
                    "GRANT USAGE, CREATE ON SCHEMA \(object) TO \(role) (CREATE is needed for the first start and "
                    + "upgrades only), or make the schema as a role that has it"
            } else if message.hasPrefix("must be owner of") {
                fix =
                    "an upgrade replaces the store's procedures and only their owner may: start this version once as "
                    + "the owner of \(object) (or ALTER … OWNER TO \(role)); later starts need no ownership"
            } else if message.hasPrefix("permission denied for table") {
                fix = "GRANT SELECT, INSERT, UPDATE, DELETE ON \(object) TO \(role)"
            } else if message.hasPrefix("permission denied for sequence") {
                fix = "GRANT USAGE, SELECT ON SEQUENCE \(object) TO \(role)"
            } else if message.hasPrefix("permission denied for procedure") {
                fix = "GRANT EXECUTE ON PROCEDURE \(object) TO \(role)"
            } else if message.hasPrefix("permission denied for function") {
                // PostgreSQL refuses `GRANT EXECUTE ON PROCEDURE` for a function (review 16, F4).
                fix = "GRANT EXECUTE ON FUNCTION \(object) TO \(role)"
            } else if message.hasPrefix("permission denied for database") {
                fix = "GRANT CONNECT, CREATE ON DATABASE \(object) TO \(role)"
            } else {
                fix = "see README, \"PostgreSQL roles\", for the grants a role needs"
            }
            return "\(said): \(fix)"
        }
    }
}
