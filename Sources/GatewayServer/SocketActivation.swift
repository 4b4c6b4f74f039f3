#if canImport(Glibc)
    import Glibc
#endif
package import GatewayConfig
import NIOCore

/// A listening socket the gateway was started with (systemd socket activation), served instead of binding
/// `listen`.
///
/// The socket belongs to whoever passed it (systemd's `.socket` unit, a launcher): its accept queue outlives
/// this process, so a restart keeps connections queued (a client sees a delay, never `connection refused`).
/// Closing ours at a drain closes only this process's copy of the descriptor.
package struct InheritedListener: Sendable, Equatable {
    /// The descriptor (3 with one socket, sd_listen_fds(3)'s `SD_LISTEN_FDS_START`).
    package var descriptor: CInt
    /// Its `LISTEN_FDNAMES` entry (a socket unit's `FileDescriptorName=`, default the unit's name), if given.
    package var name: String?
    /// The address it is bound to (getsockname(2)): what `listening on` prints and the listen policy checks.
    package var address: ListenAddress
}

/// Reads systemd's socket-activation protocol (sd_listen_fds(3)) without libsystemd: `LISTEN_FDS` sockets from
/// descriptor 3 on, meant for this process only if `LISTEN_PID` is its pid, names in `LISTEN_FDNAMES`
/// (colon-separated).
///
/// As `sd_listen_fds(1)` does, the variables are unset once read (whether or not they were ours), so nothing
/// this process starts inherits them, and the descriptors are made close-on-exec.
package enum SocketActivation {
    /// What the environment says, before any descriptor is looked at.
    package enum Request: Equatable, Sendable {
        /// No `LISTEN_FDS` (or 0): bind `listen`.
        case none
        /// `LISTEN_PID` names another process (or is missing): the sockets are not ours, bind `listen`. sd_listen_fds
        /// ignores them the same way: a variable inherited from a parent that was activated must not make a child
        /// serve its parent's socket.
        case notOurs(listenPID: String?)
        /// One socket at `descriptor` (always 3), with its name if `LISTEN_FDNAMES` gave one.
        case socket(descriptor: CInt, name: String?)
    }

    /// The first inherited descriptor (`SD_LISTEN_FDS_START`).
    package static let firstDescriptor: CInt = 3

    /// The variables of the protocol, unset once read.
    package static let variables = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]

    /// Interprets the protocol's variables for process `pid`.
    ///
    /// - Throws: ``SocketActivationError`` for a malformed `LISTEN_FDS`/`LISTEN_PID`, or more than one socket (the
    ///   gateway has one listener: its socket unit needs exactly one `ListenStream=`).
    package static func request(environment: [String: String], pid: Int32) throws(SocketActivationError) -> Request {
        guard let fdsText = environment["LISTEN_FDS"], !fdsText.isEmpty else { return .none }
        guard let pidText = environment["LISTEN_PID"], !pidText.isEmpty else { return .notOurs(listenPID: nil) }
        guard let listenPID = Int32(pidText), listenPID > 0 else {
            throw SocketActivationError("LISTEN_PID=\(pidText) is not a process id")
        }
        guard listenPID == pid else { return .notOurs(listenPID: pidText) }
        guard let count = Int(fdsText), count >= 0 else {
            throw SocketActivationError("LISTEN_FDS=\(fdsText) is not a count of descriptors")
        }
        if count == 0 { return .none }
        guard count == 1 else {
            throw SocketActivationError(
                "LISTEN_FDS=\(count): the gateway serves one listening socket; give its socket unit one ListenStream="
            )
        }
        let name = environment["LISTEN_FDNAMES"]?.split(separator: ":", omittingEmptySubsequences: false).first
            .map(String.init)
        return .socket(descriptor: firstDescriptor, name: name?.isEmpty == false ? name : nil)
    }

    /// Reads and unsets the process's variables and, when a socket was passed to it, checks it and makes it
    /// close-on-exec. Returns nil when the gateway should bind `listen` itself, with `ignored` saying why a
    /// `LISTEN_FDS` was not used (for the log), if one was there.
    ///
    /// - Throws: ``SocketActivationError``, one line naming the descriptor and what is wrong with it: not a
    ///   socket, not TCP over IPv4/IPv6, not listening (a socket unit with `Accept=yes` passes a connection).
    package static func takeListener() throws(SocketActivationError) -> (listener: InheritedListener?, ignored: String?)
    {
        var environment: [String: String] = [:]
        for variable in variables {
            if let value = getenv(variable) { environment[variable] = String(cString: value) }
            unsetenv(variable)
        }
        switch try request(environment: environment, pid: getpid()) {
        case .none:
            return (nil, nil)
        case .notOurs(let listenPID):
            return (nil, "LISTEN_FDS ignored: LISTEN_PID=\(listenPID ?? "(unset)") is not this process (\(getpid()))")
        case .socket(let descriptor, let name):
            let address = try listeningAddress(of: descriptor)
            // sd_listen_fds sets FD_CLOEXEC: nothing this process execs keeps the listener open.
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
            return (InheritedListener(descriptor: descriptor, name: name, address: address), nil)
        }
    }

    /// The address `descriptor` listens on, after checking it is a listening TCP socket (IPv4 or IPv6).
    ///
    /// - Throws: ``SocketActivationError`` saying which check failed.
    package static func listeningAddress(of descriptor: CInt) throws(SocketActivationError) -> ListenAddress {
        let what = "inherited descriptor \(descriptor) (LISTEN_FDS)"
        func option(_ name: CInt) -> CInt? {
            var value: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            return getsockopt(descriptor, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        // getsockopt's errno tells a closed descriptor (EBADF) from an open file that is no socket (ENOTSOCK),
        // without fstat: `struct stat` is not visible to this module in release builds (MemberImportVisibility
        // attributes it to CoreFoundation there).
        if option(SO_TYPE) == nil {
            let code = errno
            if code == ENOTSOCK { throw SocketActivationError("\(what) is not a socket") }
            throw SocketActivationError("\(what) is not open: \(errnoText())")
        }
        let domain = option(SO_DOMAIN)
        guard domain == AF_INET || domain == AF_INET6, option(SO_TYPE) == CInt(SOCK_STREAM.rawValue) else {
            throw SocketActivationError(
                "\(what) is not a TCP socket (IPv4 or IPv6): its socket unit needs ListenStream=ADDRESS:PORT or PORT")
        }
        guard option(SO_ACCEPTCONN) == 1 else {
            throw SocketActivationError(
                "\(what) is not listening (a socket unit with Accept=yes passes one connection per process; "
                    + "the gateway needs Accept=no, the default)")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw SocketActivationError("\(what): getsockname failed: \(errnoText())") }
        let address: SocketAddress
        if domain == AF_INET {
            address = withUnsafeBytes(of: &storage) { SocketAddress($0.load(as: sockaddr_in.self), host: "") }
        } else {
            address = withUnsafeBytes(of: &storage) { SocketAddress($0.load(as: sockaddr_in6.self), host: "") }
        }
        guard let ip = address.ipAddress, let port = address.port else {
            throw SocketActivationError("\(what) has no IP address")
        }
        return ListenAddress(host: ip, port: port)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)).lowercased() }
}

/// Why an inherited socket cannot be served: one line for `trigger-gateway: …` on stderr (exit 1).
package struct SocketActivationError: Error, Equatable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { "socket activation: \(message)" }
}
