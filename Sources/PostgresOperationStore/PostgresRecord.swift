import NIOCore
import PostgresNIO
import TriggerModel

/// A row's columns sent by the server as one composite value (`SELECT ROW(a, b, …) FROM …`), read field by field
/// in the binary format.
///
/// Why one composite cell and not the columns: PostgresNIO hands a row's cells out one `PostgresCell` at a time
/// (`PostgresRow.Iterator.next`, not inlinable: the cell's slice and length read through `DataRow`'s subscript,
/// the column's description copied in and destroyed again, ~700 instructions a cell), then decodes each through
/// its generic `PostgresDecodable` path: ~18.5 k instructions per claimed operation for the 17 columns of
/// `selectColumns` (bench/README.md, branch asynccost6). One cell read through PostgresNIO's `@inlinable`
/// single-column `decode`, then its fields read here, costs a small fraction of that.
///
/// Wire format (PostgreSQL's `record_send`, big-endian): the field count (`Int32`), then per field its type OID
/// (`UInt32`) and byte length (`Int32`, -1 for NULL) and that many bytes in the field type's binary format:
/// `int2`/`int4`/`int8` two, four or eight bytes, two's complement; `text`/`varchar` UTF-8; `bytea` the bytes;
/// `bool` one byte, 0 or 1.
///
/// Each field's type OID is checked against what its reader expects, so a column of another type (a schema
/// changed under the gateway) is a clear error, never a misread value. Every error is
/// `GatewayError(.internalError)` naming the field's position (0-based) and what was found.
struct PostgresRecord: PostgresDecodable {
    private var fields: ByteBuffer
    /// Fields not read yet.
    private(set) var remaining: Int
    /// The position of the next field (0-based), for errors.
    private var position = 0

    /// The record's cell as sent: type `record` (an anonymous `ROW(…)`) in the binary format.
    ///
    /// - Throws: `PostgresDecodingError.Code.typeMismatch` for another type or the text format (PostgresNIO names
    ///   the column);
    ///   `GatewayError(.internalError)` for a record shorter than its field count.
    init<JSONDecoder: PostgresJSONDecoder>(
        from byteBuffer: inout ByteBuffer,
        type: PostgresDataType,
        format: PostgresFormat,
        context: PostgresDecodingContext<JSONDecoder>
    ) throws {
        guard type == .record, format == .binary else { throw PostgresDecodingError.Code.typeMismatch }
        guard let count = byteBuffer.readInteger(as: Int32.self), count >= 0 else {
            throw GatewayError(.internalError, "operation row is damaged (a record without its field count)")
        }
        fields = byteBuffer
        remaining = Int(count)
        byteBuffer.moveReaderIndex(forwardBy: byteBuffer.readableBytes)
    }

    /// Reads the next field's type OID and byte length, checks the OID (`expected` names the type for errors) and
    /// returns the length (-1: NULL), its bytes next in `fields`.
    private mutating func header(_ expected: String, accepting accepts: (UInt32) -> Bool) throws -> Int {
        guard remaining > 0 else {
            throw GatewayError(.internalError, "operation row is damaged (too few fields: \(position))")
        }
        guard let oid = fields.readInteger(as: UInt32.self), let length = fields.readInteger(as: Int32.self) else {
            throw GatewayError(.internalError, "operation row is damaged (field \(position) is cut short)")
        }
        guard accepts(oid) else {
            throw GatewayError(
                .internalError, "operation row is damaged (field \(position) has type OID \(oid), not \(expected))"
            )
        }
        remaining -= 1
        position += 1
        return Int(length)
    }

    private func cutShort() -> GatewayError {
        GatewayError(.internalError, "operation row is damaged (field \(position - 1) is cut short)")
    }

    private static func notNull<Value>(_ value: Value?, _ position: Int) throws -> Value {
        guard let value else {
            throw GatewayError(.internalError, "operation row is damaged (field \(position) is NULL)")
        }
        return value
    }

    /// An `int2`, `int4` or `int8` field, or nil for NULL. Read from the record in place (no slice per field).
    mutating func int64OrNil() throws -> Int64? {
        let length = try header("an integer", accepting: { $0 == 20 || $0 == 23 || $0 == 21 })
        let value: Int64?
        switch length {
        case -1: return nil
        case 8: value = fields.readInteger(as: Int64.self)
        case 4: value = fields.readInteger(as: Int32.self).map(Int64.init)
        case 2: value = fields.readInteger(as: Int16.self).map(Int64.init)
        default:
            throw GatewayError(
                .internalError, "operation row is damaged (integer field \(position - 1) has \(length) bytes)"
            )
        }
        guard let value else { throw cutShort() }
        return value
    }

    /// An `int2`, `int4` or `int8` field that may not be NULL.
    mutating func int64() throws -> Int64 {
        let at = position
        return try Self.notNull(int64OrNil(), at)
    }

    /// A `text` or `varchar` field (UTF-8, as the server sends it to a UTF-8 client), or nil for NULL.
    mutating func stringOrNil() throws -> String? {
        let length = try header("text", accepting: { $0 == 25 || $0 == 1043 })
        if length < 0 { return nil }
        guard let string = fields.readString(length: length) else { throw cutShort() }
        return string
    }

    /// A `text` or `varchar` field that may not be NULL.
    mutating func string() throws -> String {
        let at = position
        return try Self.notNull(stringOrNil(), at)
    }

    /// A `bytea` field (a slice of the record, not a copy), or nil for NULL.
    mutating func bytesOrNil() throws -> ByteBuffer? {
        let length = try header("bytea", accepting: { $0 == 17 })
        if length < 0 { return nil }
        guard let bytes = fields.readSlice(length: length) else { throw cutShort() }
        return bytes
    }

    /// A `bytea` field that may not be NULL.
    mutating func bytes() throws -> ByteBuffer {
        let at = position
        return try Self.notNull(bytesOrNil(), at)
    }

    /// A `bool` field that may not be NULL.
    mutating func bool() throws -> Bool {
        let at = position
        guard try header("bool", accepting: { $0 == 16 }) == 1, let byte = fields.readInteger(as: UInt8.self) else {
            throw GatewayError(.internalError, "operation row is damaged (field \(at) is not one bool)")
        }
        return byte != 0
    }
}
