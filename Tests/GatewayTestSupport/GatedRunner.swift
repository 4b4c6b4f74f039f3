import Synchronization
package import TriggerModel

/// A backend runner whose runs start, report that they started, and finish only when the test opens the
/// gate: how a test holds a call in flight across an event (a reload, a shutdown) without sleeping.
package final class GatedRunner: TriggerRunner {
    private struct State {
        var started = 0
        var open = false
        var startWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var gateWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    package init() {}

    /// Waits until `count` runs have started.
    package func waitForStarts(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { s in
                if s.started >= count { return true }
                s.startWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Waits until a run has started; returns false instead when `call` ends first (the request never reached
    /// the backend), so a test reports that rather than waiting forever.
    package func waitForStart<T: Sendable>(orEndOf call: Task<T, any Error>) async -> Bool {
        // The watcher outlives this call when a run starts first; it ends with the call.
        Task {
            _ = try? await call.value
            self.releaseStartWaiters()
        }
        await waitForStarts(1)
        return state.withLock { $0.started >= 1 }
    }

    private func releaseStartWaiters() {
        let waiters = state.withLock { s in
            defer { s.startWaiters = [] }
            return s.startWaiters
        }
        for waiter in waiters { waiter.continuation.resume() }
    }

    /// Lets every waiting and future run finish.
    package func open() {
        let waiters = state.withLock { s in
            s.open = true
            defer { s.gateWaiters = [] }
            return s.gateWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func started() async {
        let ready = state.withLock { s in
            s.started += 1
            let ready = s.startWaiters.filter { $0.count <= s.started }
            s.startWaiters.removeAll { $0.count <= s.started }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
        await withCheckedContinuation { continuation in
            let open = state.withLock { s in
                if s.open { return true }
                s.gateWaiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        await started()
        return TriggerResult(outputs: request.inputs.map(\.variables))
    }

    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                await self.started()
                continuation.yield(.end(TriggerResult(outputs: request.inputs.map(\.variables))))
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
