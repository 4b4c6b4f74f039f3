import NIOCore
import SQLiteNIO
// sqlite-nio's C target (the SQLite amalgamation, `sqlite_nio_`-prefixed). Not one of its products: SwiftPM builds it
// for `SQLiteNIO` and lets a dependent import it. sqlite-nio's `SQLiteConnection` keeps its `sqlite3*` and its
// statements internal and compiles every statement anew (~65 000 instructions per accepted-and-run operation, issue
// 12); this handle keeps them prepared.
import VaporCSQLite

/// One SQLite connection (`sqlite3*`) with its prepared statements kept by SQL text, for `SQLiteOperationStore`.
///
/// Thread confinement: every method runs on the store's one-thread `NIOThreadPool` (the store calls them through
/// `runIfActive`, under its `SerialGate`), so the statements and the cache are never touched by two threads at once;
/// hence `@unchecked Sendable`. So the connection is opened `SQLITE_OPEN_NOMUTEX` (SQLite's "multi-thread" mode: no
/// connection mutex; sqlite-nio opens its own connections `FULLMUTEX`, which this does not change): with
/// `FULLMUTEX` every `sqlite3_step`, bind and column read took and released the connection's mutex, ~60 pairs per
/// accepted-and-run operation (`bench/callgrind --only async`).
///
/// Durability is SQLite's: `run("COMMIT")` returns once `sqlite3_step` returned `SQLITE_DONE`, which with
/// `synchronous = FULL` is after the WAL's fsync. A cached statement is always reset before `run` returns (also when
/// it fails), so none holds a read snapshot or blocks `COMMIT`/`ROLLBACK` between runs.
final class SQLiteHandle: @unchecked Sendable {
    /// A prepared statement and its result's column names (read once: `sqlite3_column_name` per run would cost a
    /// `String` per column per statement), read again when SQLite has recompiled the statement since.
    private final class Prepared {
        let statement: OpaquePointer
        var names: [String]
        var lastUse: UInt64 = 0
        /// `SQLITE_STMTSTATUS_REPREPARE` when `names` were read: SQLite recompiles a kept statement after a schema
        /// change, and its columns may then differ in names only (a renamed column; review 16, F8).
        var reprepares: Int32

        init(statement: OpaquePointer) {
            self.statement = statement
            self.names = Self.columnNames(of: statement)
            self.reprepares = sqlite_nio_sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_REPREPARE, 0)
        }

