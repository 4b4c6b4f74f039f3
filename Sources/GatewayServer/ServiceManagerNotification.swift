#if canImport(Glibc)
    package import Glibc
#endif
import NIOCore
import Synchronization

/// The service manager's readiness protocol (sd_notify(3)) without libsystemd: one datagram per state change to
/// the `AF_UNIX` socket `NOTIFY_SOCKET` names, so that a unit with `Type=notify` is "started" when the gateway
/// listens (not when the process was forked: `systemctl start`, and units ordered `After=` it, wait for the port),
/// is "reloading" while a SIGHUP's reload runs, and "stopping" from the stop signal on. nghttpx speaks the same
/// protocol; nginx and Envoy do not.
///
/// States sent (sd_notify(3)'s names):
/// - `READY=1` with `STATUS=` and `MAINPID=`: the listener is bound (start-up), or a reload ended (applied,
///   refused, or ignored without a file: the gateway serves either way);
/// - `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC, µs: what `Type=notify-reload`, systemd 253+, requires):
///   a reload starts;
/// - `STOPPING=1`: a stop signal arrived and the drain starts.
///
/// A failed send is ignored, as sd_notify's callers do: the service manager may have gone away, and nothing the
/// gateway serves depends on it. Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) nothing is sent.
package final class ServiceManagerNotifier: Sendable {
    /// `NOTIFY_SOCKET` as given: a path (`/run/systemd/notify`), or `@name` for Linux's abstract namespace.
    package let socketPath: String

    /// What the service manager was told last: the states only move forward, so that a SIGHUP before start-up's
    /// `READY=1` does not tell systemd start-up finished (SIGHUP is trapped before the listener binds), and a
    /// reload that ends after `STOPPING=1` does not take the stop back with `READY=1`.
    private enum Phase {
        case starting, ready, reloading, stopping
    }

    private let phase = Mutex(Phase.starting)

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

    /// Start-up is done (the listener is bound): `READY=1`, with `status` for `systemctl status`. Nothing once the
    /// stop began.
    @discardableResult
    package func ready(status: String) -> Bool {
        let send = phase.withLock { phase in
            guard phase == .starting else { return false }
            phase = .ready
            return true
        }
        return send && self.send(Self.readyState(status))
    }

    /// Runs `reload`, between `RELOADING=1` (with the monotonic clock's now in µs, which `Type=notify-reload`
    /// requires) and `READY=1` with the status `reload` returns, when the gateway is ready; before start-up's
    /// `READY=1` or after `STOPPING=1` it runs `reload` and tells nothing.
    package func reloading(_ reload: () -> String) {
        let told = phase.withLock { phase in
            guard phase == .ready else { return false }
            phase = .reloading
            return true
        }
        guard told else {
            _ = reload()
            return
        }
        // NIODeadline's uptime is CLOCK_MONOTONIC on Linux, the clock sd_notify(3) names.
        self.send("RELOADING=1\nMONOTONIC_USEC=\(NIODeadline.now().uptimeNanoseconds / 1_000)")
        let status = reload()
        let ready = phase.withLock { phase in
            guard phase == .reloading else { return false }
            phase = .ready
            return true
        }
        if ready { self.send(Self.readyState(status)) }
    }

    /// The stop (drain) starts: `STOPPING=1`, once.
    @discardableResult
    package func stopping() -> Bool {
        let send = phase.withLock { phase in
            guard phase != .stopping else { return false }
            phase = .stopping
            return true
        }
        return send && self.send("STOPPING=1")
    }

    private static func readyState(_ status: String) -> String {
        "READY=1\nSTATUS=\(status)\nMAINPID=\(getpid())"
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
