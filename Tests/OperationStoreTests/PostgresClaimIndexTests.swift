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
    /// The plans a statement is checked under: the custom plans of a prepared statement's first calls and the
    /// generic one that follows, each forced by `plan_cache_mode` (PostgreSQL 12+). README says PostgreSQL 11 or
    /// later: 11 has no such setting, and there the check is of the plan of a first call, always custom
    /// (`[nil]`: nothing set).
    static func planCacheModes(_ postgres: PostgresOperationStore) async throws -> [String?] {
        let version = try await postgres.client.query("SHOW server_version_num", logger: postgres.logger)
            .collect().map { try $0.decode(String.self) }
        guard let number = version.first.flatMap({ Int($0) }), number < 120_000 else {
            return ["force_custom_plan", "force_generic_plan"]
        }
        return [nil]
    }

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

    @Test(
        "a claim of named pipelines reads the queued and running rows in index order, never every row of its pipelines")
    func claimPlanIgnoresPipelineHistory() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            // A table autovacuum has not analyzed yet (as a new deployment's, or a benchmark's, until it does): 100
            // queued and 100 running operations, and 50 000 finished ones of the same pipeline. The earlier claim,
            // `pipeline_key = ANY($5)` in a statement of its own, read `_by_pipeline` here (all 50 200 entries,
            // twice: 4.9 ms against 0.6 ms), and then, like any claim planned on such a table, `_queued` and
            // `_leases` through bitmap scans, which visit every dead entry (bench/README.md, branch pgaccept).
            let insert = """
                INSERT INTO \(table) (id, pipeline_key, state, request, created_at, not_before, request_digest, \
                lease_owner, lease_expires_at) SELECT 'op' || g, 'acme/echo', \
                CASE WHEN g > 200 THEN 'succeeded' WHEN g % 2 = 0 THEN 'queued' ELSE 'running' END, '\\x00', g, g, \
                'd', CASE WHEN g % 2 = 1 AND g <= 200 THEN 'w' END, CASE WHEN g % 2 = 1 AND g <= 200 THEN g END \
                FROM generate_series
                """
            for statement in [
                "ALTER TABLE \(table) SET (autovacuum_enabled = false)", "\(insert)(1, 50200) AS g",
            ] {
                try await postgres.client.query(PostgresQuery(unsafeSQL: statement), logger: postgres.logger)
            }
            // The claim function's statement, planned as the function plans it (its SET clauses), with the
            // function's parameters bound: first as the custom plans of its first calls, then the generic one.
            let function = try await postgres.client.query(
                "SELECT array_to_string(proconfig, ',') FROM pg_proc WHERE proname = \(table + "_claim4")",
                logger: postgres.logger
            ).collect().map { try $0.decode(String?.self) }
            #expect(function == ["enable_bitmapscan=off,enable_seqscan=off"])
            for planCacheMode in try await Self.planCacheModes(postgres) {
                // SET LOCAL: the settings end with the transaction, not with the pooled connection.
                let plan = try await postgres.client.withTransaction(logger: postgres.logger) { connection in
                    func run(_ sql: String) async throws -> [PostgresRow] {
                        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: postgres.logger).collect()
                    }
                    let mode = planCacheMode.map { ["plan_cache_mode = \($0)"] } ?? []
                    for setting in ["enable_bitmapscan = off", "enable_seqscan = off"] + mode {
                        _ = try await run("SET LOCAL \(setting)")
                    }
                    _ = try await run(
                        "PREPARE tg_claim (text, int8, int8, int8, int8, text[], int8, text, bool) AS \(postgres.claimStatement)"
                    )
                    let lines = try await run(
                        "EXPLAIN EXECUTE tg_claim ('w', 2000000000000, 1900000000000, 16, 1, '{acme/echo}', 1900000000000, 'w.', true)"
                    )
                    _ = try await run("DEALLOCATE tg_claim")
                    return try lines.map { try $0.decode(String.self) }.joined(separator: "\n")
                }
                #expect(!plan.contains("\(table)_by_pipeline"), "\(planCacheMode ?? "a first call"): \(plan)")
                #expect(
                    !plan.contains("Seq Scan") && !plan.contains("Bitmap"),
                    "\(planCacheMode ?? "a first call"): \(plan)")
                #expect(
                    plan.contains("Index Scan using \(table)_queued")
                        && plan.contains("Index Scan using \(table)_leases"),
                    "\(planCacheMode ?? "a first call"): \(plan)")
            }

            // And it claims the oldest due operations of the pipeline (queued, or running under a lease of 1970),
            // none of another pipeline. The rows are read a field at a time (`seq`, then `id`): their request bytes
            // are not a real request.
            func claimedIDs(_ scope: ClaimScope) async throws -> [String] {
                let query = try #require(
                    postgres.claimQuery(
                        owner: "w2", leaseDuration: .seconds(60), limit: 3, now: Date(), scope: scope, takeover: .any))
                return try await postgres.client.query(query, logger: postgres.logger).collect()
                    .map {
                        var record = try $0.decode(PostgresRecord.self)
                        _ = try record.int64()
                        return try record.string()
                    }.sorted()
            }
            #expect(try await claimedIDs(.only(["acme/echo"])) == ["op1", "op2", "op3"])
            #expect(try await claimedIDs(.only(["other/pipe"])).isEmpty)

            // The claim commits with the session's `synchronous_commit`, on: it waits for its WAL flush, so a server
            // crash keeps it (cluster review 59, H1: `_claim3` set it off, and a claim lost in a crash was run again
            // elsewhere while its owner ran it).
            let inside = try await postgres.client.withTransaction(logger: postgres.logger) { connection in
                let query = try #require(
                    postgres.claimQuery(
                        owner: "w2", leaseDuration: .seconds(60), limit: 3, now: Date(), scope: .all, takeover: .any))
                _ = try await connection.query(query, logger: postgres.logger).collect()
                return try await connection.query("SHOW synchronous_commit", logger: postgres.logger).collect()
                    .map { try $0.decode(String.self) }
            }
            #expect(inside == ["on"])
        }
    }

    @Test(
        "a completion finds its rows by id, never through a bitmap scan of the running rows, and commits synchronously")
    func completionPlanReadsRowsByID() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            // The claim test's never-analyzed table: 100 queued operations, 100 running under "w", 50 000 finished.
            // Planned without the settings, the completion read `_leases` through a bitmap scan, which visits
            // every dead entry completed operations leave there (bench/README.md, branches pgaccept, pgcomplete).
            for statement in [
                "ALTER TABLE \(table) SET (autovacuum_enabled = false)",
                """
                INSERT INTO \(table) (id, pipeline_key, state, request, created_at, not_before, request_digest, \
                lease_owner, lease_expires_at) SELECT 'op' || g, 'acme/echo', \
                CASE WHEN g > 200 THEN 'succeeded' WHEN g % 2 = 0 THEN 'queued' ELSE 'running' END, '\\x00', g, g, \
                'd', CASE WHEN g % 2 = 1 AND g <= 200 THEN 'w' END, CASE WHEN g % 2 = 1 AND g <= 200 THEN g END \
                FROM generate_series(1, 50200) AS g
                """,
            ] {
                try await postgres.client.query(PostgresQuery(unsafeSQL: statement), logger: postgres.logger)
            }
            let statement = postgres.completionUpdate
            let function = try #require(statement.function(returning: "r.n"))
            func configuration(_ name: String) async throws -> [String?] {
                try await postgres.client.query(
                    "SELECT array_to_string(proconfig, ',') FROM pg_proc WHERE proname = \(name)",
                    logger: postgres.logger
                ).collect().map { try $0.decode(String?.self) }
            }
            // The function carries the settings; the procedure, which commits, none (it could not).
            #expect(try await configuration(function.name) == ["enable_bitmapscan=off,enable_seqscan=off"])
            #expect(try await configuration(statement.procedure) == [nil])
            for planCacheMode in try await Self.planCacheModes(postgres) {
                let plan = try await postgres.client.withTransaction(logger: postgres.logger) { connection in
                    func run(_ sql: String) async throws -> [PostgresRow] {
                        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: postgres.logger).collect()
                    }
                    let mode = planCacheMode.map { ["plan_cache_mode = \($0)"] } ?? []
                    for setting in statement.plannerSettings + mode {
                        _ = try await run("SET LOCAL \(setting)")
                    }
                    let types = statement.parameterTypes.joined(separator: ", ")
                    _ = try await run("PREPARE tg_complete (\(types)) AS \(statement.sql) RETURNING r.n")
                    let lines = try await run(
                        """
                        EXPLAIN EXECUTE tg_complete ('{0,1}', '{op1,op3}', '{w,w}', '{"\\\\x00","\\\\x00"}', \
                        '{1,1}', '{f,f}')
                        """)
                    _ = try await run("DEALLOCATE tg_complete")
                    return try lines.map { try $0.decode(String.self) }.joined(separator: "\n")
                }
                #expect(
                    !plan.contains("Seq Scan") && !plan.contains("Bitmap"),
                    "\(planCacheMode ?? "a first call"): \(plan)")
                #expect(!plan.contains("\(table)_leases"), "\(planCacheMode ?? "a first call"): \(plan)")
                #expect(
                    plan.contains("Index Scan using \(table)_id_key"), "\(planCacheMode ?? "a first call"): \(plan)")
            }

            // Through the procedure (no blobs; batched as they come): only the row running under its owner is written.
            let finished = Date()
            async let running = store.complete(id: "op1", owner: "w", result: Fixtures.result(text: "a"), now: finished)
            async let otherOwner = store.complete(
                id: "op3", owner: "x", result: Fixtures.result(text: "b"), now: finished)
            async let queued = store.complete(id: "op2", owner: "w", result: Fixtures.result(text: "c"), now: finished)
            #expect(try await [running, otherOwner, queued] == [true, false, false])
            let states = try await postgres.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT id, state FROM \(table) WHERE id IN ('op1', 'op2', 'op3') ORDER BY id"),
                logger: postgres.logger
            ).collect().map { try $0.decode((String, String).self) }
            #expect(states.map(\.0) == ["op1", "op2", "op3"])
            #expect(states.map(\.1) == ["succeeded", "queued", "running"])

            // Durability unchanged: the function's settings end with it, so the procedure's COMMIT runs with the
            // session's synchronous_commit (on) and waits for its WAL flush; and it is a COMMIT (inside a
            // transaction block the CALL is refused, PostgresBatchProcedureTests).
            let after = try await postgres.client.withConnection { connection in
                _ = try await connection.query(
                    """
                    CALL \(unescaped: statement.procedure)(ARRAY[0::int8], ARRAY['op5'], ARRAY['w'], \
                    ARRAY['\\x00'::bytea], ARRAY[1::int8], ARRAY[false], NULL)
                    """, logger: postgres.logger
                ).collect()
                return try await connection.query(
                    "SELECT current_setting('synchronous_commit'), current_setting('enable_bitmapscan')",
                    logger: postgres.logger
                ).collect().map { try $0.decode((String, String).self) }
            }
            #expect(after.map(\.0) == ["on"] && after.map(\.1) == ["on"])
            let op5 = try await postgres.client.query(
                PostgresQuery(unsafeSQL: "SELECT state FROM \(table) WHERE id = 'op5'"), logger: postgres.logger
            ).collect().map { try $0.decode(String.self) }
            #expect(op5 == ["succeeded"])
        }
    }
}
