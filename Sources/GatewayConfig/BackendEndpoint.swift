/// One runner address of an `http` or `grpc` pool: `127.0.0.1:9000`, `[::1]:9000`, `http://host:port`, or
/// (http pools only) `http://host:port/base` so that calls go to `POST /base/run`. `https://` (and, for grpc
/// pools, `grpcs://`) asks for TLS to the endpoint (issue 17, item 2); `grpc://` is a cleartext grpc endpoint.
package struct BackendEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The URL scheme an endpoint was written with; nil when it had none (`host:port`).
    package enum Scheme: String, Sendable, Hashable {
        case http, https, grpc, grpcs

        /// The scheme asks for TLS.
        package var isTLS: Bool { self == .https || self == .grpcs }
    }

    package var host: String
    package var port: Int
    /// A path prefix without a trailing slash (`""` or `/base`); always empty for gRPC.
    package var basePath: String
    package var scheme: Scheme?

    package init(host: String, port: Int, basePath: String = "", scheme: Scheme? = nil) {
        self.host = host
        self.port = port
        self.basePath = basePath
        self.scheme = scheme
    }

    /// Parses one `endpoints[]` entry. Which schemes a pool's transport takes is the pool reader's rule; here any
    /// of `http`, `https`, `grpc`, `grpcs` parses. Without a port, a scheme implies one as a URL would (80 for
    /// `http`/`grpc`, 443 for `https`/`grpcs`).
    package init(parsing text: String) throws(ListenAddressError) {
        var rest = Substring(text)
        var scheme: Scheme?
        if let schemeEnd = rest.firstRange(of: "://") {
            let name = rest[..<schemeEnd.lowerBound].lowercased()
            guard let known = Scheme(rawValue: name) else {
                throw ListenAddressError(
                    message: "unsupported scheme \"\(name)\" (expected http://, https://, grpc://, grpcs:// or none)")
            }
            scheme = known
            rest = rest[schemeEnd.upperBound...]
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
        case .failure(.missingPort) where scheme != nil && !rest.isEmpty && !rest.hasSuffix(":"):
            // `http://host` means port 80 and `https://host` 443, as a URL would.
            let port = scheme?.isTLS == true ? 443 : 80
            guard case .success(let hp) = HostSyntax.splitHostPort(rest + ":\(port)") else {
                throw ListenAddressError(message: HostSyntax.HostPortProblem.badHost(String(rest)).description)
            }
            hostPort = hp
        case .failure(let problem): throw ListenAddressError(message: problem.description)
        }
        guard hostPort.port != 0 else { throw ListenAddressError(message: "port 0 is not a backend port") }
        self.init(host: hostPort.host, port: hostPort.port, basePath: path, scheme: scheme)
    }

    package var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    package var description: String { "\((scheme ?? .http).rawValue)://\(authority)\(basePath)" }
}
