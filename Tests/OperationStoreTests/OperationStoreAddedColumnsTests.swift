import Foundation
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import SQLiteNIO
@testable import SQLiteOperationStore
import Testing
import TriggerModel

/// The columns added after the first schema (`OperationRow.addedColumns`): `cut_runs` (a run the gateway cut
/// and handed back still counts as a backend call made) and `deployment` (a deployment's executions found by the
/// store, not by reading every operation of its pipeline); and their additive migration, which a store made by
/// an earlier gateway gains at the next open while that gateway's own statements keep working.
@Suite("operation store: cut runs, the deployment filter and their additive migration")
struct OperationStoreAddedColumnsTests {
    static func request(deployment: String?, text: String = "hello") -> TriggerRequest {
        var request = Fixtures.request(text: text)
        if let deployment { request.labels[TriggerRequest.deploymentLabel] = deployment }
        return request
    }

    @Test(
        "a run cut after its call was made and handed back keeps its attempt in `attempts`, counted in `cutRuns`, not against the limit",
        arguments: StoreKind.allCases)
    func cutRunCountsItsCall(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0).count == 1)
            #expect(try await !store.release(id: id, owner: "B", notBefore: t0 + 1, callMade: true, now: t0 + 1))
            #expect(try await store.release(id: id, owner: "A", notBefore: t0 + 1, callMade: true, now: t0 + 1))
            let released = try #require(try await store.get(id: id))
            #expect(released.state == .queued)
            #expect(released.attempts == 1, "the call made is counted")
            #expect(released.cutRuns == 1)
            #expect(released.countedAttempts == 0)
            // The re-run: its second call; the limit counts one.
            let again = try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 1)
            #expect(again.map(\.attempts) == [2])
            #expect(again.map(\.countedAttempts) == [1])
            // A later refused call (no runner saw it) is not a call made.
            #expect(try await store.release(id: id, owner: "B", notBefore: t0 + 2, callMade: false, now: t0 + 2))
            let refused = try #require(try await store.get(id: id))
            #expect((refused.attempts, refused.cutRuns) == (1, 1))
            let third = try await store.claim(owner: "C", leaseDuration: .seconds(10), limit: 1, now: t0 + 2)
            #expect(
                try await store.complete(
                    id: id, owner: "C", result: TriggerResult(outputs: [["ok": .bool(true)]]), now: t0 + 3))
            #expect(third.map(\.attempts) == [2])
            let done = try #require(try await store.get(id: id))
            #expect(done.state == .succeeded)
            #expect((done.attempts, done.cutRuns) == (2, 1))
            #expect(done.startedAt == t0, "the first attempt's start stays")
        }
    }

    @Test(
        "the deployment filter finds a deployment's operations however many of other deployments are newer; pages keep it",
        arguments: StoreKind.allCases)
    func deploymentFilter(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            var mine: [String] = []
            for i in 0..<3 {
                mine.append(
                    try await store.enqueue(Self.request(deployment: "nightly", text: "m\(i)"), idempotencyKey: nil)
                        .operation.id)
            }
            // More than any page (and than the 100 newest the Craft surface used to read) of another deployment and
            // of plain runs after them.
            for i in 0..<120 {
                _ = try await store.enqueue(Self.request(deployment: "hourly", text: "h\(i)"), idempotencyKey: nil)
                _ = try await store.enqueue(Self.request(deployment: nil, text: "p\(i)"), idempotencyKey: nil)
            }
            let first = try await store.list(
                filter: OperationFilter(deployment: "nightly"), pageSize: 2, pageToken: nil)
            #expect(first.operations.map(\.id) == [mine[2], mine[1]])
            let token = try #require(first.nextPageToken)
            let second = try await store.list(
                filter: OperationFilter(deployment: "nightly"), pageSize: 2, pageToken: token)
            #expect(second.operations.map(\.id) == [mine[0]])
            #expect(second.nextPageToken == nil)
            #expect(
                second.operations.allSatisfy { $0.request.labels[TriggerRequest.deploymentLabel] == "nightly" })
            // A token is only good for its filter (AIP-158).
            let other = await gatewayError {
                _ = try await store.list(filter: OperationFilter(deployment: "hourly"), pageSize: 2, pageToken: token)
            }
            #expect(other?.code == .invalidArgument)
            // With the pipeline and state filters too.
            let queued = try await store.list(
                filter: OperationFilter(pipeline: "acme/echo", state: .queued, deployment: "hourly"), pageSize: 1000,
                pageToken: nil)
            #expect(queued.operations.count == 120)
            #expect(
                try await store.list(filter: OperationFilter(deployment: "none"), pageSize: 10, pageToken: nil)
                    .operations.isEmpty)
            // A token made without a deployment filter is the same as before the filter existed.
            #expect(
                OperationPaging.makeToken(afterID: "OP7", filter: OperationFilter(pipeline: "a/b"))
                    == OperationPaging.makeToken(
                        afterID: "OP7", filter: OperationFilter(pipeline: "a/b", deployment: nil)))
        }
    }

    @Test(
        "SQLite: a file an earlier gateway made gains the columns and the index at the next open; old rows read as 0 cut runs, and an earlier gateway's insert still runs"
    )
    func sqliteMigration() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        func columns(_ store: SQLiteOperationStore) async throws -> Set<String> {
            let rows = try await store.serialized { try await store.query("PRAGMA table_info(operations)") }
            return Set(rows.compactMap { $0.column("name")?.string })
        }
        let first = try await SQLiteOperationStore.open(.init(dataDirectory: dir.path))
        #expect(try await columns(first).isSuperset(of: ["cut_runs", "deployment"]))
        let (old, _) = try await first.enqueue(Self.request(deployment: "nightly"), idempotencyKey: nil)
        // The schema as an earlier gateway made it.
        try await first.serialized {
            for statement in [
                "DROP INDEX operations_by_deployment", "ALTER TABLE operations DROP COLUMN deployment",
                "ALTER TABLE operations DROP COLUMN cut_runs",
            ] {
                try await first.query(statement)
            }
        }
        #expect(try await columns(first).isDisjoint(with: ["cut_runs", "deployment"]))
        try await first.close()

        let second = try await SQLiteOperationStore.open(.init(dataDirectory: dir.path))
        #expect(try await columns(second).isSuperset(of: ["cut_runs", "deployment"]))
        let read = try #require(try await second.get(id: old.id))
        #expect((read.attempts, read.cutRuns) == (0, 0))
        // Written before the column: not found by the deployment filter (documented), found by its pipeline.
        #expect(
            try await second.list(filter: OperationFilter(deployment: "nightly"), pageSize: 10, pageToken: nil)
                .operations.isEmpty)
        // An earlier gateway's insert (it names neither column) and its release still run.
        try await second.serialized {
            try await second.query(
                """
                INSERT INTO operations (id, pipeline_key, state, request, created_at, attempts, not_before, \
                request_digest) SELECT 'earlier', pipeline_key, 'running', request, created_at, 1, not_before, '' \
                FROM operations WHERE id = ?
                """, [.text(old.id)])
            try await second.query(
                "UPDATE operations SET state = 'queued', attempts = MAX(attempts - 1, 0) WHERE id = 'earlier'")
        }
        let earlier = try #require(try await second.get(id: "earlier"))
        #expect(earlier.state == .queued)
        #expect((earlier.attempts, earlier.cutRuns) == (0, 0))
        let (new, _) = try await second.enqueue(Self.request(deployment: "nightly"), idempotencyKey: nil)
        #expect(
            try await second.list(filter: OperationFilter(deployment: "nightly"), pageSize: 10, pageToken: nil)
                .operations.map(\.id) == [new.id])
        // The deployment filter reads the deployment index.
        let plan = try await second.serialized {
            try await second.query(
                "EXPLAIN QUERY PLAN SELECT seq FROM operations WHERE deployment = ? ORDER BY seq DESC LIMIT 2",
                [.text("nightly")])
        }.compactMap { $0.column("detail")?.string }
        #expect(plan.contains { $0.contains("operations_by_deployment") }, "\(plan)")
        try await second.close()
    }

    @Test(
        "PostgreSQL: a database an earlier gateway made gains the columns at the next start, while that gateway's insert and release keep working"
    )
    func postgresMigration() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = "\(try #require(harness.postgresConfiguration?.tablePrefix))operations"
            func columns() async throws -> Set<String> {
                let rows = try await postgres.client.query(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = \(table)",
                    logger: postgres.logger
                ).collect()
                return Set(try rows.map { try $0.decode(String.self) })
            }
            #expect(try await columns().isSuperset(of: ["cut_runs", "deployment"]))
            let (old, _) = try await store.enqueue(Self.request(deployment: "nightly"), idempotencyKey: nil)
            for statement in [
                "ALTER TABLE \(table) DROP COLUMN deployment", "ALTER TABLE \(table) DROP COLUMN cut_runs",
            ] {
                try await postgres.client.query(PostgresQuery(unsafeSQL: statement), logger: postgres.logger)
            }
            #expect(try await columns().isDisjoint(with: ["cut_runs", "deployment"]))

            // The next start (another instance, or a restart) adds them back; the earlier gateway, still running,
            // inserts and releases without naming them.
            try await harness.withPeer { peer in
                #expect(try await columns().isSuperset(of: ["cut_runs", "deployment"]))
                try await postgres.client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(table) (id, pipeline_key, state, request, created_at, attempts, not_before, \
                            request_digest) SELECT 'earlier', pipeline_key, 'running', request, created_at, 1, \
                            not_before, '' FROM \(table) WHERE id = '\(old.id)'
                            """), logger: postgres.logger)
                try await postgres.client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            UPDATE \(table) SET state = 'queued', attempts = GREATEST(attempts - 1, 0) \
                            WHERE id = 'earlier'
                            """), logger: postgres.logger)
                let earlier = try #require(try await peer.get(id: "earlier"))
                #expect(earlier.state == .queued)
                #expect((earlier.attempts, earlier.cutRuns) == (0, 0))
                let read = try #require(try await peer.get(id: old.id))
                #expect(read.cutRuns == 0)
                let (new, _) = try await peer.enqueue(Self.request(deployment: "nightly"), idempotencyKey: nil)
                #expect(
                    try await peer.list(filter: OperationFilter(deployment: "nightly"), pageSize: 10, pageToken: nil)
                        .operations.map(\.id) == [new.id])
            }
        }
    }
}
