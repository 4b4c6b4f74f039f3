import Foundation
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// The index changes an upgrade brings to a table made by an earlier gateway (`maintainIndexes`): made after the
/// start with `CREATE INDEX CONCURRENTLY` / `DROP INDEX CONCURRENTLY`, so other instances' reads and writes go on
/// during a build that may scan millions of rows; an INVALID index a stopped build left is made again.
@Suite("PostgreSQL index changes of an upgrade")
struct PostgresIndexMaintenanceTests {
    /// The operations table's indexes (names without the table prefix) and whether each is valid.
    static func indexes(_ postgres: PostgresOperationStore, table: String) async throws -> [String: Bool] {
        let rows = try await postgres.client.query(
            """
            SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
            WHERE i.indrelid = to_regclass(\(table))
            """,
            logger: postgres.logger
        ).collect()
        var found: [String: Bool] = [:]
        for row in rows {
            let (name, valid) = try row.decode((String, Bool).self)
            found[name.replacingOccurrences(of: table, with: "")] = valid
        }
        return found
    }

    @Test(
        "an index an upgrade adds is built while another instance's accepts go on, though a long transaction holds the build"
    )
    func buildHoldsNoWrites() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = "\(try #require(harness.postgresConfiguration?.tablePrefix))operations"
            // The table as a gateway before the webhook index made it (once this store's own look is done).
            await postgres.indexesMaintained()
            try await postgres.client.query("DROP INDEX \(unescaped: table)_webhooks_due", logger: postgres.logger)
            #expect(try await Self.indexes(postgres, table: table)["_webhooks_due"] == nil)

            // A writer's transaction that stays open (a long batch of another instance): a build must wait for
            // it, and a plain CREATE INDEX would hold every later write behind it as well.
            let (locked, lockedSignal) = AsyncStream<Void>.makeStream()
            let (release, releaseSignal) = AsyncStream<Void>.makeStream()
            let holder = Task {
                try await postgres.client.withConnection { connection in
                    try await connection.query("BEGIN", logger: postgres.logger)
                    try await connection.query(
                        "LOCK TABLE \(unescaped: table) IN ROW EXCLUSIVE MODE", logger: postgres.logger)
                    lockedSignal.yield()
                    for await _ in release { break }
                    try await connection.query("COMMIT", logger: postgres.logger)
                }
            }
            for await _ in locked { break }
            do {
                // The upgraded instance starts: its start does not wait for the build.
                try await harness.withPeer { peer in
                    let upgraded = try #require(peer as? PostgresOperationStore)
                    // The first instance's accepts and claims go on during the build.
                    let (accepted, _) = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
                    let claimed = try await upgraded.claim(
                        owner: "w", leaseDuration: .seconds(60), limit: 8, now: Date())
                    #expect(claimed.map(\.id) == [accepted.id])
                    #expect(try await Self.indexes(postgres, table: table)["_webhooks_due"] != true)

                    releaseSignal.finish()
                    try await holder.value
                    await upgraded.indexesMaintained()
                    #expect(try await Self.indexes(postgres, table: table)["_webhooks_due"] == true)
                    #expect(try await upgraded.pendingSchemaStatements() == [])
                }
            } catch {
                releaseSignal.finish()
                _ = try? await holder.value
                throw error
            }
        }
    }

    @Test("an INVALID index a stopped build left is dropped and made again at the next start")
    func invalidIndexMadeAgain() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = "\(try #require(harness.postgresConfiguration?.tablePrefix))operations"
            await postgres.indexesMaintained()
            try await postgres.client.query("DROP INDEX \(unescaped: table)_webhooks_due", logger: postgres.logger)
            // A concurrent build that fails part-way leaves its index behind, INVALID: here a unique one over two
            // rows of the same pipeline, under the name the store uses.
            for text in ["a", "b"] {
                _ = try await store.enqueue(Fixtures.request(text: text), idempotencyKey: nil)
            }
            await #expect(throws: (any Error).self) {
                try await postgres.client.query(
                    "CREATE UNIQUE INDEX CONCURRENTLY \(unescaped: table)_webhooks_due ON \(unescaped: table) (pipeline_key)",
                    logger: postgres.logger)
            }
            #expect(try await Self.indexes(postgres, table: table)["_webhooks_due"] == false)
            let pending = try await postgres.pendingSchemaStatements()
            #expect(
                pending == [
                    "DROP INDEX CONCURRENTLY IF EXISTS \(table)_webhooks_due",
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS \(table)_webhooks_due ON \(table) (webhook_due) "
                        + "WHERE webhook_due IS NOT NULL",
                ], "\(pending)")

            try await harness.withPeer { peer in
                let upgraded = try #require(peer as? PostgresOperationStore)
                await upgraded.indexesMaintained()
                #expect(try await Self.indexes(postgres, table: table)["_webhooks_due"] == true)
                let definition = try await postgres.client.query(
                    "SELECT pg_get_indexdef(to_regclass(\(table + "_webhooks_due")))", logger: postgres.logger
                ).collect().first?.decode(String.self)
                #expect(
                    definition?.contains("(webhook_due) WHERE (webhook_due IS NOT NULL)") == true, "\(definition ?? "")"
                )
                #expect(definition?.contains("UNIQUE") == false)
            }
        }
    }
}
