import Foundation
import OperationStore
import SQLiteNIO
@testable import SQLiteOperationStore
import Testing
import TriggerModel

/// What only the embedded store does: readiness probes answered by group commits, and claims that walk the claim
/// indexes (issue 12).
@Suite("SQLite group commit: probes and claims")
struct SQLiteGroupCommitTests {
    /// A one-shot signal between test tasks.
    final class Latch: Sendable {
        private let stream: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation

        init() {
            let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
            self.stream = stream
            self.continuation = continuation
        }

        func open() { continuation.finish() }

        func wait() async {
            for await _ in stream {}
        }
    }

    /// Yields until `condition` holds; a test whose condition never holds ends at its time limit.
    static func until(_ condition: () async -> Bool) async {
        while await !condition() { try? await Task.sleep(for: .milliseconds(1)) }
    }

    @Test(
        "a probe is answered by the next group commit, not after every caller queued at the store's gate",
        .timeLimit(.minutes(1)))
    func probeJoinsGroupCommit() async throws {
        try await StoreHarness.with(.sqlite) { _, any in
            let store = try #require(any as? SQLiteOperationStore)
            // The test holds the gate; an enqueue, then a holder that keeps the gate until told, then the probe
            // queue behind it, in that order.
            let release = Latch()
            let entered = Latch()
            let holder = Task {
                try await store.serialized {
                    entered.open(); await release.wait()
                }
            }
            await entered.wait()
            let enqueue = Task { try await store.enqueue(Fixtures.request(text: "p"), idempotencyKey: nil) }
            await Self.until { await store.gate.waiting == 1 }
            let keep = Latch()
            let blocker = Task { try await store.serialized { await keep.wait() } }
            await Self.until { await store.gate.waiting == 2 }
            let probe = Task { try await store.probe(instance: "gw", now: Fixtures.now()) }
            await Self.until { await store.gate.waiting == 3 }

            // The enqueue commits its own write and the heartbeat in one transaction; the probe is answered by
            // that commit while `blocker` still holds the gate (before, the probe waited for the gate: a hang).
            release.open()
            try await probe.value
            #expect(store.heartbeatTransactionCount == 1)
            #expect(store.enqueueTransactionCount == 1)
            #expect(try await enqueue.value.created)
            keep.open()
            try await holder.value
            try await blocker.value
            // The heartbeat is stored.
            let rows = try await store.serialized { try await store.query("SELECT instance FROM heartbeats") }
            #expect(rows.compactMap { $0.column("instance")?.string } == ["gw"])
        }
    }

    @Test("an idle store's probe commits its own heartbeat, each time", .timeLimit(.minutes(1)))
    func probeAlone() async throws {
        try await StoreHarness.with(.sqlite) { _, any in
            let store = try #require(any as? SQLiteOperationStore)
            let now = Fixtures.now()
            try await store.probe(instance: "gw", now: now)
            try await store.probe(instance: "gw", now: now + 1)
            #expect(store.heartbeatTransactionCount == 2)
            let rows = try await store.serialized { try await store.query("SELECT beat_at FROM heartbeats") }
            #expect(rows.compactMap { $0.column("beat_at")?.integer } == [Int((now + 1).storeMilliseconds)])
        }
    }

