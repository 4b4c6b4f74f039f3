import Foundation

/// Runs blocking work (pipe reads, `waitUntilExit`, blocking sockets) on a thread of its own.
///
/// Never on the cooperative pool, and not on Dispatch's global queues either: on Linux those share their
/// width-limited thread pool with the Swift concurrency executor, so a few long blocking reads (a peer that
/// streams for seconds, a slow reader) leave no thread for tasks and `Task.sleep` timers, and the gateway
/// running in the test process stalls (seen with every dispatch thread parked in a pipe read).
package func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
