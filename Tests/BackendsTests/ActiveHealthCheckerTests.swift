import Backends
import Clocks
import GatewayTestSupport
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
        // Endpoint 0's probe of each round waits here until the test has looked: round n's results are not
        // recorded while the test checks what round n - 1 left.
        let gate = TestGate()
        let checker = ActiveHealthChecker.start(check, balancer: balancer, clock: clock) { index in
            guard index == 0 else { return .passed }
            // The answer is fixed before the round is counted: a test that sees the count has seen the answer.
            let passed = !failing.load(ordering: .sequentiallyConsistent)
            rounds.add(1, ordering: .sequentiallyConsistent)
            await gate.pass()
            return passed ? .passed : .failed
        }
        defer {
            checker.cancel()
            gate.open()
        }

        /// Lets held rounds finish one at a time, stepping the clock until the next starts, until round `n` has
        /// started (and is held): rounds before `n` are then recorded (results are recorded before the wait),
        /// round `n` not. A step taken while the checker is not yet waiting only moves `now`; its wait then
        /// ends at a later step.
        func reachRound(_ n: Int) async {
            while true {
                let current = rounds.load(ordering: .sequentiallyConsistent)
                if current >= n { return }
                gate.release()
                while rounds.load(ordering: .sequentiallyConsistent) == current {
                    await clock.advance(by: interval)
                    await Task.yield()
                }
            }
        }

        // Round 1 runs at start, without the clock; round 2 only when the clock has moved an interval.
        while rounds.load(ordering: .sequentiallyConsistent) < 1 { await Task.yield() }
        await reachRound(2)
        #expect(balancer.isAvailable(0), "one failed probe is below the threshold of 2")
        await reachRound(3)
        #expect(!balancer.isAvailable(0), "two failed probes in a row take it out")
        #expect(balancer.isAvailable(1))

        // Round 3 was answered (failed) before this; rounds 4 and 5 pass.
        failing.store(false, ordering: .sequentiallyConsistent)
        await reachRound(5)
        #expect(!balancer.isAvailable(0), "one passed probe is below the threshold of 2")
        await reachRound(6)
        #expect(balancer.isAvailable(0), "two passed probes in a row bring it back")
    }
}

extension ActiveHealthCheckerTests {
    /// Review 26 M6: an endpoint past its ejection shows available again once a call or a health probe to it
    /// succeeds; here the probe (a pool with `health_check` and async-only traffic has no calls to tell it).
    @Test("a passed probe of an endpoint past its ejection shows it available again", .timeLimit(.minutes(1)))
    func passedProbeEndsTheOutage() async {
        let balancer = EndpointBalancer(endpointCount: 2, outlierDetection: .defaults, retryBudget: .defaults)
        // Ejected long ago (1 s after boot, for 1 s): over, but not answered since.
        for _ in 0..<3 { balancer.recordFailure(0, now: .uptimeNanoseconds(1_000_000_000)) }
        #expect(balancer.isAvailable(0) && !balancer.isShownAvailable(0))
        let check = HealthCheckConfiguration(
            interval: .seconds(3600), timeout: .seconds(1), healthyThreshold: 2, unhealthyThreshold: 2)
        let probed = Atomic(0)
        let checker = ActiveHealthChecker.start(check, balancer: balancer, clock: TestClock()) { _ in
            probed.add(1, ordering: .sequentiallyConsistent)
            return .passed
        }
        defer { checker.cancel() }
        // The first round runs at once; its results are recorded before the checker sleeps on the clock.
        let shown = await eventually(within: .seconds(30)) { balancer.isShownAvailable(0) }
        #expect(shown, "probes: \(probed.load(ordering: .sequentiallyConsistent))")
    }
}
