import NIOCore
import Synchronization

/// A listener's bound address, set once: where it listens (useful with port 0), or why binding failed. Readers
/// wait until it is set, so that ``value()`` never waits forever on a listener that could not start. Shared by the
/// serving listener (``GatewayServer``) and the admin listener (``AdminServer``).
final class BoundAddress: Sendable {
    private let outcome = Mutex<Result<SocketAddress, any Error>?>(nil)
    private let waiting = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])

    /// The address, once the listener is bound; throws the bind's failure.
    func value() async throws -> SocketAddress {
        if let outcome = outcome.withLock({ $0 }) { return try outcome.get() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready: Result<SocketAddress, any Error>? = outcome.withLock { outcome in
                if let outcome { return outcome }
                waiting.withLock { $0.append(continuation) }
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Sets the outcome (once) and wakes every reader.
    func set(_ result: Result<SocketAddress, any Error>) {
        let waiters: [CheckedContinuation<SocketAddress, any Error>] = outcome.withLock { outcome in
            outcome = result
            return waiting.withLock { w in
                defer { w = [] }
                return w
            }
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}
