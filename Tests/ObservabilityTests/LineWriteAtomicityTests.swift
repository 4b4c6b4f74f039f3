#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import Logging
import Observability
import Synchronization
import Testing

/// Lines longer than PIPE_BUF, logged from several threads into one pipe, come out whole: a pipe write is atomic
/// only up to PIPE_BUF, and a line cut where the pipe filled had another thread's line written into it (review of
/// the fifty-fourth session: an access line's tail, with fields a client wrote into a long path, read as a line of
/// its own).
@Suite("Log lines: whole lines from many threads")
struct LineWriteAtomicityTests {
    @Test(
        "4 threads × 40 lines of 20 KiB into one pipe read slowly: every line is one thread's, whole",
        .timeLimit(.minutes(1)))
    func longLinesStayWhole() async throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        let (readEnd, writeEnd) = (ends[0], ends[1])
        let threads = 4
        let linesEach = 40
        let payload = 20 * 1024
        // The reader takes small reads with a pause, so the pipe fills and the writers' long writes are cut where
        // it does (without the lock, another thread's line then went into the gap). On a thread of its own: a
        // writer holds the process-wide lock while the pipe is full, so another test's log line can block a pool
        // thread on that lock until this reader reads.
        let read = Mutex<[UInt8]>([])
        let reading = DispatchGroup()
        reading.enter()
        Thread.detachNewThread {
            var all: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(readEnd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                all.append(contentsOf: chunk[0..<count])
                usleep(20)
            }
            read.withLock { $0 = all }
            reading.leave()
        }
        // Threads of their own (not the cooperative pool's two): four writers blocked in `write` at once.
        let writers = DispatchGroup()
        for thread in 0..<threads {
            writers.enter()
            Thread.detachNewThread {
                let letter = String(UnicodeScalar(UInt8(ascii: "a") + UInt8(thread)))
                let message = String(repeating: letter, count: payload)
                for _ in 0..<linesEach {
                    LineLogHandler.writeDetachedLine(
                        format: .logfmt, level: .info, label: "t", message: message, metadata: [:], to: writeEnd)
                }
                writers.leave()
            }
        }
        await withCheckedContinuation { done in writers.notify(queue: .global()) { done.resume() } }
        close(writeEnd)
        await withCheckedContinuation { done in reading.notify(queue: .global()) { done.resume() } }
        let bytes = read.withLock { $0 }
        close(readEnd)
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == threads * linesEach)
        var perLetter: [UInt8: Int] = [:]
        for line in lines {
            let text = String(decoding: line, as: UTF8.self)
            guard let range = text.range(of: "msg=") else {
                Issue.record("a line without msg=: \(text.prefix(80))")
                continue
            }
            let message = text[range.upperBound...].utf8
            let whole = message.count == payload && message.allSatisfy { $0 == message.first }
            #expect(whole, "a line cut or mixed: \(text.prefix(120))")
            if whole, let letter = message.first { perLetter[letter, default: 0] += 1 }
        }
        #expect(perLetter.count == threads && perLetter.values.allSatisfy { $0 == linesEach }, "\(perLetter)")
    }
}
