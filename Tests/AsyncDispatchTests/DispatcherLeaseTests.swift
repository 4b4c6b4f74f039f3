@testable import AsyncDispatch
import FoundationEssentials
import GatewayConfig
import GatewayTestSupport
import Observability
import OperationStore
import Testing
import TriggerModel

/// Leases after a store outage (review 25 H1), the losing side of a takeover, and an operation whose every run lost
/// its lease (review 25 L1, L2, I2).
extension DispatcherTimeTests {
    /// A 30 s lease (renewed at 10, 20, 30 s…), claims polled every second, retries an hour apart.
    static func leaseSettings(maxAttempts: Int = 3) -> StoreConfiguration {
        StoreConfiguration(
            lease: .seconds(30), maxAttempts: maxAttempts, retryBackoff: hour, maxRetryBackoff: hour, workers: 4,
            pollInterval: .seconds(1))
    }

    /// Review 25 H1: a store outage longer than the lease left every lease expired, and the first claim after it
    /// took over the runs still in progress on their living owners (8 of 12 ran twice in the review's run). Now this
    /// instance takes over other owners' expired leases only a lease period after the store answered it again; the
    /// living owner renews meanwhile and its run is not repeated, a dead owner's run is taken over then, and queued
    /// operations are claimed all along. PostgreSQL: a SQLite store has no other owners.
    @Test(
        "after a store outage longer than the lease, other owners' expired leases are taken over only a lease period after the store answers again: a living owner's run is not repeated, a dead one's is taken over then",
        .timeLimit(.minutes(1)))
    func takeoversWaitALeaseAfterAnOutage() async throws {
        let time = VirtualTime()
        try await withRecordingStore(.postgres, now: time.wallClock) { store in
            let metrics = GatewayMetrics()
            let lease = Duration.seconds(30)
            var claimedElsewhere: [String] = []
            for owner in ["gw-alive.1/1", "gw-dead.1/1"] {
                let id = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil).operation.id
                let claimed = try await store.claim(owner: owner, leaseDuration: lease, limit: 1, now: time.wallClock())
                #expect(claimed.map(\.id) == [id])
                claimedElsewhere.append(id)
            }
            let (alive, dead) = (claimedElsewhere[0], claimedElsewhere[1])
            let runner = ScriptedRunner()
            let settings = Self.leaseSettings()
            let instance = DispatcherInstance(
                store: store, settings: settings, runner: runner, clock: time, now: time.wallClock, metrics: metrics)
            let sleepers = Self.idle + 1
            #expect(await time.settle(sleepers: sleepers))
            // The outage, from 0 to 40 s: both leases expire unrenewed (at 30 s).
            store.isUnreachable = true
            await Self.stepSeconds(40, of: time, settlingOn: sleepers)
            store.isUnreachable = false
            let back = time.wallClock()
            // The claims of the next seconds find both leases expired and take neither; the living owner renews its
            // expired lease once it reaches the store too (2 s later), and an operation queued meanwhile runs.
            await Self.stepSeconds(2, of: time, settlingOn: sleepers)
            #expect(
                try await store.renewLease(
                    id: alive, owner: "gw-alive.1/1", leaseDuration: lease, now: time.wallClock()))
            let queued = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil).operation.id
            #expect(
                try await Self.step(time, by: .seconds(1), settlingOn: sleepers, atMost: 5, quiet: store) {
                    try await store.get(id: queued)?.state == .succeeded
                })
            // Up to a lease after the store answered again: the dead owner's lease is not taken over yet.
            await Self.stepSeconds(Int((back + 29).timeIntervalSince(time.wallClock())), of: time, settlingOn: sleepers)
            #expect(try await store.get(id: dead)?.leaseOwner == "gw-dead.1/1")
            let afterOutage = store.claims.filter {
                $0.now >= back && $0.now < back + 29 && $0.owner.hasPrefix(instance.dispatcher.instanceID)
            }
            #expect(!afterOutage.isEmpty)
            #expect(afterOutage.allSatisfy { if case .guarded(_, false) = $0.takeover { true } else { false } })
            // The living owner renews every third of a lease.
            #expect(
                try await store.renewLease(
                    id: alive, owner: "gw-alive.1/1", leaseDuration: lease, now: time.wallClock()))
            // A lease after: taken over and run here, once; the renewed lease is still its owner's.
            #expect(
                try await Self.step(time, by: .seconds(1), settlingOn: sleepers, atMost: 5, quiet: store) {
                    try await store.get(id: dead)?.state == .succeeded
                })
            #expect(try await store.get(id: alive)?.leaseOwner == "gw-alive.1/1", "a living owner's run taken over")
            #expect(runner.runs("echo") == 2, "the queued operation and the dead owner's, not the living owner's")
            #expect(Self.sample(metrics, "trigger_gateway_async_lease_takeovers_total") == 1)
            await instance.stop()
        }
    }

    /// Review 25 L2: the give-up answered "gave up after 2 attempts" while the operation's attempts said 3 (the claim
    /// that gave up counted one, with no backend call), and no line said why.
    @Test(
        "an operation whose every run lost its lease gives up with the count its attempts say, and one warning says the leases were lost",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func gaveUpAfterLostLeases(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let id = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil).operation.id
            let start = time.wallClock()
            // Two runs elsewhere, each of which lost its lease (the second took the first's over).
            #expect(
                try await store.claim(owner: "gw-dead.1/1", leaseDuration: .seconds(30), limit: 1, now: start).count
                    == 1)
            #expect(
                try await store.claim(owner: "gw-dead.1/2", leaseDuration: .seconds(30), limit: 1, now: start + 30)
                    .count == 1)
            let log = RecordedLog()
            let runner = ScriptedRunner()
            let settings = Self.leaseSettings(maxAttempts: 2)
            let instance = DispatcherInstance(
                store: store, settings: settings, runner: runner, clock: time, now: time.wallClock, log: log)
            #expect(await time.settle(sleepers: Self.idle))
            // The second lease ends at 60 s: this instance's claim takes it (a third claim) and gives up.
            #expect(
                try await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 70, quiet: store) {
                    try await store.get(id: id)?.state == .failed
                })
            let failed = try #require(try await store.get(id: id))
            #expect(failed.error?.code == .deadlineExceeded)
            #expect(failed.error?.message == "operation gave up after 2 attempts (each run lost its lease)")
            #expect(failed.attempts == 2, "the giving-up claim made no backend call")
            #expect(runner.runs("echo") == 0)
            let warnings = log.lines.filter { $0.message == "operation gave up: each of its runs lost its lease" }
            #expect(warnings.count == 1)
            #expect(warnings.first?.metadata["operation.id"] == id)
            #expect(warnings.first?.metadata["operation.attempts"] == "2")
            #expect(warnings.first?.metadata["lease.previous_owner"] == "gw-dead.1/2")
            await instance.stop()
        }
    }

    /// Review 25 I2 and L1: a run here whose lease another instance took over was logged at info only and counted
    /// nowhere; and while the store could not be reached, each run's failed renewal was a warning every third of a
    /// lease (a flood in an outage).
    @Test(
        "runs whose leases another instance took over are counted in async_leases_lost_total and warned once each; failed renewals warn once a minute for all runs",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func lostLeasesAreCountedAndRenewalFailuresRateLimited(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let metrics = GatewayMetrics()
            let log = RecordedLog()
            let runner = ScriptedRunner()
            let settings = Self.leaseSettings()
            let instance = DispatcherInstance(
                store: store, settings: settings, runner: runner, clock: time, now: time.wallClock, metrics: metrics,
                log: log)
            let sleepers = Self.idle + 1
            let ids = [
                try await instance.operations.submit(asyncRequest("hang")).id,
                try await instance.operations.submit(asyncRequest("hang")).id,
            ]
            #expect(await eventually(within: .seconds(20)) { runner.runs("hang") == 2 })
            #expect(await time.settle(sleepers: sleepers))
            // This instance loses the store (another instance still reaches it, below: `base`).
            store.isUnreachable = true
            let storeLost = time.wallClock()
            let renewalWarnings = { log.lines.filter { $0.message == "lease renewal failed" } }
            // Renewals at 10, 20 and 30 s fail, two each: one line, at 10 s.
            await Self.stepSeconds(31, of: time, settlingOn: sleepers)
            #expect(renewalWarnings().count == 1)
            #expect(renewalWarnings().first?.metadata["renewals.held_back"] == nil)
            // Another instance takes both expired leases over (for an hour).
            let taken = try await store.base.claim(
                owner: "gw-other.1/1", leaseDuration: .seconds(3600), limit: 2, now: time.wallClock())
            #expect(Set(taken.map(\.id)) == Set(ids))
            // At 60 s still held back (50 s after the line); at 70 s the next line with the 10 held back since.
            await Self.stepSeconds(29, of: time, settlingOn: sleepers)
            #expect(renewalWarnings().count == 1)
            await Self.stepSeconds(10, of: time, settlingOn: sleepers)
            #expect(renewalWarnings().count == 2)
            #expect(renewalWarnings().last?.metadata["renewals.held_back"] == "11")
            // Since the first of them: the other run's renewal at 10 s, right after the line (review 26, L1).
            #expect(
                renewalWarnings().last?.metadata["renewals.held_back_since"]
                    == RFC3339.format(milliseconds: (storeLost + 10).storeMilliseconds))
            #expect(Self.sample(metrics, "trigger_gateway_async_leases_lost_total") == 0)
            // The store answers again: the next renewals (80 s) find the leases gone and stop both runs.
            store.isUnreachable = false
            // Each step waits for the store's calls in flight too (as this file's other steps): a renewal still
            // answering when the next second was stepped was seen to lose one run's lease-lost report (CI, once).
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: sleepers, atMost: 15, quiet: store) {
                    Self.sample(metrics, "trigger_gateway_async_leases_lost_total") == 2
                })
            let lost = log.lines.filter { $0.message == "operation lease lost; run stopped, result dropped" }
            #expect(Set(lost.compactMap { $0.metadata["operation.id"] }) == Set(ids))
            #expect(lost.count == 2, "once per run")
            #expect(Self.sample(metrics, "trigger_gateway_async_lease_takeovers_total") == 0)
            #expect(try promtoolFindings(String(decoding: metrics.scrape(), as: UTF8.self)) == "")
            await instance.stop()
        }
    }
}
