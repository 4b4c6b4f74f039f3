import Synchronization

/// A counting gate: `pass()` waits for a permit, `release()` adds one, `open()` lets everything through (and
/// everything after). How a test holds work at a point and lets it go on without sleeping.
package final class TestGate: Sendable {
    private let state = Mutex<(permits: Int, open: Bool, waiters: [CheckedContinuation<Void, Never>])>((0, false, []))

    package init() {}

    package func pass() async {
        await withCheckedContinuation { continuation in
            let go = state.withLock { state -> Bool in
                if state.open { return true }
                if state.permits > 0 {
                    state.permits -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
    }

    package func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.permits += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }

    package func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
