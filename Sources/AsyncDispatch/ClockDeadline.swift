/// An instant on an injected clock (`any Clock<Duration>`: the real one, or a test's), fixed when it is made.
///
/// Why not a timeout: a wait given "`d` from now" reads the clock again when its sleep starts, so time that passes
/// between working out `d` and the sleep (a task scheduled late on a loaded machine, or a test's `TestClock` moved in
/// that gap) pushes the wake-up later by as much. The claim loop's next look for new pipelines was once an hour
/// late that way in a test (`DispatcherTimeTests`, "a pipeline new here"): its wait began after the test had moved
/// the clock by 3599 s.
package struct ClockDeadline: Sendable {
    /// The time left until the deadline (negative once it has passed).
    package let remaining: @Sendable () -> Duration
    /// Sleeps until the deadline (returns at once when it is reached or has passed); throws `CancellationError` when
    /// cancelled.
    package let sleep: @Sendable () async throws -> Void
}

extension Clock where Duration == Swift.Duration {
    /// The instant `duration` from now on this clock.
    package func deadline(after duration: Duration) -> ClockDeadline {
        let instant = now.advanced(by: duration)
        return ClockDeadline(
            remaining: { self.now.duration(to: instant) },
            sleep: {
                // Checked here, not left to the clock: swift-clocks' `TestClock` suspends a sleep until the current
                // instant until the clock next moves, so a wait that began just as its deadline was reached never
                // ended (WakeSignalTests, once in a loaded CI run). Real clocks return at once either way.
                guard instant > self.now else { return }
                try await self.sleep(until: instant, tolerance: nil)
            })
    }

    /// The time passed on this clock since the call, each time the returned closure is called: a deadline
    /// loop written once for any clock, the real one or a test's.
    func stopwatch() -> @Sendable () -> Duration {
        let start = now
        return { start.duration(to: self.now) }
    }
}
