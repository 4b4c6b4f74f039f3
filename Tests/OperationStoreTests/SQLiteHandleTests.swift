import Foundation
import OperationStore
import SQLiteNIO
@testable import SQLiteOperationStore
import Testing
import TriggerModel

/// `SQLiteHandle`: the embedded store's connection with its statements kept prepared (issue 12).
@Suite("SQLite handle: prepared statements kept by text")
struct SQLiteHandleTests {
    /// Opens a handle on a new file in a directory of its own, runs `body`, closes it and removes the directory.
    static func withHandle(_ body: (SQLiteHandle, String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-handle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("t.sqlite").path
        let handle = try SQLiteHandle(path: path)
        defer { handle.close() }
        try body(handle, path)
    }

    @Test("a statement run again is not compiled again, and each run sees only its own binds")
    func repeatedTextCompilesOnce() throws {
        try Self.withHandle { handle, _ in
            _ = try handle.run("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, b BLOB, f REAL)", [])
            let insert = "INSERT INTO t (k, v, b, f) VALUES (?, ?, ?, ?) RETURNING k"
            let before = handle.compiled
            for k in 1...5 {
                let rows = try handle.run(
                    insert, [.integer(k), .text("v\(k) é"), .blob(ByteBuffer(bytes: [0, UInt8(k)])), .float(0.5)])
                #expect(rows.map { $0.value(at: 0)?.integer } == [k])
            }
            #expect(handle.compiled == before + 1)
            // Binds are cleared after each run: a run that binds fewer values leaves the rest NULL.
            _ = try handle.run(insert, [.integer(6)])
            let rows = try handle.run(
                "SELECT k, v, b, f FROM t WHERE k IN (?, ?) ORDER BY k", [.integer(2), .integer(6)])
            #expect(rows.count == 2)
            #expect(rows[0].names == ["k", "v", "b", "f"])
            #expect(rows[0].column("v")?.string == "v2 é")
            #expect(rows[0].column("b")?.blob == ByteBuffer(bytes: [0, 2]))
            #expect(rows[0].column("f")?.double == 0.5)
            #expect(rows[1].column("v") == .null)
            #expect(rows[1].column("b") == .null)
            #expect(rows[1].column("nonesuch") == nil)
            #expect(rows[1].value(at: 4) == nil)
            #expect(handle.compiled == before + 2)
        }
    }

    @Test("a failed statement is reset: its transaction rolls back, and it runs again afterwards")
    func failedStatementIsReset() throws {
        try Self.withHandle { handle, path in
            _ = try handle.run("PRAGMA journal_mode = WAL", [])
            _ = try handle.run("CREATE TABLE t (k INTEGER PRIMARY KEY)", [])
            let insert = "INSERT INTO t (k) VALUES (?)"
            _ = try handle.run("BEGIN IMMEDIATE", [])
            _ = try handle.run(insert, [.integer(1)])
            let failure = #expect(throws: SQLiteHandle.Failure.self) { try handle.run(insert, [.integer(1)]) }
            #expect(failure.map { $0.code & 0xff } == 19)  // SQLITE_CONSTRAINT
            #expect(failure?.isFull == false)
            #expect(failure?.message.contains("UNIQUE") == true)
            _ = try handle.run("ROLLBACK", [])
            // The rollback released the write lock: another connection writes at once (no busy wait set).
            let other = try SQLiteHandle(path: path)
            defer { other.close() }
            _ = try other.run(insert, [.integer(7)])
            _ = try handle.run(insert, [.integer(2)])
            #expect(try handle.run("SELECT k FROM t ORDER BY k", []).map { $0.value(at: 0)?.integer } == [2, 7])
        }
    }

    @Test("past its capacity the least recently used statement is finalized and compiles again when run")
    func leastRecentlyUsedEvicted() throws {
        try Self.withHandle { handle, _ in
            let hot = "SELECT 0"
            _ = try handle.run(hot, [])
            let start = handle.compiled
            // capacity - 1 other texts fill the cache; the hot one is used after each, so it is never the oldest.
            for i in 1..<SQLiteHandle.capacity {
                _ = try handle.run("SELECT \(i)", [])
                _ = try handle.run(hot, [])
            }
            #expect(handle.compiled == start + SQLiteHandle.capacity - 1)
            _ = try handle.run("SELECT \(SQLiteHandle.capacity)", [])  // one past: evicts "SELECT 1"
            _ = try handle.run(hot, [])
            #expect(handle.compiled == start + SQLiteHandle.capacity)
            _ = try handle.run("SELECT 2", [])  // still kept
            #expect(handle.compiled == start + SQLiteHandle.capacity)
            #expect(try handle.run("SELECT 1", []).first?.value(at: 0)?.integer == 1)  // evicted: compiled again
            #expect(handle.compiled == start + SQLiteHandle.capacity + 1)
        }
    }

    @Test("a kept statement recompiled after a schema change returns the new columns")
    func schemaChangeColumns() throws {
        try Self.withHandle { handle, _ in
            _ = try handle.run("CREATE TABLE t (a INTEGER)", [])
            _ = try handle.run("INSERT INTO t (a) VALUES (1)", [])
            #expect(try handle.run("SELECT * FROM t", []).first?.names == ["a"])
            _ = try handle.run("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'", [])
            let row = try handle.run("SELECT * FROM t", []).first
            #expect(row?.names == ["a", "b"])
            #expect(row?.column("b")?.string == "x")
        }
    }

    @Test("a kept statement recompiled after a column was renamed returns the new name (same column count)")
    func renamedColumn() throws {
        try Self.withHandle { handle, _ in
            _ = try handle.run("CREATE TABLE t (a INTEGER)", [])
            _ = try handle.run("INSERT INTO t (a) VALUES (1)", [])
            #expect(try handle.run("SELECT * FROM t", []).first?.names == ["a"])
            _ = try handle.run("ALTER TABLE t RENAME COLUMN a TO b", [])
            let row = try handle.run("SELECT * FROM t", []).first
            #expect(row?.names == ["b"])
            #expect(row?.column("b")?.integer == 1)
            #expect(row?.column("a") == nil)
        }
    }

    @Test("a statement text past the kept limit is compiled at each run and not kept; one at the limit is kept")
    func longTextsNotKept() throws {
        try Self.withHandle { handle, _ in
            // `SELECT 1 AS x` padded with spaces to the limit's length, then one byte past it.
            func padded(_ length: Int) -> String {
                let base = "SELECT 1 AS x"
                return base + String(repeating: " ", count: length - base.utf8.count)
            }
            let atLimit = padded(SQLiteHandle.keptTextLimit)
            let past = padded(SQLiteHandle.keptTextLimit + 1)
            let before = handle.compiled
            for _ in 0..<3 {
                let x = try handle.run(atLimit, []).first?.column("x")?.integer
                #expect(x == 1)
            }
            #expect(handle.compiled == before + 1, "kept: compiled once")
            for _ in 0..<3 {
                let x = try handle.run(past, []).first?.column("x")?.integer
                #expect(x == 1)
            }
            #expect(handle.compiled == before + 4, "not kept: compiled at each run")
            // A failed long statement is finalized too, and the handle goes on.
            let bad = "SELECT nope FROM nowhere" + String(repeating: " ", count: SQLiteHandle.keptTextLimit)
            #expect(throws: SQLiteHandle.Failure.self) { try handle.run(bad, []) }
            let rows = try handle.run(past, [])
            #expect(rows.count == 1)
        }
    }

    @Test("a closed handle refuses statements with SQLITE_MISUSE; closing again does nothing")
    func closedHandle() throws {
        try Self.withHandle { handle, _ in
            _ = try handle.run("SELECT 1", [])
            handle.close()
            #expect(handle.isClosed)
            let failure = #expect(throws: SQLiteHandle.Failure.self) { try handle.run("SELECT 2", []) }
            #expect(failure?.code == 21)  // SQLITE_MISUSE
            handle.close()
        }
    }

    @Test("an unopenable path fails with SQLite's reason")
    func openFailure() throws {
        let failure = #expect(throws: SQLiteHandle.Failure.self) {
            _ = try SQLiteHandle(path: "/nonexistent-\(UUID().uuidString)/db.sqlite")
        }
        #expect(failure.map { $0.code & 0xff } == 14)  // SQLITE_CANTOPEN
    }

