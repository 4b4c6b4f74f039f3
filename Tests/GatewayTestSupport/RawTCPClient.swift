import Foundation

/// Sends raw bytes and reads what comes back until the peer closes, the timeout passes, or `until` says what has
/// arrived is all the test needs (a kept-alive connection stays open: without it, each exchange lasts the whole
/// timeout): for malformed requests no well-behaved client would send. Blocking sockets are fine here: tests only,
/// off the loops.
package enum RawTCPClient {
    package static func exchange(
        port: Int,
        sending chunks: [[UInt8]],
        pauseBetweenChunks: Duration = .zero,
        timeout: Duration = .seconds(5),
        until enough: @escaping @Sendable ([UInt8]) -> Bool = { _ in false }
    ) async throws -> [UInt8] {
        try await blocking {
            try exchangeBlocking(
                port: port, sending: chunks, pauseBetweenChunks: pauseBetweenChunks, timeout: timeout, until: enough)
        }
    }

    private static func exchangeBlocking(
        port: Int,
        sending chunks: [[UInt8]],
        pauseBetweenChunks: Duration,
        timeout: Duration,
        until enough: ([UInt8]) -> Bool
    ) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        for chunk in chunks {
            _ = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // The client's pace between chunks is the behaviour under test (a slow sender), not a wait.
            if pauseBetweenChunks > .zero {
                let (seconds, attoseconds) = pauseBetweenChunks.components
                usleep(useconds_t(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
            }
        }
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received.append(contentsOf: buffer[0..<n])
            if enough(received) { break }
        }
        return received
    }
}
