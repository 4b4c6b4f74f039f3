import GatewayConfig
package import NIOCore

extension SocketAddress {
    /// `127.0.0.1:48704`, `[::1]:48704` (RFC 3986 §3.2.2 brackets), as every log line writes a peer or listen
    /// address; `SocketAddress`'s own description (`[IPv4]127.0.0.1/127.0.0.1:48704`) is NIO's debugging form
    /// (review 9, finding 11). A Unix socket is its path.
    package var hostPort: String {
        if let ip = ipAddress { return ListenAddress(host: ip, port: port ?? 0).description }
        return pathname ?? "\(self)"
    }
}
