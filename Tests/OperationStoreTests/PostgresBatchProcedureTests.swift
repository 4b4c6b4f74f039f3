import Foundation
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// The PostgreSQL store's committing batch procedures (bench/README.md, branch pgbatch): an enqueue or completion
/// batch without blobs is one `CALL` of `<prefix>operations_enqueue` / `<prefix>operations_complete2`, which runs
/// the batch's statement and commits before it answers, so the answer proves the batch durable in one round trip.
@Suite("PostgreSQL batch procedures")
struct PostgresBatchProcedureTests {
    /// The commit is inside the procedure, not at the Sync after the `CALL`: PostgreSQL refuses transaction
    /// control in a procedure called inside a transaction block, so a `CALL` there fails, and nothing is written.
    @Test("the enqueue and completion procedures commit themselves: CALLed inside a transaction block they are refused")
    func proceduresCommit() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            let calls = [
                "CALL \(table)_enqueue(ARRAY['op-in-block'], ARRAY['p'], ARRAY['\\x00'::bytea], ARRAY[1::int8], "
                    + "ARRAY[1::int8], ARRAY[false], ARRAY[''], ARRAY[''], ARRAY['d'], ARRAY[false], "
                    + "ARRAY[false], ARRAY[''], NULL)",
                "CALL \(table)_complete2(ARRAY[0::int8], ARRAY['op-in-block'], ARRAY['w'], ARRAY['\\x00'::bytea], "
                    + "ARRAY[1::int8], ARRAY[false], NULL)",
            ]
            for call in calls {
                await #expect {
                    try await postgres.client.withTransaction(logger: postgres.logger) { connection in
                        try await connection.query(PostgresQuery(unsafeSQL: call), logger: postgres.logger).collect()
                    }
                } throws: { error in
                    "\(String(reflecting: error))".contains("invalid transaction termination")
                }
            }
            #expect(try await store.get(id: "op-in-block") == nil)
        }
    }

    @Test("one enqueue batch stores NULL scope and key for keyless rows, and the scope and key of keyed ones")
    func keyedAndKeylessInOneBatch() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            // Enough at once that the group commit batches them (more enqueues than transactions).
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<24 {
                    group.addTask {
                        try await store.enqueue(
                            Fixtures.request(),
                            idempotencyKey: index.isMultiple(of: 2) ? "key-\(index % 4)" : nil
                        ).created
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try #require(harness.transactionCounts(store)).enqueues < 24)
            // key-0 and key-2, each enqueued 6 times: one row each; 12 keyless rows.
            #expect(results.filter { $0 }.count == 14)
            let rows = try await postgres.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT idempotency_scope, idempotency_key, count(*)::int8 FROM \(table) \
                        GROUP BY 1, 2 ORDER BY 2 NULLS FIRST
                        """),
                logger: postgres.logger
            ).collect()
            let groups = try rows.map { try $0.decode((String?, String?, Int64).self) }
            #expect(groups.count == 3)
            #expect(groups.first.map { [$0.0, $0.1] } == [nil, nil])
            #expect(groups.first?.2 == 12)
            #expect(
                groups.dropFirst().map { "\($0.0 ?? "-")/\($0.1 ?? "-")=\($0.2)" } == [
                    "alice/key-0=1", "alice/key-2=1",
                ])
        }
    }

    /// A database made before the added columns (`OperationRow.addedColumns`) and the procedures: the next start
    /// adds the columns before it creates the procedures, and the enqueue procedure writes `deployment` as the plain
    /// `INSERT` did (NULL without the label, an empty label as "", not NULL) and leaves `cut_runs` at 0.
    @Test(
        "a database made before the added columns and the procedures: the next start adds both; the enqueue procedure writes deployment NULL, empty or set"
    )
    func enqueueProcedureOnEarlierSchema() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            for statement in [
                "DROP PROCEDURE \(table)_enqueue", "DROP PROCEDURE \(table)_complete2",
                "ALTER TABLE \(table) DROP COLUMN deployment", "ALTER TABLE \(table) DROP COLUMN cut_runs",
            ] {
                try await postgres.client.query(PostgresQuery(unsafeSQL: statement), logger: postgres.logger)
            }
            try await harness.withPeer { peer in
                var ids: [String: String] = [:]
                for (name, deployment) in [("none", nil), ("empty", ""), ("nightly", "nightly")] as [(String, String?)]
                {
                    var request = Fixtures.request(text: name)
                    if let deployment { request.labels[TriggerRequest.deploymentLabel] = deployment }
                    ids[name] = try await peer.enqueue(request, idempotencyKey: nil).operation.id
                }
                let rows = try await postgres.client.query(
                    PostgresQuery(unsafeSQL: "SELECT id, deployment, cut_runs::int8 FROM \(table)"),
                    logger: postgres.logger
                ).collect()
                var stored: [String: (String?, Int64)] = [:]
                for row in rows {
                    let (id, deployment, cutRuns) = try row.decode((String, String?, Int64).self)
                    stored[id] = (deployment, cutRuns)
                }
                #expect(stored.count == 3)
                #expect(stored[try #require(ids["none"])].map { $0.0 == nil && $0.1 == 0 } == true)
                #expect(stored[try #require(ids["empty"])].map { $0.0 == "" && $0.1 == 0 } == true)
                #expect(stored[try #require(ids["nightly"])].map { $0.0 == "nightly" && $0.1 == 0 } == true)
                #expect(
                    try await peer.list(filter: OperationFilter(deployment: "nightly"), pageSize: 10, pageToken: nil)
                        .operations.map(\.id) == [ids["nightly"]])
                // The completion procedure, recreated too.
                let claimed = try await peer.claim(owner: "w", leaseDuration: .seconds(60), limit: 8, now: Date())
                #expect(claimed.count == 3)
                for operation in claimed {
                    #expect(
                        try await peer.complete(
                            id: operation.id, owner: "w", result: Fixtures.result(text: "done"), now: Date()))
                }
            }
        }
    }

    @Test("every start replaces the procedures' bodies, so a database with an earlier body gets this gateway's")
    func proceduresReplacedAtStart() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = try #require(harness.postgresConfiguration?.tablePrefix) + "operations"
            // A body that fails, as a stand-in for another gateway version's.
            for (name, types) in [
                (
                    "enqueue",
                    "text[], text[], bytea[], int8[], int8[], bool[], text[], text[], text[], bool[], bool[], text[], "
                        + "INOUT returned text[]"
                ),
                ("complete", "int8[], text[], text[], bytea[], int8[], bool[], INOUT returned int8[]"),
            ] {
                try await postgres.client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            CREATE OR REPLACE PROCEDURE \(table)_\(name)(\(types)) LANGUAGE plpgsql AS $p$ \
                            BEGIN RAISE EXCEPTION 'earlier body'; END $p$
                            """),
                    logger: postgres.logger)
            }
            await #expect(throws: GatewayError.self) {
                try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            }

            try await harness.withPeer { peer in
                let (operation, created) = try await peer.enqueue(Fixtures.request(), idempotencyKey: nil)
                #expect(created)
                let claimed = try await peer.claim(owner: "w", leaseDuration: .seconds(60), limit: 8, now: Date())
                #expect(claimed.map(\.id) == [operation.id])
                #expect(
                    try await peer.complete(
                        id: operation.id, owner: "w", result: Fixtures.result(text: "done"), now: Date()))
                #expect(try await peer.get(id: operation.id)?.state == .succeeded)
            }
        }
    }
}
