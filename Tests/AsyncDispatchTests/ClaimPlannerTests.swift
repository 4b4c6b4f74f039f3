@testable import AsyncDispatch
import FoundationEssentials
import OperationStore
import Testing

@Suite("ClaimPlanner: claims no more runs per pool than the pool can take (issue 13, item 6)")
struct ClaimPlannerTests {
    typealias Load = ClaimPlanner.Load

    @Test("knowing no pipeline yet, it claims one operation of any pipeline")
    func discovery() {
        let planner = ClaimPlanner()
        #expect(planner.plan(batch: 64) { _ in nil } == [.init(scope: .all, limit: 1)])
    }

    @Test("a known pool's free slots: min(max − own runs, max − slots in use), then discovery excluding known keys")
    func freeSlots() {
        var planner = ClaimPlanner()
        planner.claimed(key: "demo/echo", pool: "p")
        planner.claimed(key: "demo/sleep", pool: "p")
        // 4 slots, 2 own runs holding 2 of them.
        var claims = planner.plan(batch: 64) { _ in Load(maxConcurrency: 4, inUse: 2) }
        #expect(
            claims == [
                .init(scope: .only(["demo/echo", "demo/sleep"]), limit: 2),
                .init(scope: .excluding(["demo/echo", "demo/sleep"]), limit: 1),
            ])
        // Sync traffic holds the other two slots: nothing for this pool, only discovery.
        claims = planner.plan(batch: 64) { _ in Load(maxConcurrency: 4, inUse: 4) }
        #expect(claims == [.init(scope: .excluding(["demo/echo", "demo/sleep"]), limit: 1)])
        // Own runs waiting for slots count too, even while the limiter shows free ones.
        planner.claimed(key: "demo/echo", pool: "p")
        planner.claimed(key: "demo/echo", pool: "p")
        claims = planner.plan(batch: 64) { _ in Load(maxConcurrency: 4, inUse: 1) }
        #expect(claims == [.init(scope: .excluding(["demo/echo", "demo/sleep"]), limit: 1)])
        planner.finished(pool: "p")
        claims = planner.plan(batch: 64) { _ in Load(maxConcurrency: 4, inUse: 1) }
        #expect(claims.first == .init(scope: .only(["demo/echo", "demo/sleep"]), limit: 1))
    }

    @Test("the batch bounds each claim (free workers are applied by the caller as claims return), pools in name order")
    func bounds() {
        var planner = ClaimPlanner()
        planner.claimed(key: "x/a", pool: "a")
        planner.finished(pool: "a")
        planner.claimed(key: "x/b", pool: "b")
        planner.finished(pool: "b")
        let loads = ["a": Load(maxConcurrency: 100, inUse: 0), "b": Load(maxConcurrency: 100, inUse: 0)]
        #expect(
            planner.plan(batch: 64) { loads[$0] } == [
                .init(scope: .only(["x/a"]), limit: 64), .init(scope: .only(["x/b"]), limit: 64),
                .init(scope: .excluding(["x/a", "x/b"]), limit: 1),
            ])
    }

    @Test(
        """
        pipelines no route serves are not claimed (they wait for a reload, review 18 F8) nor rediscovered until \
        forgetRoutes; a pool gone from the config is skipped
        """)
    func unroutableAndGone() {
        var planner = ClaimPlanner()
        planner.claimed(key: "x/nowhere", pool: nil)
        planner.claimed(key: "x/old", pool: "removed")
        let claims = planner.plan(batch: 64) { _ in nil }
        #expect(claims == [.init(scope: .excluding(["x/nowhere", "x/old"]), limit: 1)])
        #expect(planner.outstanding == ["removed": 1])
        #expect(planner.unrouted == ["x/nowhere"])
        planner.forgetRoutes()
        #expect(planner.unrouted.isEmpty)
        #expect(planner.plan(batch: 64) { _ in nil } == [.init(scope: .all, limit: 1)])
    }

    @Test("without discover, no discovery claim once a key is known; knowing none, the claim of any pipeline stays")
    func discoverySkipped() {
        var planner = ClaimPlanner()
        #expect(planner.plan(batch: 64, discover: false) { _ in nil } == [.init(scope: .all, limit: 1)])
        planner.claimed(key: "x/a", pool: "a")
        #expect(planner.knows("x/a") && !planner.knows("x/b"))
        let load = Load(maxConcurrency: 8, inUse: 0)
        #expect(planner.plan(batch: 64, discover: false) { _ in load } == [.init(scope: .only(["x/a"]), limit: 7)])
        let claims = planner.plan(batch: 64, discover: true) { _ in load }
        #expect(claims == [.init(scope: .only(["x/a"]), limit: 7), .init(scope: .excluding(["x/a"]), limit: 1)])
        #expect(claims.map(\.isDiscovery) == [false, true])
    }

    @Test("pipelines queued between two claim rounds: up to the bound listed; past it, a new one marks the overflow")
    func queuedPipelinesBound() {
        let bound = AsyncOperations.maxQueuedPipelines
        var queued = AsyncOperations.QueuedPipelines()
        for index in 0..<bound { queued.insert("x/p\(index)") }
        #expect(queued.keys.count == bound && !queued.overflowed)
        queued.insert("x/p0")
        #expect(!queued.overflowed, "a key already listed is no news")
        queued.insert("x/new")
        #expect(queued.overflowed && queued.keys.count == bound && !queued.keys.contains("x/new"))
    }

    @Test("a reload forgets every key's pool but keeps counting the runs in progress")
    func reload() {
        var planner = ClaimPlanner()
        planner.claimed(key: "x/a", pool: "a")
        planner.forgetRoutes()
        #expect(planner.poolOfKey.isEmpty)
        #expect(planner.outstanding == ["a": 1])
        #expect(planner.plan(batch: 64) { _ in nil } == [.init(scope: .all, limit: 1)])
        planner.finished(pool: "a")
        #expect(planner.outstanding.isEmpty)
    }

    @Test("the remembered keys are bounded: past the bound the planner starts over")
    func boundedKeys() {
        var planner = ClaimPlanner()
        for i in 0..<ClaimPlanner.maxKnownKeys { planner.claimed(key: "x/\(i)", pool: "p") }
        #expect(planner.poolOfKey.count == ClaimPlanner.maxKnownKeys)
        planner.claimed(key: "x/0", pool: "p")  // known: no reset
        #expect(planner.poolOfKey.count == ClaimPlanner.maxKnownKeys)
        planner.claimed(key: "x/new", pool: "p")
        #expect(planner.poolOfKey.count == 1)
    }

    @Test("a pool with no available endpoint (all ejected or failing health checks) gets no claim until one is back")
    func unavailablePool() {
        var planner = ClaimPlanner()
        planner.claimed(key: "x/a", pool: "a")
        planner.finished(pool: "a")
        let down = planner.plan(batch: 64) { _ in Load(maxConcurrency: 4, inUse: 0, reachable: false) }
        #expect(down == [.init(scope: .excluding(["x/a"]), limit: 1)])
        let up = planner.plan(batch: 64) { _ in Load(maxConcurrency: 4, inUse: 0, reachable: true) }
        #expect(up.first == .init(scope: .only(["x/a"]), limit: 4))
    }

    @Test(
        "a pool whose run reached no runner: no claim for the back-off (1 s, growing with the outage to 30 s), then one probe; a reached runner ends it"
    )
    func unreachedPool() throws {
        var planner = ClaimPlanner()
        let start = Date(timeIntervalSince1970: 1_000_000)
        let load = { (_: String) in Load(maxConcurrency: 4, inUse: 0) }
        planner.claimed(key: "x/a", pool: "a")
        planner.claimed(key: "x/b", pool: "b")
        #expect(planner.unreached(pool: "a", now: start) == start.addingTimeInterval(1))
        planner.finished(pool: "a")
        planner.finished(pool: "b")
        #expect(planner.nextProbe(after: start) == start.addingTimeInterval(1))
        // Once it is due it is no longer a time to wake at (the loop would spin on it).
        #expect(planner.nextProbe(after: start.addingTimeInterval(1)) == nil)
        // Just before its end: pool b only.
        var claims = planner.plan(batch: 64, now: start.addingTimeInterval(0.999), load: load)
        #expect(claims.prefix(1) == [.init(scope: .only(["x/b"]), limit: 4)])
        #expect(!claims.contains { $0.scope == .only(["x/a"]) })
        // At its end: one probe.
        claims = planner.plan(batch: 64, now: start.addingTimeInterval(1), load: load)
        #expect(claims.first == .init(scope: .only(["x/a"]), limit: 1))
        // While the probe runs, nothing more.
        planner.claimed(key: "x/a", pool: "a")
        claims = planner.plan(batch: 64, now: start.addingTimeInterval(2), load: load)
        #expect(!claims.contains { $0.scope == .only(["x/a"]) })
        // Refused again 10 s into the outage: 5 s more (half the outage); 100 s in: the 30 s cap.
        #expect(planner.unreached(pool: "a", now: start.addingTimeInterval(10)) == start.addingTimeInterval(15))
        #expect(planner.unreached(pool: "a", now: start.addingTimeInterval(100)) == start.addingTimeInterval(130))
        planner.finished(pool: "a")
        #expect(planner.plan(batch: 64, now: start.addingTimeInterval(129.9), load: load).count == 2)
        // The runner answered: all slots again.
        planner.reached(pool: "a")
        #expect(planner.nextProbe(after: start) == nil)
        claims = planner.plan(batch: 64, now: start.addingTimeInterval(129.9), load: load)
        #expect(claims.first == .init(scope: .only(["x/a"]), limit: 4))
        // A reload forgets outages (its endpoints may be fixed).
        planner.unreached(pool: "a", now: start)
        planner.forgetRoutes()
        #expect(planner.outages.isEmpty)
    }
}
