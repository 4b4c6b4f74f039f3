package import FoundationEssentials

/// Where the scheduler reads wall-clock time and waits for the next tick. Injected so tests drive ticks with
/// a `ManualSchedulerClock` instead of sleeping through minutes.
package protocol SchedulerClock: Sendable {
    /// Wall-clock time: cron ticks are wall-clock instants, not monotonic ones.
    var now: Date { get }

    /// Returns at `deadline` at the latest, earlier when `wake` is signalled or the task is cancelled.
    func wait(until deadline: Date, wake: WakeSignal) async
}

/// The system's wall clock. A wait is cut into slices of at most `maximumSlice`, so a clock stepped by NTP (or
/// a host resumed from suspension) is noticed within one slice rather than at a deadline computed before.
package struct SystemSchedulerClock: SchedulerClock {
    package static let maximumSlice = Duration.seconds(30)

    package init() {}

    package var now: Date { Date() }

    package func wait(until deadline: Date, wake: WakeSignal) async {
        let remaining = deadline.timeIntervalSince(Date())
        guard remaining > 0 else { return }
        await wake.wait(timeout: min(.milliseconds(Int64((remaining * 1000).rounded(.up))), Self.maximumSlice))
    }
}
