#if canImport(Glibc)
    import Glibc
#endif

/// A loopback port that accepts connections and never answers: the socket listens but never calls
/// `accept`, so the kernel completes every handshake (up to the backlog) and keeps what clients send unread.
/// A runner hung on every request, as a client sees it (review 10 #1). Closed when released.
package final class SilentListener: Sendable {
    package let port: Int
    private let fd: Int32

    package init() throws {
        let (fd, port) = try LoopbackSocket.bind()
        guard listen(fd, 64) == 0 else {
            close(fd)
            throw ThrowawayPostgres.SetupError("listen failed")
        }
        self.fd = fd
        self.port = port
    }

    deinit { close(fd) }
}
