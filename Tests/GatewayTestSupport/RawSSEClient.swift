import Foundation

/// An HTTP/1.1 SSE client on a plain blocking socket, for what curl cannot be told to do: read in small
/// sips with pauses (a slow reader), or hang up right after the first event. Runs off the cooperative pool.
package enum RawSSEClient {
    package struct Outcome: Sendable {
        /// Bytes received, head included.
        package var received: Int
        /// The first bytes (head and first events) and the last ones, for assertions on either end.
        package var head: [UInt8]
        package var tail: [UInt8]
        package var headString: String { String(decoding: head, as: UTF8.self) }
        package var tailString: String { String(decoding: tail, as: UTF8.self) }
    }

    /// POSTs `json` to `path` asking for SSE and reads until the server closes or ends the chunked body:
    /// first nothing at all for `stall`, then `sip` bytes at a time with `pause` between reads.
    /// `receiveBuffer` shrinks SO_RCVBUF so the kernel holds little on the client side.
    package static func slowRead(
        port: Int,
        path: String,
        json: String,
        stall: Duration,
        sip: Int,
        pause: Duration,
        receiveBuffer: Int32 = 64 << 10,
        timeout: Duration = .seconds(300)
    ) async throws -> Outcome {
        try await blocking {
            let fd = try connectSocket(port: port, receiveBuffer: receiveBuffer)
            defer { close(fd) }
            try sendRequest(fd, path: path, json: json)
            sleep(for: stall)
            var outcome = Outcome(received: 0, head: [], tail: [])
            var buffer = [UInt8](repeating: 0, count: sip)
            let started = ContinuousClock.now
            while ContinuousClock.now - started < timeout {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                outcome.received += n
                if outcome.head.count < 4096 {
                    outcome.head.append(contentsOf: buffer[0..<min(n, 4096 - outcome.head.count)])
                }
                outcome.tail.append(contentsOf: buffer[0..<n])
                if outcome.tail.count > 8192 { outcome.tail.removeFirst(outcome.tail.count - 4096) }
                // The chunked body's last chunk: the stream is over (the connection itself stays open).
                if outcome.tail.count >= 5, Array(outcome.tail.suffix(5)) == Array("0\r\n\r\n".utf8) { break }
                if pause > .zero { sleep(for: pause) }
            }
            return outcome
        }
    }

    /// POSTs `json`, reads until the first complete event whose name is `eventName`, then closes the socket.
    /// Returns what was read and when (wall clock, seconds since 1970) the socket was closed.
    package static func firstEventThenClose(
        port: Int,
        path: String,
        json: String,
        eventName: String,
        timeout: Duration = .seconds(10)
    ) async throws -> (text: String, closedAt: Double) {
        try await blocking {
            let fd = try connectSocket(port: port, receiveBuffer: 0)
            try sendRequest(fd, path: path, json: json)
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            let marker = Array("event: \(eventName)\n".utf8)
            let started = ContinuousClock.now
            while ContinuousClock.now - started < timeout {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                received.append(contentsOf: buffer[0..<n])
                let text = String(decoding: received, as: UTF8.self)
                if let start = text.range(of: String(decoding: marker, as: UTF8.self)),
                    text[start.upperBound...].contains("\n\n")
                {
                    break
                }
            }
            close(fd)
            return (String(decoding: received, as: UTF8.self), Date().timeIntervalSince1970)
        }
    }

    private static func connectSocket(port: Int, receiveBuffer: Int32) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        if receiveBuffer > 0 {
            var size = receiveBuffer
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        return fd
    }

    private static func sendRequest(_ fd: Int32, path: String, json: String) throws {
        let body = Array(json.utf8)
        let head =
            "POST \(path) HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
            + "accept: text/event-stream\r\ncontent-length: \(body.count)\r\n\r\n"
        let bytes = Array(head.utf8) + body
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw POSIXError(.EPIPE) }
    }

    /// The reader's stall and pauses between sips: the slow client is the behaviour under test, not a wait.
    private static func sleep(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let interval = Double(seconds) + Double(attoseconds) / 1e18
        if interval > 0 { Thread.sleep(forTimeInterval: interval) }
    }
}

/// The resident set size of a process, from `/proc/<pid>/status` (`VmRSS`), in bytes.
package func residentBytes(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        return kb.map { $0 * 1024 }
    }
    return nil
}
