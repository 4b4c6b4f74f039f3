import Backends
import GatewayTestSupport
import NIOCore
import Observability
import Synchronization
import Testing

/// The pick/eject/budget state machine, driven by an explicit clock: no sockets, no sleeps.
@Suite("endpoint balancer: power of two choices, outlier ejection, retry budget")
struct EndpointBalancerTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static func balancer(_ count: Int, failures: Int = 3, percent: Int = 50) -> EndpointBalancer {
        EndpointBalancer(
            endpointCount: count,
            outlierDetection: OutlierDetection(
                consecutiveFailures: failures,
                baseEjection: .seconds(1),
                maxEjection: .seconds(5),
                maxEjectedPercent: percent
            ),
            retryBudget: RetryBudget(percentOfActive: 20, minConcurrent: 3),
            seed: 42
        )
    }

    @Test("of two endpoints, the one with fewer calls in flight is picked")
    func powerOfTwo() {
        let balancer = Self.balancer(2)
        balancer.health[0].outstanding.store(5, ordering: .relaxed)
        for _ in 0..<50 { #expect(balancer.pick(now: Self.start) == 1) }
        balancer.health[1].outstanding.store(9, ordering: .relaxed)
        for _ in 0..<50 { #expect(balancer.pick(now: Self.start) == 0) }
    }

    @Test("picks spread over equally loaded endpoints")
    func spread() {
        let balancer = Self.balancer(4)
        var seen = Set<Int>()
        for _ in 0..<200 { seen.insert(balancer.pick(now: Self.start)) }
        #expect(seen == [0, 1, 2, 3])
    }

    @Test("consecutive failures eject an endpoint; it is not picked until the ejection ends")
    func ejection() {
        let balancer = Self.balancer(2)
        #expect(!balancer.recordFailure(0, now: Self.start))
        #expect(!balancer.recordFailure(0, now: Self.start))
        #expect(balancer.recordFailure(0, now: Self.start))
        for _ in 0..<50 { #expect(balancer.pick(now: Self.start) == 1) }
        let later = Self.start + .milliseconds(999)
        #expect(balancer.isEjected(0, now: later))
        #expect(!balancer.isEjected(0, now: Self.start + .seconds(1)))
    }

    @Test("a success between failures resets the count")
    func successResets() {
        let balancer = Self.balancer(2)
        balancer.recordFailure(0, now: Self.start)
        balancer.recordFailure(0, now: Self.start)
        balancer.recordSuccess(0)
        #expect(!balancer.recordFailure(0, now: Self.start))
        #expect(!balancer.recordFailure(0, now: Self.start))
        #expect(balancer.recordFailure(0, now: Self.start))
    }

    @Test("after an ejection the first failure ejects again, for twice as long, capped at 5 s")
    func backoffDoubles() {
        let balancer = Self.balancer(2)
        var now = Self.start
        for _ in 0..<3 { balancer.recordFailure(0, now: now) }
        var expected: [Int64] = [1, 2, 4, 5, 5]
        expected.removeFirst()
        var length: Int64 = 1
        for next in expected {
            now = now + .seconds(length)  // the ejection just ended
            #expect(!balancer.isEjected(0, now: now))
            #expect(balancer.recordFailure(0, now: now), "one failure on probation ejects again")
            #expect(balancer.isEjected(0, now: now + .seconds(next) - .milliseconds(1)))
            #expect(!balancer.isEjected(0, now: now + .seconds(next)))
            length = next
        }
        // A success ends probation: back to the threshold and the base length.
        now = now + .seconds(length)
        balancer.recordSuccess(0)
        #expect(!balancer.recordFailure(0, now: now))
        #expect(!balancer.recordFailure(0, now: now))
        #expect(balancer.recordFailure(0, now: now))
        #expect(!balancer.isEjected(0, now: now + .seconds(1)))
    }

    @Test("the ejected share is capped, and a pool of several never ejects every endpoint")
    func maxEjected() {
        let two = Self.balancer(2, percent: 100)
        for _ in 0..<3 { two.recordFailure(0, now: Self.start) }
        for _ in 0..<10 { #expect(!two.recordFailure(1, now: Self.start)) }
        #expect(two.isEjected(0, now: Self.start) && !two.isEjected(1, now: Self.start))

        let four = Self.balancer(4, percent: 50)
        for endpoint in 0..<4 {
            for _ in 0..<3 { four.recordFailure(endpoint, now: Self.start) }
        }
        #expect((0..<4).filter { four.isEjected($0, now: Self.start) }.count == 2)

        // A pool's only endpoint is ejected (review 18 F2; it was never, whatever its failures) and still picked.
        let one = Self.balancer(1)
        #expect(!one.recordFailure(0, now: Self.start))
        #expect(!one.recordFailure(0, now: Self.start))
        #expect(one.recordFailure(0, now: Self.start))
        for _ in 0..<7 { #expect(!one.recordFailure(0, now: Self.start)) }
        #expect(one.pick(now: Self.start) == 0)
    }

    /// Review 18 F2: a single-endpoint pool whose runner was down kept `pool_endpoint_available 1` and counted no
    /// ejection, `max_ejected_percent` keeping the last endpoint in. As in Envoy, it is ejected (the gauge follows
    /// `isAvailable`) and calls still go to it (panic mode): routing is unchanged.
    @Test(
        "a pool's only endpoint: ejected after the failures, still picked (panic), available again after the ejection")
    func singleEndpointEjection() {
        let one = Self.balancer(1)
        #expect(one.isAvailable(0, now: Self.start))
        for _ in 0..<2 { one.recordFailure(0, now: Self.start) }
        #expect(one.isAvailable(0, now: Self.start), "two failures of three")
        #expect(one.recordFailure(0, now: Self.start))
        #expect(!one.isAvailable(0, now: Self.start) && !one.hasAvailableEndpoint(now: Self.start))
        for _ in 0..<20 { #expect(one.pick(now: Self.start) == 0) }
        // The ejection's end (1 s): available; the first failure after it ejects again, for 2 s.
        let later = Self.start + .seconds(1)
        #expect(one.isAvailable(0, now: later) && one.hasAvailableEndpoint(now: later))
        #expect(one.recordFailure(0, now: later))
        #expect(!one.isAvailable(0, now: later + .milliseconds(1999)))
        // A success (the runner is back, reached in panic mode) ends the probation, not the ejection under way.
        one.recordSuccess(0)
        #expect(!one.isAvailable(0, now: later + .milliseconds(1999)))
        #expect(one.isAvailable(0, now: later + .seconds(2)))
        #expect(!one.recordFailure(0, now: later + .seconds(2)), "the count starts again after a success")
    }

    @Test("detection off: failures never eject")
    func detectionOff() {
        let balancer = Self.balancer(2, failures: 0)
        for _ in 0..<10 { #expect(!balancer.recordFailure(0, now: Self.start)) }
    }

    @Test("a retry avoids the endpoint it comes from, even when the others are ejected")
    func avoiding() {
        let balancer = Self.balancer(3)
        for _ in 0..<3 { balancer.recordFailure(1, now: Self.start) }
        for _ in 0..<50 { #expect(balancer.pick(avoiding: 0, now: Self.start) == 2) }
        let two = Self.balancer(2)
        for _ in 0..<3 { two.recordFailure(1, now: Self.start) }
        #expect(two.pick(avoiding: 0, now: Self.start) == 1)
    }

    @Test("the retry budget allows a floor of concurrent retries, then 20 % of active calls")
    func retryBudget() {
        let balancer = Self.balancer(2)
        #expect(balancer.beginRetry() && balancer.beginRetry() && balancer.beginRetry())
        #expect(!balancer.beginRetry())
        balancer.endRetry()
        #expect(balancer.beginRetry())
        for _ in 0..<3 { balancer.endRetry() }
        #expect(balancer.retriesInFlightCount == 0)
        balancer.health[0].outstanding.store(50, ordering: .relaxed)
        var granted = 0
        while balancer.beginRetry() { granted += 1 }
        #expect(granted == 10)
    }

    @Test("active health: the verdict flips only after the threshold of results in a row")
    func activeHealthThresholds() {
        var state = ActiveHealthState()
        // Each result, and whether it flipped the verdict.
        func record(_ passed: Bool) -> Bool {
            state.record(passed: passed, healthyThreshold: 2, unhealthyThreshold: 3)
        }
        #expect(state.isHealthy)
        let flips = [false, false, true, false, false, false].map(record)
        #expect(flips == [false, false, false, false, false, true], "a pass breaks the streak of failures")
        #expect(!state.isHealthy)
        #expect([true, true].map(record) == [false, true])
        #expect(state.isHealthy)
    }

    @Test("an endpoint failing its active health check is not picked; with none healthy, any is")
    func activelyUnhealthyNotPicked() {
        let balancer = Self.balancer(3)
        balancer.setActivelyHealthy(0, false)
        for _ in 0..<50 { #expect(balancer.pick(now: Self.start) != 0) }
        #expect(!balancer.isAvailable(0, now: Self.start))
        balancer.setActivelyHealthy(1, false)
        balancer.setActivelyHealthy(2, false)
        var seen = Set<Int>()
        for _ in 0..<100 { seen.insert(balancer.pick(now: Self.start)) }
        #expect(seen == [0, 1, 2])
        balancer.setActivelyHealthy(0, true)
        for _ in 0..<50 { #expect(balancer.pick(now: Self.start) == 0) }
    }

    @Test(
        "a pool has an available endpoint unless every one is ejected or failing its health check (what async claims follow)"
    )
    func hasAvailableEndpoint() {
        let balancer = Self.balancer(2, percent: 50)
        #expect(balancer.hasAvailableEndpoint(now: Self.start))
        // Ejection never empties a pool: the second endpoint's failures do not eject it.
        for _ in 0..<3 { balancer.recordFailure(0, now: Self.start) }
        for _ in 0..<3 { balancer.recordFailure(1, now: Self.start) }
        #expect(balancer.isEjected(0, now: Self.start) && !balancer.isEjected(1, now: Self.start))
        #expect(balancer.hasAvailableEndpoint(now: Self.start))
        // The one left fails its health check: none available, until the ejection ends.
        balancer.setActivelyHealthy(1, false)
        #expect(!balancer.hasAvailableEndpoint(now: Self.start))
        #expect(balancer.hasAvailableEndpoint(now: Self.start + .seconds(1)))
        // A single endpoint with no health check: unavailable while ejected (review 18 F2; before, always available).
        let single = Self.balancer(1)
        for _ in 0..<10 { single.recordFailure(0, now: Self.start) }
        #expect(!single.hasAvailableEndpoint(now: Self.start))
        #expect(single.hasAvailableEndpoint(now: Self.start + .seconds(1)))
        single.setActivelyHealthy(0, false)
        #expect(!single.hasAvailableEndpoint(now: Self.start + .seconds(1)))
    }

    /// Review 26 M6: between ejections the gauge read 1 while a pool's only runner stayed down (an ejection lasts
    /// at most 5 s; the calls after it fail and eject again), so `pool_endpoint_available == 0` never held for a
    /// `for:` and a 15 s scrape often missed it. An endpoint past its ejection is being probed, not available: the
    /// gauge stays 0 until a call to it succeeds. Picking is unchanged: the probe call goes to it.
    @Test("the available gauge: 0 from an ejection, past its end and a failed probe call, until a call succeeds")
    func availableGaugeUntilAnswered() throws {
        let gateway = GatewayMetrics()
        let endpoint = "127.0.0.1:9"
        let one = EndpointBalancer(
            endpointCount: 1, outlierDetection: .defaults, retryBudget: .defaults, seed: 42, poolName: "p",
            endpointNames: [endpoint], metrics: gateway.pool("p", endpoints: [endpoint]))
        func gauge(_ now: NIODeadline) -> Double? {
            one.collectMetrics(now: now)
            return Exposition(String(decoding: gateway.scrape(), as: UTF8.self)).samples[
                #"trigger_gateway_pool_endpoint_available{pool="p",endpoint="\#(endpoint)"}"#]
        }
        #expect(gauge(Self.start) == 1)
        for _ in 0..<3 { one.recordFailure(0, now: Self.start) }
        #expect(gauge(Self.start) == 0, "ejected for 1 s")
        // The ejection is over: picked again, and async claims resume (a claim is the probe), but not shown available.
        let over = Self.start + .seconds(1)
        #expect(one.isAvailable(0, now: over) && one.hasAvailableEndpoint(now: over) && one.pick(now: over) == 0)
        #expect(gauge(over) == 0, "being probed, not available")
        #expect(gauge(over + .seconds(3600)) == 0, "however long no call comes")
        // The probe call fails: ejected again at once (probation), for 2 s; still 0 after that ejection too.
        let probe = over + .seconds(10)
        #expect(one.recordFailure(0, now: probe))
        #expect(gauge(probe + .milliseconds(1999)) == 0)
        #expect(gauge(probe + .seconds(2)) == 0)
        // A call succeeds: 1.
        let back = probe + .seconds(3)
        one.recordSuccess(0, now: back)
        #expect(gauge(back) == 1)
        #expect(try promtoolFindings(String(decoding: gateway.scrape(), as: UTF8.self)) == "")
    }

    @Test(
        "a success during an ejection (a pool's only endpoint, still called): the gauge reads 1 when the ejection ends")
    func successDuringEjection() {
        let one = Self.balancer(1)
        for _ in 0..<3 { one.recordFailure(0, now: Self.start) }
        one.recordSuccess(0, now: Self.start + .milliseconds(500))
        #expect(!one.isShownAvailable(0, now: Self.start + .milliseconds(999)), "the ejection under way stands")
        #expect(one.isShownAvailable(0, now: Self.start + .seconds(1)))
        // Of several endpoints, a passed health probe counts as the answer (without resetting the backoff).
        let two = Self.balancer(2)
        for _ in 0..<3 { two.recordFailure(0, now: Self.start) }
        let over = Self.start + .seconds(1)
        #expect(!two.isShownAvailable(0, now: over) && two.isShownAvailable(1, now: over))
        two.probePassed(0, now: over)
        #expect(two.isShownAvailable(0, now: over))
        #expect(two.recordFailure(0, now: over), "still on probation: the first failure ejects again")
        #expect(!two.isShownAvailable(0, now: over + .seconds(2)), "and it is out again until the next answer")
    }
}
