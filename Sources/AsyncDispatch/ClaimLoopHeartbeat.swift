import Synchronization

/// What the async dispatcher's claim-loop watch needs from its owner (review 26 H1): how long the loop may go
/// without a step before it counts as stalled, and whom to tell.
///
/// A claim loop inside a store call that never returns (neither rows nor an error) stops every claim of its
/// instance while the health probe, the queue count and the frontends go on: the instance stayed ready and kept
/// accepting async triggers no one here would run. The watch makes that visible (a warning, async readiness
/// NOT_SERVING) at `bound`.
package struct ClaimLoopWatch: Sendable {
    /// The longest the claim loop may go between two steps (`AsyncDispatcher.stallBound`); at exactly this long
    /// without one it counts as stalled.
    package var bound: Duration
    /// Called from the watch when the loop stalls (with `bound`), and from the loop itself with nil at its first
    /// step after a stall. Calls alternate, starting with a stall.
    package var report: @Sendable (_ stalledFor: Duration?) -> Void

    package init(bound: Duration, report: @escaping @Sendable (_ stalledFor: Duration?) -> Void) {
        self.bound = bound
        self.report = report
    }
}

/// When the claim loop last made a step, on the dispatcher's clock, and whether the watch has declared it stalled.
/// A step is a claim answered or failed, another store call of the loop ended, or a round with nothing to claim.
final class ClaimLoopHeartbeat: Sendable {
    /// Time on the dispatcher's clock since the dispatcher was made.
    private let sinceStart: @Sendable () -> Duration
    private let state: Mutex<(beatAt: Duration, stalled: Bool)>
    /// `ClaimLoopWatch.report`, called under the lock: a stall and the recovery that follows it are reported in
    /// the order they happened, whichever tasks see them.
    private let report: (@Sendable (_ stalledFor: Duration?) -> Void)?
    /// Signalled by the first step after a stall, so that the watch starts timing again at once.
    let recovered = WakeSignal()

    /// `report`: nil when nobody watches (the heartbeat then only times the steps).
    init(sinceStart: @escaping @Sendable () -> Duration, report: (@Sendable (Duration?) -> Void)?) {
        self.sinceStart = sinceStart
        self.report = report
        state = Mutex((sinceStart(), false))
    }

    /// The loop made a step now. Returns how long it had gone without one when the watch had declared it stalled
    /// (reported as a recovery), else nil.
    func beat() -> Duration? {
        let now = sinceStart()
        let stalledFor: Duration? = state.withLock { state in
            defer { state = (now, false) }
            guard state.stalled else { return nil }
            report?(nil)
            return now - state.beatAt
        }
        if stalledFor != nil { recovered.signal() }
        return stalledFor
    }

    enum Check: Equatable {
        /// Not stalled: look again this much later (when the loop would have gone `bound` without a step).
        case due(in: Duration)
        /// The loop has gone `bound` without a step, as of this check (reported).
        case stalledNow
        /// Declared stalled before; nothing new until its next step.
        case stalled
    }

    /// Whether the loop has gone `bound` without a step (at exactly `bound` it has). The first check that finds it
    /// so reports the stall and answers `stalledNow`; later ones `stalled`, until a step.
    func check(bound: Duration) -> Check {
        let now = sinceStart()
        return state.withLock { state in
            if state.stalled { return .stalled }
            let due = state.beatAt + bound
            if now < due { return .due(in: due - now) }
            state.stalled = true
            report?(bound)
            return .stalledNow
        }
    }
}