        /// Reads the names again when the statement was recompiled since they were read.
        func refreshNames() {
            let reprepares = sqlite_nio_sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_REPREPARE, 0)
            guard reprepares != self.reprepares else { return }
            self.reprepares = reprepares
            names = Self.columnNames(of: statement)
        }

        static func columnNames(of statement: OpaquePointer) -> [String] {
            (0..<sqlite_nio_sqlite3_column_count(statement)).map { index in
                sqlite_nio_sqlite3_column_name(statement, index).map { String(cString: $0) } ?? ""
            }
        }
    }

    /// Statements kept at most. The store's texts vary with the batch size (`VALUES (…), (…)` of up to the group
    /// commit's batch, for enqueues and completions; long ones are not kept, `keptTextLimit`) and the claim's
    /// pipeline scope; past this the least recently used is finalized.
    static let capacity = 96

    /// Statement texts longer than this (bytes) are compiled, run and finalized, not kept: the group commit's
    /// `VALUES` lists of more than ~40 enqueues or ~110 completions. Kept, a batch size each would crowd the cache
    /// under a varied load (up to 256 texts per kind, each compiled again once evicted), and each holds ~1.1 KB of
    /// compiled program per row (~290 KB at 256 rows; review 16 F6). Compiling such a batch costs a few thousand
    /// instructions per row it writes; batches that large come only with a backlog. Below it, at most
    /// `capacity` × ~45 KB are kept.
    static let keptTextLimit = 2048

    private var raw: OpaquePointer?
    private var cache: [String: Prepared] = [:]
    private var uses: UInt64 = 0
    /// Statements compiled (`sqlite3_prepare_v3`) since open (for tests: a repeated text compiles once).
    private(set) var compiled = 0

    /// `sqlite3_initialize` once per process before the first open (as sqlite-nio does, under its lock: its
    /// configuration globals raced when two connections opened at once).
    private static let initialized: Void = { _ = sqlite_nio_sqlite3_initialize() }()

    /// Opens (creating when missing) the database file at `path` with extended result codes.
    ///
    /// - Throws: `SQLiteHandle.Failure` with SQLite's code and message.
    init(path: String) throws {
        _ = Self.initialized
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let status = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.flatMap { sqlite_nio_sqlite3_errmsg($0).map { String(cString: $0) } }
            sqlite_nio_sqlite3_close(handle)
            throw Failure(code: status, message: message ?? "cannot open \(path)")
        }
        raw = handle
    }

    deinit {
        // No run can be under way once the last reference is gone. The store's own deinit hands its last reference
        // to its thread, so this runs there (closing checkpoints the WAL: an fsync, not for an event loop's thread).
        close()
    }

    var isClosed: Bool { raw == nil }

    /// Runs `sql` with `binds` (`?`, `?N`: the N-th value) to the end and returns its rows.
    ///
    /// - Throws: `SQLiteHandle.Failure` (SQLite's extended code and `sqlite3_errmsg`), also when closed.
    func run(_ sql: String, _ binds: [SQLiteData]) throws -> [SQLiteResultRow] {
        if sql.utf8.count > Self.keptTextLimit {
            let prepared = try compile(sql, persistent: false)
            defer { sqlite_nio_sqlite3_finalize(prepared.statement) }
            return try run(prepared, binds)
        }
        let prepared = try statement(for: sql)
        defer {
            sqlite_nio_sqlite3_reset(prepared.statement)
            sqlite_nio_sqlite3_clear_bindings(prepared.statement)
        }
        return try run(prepared, binds)
    }

    /// Runs `sql`, a write without `RETURNING`, once per `width` values of `binds` (`binds.count / width` runs of one
    /// compiled statement, reset between them, in order) and returns the rows each run changed (`sqlite3_changes64`).
    /// A run that fails throws; the runs before it stay made (inside the caller's transaction, whose `ROLLBACK`
    /// undoes them).
    ///
    /// Why not one statement for the whole batch: SQLite gathers a statement's `RETURNING` rows, and materialises a
    /// `VALUES` list it joins, in an ephemeral B-tree it opens, fills and frees at every run (`sqlite3BtreeOpen`, its
    /// page `memset`s), which cost more than a kept statement run once per row by its key (issue 12).
    ///
    /// - Throws: `SQLiteHandle.Failure`; a statement that returns rows is `SQLITE_MISUSE`.
    func changes(_ sql: String, _ binds: [SQLiteData], width: Int) throws -> [Int] {
        precondition(width > 0 && binds.count % width == 0, "binds are whole runs of `width` values")
        // As `run`: a text longer than `keptTextLimit` (an enqueue batch's `VALUES` list) is compiled for this call.
        let kept = sql.utf8.count <= Self.keptTextLimit
        let prepared = kept ? try statement(for: sql) : try compile(sql, persistent: false)
        defer {
            if kept {
                sqlite_nio_sqlite3_reset(prepared.statement)
                sqlite_nio_sqlite3_clear_bindings(prepared.statement)
            } else {
                sqlite_nio_sqlite3_finalize(prepared.statement)
            }
        }
        var changed: [Int] = []
        changed.reserveCapacity(binds.count / width)
        for start in stride(from: 0, to: binds.count, by: width) {
            sqlite_nio_sqlite3_reset(prepared.statement)
            try bind(binds[start..<start + width], to: prepared.statement)
            let status = sqlite_nio_sqlite3_step(prepared.statement)
            guard status == SQLITE_DONE else {
                throw status == SQLITE_ROW
                    ? Failure(code: SQLITE_MISUSE, message: "a write counted by its changes returned rows")
                    : failure(status)
            }
            changed.append(Int(sqlite_nio_sqlite3_changes64(raw)))
        }
        return changed
    }

    /// Binds `binds` to `prepared` and steps it to the end; the caller resets or finalizes it.
    private func run(_ prepared: Prepared, _ binds: [SQLiteData]) throws -> [SQLiteResultRow] {
        let statement = prepared.statement
        try bind(binds[...], to: statement)
        var rows: [SQLiteResultRow] = []
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            if status == SQLITE_DONE { return rows }
            guard status == SQLITE_ROW else { throw failure(status) }
            // A statement SQLite recompiled (at its first step after a schema change) may return other columns.
            if rows.isEmpty { prepared.refreshNames() }
            let count = sqlite_nio_sqlite3_column_count(statement)
            rows.append(
                SQLiteResultRow(names: prepared.names, values: try (0..<count).map { try value(statement, $0) }))
        }
    }

    /// Finalizes every statement and closes the connection; later calls fail. Closing twice does nothing.
    func close() {
        for prepared in cache.values { sqlite_nio_sqlite3_finalize(prepared.statement) }
        cache.removeAll()
        guard let raw else { return }
        // `close_v2`, not `close`: should a statement still be unfinalized (none is: each is finalized above or by
        // its caller's `defer`), `sqlite3_close` would answer SQLITE_BUSY and leave the connection and its file
        // descriptor open for good; `close_v2` releases them when that statement is finalized.
        sqlite_nio_sqlite3_close_v2(raw)
        self.raw = nil
    }

    private func statement(for sql: String) throws -> Prepared {
        uses &+= 1
        if let prepared = cache[sql] {
            prepared.lastUse = uses
            return prepared
        }
        let prepared = try compile(sql, persistent: true)
        if cache.count >= Self.capacity, let oldest = cache.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            sqlite_nio_sqlite3_finalize(oldest.value.statement)
            cache.removeValue(forKey: oldest.key)
        }
        prepared.lastUse = uses
        cache[sql] = prepared
        return prepared
    }

    /// `sqlite3_prepare_v3` of `sql` (`persistent`: `SQLITE_PREPARE_PERSISTENT`, for a statement kept long). The
    /// caller finalizes it, or keeps it in `cache`.
    private func compile(_ sql: String, persistent: Bool) throws -> Prepared {
        guard let raw else { throw Failure(code: SQLITE_MISUSE, message: "the database connection is closed") }
        var statement: OpaquePointer?
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let status = sqlite_nio_sqlite3_prepare_v3(raw, sql, -1, flags, &statement, nil)
        guard status == SQLITE_OK else { throw failure(status) }
        guard let statement else {
            // Only whitespace or a comment: nothing to run.
            throw Failure(code: SQLITE_MISUSE, message: "empty statement")
        }
        compiled += 1
        return Prepared(statement: statement)
    }

    private func bind(_ binds: ArraySlice<SQLiteData>, to statement: OpaquePointer) throws {
        for (offset, bind) in binds.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch bind {
            case .blob(let value):
                status = value.withUnsafeReadableBytes {
                    sqlite_nio_sqlite3_bind_blob64(
                        statement, index, $0.baseAddress, UInt64($0.count), Self.transient)
                }
            case .float(let value):
                status = sqlite_nio_sqlite3_bind_double(statement, index, value)
            case .integer(let value):
                status = sqlite_nio_sqlite3_bind_int64(statement, index, Int64(value))
            case .null:
                status = sqlite_nio_sqlite3_bind_null(statement, index)
            case .text(let value):
                var text = value
                status = text.withUTF8 {
                    sqlite_nio_sqlite3_bind_text64(
                        statement, index, $0.baseAddress, UInt64($0.count), Self.transient, UInt8(SQLITE_UTF8))
                }
            }
            guard status == SQLITE_OK else { throw failure(status) }
        }
    }

    /// The value of `column` in the current row, copied (the pointers SQLite returns are good until the next step).
    ///
    /// - Throws: `Failure` `SQLITE_NOMEM` when SQLite could not make the text or blob (it returns NULL then, which
    ///   must not read as an empty id or payload; sqlite-nio threw too; review 16, F7).
    private func value(_ statement: OpaquePointer, _ column: Int32) throws -> SQLiteData {
        switch sqlite_nio_sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER:
            return .integer(SQLiteInt64(sqlite_nio_sqlite3_column_int64(statement, column)))
        case SQLITE_FLOAT:
            return .float(sqlite_nio_sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            // Pointer first, then its length (SQLite's rule for column_text then column_bytes). An empty text is a
            // pointer to its terminator: NULL is only ever out of memory.
            guard let text = sqlite_nio_sqlite3_column_text(statement, column) else {
                throw Failure(code: SQLITE_NOMEM, message: "out of memory reading a text column")
            }
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            // An empty blob is NULL; a NULL for a non-empty one is out of memory.
            let blob = sqlite_nio_sqlite3_column_blob(statement, column)
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            guard blob != nil || count == 0 else {
                throw Failure(code: SQLITE_NOMEM, message: "out of memory reading a blob column")
            }
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            if let blob { buffer.writeBytes(UnsafeRawBufferPointer(start: blob, count: count)) }
            return .blob(buffer)
        default:
            return .null
        }
    }

    private func failure(_ status: Int32) -> Failure {
        let message = raw.flatMap { sqlite_nio_sqlite3_errmsg($0).map { String(cString: $0) } }
        return Failure(code: status, message: message ?? "SQLite error \(status)")
    }

    /// SQLite copies bound text and blobs before `bind` returns (`SQLITE_TRANSIENT`).
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

    /// A failed SQLite call: its (extended) result code and `sqlite3_errmsg`.
    struct Failure: Error, CustomStringConvertible {
        let code: Int32
        let message: String

        /// `SQLITE_FULL`: the disk (or `max_page_count`) is full.
        var isFull: Bool { code & 0xff == SQLITE_FULL }

        var description: String { "SQLite error \(code): \(message)" }
    }
}

/// A row of `SQLiteHandle.run`: the statement's column names (shared by its rows) and this row's values.
struct SQLiteResultRow: Sendable {
    let names: [String]
    let values: [SQLiteData]

    /// The value of the first column called `name`, nil when none is.
    func column(_ name: String) -> SQLiteData? {
        names.firstIndex(of: name).map { values[$0] }
    }

    /// The value at `index` (0-based), nil past the last column.
    func value(at index: Int) -> SQLiteData? {
        index < values.count ? values[index] : nil
    }
}
