#if canImport(Glibc)
    import Glibc
#endif

/// A TCP socket bound to 127.0.0.1 on a port the kernel picks: what ``ThrowawayPostgres/freePort()`` (bound,
/// read, released), ``ReservedPort`` (bound, held, never listening) and ``SilentListener`` (bound and listening,
/// never accepting) are made of.
enum LoopbackSocket {
    /// The socket and its port; the caller owns `fd` and closes it. `reuseAddress` sets `SO_REUSEADDR` before the
    /// bind, so that a server setting it too may bind the same port while this socket is held (Linux allows it while
    /// neither listens).
    static func bind(reuseAddress: Bool = false) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ThrowawayPostgres.SetupError("socket failed") }
        if reuseAddress {
            var on: Int32 = 1
            guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                close(fd)
                throw ThrowawayPostgres.SetupError("setsockopt SO_REUSEADDR failed")
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                Glibc.bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw ThrowawayPostgres.SetupError("bind failed")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
