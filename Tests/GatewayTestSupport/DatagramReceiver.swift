#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import GatewayServer

/// The service manager's side of sd_notify(3) for tests: a Unix datagram socket bound at a path, or at `@name`
/// (Linux's abstract namespace), read one datagram at a time.
package final class DatagramReceiver: Sendable {
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    /// Where it is bound, as `NOTIFY_SOCKET` names it.
    package let path: String
    private let descriptor: Int32

    /// Binds a new socket at `path` (a file path the caller makes unique, or `@name`); each `receive` waits up to
    /// `timeoutSeconds` for a datagram.
    package init(path: String, timeoutSeconds: Int = 10) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bound = ServiceManagerNotifier.withSocketAddress(path) { bind(descriptor, $0, $1) } ?? -1
        guard bound == 0 else {
            let error = errno
            close(descriptor)
            throw Failure(description: "bind \(path): errno \(error)")
        }
        self.path = path
        self.descriptor = descriptor
    }

    /// The address the kernel holds for the socket (getsockname(2)), `sun_path`'s bytes only: what another
    /// process must send to, read back rather than trusted from how it was built.
    package var boundPath: [UInt8] {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { return [] }
        let count = Int(length) - MemoryLayout<sa_family_t>.size
        return withUnsafeBytes(of: &address.sun_path) { Array($0.prefix(max(0, count))) }
    }

    /// The next datagram as text, nil when none came in time. Blocks: call it through `blocking`.
    package func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    deinit {
        close(descriptor)
        if !path.hasPrefix("@") { unlink(path) }
    }
}
