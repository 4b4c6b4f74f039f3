/// A FIFO async lock: one holder at a time, waiters resumed in arrival order.
///
/// The SQLite store runs everything on one connection; SQLite's own mutex only serializes single API calls,
/// so a multi-statement transaction (or a write while another statement is still stepping, which would
/// delay its commit) needs this gate around it. The PostgreSQL store uses one to elect the leader of a group
/// commit (`GroupCommit`).
///
/// `public`, with `acquire`, `release` and `holding`: `holding` is `@inlinable` to be specialised in the store
/// that calls it, which needs its body serialised, and Swift 6.3.1 serialises no `@inlinable` member of a
/// `package` type (see `GroupCommit`).
public actor SerialGate {
    public init() {}

    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Callers waiting for the gate (tests order their calls by it).
    package var waiting: Int { waiters.count }

    public func acquire() async {
        if !held {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    public func release() {
        if waiters.isEmpty {
            held = false
        } else {
            // Ownership passes straight to the next waiter; `held` stays true.
            waiters.removeFirst().resume()
        }
    }
}

extension SerialGate {
    /// Runs `body` holding the gate, and releases it whatever `body` does. `@inlinable`: specialised in the store
    /// that calls it, not run through `T`'s value witnesses (issue 12).
    @inlinable public nonisolated func holding<T>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        do {
            let value = try await body()
            await release()
            return value
        } catch {
            await release()
            throw error
        }
    }
}
