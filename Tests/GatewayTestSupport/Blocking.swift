import Dispatch

/// Runs blocking work (pipe reads, `waitUntilExit`, blocking sockets) on a Dispatch thread.
///
/// Never on the cooperative pool: it has one thread per core, and tests that block it starve the gateway's
/// own tasks in the same process, which then hangs (seen on 2 cores with several peers running at once).
package func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try work() })
        }
    }
}
