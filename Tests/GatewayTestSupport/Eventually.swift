/// Waits for a condition the test can observe instead of sleeping a fixed time and hoping: polls
/// `condition` every `interval` until it holds or `limit` has passed, and returns whether it held.
///
/// `limit` is a generous bound for a loaded 2-core machine, not the expected wait: the call returns as soon
/// as the condition holds. Use it for states only visible by looking (a counter, a balancer's view, a
/// socket count); prefer a continuation or a log line when the code under test can signal the event.
package func eventually(
    within limit: Duration,
    interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + limit
    while clock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}