    @Test(
        "claims walk the claim indexes whatever their scope, never a pipeline's whole history",
        arguments: [ClaimScope.all, .only(["acme/echo"]), .only(["acme/a", "acme/b"]), .excluding(["acme/echo"])])
    func claimPlan(scope: ClaimScope) async throws {
        try await StoreHarness.with(.sqlite) { _, any in
            let store = try #require(any as? SQLiteOperationStore)
            let claim = try #require(
                SQLiteOperationStore.claimStatement(
                    owner: "gw/1", leaseDuration: .seconds(30), limit: 64, now: Fixtures.now(), scope: scope))
            let plan = try await store.serialized {
                try await store.query("EXPLAIN QUERY PLAN \(claim.sql)", claim.binds)
            }
            .compactMap { $0.column("detail")?.string }
            let walks = plan.filter { $0.hasPrefix("SEARCH") || $0.hasPrefix("SCAN") }
            #expect(walks.contains { $0.contains("USING INDEX operations_by_state (state=?)") }, "\(plan)")
            #expect(walks.contains { $0.contains("INDEX operations_claim_leases (lease_expires_at<?)") }, "\(plan)")
            // Every walk is one of the two claim indexes, the row lookup by primary key, or a read of `expired` (the
            // materialized expired leases, read through `operations_claim_leases`: the takeovers' previous owners).
            let allowed = ["operations_by_state", "operations_claim_leases", "INTEGER PRIMARY KEY", "SCAN expired"]
            #expect(walks.allSatisfy { walk in allowed.contains { walk.contains($0) } }, "\(plan)")
        }
    }

    @Test("the claim's limit is written into its statement, each limit taking that many operations")
    func claimLimitInline() async throws {
        // A bound LIMIT makes SQLite compile the statement twice (binding its value expires the first
        // compilation; bench/README.md, branch asynccost): the limit is part of the text, and only the owner and
        // the two times (and the scope's keys) are bound.
        let claim = try #require(
            SQLiteOperationStore.claimStatement(
                owner: "gw/1", leaseDuration: .seconds(30), limit: 7, now: Fixtures.now(), scope: .only(["acme/echo"])))
        #expect(claim.sql.contains("LIMIT 7)"))
        #expect(!claim.sql.contains("LIMIT ?"))
        #expect(claim.binds.count == 4)
        #expect(claim.sql.contains("pipeline_key IN (?4)"))
        try await StoreHarness.with(.sqlite) { _, store in
            for _ in 0..<5 { _ = try await store.enqueue(Fixtures.request(), idempotencyKey: nil) }
            for (limit, expected) in [(1, 1), (3, 3), (3, 1), (2, 0)] {
                let claimed = try await store.claim(
                    owner: "gw/\(limit)", leaseDuration: .seconds(30), limit: limit, now: Date(),
                    scope: .only(["acme/echo"]))
                #expect(claimed.count == expected)
            }
        }
    }

    @Test("a database made with the earlier claim indexes trades them for the partial lease index at the next open")
    func earlierIndexesReplaced() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        /// The claim indexes by name, with their statements.
        func claimIndexes(_ store: SQLiteOperationStore) async throws -> [String: String] {
            let rows = try await store.serialized {
                try await store.query(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'operations'")
            }
            var indexes: [String: String] = [:]
            for row in rows {
                guard let name = row.column("name")?.string, name.hasPrefix("operations_claim") else { continue }
                indexes[name] = row.column("sql")?.string
            }
            return indexes
        }
        let current = ["operations_claim_leases": SQLiteOperationStore.claimLeasesIndex]
        let first = try await SQLiteOperationStore.open(.init(dataDirectory: dir.path))
        #expect(try await claimIndexes(first) == current)
        // One operation running on a lease that will have expired, in the schema as an earlier gateway made it.
        let (operation, _) = try await first.enqueue(Fixtures.request(), idempotencyKey: nil)
        let start = Date()
        let claimed = try await first.claim(owner: "old", leaseDuration: .seconds(1), limit: 8, now: start)
        #expect(claimed.map(\.id) == [operation.id])
        try await first.serialized {
            for statement in [
                "DROP INDEX operations_claim_leases",
                "CREATE INDEX operations_claim_queued ON operations (state, not_before, seq)",
                "CREATE INDEX operations_claim_leases ON operations (state, lease_expires_at)",
            ] {
                try await first.query(statement)
            }
        }
        #expect(try await claimIndexes(first).keys.sorted() == ["operations_claim_leases", "operations_claim_queued"])
        try await first.close()

        // The next open changes them; the expired lease is found through the new index.
        let second = try await SQLiteOperationStore.open(.init(dataDirectory: dir.path))
        #expect(try await claimIndexes(second) == current)
        // An earlier gateway started again on the file (a rollback) names the index in its claim: it still runs.
        let earlierClaim = try await second.serialized {
            try await second.query(
                """
                SELECT seq FROM operations INDEXED BY operations_claim_leases \
                WHERE state = 'running' AND lease_expires_at <= ?
                """, [.integer(Int(start.addingTimeInterval(2).timeIntervalSince1970 * 1000))])
        }
        #expect(earlierClaim.count == 1)
        let reclaimed = try await second.claim(
            owner: "new", leaseDuration: .seconds(60), limit: 8, now: start.addingTimeInterval(2))
        #expect(reclaimed.map(\.id) == [operation.id])
        #expect(reclaimed.first?.attempts == 2)
        try await second.close()
    }
}
