import Backends
import Clocks
import NIOCore
import Synchronization
import Testing

/// The active health checker's rounds on a manual clock: each round waits for `interval` on the clock it is
/// given, so the test steps rounds by advancing it (the interval is an hour: a checker sleeping on the wall
/// clock would never reach the second round within the time limit).
@Suite("active health checker: rounds on an injected clock")
struct ActiveHealthCheckerTests {
    @Test(
        "a failing endpoint is taken out after unhealthyThreshold rounds and back after healthyThreshold",
        .timeLimit(.minutes(1))
    )
    func thresholdsOnManualClock() async {
        let interval = Duration.seconds(3600)
        let clock = TestClock()
        let balancer = EndpointBalancer(endpointCount: 2, outlierDetection: .defaults, retryBudget: .defaults)
        let check = HealthCheckConfiguration(
            interval: .seconds(3600), timeout: .seconds(1), healthyThreshold: 2, unhealthyThreshold: 2)
        let failing = Atomic(true)
        let rounds = Atomic(0)
        let checker = ActiveHealthChecker.start(check, balancer: balancer, clock: clock) { index in
            // The answer is fixed before the round is counted: a test that sees the count has seen the answer.
            let passed = index == 1 || !failing.load(ordering: .sequentiallyConsistent)
            if index == 0 { rounds.add(1, ordering: .sequentiallyConsistent) }
            return passed
        }
        defer { checker.cancel() }

        /// Steps the clock until round `n` has started: then round `n - 1` has been recorded (a round's
        /// results are recorded before its wait). Advancing by a whole interval while the checker is not yet
        /// waiting only moves `now`; its wait then ends at the next advance.
        func reachRound(_ n: Int) async {
            while rounds.load(ordering: .sequentiallyConsistent) < n {
                await clock.advance(by: interval)
                await Task.yield()
            }
        }

        // Round 1 runs at start, without the clock; round 2 only when the clock has moved an interval.
        await reachRound(2)
        #expect(balancer.isAvailable(0), "one failed probe is below the threshold of 2")
        await reachRound(3)
        #expect(!balancer.isAvailable(0), "two failed probes in a row take it out")
        #expect(balancer.isAvailable(1))

        failing.store(false, ordering: .sequentiallyConsistent)
        await reachRound(4)
        #expect(!balancer.isAvailable(0), "one passed probe is below the threshold of 2")
        await reachRound(5)
        #expect(balancer.isAvailable(0), "two passed probes in a row bring it back")
    }
}
