#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import TriggerModel

/// The errors the backend layer makes, in one place so their wording stays consistent.
enum BackendErrors {
    static func overloaded(pool: String, limit: Int, queue: Int) -> GatewayError {
        GatewayError(
            .overloaded,
            "backend pool \"\(pool)\" is overloaded: \(limit) calls running and \(queue) queued; retry later"
        )
    }

    static func deadline(pool: String, after: String) -> GatewayError {
        GatewayError(.deadlineExceeded, "backend pool \"\(pool)\" did not answer within \(after)")
    }

    static func connectFailed(pool: String, endpoint: String, reason: String) -> GatewayError {
        GatewayError(.backendFailed, "backend pool \"\(pool)\": cannot connect to \(endpoint): \(reason)")
    }

    static func connectionLost(pool: String, endpoint: String) -> GatewayError {
        GatewayError(.backendFailed, "backend pool \"\(pool)\": \(endpoint) closed the connection before answering")
    }

    static func badResponse(pool: String, endpoint: String, reason: String) -> GatewayError {
        GatewayError(.backendFailed, "backend pool \"\(pool)\": \(endpoint) answered garbage: \(reason)")
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
            return error.dnsAError != nil || error.dnsAAAAError != nil ? "the host name did not resolve" : "cannot connect"
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