    @Test(
        "the store compiles each statement once: a second round of enqueue, claim and complete compiles nothing",
        .timeLimit(.minutes(1)))
    func storeReusesStatements() async throws {
        try await StoreHarness.with(.sqlite) { _, any in
            let store = try #require(any as? SQLiteOperationStore)
            func round(_ name: String) async throws {
                // Wall-clock times per round: a later round's enqueue must be due at its claim's `now`.
                let t0 = Fixtures.now() + 1
                let id = try await store.enqueue(Fixtures.request(text: name), idempotencyKey: nil).operation.id
                let claimed = try await store.claim(owner: "A", leaseDuration: .seconds(30), limit: 1, now: t0)
                #expect(claimed.map(\.id) == [id])
                #expect(try await store.complete(id: id, owner: "A", result: Fixtures.result(), now: t0 + 1))
                #expect(try await store.get(id: id)?.state == .succeeded)
            }
            try await round("first")
            let compiled = try await store.compiledStatementCount()
            for i in 0..<3 { try await round("again \(i)") }
            #expect(try await store.compiledStatementCount() == compiled)
        }
    }

    @Test("changes: a write run once per row of binds answers the rows each run changed, in order")
    func changesPerRun() throws {
        try Self.withHandle { handle, _ in
            _ = try handle.run("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)", [])
            _ = try handle.run("INSERT INTO t (k, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')", [])
            let before = handle.compiled
            // Keys 2 and 9 (none), 2 again (its value already 'x': still a change), 3: one compiled statement.
            let update = "UPDATE t SET v = ?2 WHERE k = ?1"
            let changed = try handle.changes(
                update,
                [.integer(2), .text("x"), .integer(9), .text("y"), .integer(2), .text("x"), .integer(3), .text("z")],
                width: 2)
            #expect(changed == [1, 0, 1, 1])
            #expect(handle.compiled == before + 1)
            #expect(
                try handle.run("SELECT v FROM t ORDER BY k", []).map { $0.value(at: 0)?.string } == ["a", "x", "z"])
            // A conditional write that matches nothing the second time (the first changed the row's state).
            let claim = "UPDATE t SET v = 'done' WHERE k = ?1 AND v <> 'done'"
            #expect(try handle.changes(claim, [.integer(1), .integer(1)], width: 1) == [1, 0])
            // A multi-row insert as one run: the count of rows it inserted, fewer when `DO NOTHING` skipped one.
            let insert = "INSERT INTO t (k, v) VALUES (?, ?), (?, ?) ON CONFLICT (k) DO NOTHING"
            #expect(try handle.changes(insert, [.integer(4), .text("d"), .integer(1), .text("e")], width: 4) == [1])
            // A statement that returns rows is not a write counted by its changes.
            let misuse = #expect(throws: SQLiteHandle.Failure.self) {
                try handle.changes("SELECT k FROM t WHERE k = ?", [.integer(1)], width: 1)
            }
            #expect(misuse?.code == 21)  // SQLITE_MISUSE
            // The kept statement was reset: a write after the failure runs.
            #expect(try handle.changes(update, [.integer(4), .text("w")], width: 2) == [1])
        }
    }

    @Test(
        "the enqueue and completion writes open no ephemeral table; their earlier RETURNING and VALUES forms did",
        .timeLimit(.minutes(1)))
    func writesOpenNoEphemeralTable() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-explain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = SQLiteOperationStore.Configuration(dataDirectory: directory.path)
        let store = try await SQLiteOperationStore.open(configuration)
        let handle = try SQLiteHandle(path: configuration.databasePath)
        defer { handle.close() }
        func opcodes(_ sql: String) throws -> [String] {
            try handle.run("EXPLAIN \(sql)", []).compactMap { $0.column("opcode")?.string }
        }
        for sql in [
            SQLiteOperationStore.enqueueStatement(rows: 1), SQLiteOperationStore.enqueueStatement(rows: 3),
            SQLiteOperationStore.completionStatement,
        ] {
            let ops = try opcodes(sql)
            #expect(ops.contains("Insert") || ops.contains("Update") || ops.contains("Column"))
            #expect(!ops.contains("OpenEphemeral"), "\(sql)")
        }
        // The forms they replace (main cddc270): `RETURNING` and a joined `VALUES` list each open one (issue 12).
        #expect(try opcodes(SQLiteOperationStore.enqueueStatement(rows: 2) + " RETURNING id").contains("OpenEphemeral"))
        #expect(
            try opcodes(
                """
                UPDATE operations SET state = 'succeeded', result = v.column3 FROM (VALUES (?, ?, ?), (?, ?, ?)) AS v \
                WHERE operations.id = v.column1 AND operations.lease_owner = v.column2 RETURNING operations.id
                """
            ).contains("OpenEphemeral"))
        try await store.close()
    }

    @Test("an operation row is read by position: the select list's columns are `SelectColumn`'s, in its order")
    func operationRowsReadByPosition() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-columns-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = SQLiteOperationStore.Configuration(dataDirectory: directory.path)
        let store = try await SQLiteOperationStore.open(configuration)
        let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
        let listed = SQLiteOperationStore.selectColumns.split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        #expect(SQLiteOperationStore.SelectColumn.names == listed)
        // The names SQLite gives the store's rows (what `operationRow` compares), for a SELECT and a RETURNING.
        let handle = try SQLiteHandle(path: configuration.databasePath)
        defer { handle.close() }
        let selected = try handle.run(
            "SELECT \(SQLiteOperationStore.selectColumns) FROM operations WHERE id = ?", [.text(id)])
        #expect(selected.first?.names == SQLiteOperationStore.SelectColumn.names)
        let returned = try handle.run(
            "UPDATE operations SET attempts = attempts WHERE id = ? RETURNING \(SQLiteOperationStore.selectColumns)",
            [.text(id)])
        #expect(returned.first?.names == SQLiteOperationStore.SelectColumn.names)
        // Read through the store (positional) it is the operation enqueued.
        #expect(try await store.get(id: id)?.id == id)
        try await store.close()
    }

    @Test("the enqueue statement of n rows is one INSERT of n VALUES rows, the same text when asked again, kept or not")
    func enqueueStatementText() {
        // The text before it was built once per batch size (main 69058a5), which the kept texts must equal.
        func expected(_ rows: Int) -> String {
            let row = "(?, ?, 'queued', ?, ?, 0, ?, ?, ?, ?, ?, ?)"
            let values = repeatElement(row, count: rows).joined(separator: ", ")
            return """
                INSERT INTO operations (id, pipeline_key, state, request, created_at, attempts, not_before, \
                idempotency_scope, idempotency_key, request_digest, has_blobs, deployment) VALUES \(values) \
                ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
                """
        }
        // 1 and 2 rows, the last kept size and the first not kept (past `keptTextLimit`), in a shuffled order.
        let kept = (1...80).last { expected($0).utf8.count <= SQLiteHandle.keptTextLimit }!
        for rows in [2, kept + 1, 1, kept, 2, kept + 1, kept, 1] {
            #expect(SQLiteOperationStore.enqueueStatement(rows: rows) == expected(rows), "\(rows) rows")
        }
    }
}
