import NIOCore
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing

/// `PostgresBinaryArray`: the store's array parameters, written in one pass, are the bytes, type and format
/// PostgresNIO's `Array: PostgresEncodable` writes, and the server reads them back as the arrays they were.
@Suite("PostgreSQL store: array parameters written in one pass")
struct PostgresBinaryArrayTests {
    static let texts: [[String]] = [[], [""], ["a"], ["op-1", "", "ünïcødé ✓", String(repeating: "x", count: 300)]]
    static let integers: [[Int64]] = [[], [0], [1, -1, .max, .min, 1_700_000_000_123]]
    static let booleans: [[Bool]] = [[], [true], [false, true, true, false]]
    static let buffers: [[ByteBuffer]] = [
        [], [ByteBuffer()], [ByteBuffer(bytes: [0, 1, 2, 255])],
        [ByteBuffer(bytes: Array(repeating: 7, count: 1000)), ByteBuffer(), ByteBuffer(string: "{}")],
    ]

    /// The bytes `value` writes as a bind's value (PostgresNIO puts their length before them), with its type and
    /// format.
    static func bound<Value: PostgresDynamicTypeEncodable>(
        _ value: Value
    ) -> (PostgresDataType, PostgresFormat, [UInt8]) {
        var buffer = ByteBuffer()
        value.encode(into: &buffer, context: .default)
        return (value.psqlType, value.psqlFormat, Array(buffer.readableBytesView))
    }

    @Test("each array is the bytes, type and format PostgresNIO's Array encoding gives")
    func sameBytes() {
        for texts in Self.texts {
            #expect(Self.bound(PostgresBinaryArray(texts)) == Self.bound(texts))
        }
        for integers in Self.integers {
            #expect(Self.bound(PostgresBinaryArray(integers)) == Self.bound(integers))
        }
        for booleans in Self.booleans {
            #expect(Self.bound(PostgresBinaryArray(booleans)) == Self.bound(booleans))
        }
        // A buffer read from past its start: only its readable bytes.
        var read = ByteBuffer(bytes: [9, 9, 1, 2, 3])
        read.moveReaderIndex(forwardBy: 2)
        for buffers in Self.buffers + [[read]] {
            #expect(Self.bound(PostgresBinaryArray(buffers)) == Self.bound(buffers))
        }
    }

    @Test("written after other binds, into a buffer that must grow")
    func appendsAfterOtherBytes() {
        let texts = ["alpha", "beta", String(repeating: "γ", count: 200)]
        var ours = ByteBuffer(string: "prefix")
        var theirs = ours
        PostgresBinaryArray(texts).encode(into: &ours, context: .default)
        texts.encode(into: &theirs, context: .default)
        #expect(Array(ours.readableBytesView) == Array(theirs.readableBytesView))
    }

    @Test("the server reads each array back as it was")
    func serverRoundTrip() async throws {
        try await StoreHarness.with(.postgres) { _, store in
            let postgres = try #require(store as? PostgresOperationStore)
            var binds = PostgresBindings(capacity: 4)
            binds.append(PostgresBinaryArray(Self.texts[3]))
            binds.append(PostgresBinaryArray(Self.integers[2]))
            binds.append(PostgresBinaryArray(Self.booleans[2]))
            binds.append(PostgresBinaryArray(Self.buffers[3]))
            binds.append(PostgresBinaryArray([String]()))
            let rows = try await postgres.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT $1::text[], $2::int8[], $3::bool[], $4::bytea[], cardinality($5::text[])",
                    binds: binds),
                logger: postgres.logger
            ).collect()
            let (texts, integers, booleans, buffers, empty) = try #require(rows.first).decode(
                ([String], [Int64], [Bool], [ByteBuffer], Int32).self)
            #expect(texts == Self.texts[3])
            #expect(integers == Self.integers[2])
            #expect(booleans == Self.booleans[2])
            #expect(buffers == Self.buffers[3])
            #expect(empty == 0)
        }
    }
}
