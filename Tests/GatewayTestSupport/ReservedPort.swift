#if canImport(Glibc)
    import Glibc
#endif

/// A loopback port where nothing listens and that nothing else gets while this is alive: a runner, receiver or
/// database that is down, as a client sees it (connects refused at once).
///
/// Why not ``ThrowawayPostgres/freePort()``: a port bound, read and released is free for the next bind to port 0 in
/// any process, this test's own gateway listener included. The stop CI of the twenty-fourth session saw exactly that:
/// the gateway took its "down" runner's port and answered its own backend calls with 404. This socket stays bound
/// (never listening) until it is released, so the kernel's ephemeral port choice skips it, and connects to it are
/// refused. It sets `SO_REUSEADDR`, so a server that sets it too (DemoHTTPServer, DemoGRPCServer, demo-runner,
/// the tests' webhook receiver) can bind the same port while it is held, to bring the "down" peer back up.
package final class ReservedPort: Sendable {
    package let port: Int
    private let fd: Int32

    package init() throws {
        (fd, port) = try LoopbackSocket.bind(reuseAddress: true)
    }

    deinit { close(fd) }
}
