import Foundation
import GatewayTestSupport
import Logging
import OperationStore
@testable import PostgresOperationStore
import Testing
import TriggerModel

/// Leases of the PostgreSQL store across instances: judged on the server's clock (review 25 M1), and not taken over
/// from their living owners right after the server comes back from an outage (review 25 H1).
@Suite("PostgreSQL leases: the server's clock, takeovers after an outage")
struct PostgresLeaseTests {
    /// The server's skew is measured within half a round trip: none that small is kept.
    @Test("the server clock's skew: none within half the round trip, the measured one beyond it")
    func serverClockSkew() {
        // Sent at 0, answered at 10: the server read its clock somewhere in between (midpoint 5, half trip 5 + 1).
        #expect(PostgresOperationStore.serverClockSkew(11, sent: 0, received: 10) == 0, "within the trip: none")
        #expect(PostgresOperationStore.serverClockSkew(-1, sent: 0, received: 10) == 0)
        #expect(PostgresOperationStore.serverClockSkew(12, sent: 0, received: 10) == 7, "just beyond it")
        #expect(PostgresOperationStore.serverClockSkew(-2, sent: 0, received: 10) == -7)
        #expect(
            PostgresOperationStore.serverClockSkew(-3_600_000, sent: 0, received: 10) == -3_600_005, "an hour behind")
    }

    /// Review 25 M1: an instance whose clock runs an hour ahead took over every live lease at once (it compared them
    /// with its own clock). Its store measures the server's clock and compares on it.
    @Test(
        "an instance whose clock runs an hour ahead takes over a lease when it expires on the server's clock, not before"
    )
    func clockAheadDoesNotStealLiveLeases() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let operation = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation
            let t0 = Date()
            #expect(
                try await store.claim(owner: "gw-a.1/1", leaseDuration: .seconds(30), limit: 1, now: t0).map(\.id) == [
                    operation.id
                ])
            var ahead = try #require(harness.postgresConfiguration)
            let hour = 3600.0
            ahead.now = { Date() + hour }
            let peer = try await PostgresOperationStore.open(ahead)
            do {
                // Its now is an hour past the lease's end on its clock, 1 s short of it on the server's.
                #expect(
                    try await peer.claim(owner: "gw-b.1/1", leaseDuration: .seconds(30), limit: 1, now: t0 + hour + 29)
                        .isEmpty, "a live lease taken over by a clock an hour ahead")
                let taken = try await peer.claim(
                    owner: "gw-b.1/1", leaseDuration: .seconds(30), limit: 1, now: t0 + hour + 31)
                #expect(taken.map(\.id) == [operation.id])
                #expect(taken.first?.takenOverFrom == "gw-a.1/1")
                // Its renewal is on the server's clock too: the lease ends 30 s after t0 + 31 s there.
                #expect(
                    try await peer.renewLease(
                        id: operation.id, owner: "gw-b.1/1", leaseDuration: .seconds(30), now: t0 + hour + 31))
                #expect(
                    try await store.claim(owner: "gw-a.1/2", leaseDuration: .seconds(30), limit: 1, now: t0 + 60)
                        .isEmpty)
                try await peer.close()
            } catch {
                try? await peer.close()
                throw error
            }
        }
    }

    /// Review 25 H1: after an outage of the server longer than a lease, every lease had expired and the first claim
    /// took over the runs still in progress on their living owners. Now a lease of another owner is taken over only
    /// once the server has been up for a lease period; its owner's renewal meanwhile succeeds, and a dead owner's
    /// run is taken over after that period. Queued operations and this instance's own leases are claimed at once.
    @Test(
        "after a server restart, other owners' expired leases wait a lease period: a living owner renews and keeps its run, a dead one's is taken over then",
        .timeLimit(.minutes(3)), .enabled(if: ThrowawayPostgres.isAvailable))
    func takeoversWaitALeaseAfterARestart() async throws {
        try await ThrowawayPostgres.with { cluster in
            try await cluster.start()
            var configuration = try PostgresOperationStore.Configuration(url: cluster.url())
            configuration.operationTimeout = .seconds(60)
            let store = try await PostgresOperationStore.open(configuration)
            do {
                let lease = Duration.seconds(60)
                var ids: [String] = []
                for _ in 0..<3 {
                    ids.append(try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id)
                }
                // Claimed oldest first, each by its owner.
                let t0 = Date()
                for (id, owner) in zip(ids, ["gw-alive.1/1", "gw-dead.1/1", "gw-b.1/1"]) {
                    #expect(
                        try await store.claim(owner: owner, leaseDuration: lease, limit: 1, now: t0).map(\.id) == [id])
                }
                let (alive, dead, own) = (ids[0], ids[1], ids[2])
                // The outage: the server stops and starts again, after the leases were written.
                try await cluster.stop()
                try await cluster.start()
                // In the claim's milliseconds (the same expression).
                let started = try #require(
                    Int64(
                        try await cluster.psql("SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000)::int8")))
                let upFor = Date(storeMilliseconds: started) + 60
                let queued = try await Self.retrying {
                    try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
                }
                let takeover = LeaseTakeover.guarded(ownPrefix: "gw-b.", others: true)
                // Every lease expired at t0 + 60 s, before the server had been up for 60 s: only the queued operation
                // and this instance's own expired lease are claimed.
                let first = try await store.claim(
                    owner: "gw-b.2/1", leaseDuration: lease, limit: 10, now: t0 + 60, scope: .all, takeover: takeover)
                #expect(Set(first.map(\.id)) == [queued, own])
                #expect(first.first { $0.id == own }?.takenOverFrom == "gw-b.1/1")
                // Just before the server has been up for a lease: still not taken.
                #expect(
                    try await store.claim(
                        owner: "gw-b.2/2", leaseDuration: lease, limit: 10, now: upFor - 0.001, scope: .all,
                        takeover: takeover
                    ).isEmpty)
                // Without the server's uptime, the caller's own gate holds them back too.
                #expect(
                    try await store.claim(
                        owner: "gw-b.2/3", leaseDuration: lease, limit: 10, now: upFor + 1, scope: .all,
                        takeover: .guarded(ownPrefix: "gw-b.", others: false)
                    ).isEmpty)
                // The living owner renews its expired lease, which no one took: it is still its own.
                #expect(try await store.renewLease(id: alive, owner: "gw-alive.1/1", leaseDuration: lease, now: upFor))
                // A lease period after the server's start: the dead owner's lease is taken over, the renewed one not.
                let taken = try await store.claim(
                    owner: "gw-b.2/4", leaseDuration: lease, limit: 10, now: upFor, scope: .all, takeover: takeover)
                #expect(taken.map(\.id) == [dead])
                #expect(taken.first?.takenOverFrom == "gw-dead.1/1")
                #expect(try await store.get(id: alive)?.leaseOwner == "gw-alive.1/1")
                // Once the living owner stops renewing, its lease is taken over when it expires.
                let late = try await store.claim(
                    owner: "gw-b.2/5", leaseDuration: lease, limit: 10, now: upFor + 60, scope: .all,
                    takeover: takeover)
                // (This instance's own leases expire then too, and are taken back.)
                #expect(late.first { $0.id == alive }?.takenOverFrom == "gw-alive.1/1")
                try await store.close()
            } catch {
                try? await store.close()
                throw error
            }
        }
    }

    /// The store's first call after the server came back: the pool reconnects on its own, a refused try first.
    private static func retrying<T>(_ body: () async throws -> T) async throws -> T {
        for _ in 0..<100 {
            if let value = try? await body() { return value }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await body()
    }
}
