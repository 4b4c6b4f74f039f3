import FoundationEssentials
import NIOCore
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// `PostgresRecord`: a row's columns sent as one composite value (`ROW(…)`) and read field by field, on records a
/// real server sends; and the operation rows the store reads that way are the rows PostgresNIO decodes column by
/// column.
@Suite("PostgreSQL store: rows read as one record")
struct PostgresRecordTests {
    /// The first cell of the one row `sql` answers, as a record.
    static func record(_ sql: String, _ binds: PostgresBindings = PostgresBindings(), on store: PostgresOperationStore)
        async throws -> PostgresRecord
    {
        let rows = try await store.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: store.logger)
            .collect()
        #expect(rows.count == 1)
        return try #require(rows.first).decode(PostgresRecord.self)
    }

    @Test("each field type, NULLs, non-ASCII text and the integer bounds read back as sent")
    func fields() async throws {
        try await StoreHarness.with(.postgres) { _, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let long = String(repeating: "ж", count: 300)
            var binds = PostgresBindings(capacity: 4)
            binds.append(Int64.min)
            binds.append("ünïcødé ✓ \(long)")
            binds.append(ByteBuffer(bytes: [0, 1, 2, 255]))
            binds.append(Int64.max)
            var record = try await Self.record(
                """
                SELECT ROW($1::int8, $2::text, NULL::text, $3::bytea, NULL::bytea, NULL::int8, 7::int4, (-3)::int2, \
                true, false, ''::text, ''::bytea, 'v'::varchar, $4::int8)
                """, binds, on: postgres)
            #expect(record.remaining == 14)
            #expect(try record.int64() == .min)
            #expect(try record.string() == "ünïcødé ✓ \(long)")
            #expect(try record.stringOrNil() == nil)
            #expect(try record.bytes() == ByteBuffer(bytes: [0, 1, 2, 255]))
            #expect(try record.bytesOrNil() == nil)
            #expect(try record.int64OrNil() == nil)
            #expect(try record.int64() == 7)
            #expect(try record.int64() == -3)
            #expect(try record.bool() == true)
            #expect(try record.bool() == false)
            #expect(try record.string() == "")
            #expect(try record.bytes() == ByteBuffer())
            #expect(try record.stringOrNil() == "v")
            #expect(try record.int64OrNil() == .max)
            #expect(record.remaining == 0)
        }
    }

    @Test("a field of another type, a NULL where none may be, and a read past the last field are errors")
    func errors() async throws {
        try await StoreHarness.with(.postgres) { _, store in
            let postgres = try #require(store as? PostgresOperationStore)
            var record = try await Self.record("SELECT ROW(1::int8, NULL::text, 'x'::text)", on: postgres)
            // An integer read as text: the OID is checked, the bytes are not taken for UTF-8.
            #expect(throws: GatewayError.self) { try record.string() }
            record = try await Self.record("SELECT ROW(1::int8, NULL::text, 'x'::text)", on: postgres)
            #expect(try record.int64() == 1)
            #expect(throws: GatewayError.self) { try record.string() }
            record = try await Self.record("SELECT ROW(1::int8, NULL::text, 'x'::text)", on: postgres)
            _ = try record.int64()
            _ = try record.stringOrNil()
            #expect(throws: GatewayError.self) { try record.bytes() }
            record = try await Self.record("SELECT ROW('x'::text)", on: postgres)
            _ = try record.string()
            #expect(throws: GatewayError.self) { try record.string() }
            record = try await Self.record("SELECT ROW(NULL::bool)", on: postgres)
            #expect(throws: GatewayError.self) { try record.bool() }
            // A column that is not a record at all (its eight bytes would read as a record of no fields).
            let rows = try await postgres.client.query("SELECT 1::int8", logger: postgres.logger).collect()
            let row = try #require(rows.first)
            #expect(throws: PostgresDecodingError.self) { _ = try row.decode(PostgresRecord.self) }
        }
    }

    @Test("the text format and a record cut short are errors")
    func malformed() throws {
        var text = ByteBuffer(string: "(1,x)")
        #expect(throws: PostgresDecodingError.Code.self) {
            _ = try PostgresRecord(from: &text, type: .record, format: .text, context: .default)
        }
        var zero = ByteBuffer(integer: Int32(0))
        #expect(throws: PostgresDecodingError.Code.self) {
            _ = try PostgresRecord(from: &zero, type: .int4, format: .binary, context: .default)
        }
        // One field announced: an int8 of 8 bytes, of which 4 arrived.
        var cut = ByteBuffer()
        cut.writeInteger(Int32(1))
        cut.writeInteger(UInt32(20))
        cut.writeInteger(Int32(8))
        cut.writeInteger(Int32(0))
        var record = try PostgresRecord(from: &cut, type: .record, format: .binary, context: .default)
        #expect(throws: GatewayError.self) { try record.int64() }
        // An integer of three bytes, and a text longer than what arrived.
        var odd = ByteBuffer()
        odd.writeInteger(Int32(2))
        odd.writeInteger(UInt32(20))
        odd.writeInteger(Int32(3))
        odd.writeBytes([0, 0, 1])
        odd.writeInteger(UInt32(25))
        odd.writeInteger(Int32(10))
        odd.writeString("short")
        record = try PostgresRecord(from: &odd, type: .record, format: .binary, context: .default)
        #expect(throws: GatewayError.self) { try record.int64() }
        #expect(throws: GatewayError.self) { try record.string() }
        var empty = ByteBuffer()
        #expect(throws: GatewayError.self) {
            _ = try PostgresRecord(from: &empty, type: .record, format: .binary, context: .default)
        }
    }

    /// The fields of `row`, for comparison (`OperationRow` is not `Equatable`).
    static func fields(_ row: OperationRow) -> [String] {
        func text(_ buffer: ByteBuffer?) -> String { buffer.map { "\(Array($0.readableBytesView))" } ?? "NULL" }
        return [
            "\(row.sequence)", row.id, row.state, text(row.request), text(row.result), text(row.error),
            "\(row.createdAt)", "\(row.startedAt as Any)", "\(row.finishedAt as Any)", "\(row.attempts)",
            "\(row.leaseOwner as Any)", "\(row.leaseExpiresAt as Any)", "\(row.notBefore)",
            "\(row.idempotencyKey as Any)", row.requestDigest, "\(row.cutRuns)",
        ]
    }

    @Test("the store's operation rows read as records equal the columns PostgresNIO decodes")
    func operationRows() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let prefix = try #require(harness.postgresConfiguration).tablePrefix
            // Queued (NULL result, error, start, finish, lease), with a non-ASCII key; one claimed and completed.
            _ = try await store.enqueue(Fixtures.request(text: "ünïcødé ✓"), idempotencyKey: "ключ-✓")
            _ = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            let claimed = try await store.claim(owner: "wörker", leaseDuration: .seconds(60), limit: 1, now: Date())
            let id = try #require(claimed.first?.id)
            #expect(try await store.complete(id: id, owner: "wörker", result: Fixtures.result(), now: Date()))
            _ = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            _ = try await store.claim(owner: "wörker", leaseDuration: .seconds(60), limit: 1, now: Date())

            let table = "\(prefix)operations"
            let records = try await postgres.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT \(PostgresOperationStore.selectRecord) FROM \(table) ORDER BY seq"),
                logger: postgres.logger
            ).collect()
            let columns = try await postgres.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT \(PostgresOperationStore.selectColumns) FROM \(table) ORDER BY seq"),
                logger: postgres.logger
            ).collect()
            #expect(records.count == 3 && columns.count == 3)
            var states: Set<String> = []
            var keys: [String] = []
            for (recordRow, columnRow) in zip(records, columns) {
                var record = try recordRow.decode(PostgresRecord.self)
                let read = try PostgresOperationStore.operationRow(&record)
                #expect(record.remaining == 0)
                let (sequence, id, state, request, result, error) = try columnRow.decode(
                    (Int64, String, String, ByteBuffer, ByteBuffer?, ByteBuffer?).self)
                var cells = columnRow.makeIterator()
                for _ in 0..<6 { _ = cells.next() }
                func next<Column: PostgresDecodable>(_: Column.Type) throws -> Column {
                    let cell = cells.next()
                    return try #require(cell).decode(Column.self)
                }
                let expected = OperationRow(
                    sequence: sequence, id: id, state: state, request: request, result: result, error: error,
                    createdAt: try next(Int64.self), startedAt: try next(Int64?.self),
                    finishedAt: try next(Int64?.self), attempts: try next(Int.self), leaseOwner: try next(String?.self),
                    leaseExpiresAt: try next(Int64?.self), notBefore: try next(Int64.self),
                    idempotencyKey: try next(String?.self), requestDigest: try next(String.self),
                    cutRuns: try next(Int.self)
                )
                #expect(read.hasBlobs == (try next(Bool.self)))
                #expect(Self.fields(read.row) == Self.fields(expected))
                states.insert(read.row.state)
                keys += read.row.idempotencyKey.map { [$0] } ?? []
            }
            #expect(states == ["succeeded", "queued", "running"])
            #expect(keys == ["ключ-✓"])
        }
    }
}
