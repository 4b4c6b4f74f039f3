/// One runner address of an `http` or `grpc` pool: `127.0.0.1:9000`, `[::1]:9000`, `http://host:port`, or
/// (http pools only) `http://host:port/base` so that calls go to `POST /base/run`.
package struct BackendEndpoint: Sendable, Hashable, CustomStringConvertible {
    package var host: String
    package var port: Int
    /// A path prefix without a trailing slash (`""` or `/base`); always empty for gRPC.
    package var basePath: String

    package init(host: String, port: Int, basePath: String = "") {
        self.host = host
        self.port = port
        self.basePath = basePath
    }

    /// Parses one `endpoints[]` entry. `https://` is refused until backend TLS exists, rather than silently
    /// sending plaintext to a port that expects TLS.
    package init(parsing text: String) throws(ListenAddressError) {
        var rest = Substring(text)
        var hadScheme = false
        if let schemeEnd = rest.firstRange(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            switch scheme {
            case "http": break
            case "https": throw ListenAddressError(message: "TLS to backends is not supported yet; use http://")
            default: throw ListenAddressError(message: "unsupported scheme \"\(scheme)\" (expected http:// or none)")
            }
            rest = rest[schemeEnd.upperBound...]
            hadScheme = true
        }
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
            while path.hasSuffix("/") { path.removeLast() }
        }
        let hostPort: (host: String, port: Int)
        switch HostSyntax.splitHostPort(String(rest)) {
        case .success(let hp): hostPort = hp
        case .failure(.missingPort) where hadScheme && !rest.isEmpty && !rest.hasSuffix(":"):
            // `http://host` means port 80, as a URL would.
            guard case .success(let hp) = HostSyntax.splitHostPort(rest + ":80") else {
                throw ListenAddressError(message: HostSyntax.HostPortProblem.badHost(String(rest)).description)
            }
            hostPort = hp
        case .failure(let problem): throw ListenAddressError(message: problem.description)
        }
        guard hostPort.port != 0 else { throw ListenAddressError(message: "port 0 is not a backend port") }
        self.init(host: hostPort.host, port: hostPort.port, basePath: path)
    }

    package var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    package var description: String { "http://\(authority)\(basePath)" }
}
