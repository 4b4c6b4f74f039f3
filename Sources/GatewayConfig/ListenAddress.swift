/// Where the gateway listens: a host (IP literal or name; IPv6 without brackets) and a port.
///
/// Parsed from `127.0.0.1:8080`, `[::1]:8080` or `localhost:8080`, whether it comes from the config file or
/// from `--listen`; port 0 asks the kernel for a free port (tests).
package struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`; the error text says what is wrong, for `listen: <message>` or a `--listen` error.
    package init(parsing text: String) throws(ListenAddressError) {
        switch HostSyntax.splitHostPort(text) {
        case .success(let (host, port)): self.init(host: host, port: port)
        case .failure(let problem): throw ListenAddressError(message: problem.description)
        }
    }

    /// True for 127.0.0.0/8, ::1 (and IPv4-mapped loopback) and `localhost`.
    package var isLoopback: Bool { HostSyntax.isLoopback(host) }

    /// `host:port`, with brackets around an IPv6 host.
    package var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why a `host:port` string was refused.
package struct ListenAddressError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}
