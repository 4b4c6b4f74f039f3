import Foundation

/// A client that does not progress, on a blocking socket: it connects, sends what it is told when it is
/// told, and can wait to see whether (and when) the server gives up on it. For the slow-client limits of
/// issue 10; every blocking call runs off the cooperative pool (see ``blocking(_:)``).
package final class SlowSocket: Sendable {
    /// What the server did while the socket waited.
    package struct Outcome: Sendable {
        package var received: [UInt8]
        /// The server closed (EOF or reset) before the wait ended.
        package var closedByServer: Bool
        /// That close was a reset (ECONNRESET), not an orderly end (EOF).
        package var reset = false
        /// From the start of the wait to the close (or to the end of the wait).
        package var elapsed: Duration
        /// When the close was seen (or the wait ended). A test measuring a server timeout takes the time
        /// from an instant read *before* `connect` (the server's timer starts at accept, after that), not
        /// from the start of the wait, which a loaded machine may delay past part of the timeout.
        package var ended: ContinuousClock.Instant
        package var text: String { String(decoding: received, as: UTF8.self) }
    }

    private let fd: Int32

    private init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        close(fd)
    }

    /// Connects to 127.0.0.1:`port`; with `receiveBuffer`, SO_RCVBUF is set first (a small one makes a
    /// client that does not read fill up quickly).
    package static func connect(port: Int, receiveBuffer: Int32? = nil) async throws -> SlowSocket {
        try await blocking {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            precondition(fd >= 0)
            if var size = receiveBuffer {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                close(fd)
                throw POSIXError(.ECONNREFUSED)
            }
            return SlowSocket(fd: fd)
        }
    }

    /// Closes both directions now (a client that goes away mid-request); the descriptor is released at deinit.
    package func shutdown() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Sends `bytes`; false when the server has already closed.
    @discardableResult
    package func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    @discardableResult
    package func send(_ text: String) -> Bool {
        send(Array(text.utf8))
    }

    /// Sends `bytes` one piece at a time, `pause` apart (a trickle); stops early if the server closed.
    package func trickle(_ bytes: [UInt8], pieces: Int, pause: Duration) async throws {
        let size = max(1, (bytes.count + pieces - 1) / pieces)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + size)
            guard send(Array(bytes[offset..<end])) else { return }
            offset = end
            // The pause is the slow client under test, not a wait for the server.
            if offset < bytes.count { try await Task.sleep(for: pause) }
        }
    }

    /// Reads until the server closes or `timeout` passes; with `stopAfter`, also once what was received
    /// contains it.
    package func waitForClose(timeout: Duration, stopAfter marker: String? = nil) async throws -> Outcome {
        guard let marker else { return try await waitForClose(timeout: timeout, stopWhen: nil) }
        return try await waitForClose(timeout: timeout) { outcome in outcome.text.contains(marker) }
    }

    /// Reads until the server closes, `timeout` passes, or `stopWhen` holds for what was received so far.
    package func waitForClose(
        timeout: Duration,
        stopWhen: (@Sendable (Outcome) -> Bool)?
    ) async throws -> Outcome {
        let fd = self.fd
        return try await blocking {
            let started = ContinuousClock.now
            var outcome = Outcome(received: [], closedByServer: false, elapsed: .zero, ended: started)
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let left = timeout - (ContinuousClock.now - started)
                guard left > .zero else { break }
                let micros = max(
                    1000, left.components.seconds * 1_000_000 + left.components.attoseconds / 1_000_000_000_000)
                var tv = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n == 0 || (n < 0 && errno == ECONNRESET) {
                    outcome.closedByServer = true
                    outcome.reset = n < 0
                    break
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    break  // EAGAIN: the wait is over
                }
                outcome.received.append(contentsOf: buffer[0..<n])
                if let stopWhen, stopWhen(outcome) { break }
            }
            outcome.ended = ContinuousClock.now
            outcome.elapsed = outcome.ended - started
            return outcome
        }
    }
}
