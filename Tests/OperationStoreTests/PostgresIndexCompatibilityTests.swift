import Foundation
import NIOCore
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// The PostgreSQL store without the `(state, seq)` index (bench/README.md, branch asynccost): listings by state read
/// `_queued`, `_leases`, the primary key and `_failed_or_cancelled`; a database made by an earlier gateway loses the
/// index at the next start, and an earlier gateway's statements still work on this schema. The enqueue's conflict
/// target names the keyed rows, so it also works once a later release replaces the unique constraint with a partial
/// unique index of keyed rows.
@Suite("PostgreSQL listing indexes across versions")
struct PostgresIndexCompatibilityTests {
    /// The index names of `table` without the table's prefix.
    private static func indexes(_ postgres: PostgresOperationStore, _ table: String) async throws -> Set<String> {
        let rows = try await postgres.client.query(
            "SELECT indexname FROM pg_indexes WHERE tablename = \(table)", logger: postgres.logger
        ).collect()
        return Set(try rows.map { try $0.decode(String.self).replacingOccurrences(of: table, with: "") })
    }

    private static func run(_ postgres: PostgresOperationStore, _ statements: [String]) async throws {
        for statement in statements {
            try await postgres.client.query(PostgresQuery(unsafeSQL: statement), logger: postgres.logger)
        }
    }

