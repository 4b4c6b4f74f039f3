import Foundation
import NIOCore
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import SQLiteNIO
@testable import SQLiteOperationStore
import Testing
import TriggerModel

/// Security review 60, M3: a list for a caller (`OperationFilter.viewer`) is filtered in the store's query, by the
/// `principal` column, so the store never decodes another principal's operations nor reads their blobs (before, a
/// `page_size=1` list by one principal read another's blob files, ~570 MB, inside SQLite's serial gate). A caller
/// sees its own operations and every schedule's run; rows stored without the column (an earlier gateway's) are
/// listed by their stored request's principal; paging is stable across the filter.
@Suite("operation store: a caller's list is filtered in the store")
struct OperationStoreViewerTests {
    /// Runs `sql` on `store`'s own database (`operations` is the table's name; PostgreSQL's gets its prefix).
    static func run(_ sql: String, _ harness: StoreHarness, _ store: any OperationStore) async throws {
        if let sqlite = store as? SQLiteOperationStore {
            try await sqlite.serialized { _ = try await sqlite.query(sql) }
        } else if let postgres = store as? PostgresOperationStore {
            let prefix = try #require(harness.postgresConfiguration?.tablePrefix)
            let text = sql.replacingOccurrences(of: "operation_blobs", with: "\(prefix)operation_blobs")
                .replacingOccurrences(of: "operations ", with: "\(prefix)operations ")
            try await postgres.client.query(PostgresQuery(unsafeSQL: text), logger: postgres.logger)
        }
    }

    /// Every operation `viewer` is listed, page by page (`pageSize`), newest first; and the ids each page token
    /// named, which must be ones the caller was shown.
    static func listAll(
        _ store: any OperationStore, _ filter: OperationFilter, pageSize: Int
    ) async throws -> [String] {
        var ids: [String] = []
        var token: String? = nil
        repeat {
            let page = try await store.list(filter: filter, pageSize: pageSize, pageToken: token)
            ids += page.operations.map(\.id)
            token = page.nextPageToken
            if let token {
                let named = try #require(OperationPaging.cursorID(token))
                #expect(ids.contains(named), "a token names an operation the caller was not shown")
                #expect(page.operations.count == pageSize, "only the last page is short")
            }
        } while token != nil
        return ids
    }

