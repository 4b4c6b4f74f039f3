#if canImport(Glibc)
    import Glibc
#endif
import NIOCore

/// Why the listener could not bind, in one line an operator can act on: the address and the system's
/// reason ("cannot listen on 127.0.0.1:8080: address already in use"), not a syscall signature.
package struct ListenFailure: Error, CustomStringConvertible {
    package var address: String
    package var reason: String
    /// The configuration key of the address when it is not `listen` (`admin.listen`), named in the message.
    package var key: String?

    init(host: String, port: Int, error: any Error, key: String? = nil) {
        self.key = key
        self.address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        if let error = error as? IOError {
            self.reason = String(cString: strerror(error.errnoCode)).lowercased()
            if error.errnoCode == EACCES, port > 0, port < 1024 {
                // Review 9, finding 10: say how to fix it (Linux's privileged ports, capabilities(7)).
                self.reason +=
                    ": ports below 1024 need root or CAP_NET_BIND_SERVICE"
                    + " (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE), or use a port above 1023"
            }
        } else if error is SocketAddressError || error is SocketAddressError.UnknownHost {
            // `UnknownHost` is a struct nested in the enum's extension, not one of its cases (getaddrinfo's
            // failure, which printed as "SocketAddressError.UnknownHost: Name or service not known (error -2)").
            self.reason = "the address does not resolve"
        } else {
            self.reason = "\(error)"
        }
    }

    package var description: String { "cannot listen on \(address)\(key.map { " (\($0))" } ?? ""): \(reason)" }
}
