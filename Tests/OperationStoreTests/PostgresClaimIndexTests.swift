import Foundation
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// The PostgreSQL store's claim indexes (bench/README.md, branch pgaccept): partial indexes of the queued rows by
/// `seq` and of the running rows by lease expiry, which a database made by an earlier gateway gains at the next
/// start in place of its (state, not_before, seq) and (state, lease_expires_at) indexes.
@Suite("PostgreSQL claim indexes")
struct PostgresClaimIndexTests {
    @Test("a database made with the earlier claim indexes trades them for the partial ones at the next start")
    func earlierIndexesReplaced() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let prefix = try #require(harness.postgresConfiguration?.tablePrefix)
            let table = "\(prefix)operations"
            func indexes() async throws -> Set<String> {
                let rows = try await postgres.client.query(
                    "SELECT indexname FROM pg_indexes WHERE tablename = \(table)", logger: postgres.logger
                ).collect()
                return Set(try rows.map { try $0.decode(String.self).replacingOccurrences(of: table, with: "") })
            }
            // The claim indexes; the others (keys, listings, purge) are not this test's business.
            let claimIndexes = ["_queued", "_leases", "_claim_queued", "_claim_leases"]
            let current: Set<String> = ["_queued", "_leases"]
            func claimIndexesNow() async throws -> Set<String> { try await indexes().filter(claimIndexes.contains) }
            #expect(try await claimIndexesNow() == current)

            // The schema as an earlier gateway made it.
            for statement in [
                "DROP INDEX \(table)_queued", "DROP INDEX \(table)_leases",
                "CREATE INDEX \(table)_claim_queued ON \(table) (state, not_before, seq)",
                "CREATE INDEX \(table)_claim_leases ON \(table) (state, lease_expires_at)",
            ] {
                try await postgres.client.query(PostgresQuery(unsafeSQL: statement), logger: postgres.logger)
            }
            #expect(try await claimIndexesNow() == ["_claim_queued", "_claim_leases"])
            let (operation, _) = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)

            // The next start (another instance, or a restart) changes them; the queued operation is claimed.
            try await harness.withPeer { peer in
                #expect(try await claimIndexesNow() == current)
                let claimed = try await peer.claim(owner: "w", leaseDuration: .seconds(60), limit: 8, now: Date())
                #expect(claimed.map(\.id) == [operation.id])
            }
        }
    }
}
