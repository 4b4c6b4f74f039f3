#if canImport(Glibc)
    package import Glibc
#endif
import NIOCore

/// The service manager's readiness protocol (sd_notify(3)) without libsystemd: one datagram per state change to
/// the `AF_UNIX` socket `NOTIFY_SOCKET` names, so that a unit with `Type=notify` is "started" when the gateway
/// listens (not when the process was forked: `systemctl start`, and units ordered `After=` it, wait for the port),
/// is "reloading" while a SIGHUP's reload runs, and "stopping" from the stop signal on. nghttpx speaks the same
/// protocol; nginx and Envoy do not.
///
/// States sent (sd_notify(3)'s names):
/// - `READY=1` with `STATUS=` and `MAINPID=`: the listener is bound (start-up), or a reload ended (applied or
///   refused: the running configuration serves either way);
/// - `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC, µs: what `Type=notify-reload`, systemd 253+, requires):
///   a reload starts;
/// - `STOPPING=1`: a stop signal arrived and the drain starts.
///
/// A failed send is ignored, as sd_notify's callers do: the service manager may have gone away, and nothing the
/// gateway serves depends on it. Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) nothing is sent.
package struct ServiceManagerNotifier: Sendable, Equatable {
    /// `NOTIFY_SOCKET` as given: a path (`/run/systemd/notify`), or `@name` for Linux's abstract namespace.
    package let socketPath: String

    /// The notifier `NOTIFY_SOCKET` asks for, nil when it is unset, empty, neither absolute nor abstract, or longer
    /// than a socket address holds (108 bytes with the terminator, unix(7)): sd_notify ignores those too.
    package static func fromEnvironment(_ environment: [String: String]) -> ServiceManagerNotifier? {
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
        return ServiceManagerNotifier(socketPath: path)
    }

    package init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The listener is bound, or a reload ended: `READY=1`, with `status` for `systemctl status`.
    @discardableResult
    package func ready(status: String) -> Bool {
        send("READY=1\nSTATUS=\(status)\nMAINPID=\(getpid())")
    }

    /// A reload starts: `RELOADING=1` and the monotonic clock's now in µs.
    @discardableResult
    package func reloading() -> Bool {
        // NIODeadline's uptime is CLOCK_MONOTONIC on Linux (DispatchTime), the clock sd_notify(3) names.
        let microseconds = NIODeadline.now().uptimeNanoseconds / 1_000
        return send("RELOADING=1\nMONOTONIC_USEC=\(microseconds)")
    }

    /// The stop (drain) starts: `STOPPING=1`.
    @discardableResult
    package func stopping() -> Bool {
        send("STOPPING=1")
    }

    /// Sends `state` (newline-separated `KEY=value` assignments) as one datagram; false when it could not be sent.
    @discardableResult
    package func send(_ state: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let sent = Self.withSocketAddress(self.socketPath) { address, length in
            Array(state.utf8).withUnsafeBytes { bytes in
                sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), address, length)
            }
        }
        return sent == state.utf8.count
    }

    /// Calls `body` with the `AF_UNIX` address of `path` (a file path, or `@name` for Linux's abstract namespace,
    /// whose address starts with a NUL byte instead of the `@`) and its length; nil when `path` does not fit
    /// `sun_path` (108 bytes with a path's terminator, unix(7)). The service manager's side binds the same way
    /// (the tests' receiver).
    package static func withSocketAddress<Result>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) -> Result? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { sunPath in
            sunPath.copyBytes(from: pathBytes)
            if pathBytes.first == UInt8(ascii: "@") { sunPath[0] = 0 }
        }
        // An abstract address's length counts its bytes exactly (no terminator); a path's may leave it out.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