    /// One operation in each state, through `store`'s own calls; their ids by state.
    private static func oneInEachState(_ store: any OperationStore) async throws -> [OperationState: String] {
        var ids: [OperationState: String] = [:]
        for state in OperationState.allCases {
            let (operation, _) = try await store.enqueue(Fixtures.request(text: state.rawValue), idempotencyKey: nil)
            ids[state] = operation.id
        }
        let now = Date()
        let claimed = try await store.claim(owner: "w", leaseDuration: .seconds(600), limit: 8, now: now)
        let byID = Set(claimed.map(\.id))
        for state in OperationState.allCases where state != .queued {
            #expect(byID.contains(ids[state]!))
        }
        // Claimed in order: the queued one (the first enqueued) is put back.
        #expect(try await store.release(id: ids[.queued]!, owner: "w", notBefore: now, callMade: false, now: now))
        #expect(try await store.complete(id: ids[.succeeded]!, owner: "w", result: Fixtures.result(), now: now))
        #expect(
            try await store.fail(
                id: ids[.failed]!, owner: "w", error: GatewayError(.invalidArgument, "no"), retryAt: nil, now: now))
        _ = try await store.cancel(id: ids[.cancelled]!)
        return ids
    }

    @Test(
        "an earlier database loses (state, seq) at the next start, and listings by every state answer before and after")
    func earlierDatabaseUpgraded() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            let listing: Set<String> = ["_by_state", "_failed_or_cancelled"]
            #expect(try await Self.indexes(postgres, table).intersection(listing) == ["_failed_or_cancelled"])

            // The schema as the earlier gateway (main 73d60fe) made it.
            try await Self.run(
                postgres,
                [
                    "DROP INDEX \(table)_failed_or_cancelled",
                    "CREATE INDEX \(table)_by_state ON \(table) (state, seq)",
                ])
            let ids = try await Self.oneInEachState(store)
            func listingsAnswer(_ store: any OperationStore) async throws {
                for state in OperationState.allCases {
                    let page = try await store.list(
                        filter: OperationFilter(state: state), pageSize: 10, pageToken: nil)
                    #expect(page.operations.map(\.id) == [ids[state]!], "listing \(state.rawValue)")
                    #expect(page.operations.first?.state == state)
                }
            }
            try await listingsAnswer(store)

            try await harness.withPeer { peer in
                #expect(try await Self.indexes(postgres, table).intersection(listing) == ["_failed_or_cancelled"])
                try await listingsAnswer(peer)
                // The first handle, standing for an instance of either version that was running meanwhile.
                try await listingsAnswer(store)
            }
        }
    }

    @Test("the earlier enqueue statement works on this schema; this one also on a partial unique index of keyed rows")
    func enqueueConflictTargets() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            let current = postgres.enqueueInsert.sql
            let earlier = current.replacingOccurrences(
                of: " WHERE idempotency_key IS NOT NULL DO NOTHING", with: " DO NOTHING")
            #expect(earlier != current)

            /// Runs `sql` (an enqueue statement) for one keyed row; the ids it inserted.
            func insert(_ sql: String, id: String, key: String) async throws -> [String] {
                var binds = PostgresBindings()
                binds.append([id])
                binds.append(["acme/echo"])
                binds.append([ByteBuffer(string: "request")])
                binds.append([Int64(1)])
                binds.append([Int64(1)])
                binds.append([true])
                binds.append(["alice"])
                binds.append([key])
                binds.append(["digest"])
                binds.append([false])
                binds.append([false])
                binds.append([""])
                let rows = try await postgres.client.query(
                    PostgresQuery(unsafeSQL: sql + " RETURNING id", binds: binds), logger: postgres.logger
                ).collect()
                return try rows.map { try $0.decode(String.self) }
            }
            // Today's constraint: both targets insert a new key once and skip it the second time.
            for (name, sql) in [("earlier", earlier), ("current", current)] {
                #expect(try await insert(sql, id: "\(name)-1", key: name) == ["\(name)-1"])
                #expect(try await insert(sql, id: "\(name)-2", key: name).isEmpty)
            }
            let (keyed, created) = try await store.enqueue(Fixtures.request(), idempotencyKey: "k")
            #expect(created)

            // A later release's unique index of keyed rows in place of the constraint.
            let constraint = try await postgres.client.query(
                """
                SELECT conname::text FROM pg_constraint \
                WHERE conrelid = to_regclass(\(table)) AND contype = 'u' AND array_length(conkey, 1) = 2
                """,
                logger: postgres.logger
            ).collect().map { try $0.decode(String.self) }
            #expect(constraint.count == 1)
            try await Self.run(
                postgres,
                [
                    "ALTER TABLE \(table) DROP CONSTRAINT \(constraint[0])",
                    "CREATE UNIQUE INDEX \(table)_keyed ON \(table) (idempotency_scope, idempotency_key) "
                        + "WHERE idempotency_key IS NOT NULL",
                ])
            #expect(try await insert(current, id: "current-4", key: "current").isEmpty)
            #expect(try await insert(current, id: "partial-1", key: "partial") == ["partial-1"])
            let again = try await store.enqueue(Fixtures.request(), idempotencyKey: "k")
            #expect(again.operation.id == keyed.id && !again.created)
            // The earlier target infers no partial index.
            await #expect(throws: (any Error).self) { try await insert(earlier, id: "earlier-4", key: "x") }
        }
    }

    @Test("on a large table every listing by state reads an index, never the whole table")
    func listingPlans() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            // 200 000 rows: mostly succeeded, as a table under retention is; a few in every other state (100
            // queued, 50 running, 100 failed, 25 cancelled). Only the plans are read, not the rows.
            try await Self.run(
                postgres,
                [
                    """
                    INSERT INTO \(table) (id, pipeline_key, state, request, created_at, not_before, request_digest, \
                    lease_owner, lease_expires_at) \
                    SELECT 'op' || g, 'acme/echo', \
                    CASE WHEN g % 2000 = 0 THEN 'failed' WHEN g % 8000 = 1 THEN 'cancelled' \
                    WHEN g % 2000 = 3 THEN 'queued' WHEN g % 4000 = 5 THEN 'running' ELSE 'succeeded' END, \
                    '\\x00', g, g, 'd', CASE WHEN g % 4000 = 5 THEN 'w' END, CASE WHEN g % 4000 = 5 THEN g END \
                    FROM generate_series(1, 200000) AS g
                    """,
                    "ANALYZE \(table)",
                ])
            // Each state alone, then with a pipeline and from a page token in the middle of the table (these two
            // may read either index the planner prefers, but never the whole table).
            for state in OperationState.allCases {
                for (pipeline, token) in [(nil, false), ("acme/echo", false), (nil, true), ("acme/echo", true)] {
                    let filter = OperationFilter(pipeline: pipeline, state: state)
                    let pageToken = token ? OperationPaging.makeToken(afterID: "op100007", filter: filter) : nil
                    var binds = PostgresBindings()
                    let sql = try OperationPaging.listQuery(
                        select: PostgresOperationStore.selectColumns, from: table, filter: filter, pageSize: 50,
                        pageToken: pageToken
                    ) { value in
                        switch value {
                        case .text(let text): binds.append(text)
                        case .integer(let integer): binds.append(integer)
                        }
                        return "$\(binds.count)"
                    }
                    let plan = try await postgres.client.query(
                        PostgresQuery(unsafeSQL: "EXPLAIN " + sql, binds: binds), logger: postgres.logger
                    ).collect().map { try $0.decode(String.self) }.joined(separator: "\n")
                    let label = "\(state.rawValue), pipeline \(pipeline ?? "-"), token \(token):\n\(plan)"
                    #expect(!plan.contains("Seq Scan"), "\(label)")
                    guard pipeline == nil, !token else { continue }
                    let index =
                        switch state {
                        case .queued: "\(table)_queued"
                        case .running: "\(table)_leases"
                        case .succeeded: "\(table)_pkey"
                        case .failed, .cancelled: "\(table)_failed_or_cancelled"
                        }
                    #expect(plan.contains(index), "\(label)")
                }
            }
        }
    }
}