    @Test(
        "a caller lists its own operations and every schedule's run, never another's; pages across the filter; rows without the principal column (an earlier gateway's) too",
        arguments: StoreKind.allCases)
    func ownAndScheduleRuns(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            var made: [(id: String, owner: String?, key: String?)] = []
            func enqueue(_ principal: String?, key: String? = nil, pipeline: String = "echo") async throws {
                let request = Fixtures.request(pipeline: pipeline, text: "t\(made.count)", principal: principal)
                made.append((try await store.enqueue(request, idempotencyKey: key).operation.id, principal, key))
            }
            let tick = Date(timeIntervalSince1970: 1_800_000_000)
            try await enqueue("alice")
            for i in 0..<5 {
                try await enqueue("bob")
                try await enqueue("alice", pipeline: i % 2 == 0 ? "echo" : "other")
            }
            try await enqueue(nil, key: ScheduleRunKey(schedule: "nightly", tick: tick).key)
            try await enqueue(nil)
            try await enqueue("alice", key: "k1")
            // An anonymous key with the schedule prefix that is no schedule run's: anonymous's alone.
            try await enqueue(nil, key: "\(ScheduleRunKey.prefix)not-a-run")
            try await enqueue("bob", key: ScheduleRunKey(schedule: "nightly", tick: tick + 60).key)
            for _ in 0..<7 { try await enqueue("bob") }
            let newestFirst = Array(made.reversed())
            func expected(_ viewer: String?, pipeline: String? = nil) -> [String] {
                newestFirst.filter { entry in
                    let run = entry.owner == nil && entry.key.flatMap(ScheduleRunKey.init(parsing:)) != nil
                    return entry.owner == viewer || run
                }.map(\.id)
            }
            let scheduleRun = made[11].id

            for legacy in [false, true] {
                if legacy {
                    // As an earlier gateway stored them: no `principal` value.
                    try await Self.run("UPDATE operations SET principal = NULL", harness, store)
                }
                for viewer in ["alice", "bob", nil] as [String?] {
                    let filter = OperationFilter(viewer: OperationFilter.Viewer(principal: viewer))
                    for pageSize in [1, 2, 1000] {
                        let listed = try await Self.listAll(store, filter, pageSize: pageSize)
                        #expect(listed == expected(viewer), "\(viewer ?? "anonymous"), \(pageSize), legacy \(legacy)")
                    }
                    #expect(expected(viewer).contains(scheduleRun))
                }
                let alice = OperationFilter(viewer: OperationFilter.Viewer(principal: "alice"))
                #expect(expected("alice").count == 8)
                // With the other filters: alice's runs of one pipeline, and the same with a state.
                var echo = alice
                echo.pipeline = "acme/echo"
                let echoIDs = try await Self.listAll(store, echo, pageSize: 2)
                #expect(echoIDs == expected("alice").filter { id in id != made[4].id && id != made[8].id })
                echo.state = .queued
                #expect(try await Self.listAll(store, echo, pageSize: 3) == echoIDs)
                // Without a viewer: every operation (the stores' own callers).
                #expect(try await Self.listAll(store, OperationFilter(), pageSize: 4) == newestFirst.map(\.id))
                // A token stays good for the same filter with another page size.
                let first = try await store.list(filter: alice, pageSize: 3, pageToken: nil)
                let rest = try await store.list(filter: alice, pageSize: 1000, pageToken: first.nextPageToken)
                #expect(first.operations.map(\.id) + rest.operations.map(\.id) == expected("alice"))
            }
        }
    }

    @Test(
        "another caller's list reads none of the first caller's blobs: it answers while those are corrupt, and the owner's does not",
        arguments: StoreKind.allCases)
    func othersBlobsNotRead(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            var alice: [String] = []
            for i in 0..<3 {
                alice.append(
                    try await store.enqueue(
                        Fixtures.request(text: "a\(i)", principal: "alice", blobs: [100_000]), idempotencyKey: nil
                    ).operation.id)
            }
            let bob = try await store.enqueue(Fixtures.request(text: "b", principal: "bob"), idempotencyKey: nil)
                .operation.id
            for i in 0..<3 {
                alice.append(
                    try await store.enqueue(
                        Fixtures.request(text: "c\(i)", principal: "alice", blobs: [100_000]), idempotencyKey: nil
                    ).operation.id)
            }
            // Each of alice's blobs is made the wrong size, so any read of it fails the call that made it.
            if let configuration = harness.sqliteConfiguration {
                for id in alice {
                    let directory = "\(configuration.dataDirectory)/blobs/\(id)"
                    let files = try FileManager.default.contentsOfDirectory(atPath: directory)
                    #expect(!files.isEmpty)
                    for file in files {
                        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(directory)/\(file)"))
                    }
                }
            } else {
                #expect(try await harness.blobNames(store, operationID: alice[0]).count == 1)
                try await Self.run("UPDATE operation_blobs SET bytes = '\\x00'::bytea", harness, store)
            }
            await #expect(throws: (any Error).self) {
                _ = try await store.list(
                    filter: OperationFilter(viewer: OperationFilter.Viewer(principal: "alice")), pageSize: 1,
                    pageToken: nil)
            }
            for legacy in [false, true] {
                if legacy { try await Self.run("UPDATE operations SET principal = NULL", harness, store) }
                for pageSize in [1, 10] {
                    let page = try await store.list(
                        filter: OperationFilter(viewer: OperationFilter.Viewer(principal: "bob")), pageSize: pageSize,
                        pageToken: nil)
                    #expect(page.operations.map(\.id) == [bob], "legacy \(legacy)")
                    #expect(page.nextPageToken == nil)
                }
                let anonymous = try await store.list(
                    filter: OperationFilter(viewer: OperationFilter.Viewer(principal: nil)), pageSize: 1, pageToken: nil
                )
                #expect(anonymous.operations.isEmpty)
                #expect(anonymous.nextPageToken == nil)
            }
        }
    }

    @Test(
        "SQLite: a file made before the principal column gains it and its index at the next open; its rows are listed by their request"
    )
    func sqliteMigration() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try await SQLiteOperationStore.open(.init(dataDirectory: dir.path))
        let alice = try await first.enqueue(Fixtures.request(principal: "alice"), idempotencyKey: nil).operation.id
        let bob = try await first.enqueue(Fixtures.request(principal: "bob"), idempotencyKey: nil).operation.id
        try await first.serialized {
            try await first.query("DROP INDEX operations_by_principal")
            try await first.query("ALTER TABLE operations DROP COLUMN principal")
        }
        try await first.close()

        let second = try await SQLiteOperationStore.open(.init(dataDirectory: dir.path))
        let nulls = try await second.serialized {
            try await second.query("SELECT COUNT(*) AS n FROM operations WHERE principal IS NULL")
        }.first?.column("n")?.integer
        #expect(nulls == 2)
        let carol = try await second.enqueue(Fixtures.request(principal: "carol"), idempotencyKey: nil).operation.id
        for (viewer, ids) in [("alice", [alice]), ("bob", [bob]), ("carol", [carol])] {
            let page = try await second.list(
                filter: OperationFilter(viewer: OperationFilter.Viewer(principal: viewer)), pageSize: 10,
                pageToken: nil)
            #expect(page.operations.map(\.id) == ids)
        }
        // The new row has its value; a caller's own rows are found through the index.
        let stored = try await second.serialized {
            try await second.query("SELECT principal FROM operations WHERE id = ?", [.text(carol)])
        }.first?.column("principal")?.string
        #expect(stored == "carol")
        let plan = try await second.serialized {
            try await second.query(
                "EXPLAIN QUERY PLAN SELECT seq FROM operations WHERE principal = ? ORDER BY seq DESC LIMIT 2",
                [.text("carol")])
        }.compactMap { $0.column("detail")?.string }
        #expect(plan.contains { $0.contains("operations_by_principal") }, "\(plan)")
        try await second.close()
    }

    @Test(
        "PostgreSQL: rows an earlier instance inserts during a rolling upgrade (no principal) are listed by their request"
    )
    func postgresEarlierInstanceRows() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = "\(try #require(harness.postgresConfiguration?.tablePrefix))operations"
            let bob = try await store.enqueue(Fixtures.request(principal: "bob"), idempotencyKey: nil).operation.id
            // An earlier gateway's insert: it names no `principal`.
            try await postgres.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(table) (id, pipeline_key, state, request, created_at, attempts, not_before, \
                        request_digest) SELECT 'earlier', pipeline_key, 'queued', request, created_at, 0, \
                        not_before, '' FROM \(table) WHERE id = '\(bob)'
                        """), logger: postgres.logger)
            let alice = try await store.enqueue(Fixtures.request(principal: "alice"), idempotencyKey: nil).operation.id
            let bobs = try await store.list(
                filter: OperationFilter(viewer: OperationFilter.Viewer(principal: "bob")), pageSize: 1, pageToken: nil)
            #expect(bobs.operations.map(\.id) == ["earlier"])
            let rest = try await store.list(
                filter: OperationFilter(viewer: OperationFilter.Viewer(principal: "bob")), pageSize: 1,
                pageToken: bobs.nextPageToken)
            #expect(rest.operations.map(\.id) == [bob])
            #expect(rest.nextPageToken == nil)
            let alices = try await store.list(
                filter: OperationFilter(viewer: OperationFilter.Viewer(principal: "alice")), pageSize: 10,
                pageToken: nil)
            #expect(alices.operations.map(\.id) == [alice])
        }
    }
}
