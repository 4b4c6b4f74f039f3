import Synchronization
package import TriggerModel

extension DemoPipelines {
    /// Counts runs that stopped because their task was cancelled, and lets a test wait for the count to
    /// reach a value instead of sleeping and hoping (cancellation arrives on another task, a moment later).
    package final class CancellationProbe: Sendable {
        private struct State {
            var refs: [PipelineRef] = []
            var waiters: [(target: Int, continuation: CheckedContinuation<Void, Never>)] = []
        }

        private let state = Mutex(State())
        private let onRecord: (@Sendable (PipelineRef) -> Void)?

        /// - Parameter onRecord: told of each cancellation as it is counted (the `demo-runner` process logs
        ///   it, so a test driving a separate process can see that the cancellation arrived).
        package init(onRecord: (@Sendable (PipelineRef) -> Void)? = nil) {
            self.onRecord = onRecord
        }

        /// How many runs have been cancelled so far.
        package var count: Int { state.withLock { $0.refs.count } }

        /// The refs of the cancelled runs, in the order they stopped.
        package var cancelledRefs: [PipelineRef] { state.withLock { $0.refs } }

        func record(_ ref: PipelineRef) {
            let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.refs.append(ref)
                let count = state.refs.count
                let ready = state.waiters.filter { $0.target <= count }.map(\.continuation)
                state.waiters.removeAll { $0.target <= count }
                return ready
            }
            for continuation in ready { continuation.resume() }
            onRecord?(ref)
        }

        /// Returns once at least `target` runs have been cancelled. Not cancellable itself: bound it with
        /// the test's own time limit.
        package func waitForCount(atLeast target: Int) async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.refs.count >= target { return true }
                    state.waiters.append((target, continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }
}
