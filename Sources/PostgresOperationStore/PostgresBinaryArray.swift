import NIOCore
import PostgresNIO

/// A one-dimensional PostgreSQL array parameter (`text[]`, `int8[]`, `bool[]` or `bytea[]`, no NULL elements) in
/// the binary format, written into the bind buffer in one pass: the bytes PostgresNIO's `Array: PostgresEncodable`
/// writes, the same type and format.
///
/// Why not bind the Swift array itself: PostgresNIO writes an array through `ByteBuffer` one integer or string at a
/// time (the header's five integers, then a length placeholder, the element and the length again per element),
/// each write a call with its own capacity check and exclusivity check on the buffer's storage, ~165 instructions
/// each: ~170 writes and ~25 k instructions per accepted-and-run operation on PostgreSQL, the enqueue's twelve arrays
/// and the completion's six (bench/README.md, branch asynccost4). This one sums the size first and writes everything
/// through one `writeWithUnsafeMutableBytes`.
///
/// Wire format (PostgreSQL's `array_send`, big-endian): dimensions (`UInt32`: 0 for an empty array, else 1), a
/// has-NULLs flag (`Int32` 0), the element type's OID (`UInt32`); then, for a non-empty array, its length and lower
/// bound (`Int32`s: count, 1) and each element as an `Int32` byte length and its bytes (text: UTF-8; int8: 8 bytes
/// big-endian; bool: one byte 0 or 1; bytea: the buffer's readable bytes).
struct PostgresBinaryArray: PostgresDynamicTypeEncodable {
    private enum Elements {
        case text([String])
        case int8([Int64])
        case bool([Bool])
        case bytea([ByteBuffer])
    }

    private let elements: Elements

    init(_ values: [String]) { elements = .text(values) }
    init(_ values: [Int64]) { elements = .int8(values) }
    init(_ values: [Bool]) { elements = .bool(values) }
    init(_ values: [ByteBuffer]) { elements = .bytea(values) }

    var psqlType: PostgresDataType {
        switch elements {
        case .text: .textArray
        case .int8: .int8Array
        case .bool: .boolArray
        case .bytea: .byteaArray
        }
    }

    var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(
        into buffer: inout ByteBuffer,
        context: PostgresEncodingContext<JSONEncoder>
    ) {
        switch elements {
        case .text(let values):
            // `utf8.count` is stored in a native string, whose bytes are contiguous. Not `withUTF8`: it is
            // `mutating`, and calling it on the array's elements copied the array (an allocation per array).
            let payload = values.reduce(0) { $0 + $1.utf8.count }
            Self.write(into: &buffer, element: .text, count: values.count, payload: payload) { raw, at in
                for value in values {
                    let contiguous: Void? = value.utf8.withContiguousStorageIfAvailable {
                        Self.put(UnsafeRawBufferPointer($0), into: raw, at: &at)
                    }
                    if contiguous == nil {
                        var copy = value
                        copy.withUTF8 { Self.put(UnsafeRawBufferPointer($0), into: raw, at: &at) }
                    }
                }
            }
        case .int8(let values):
            Self.write(into: &buffer, element: .int8, count: values.count, payload: 8 * values.count) { raw, at in
                for value in values {
                    Self.put(UInt32(8), into: raw, at: &at)
                    raw.storeBytes(of: UInt64(bitPattern: value).bigEndian, toByteOffset: at, as: UInt64.self)
                    at += 8
                }
            }
        case .bool(let values):
            Self.write(into: &buffer, element: .bool, count: values.count, payload: values.count) { raw, at in
                for value in values {
                    Self.put(UInt32(1), into: raw, at: &at)
                    raw[at] = value ? 1 : 0
                    at += 1
                }
            }
        case .bytea(let values):
            let payload = values.reduce(0) { $0 + $1.readableBytes }
            Self.write(into: &buffer, element: .bytea, count: values.count, payload: payload) { raw, at in
                for value in values {
                    value.withUnsafeReadableBytes { Self.put($0, into: raw, at: &at) }
                }
            }
        }
    }

    /// Writes the header of an array of `count` elements of type `element`, then `body`'s elements, into `buffer`
    /// in one write of the size they take (`payload`: the elements' bytes, their lengths not counted). `body` gets
    /// the writable bytes and the offset to write at, which it advances past each element.
    private static func write(
        into buffer: inout ByteBuffer,
        element: PostgresDataType,
        count: Int,
        payload: Int,
        _ body: (UnsafeMutableRawBufferPointer, inout Int) -> Void
    ) {
        let size = count == 0 ? 12 : 20 + 4 * count + payload
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var at = 0
            put(count == 0 ? 0 : 1, into: raw, at: &at)
            put(0, into: raw, at: &at)
            put(element.rawValue, into: raw, at: &at)
            if count > 0 {
                put(UInt32(count), into: raw, at: &at)
                put(1, into: raw, at: &at)
                body(raw, &at)
            }
            precondition(at == size, "array of \(count) elements wrote \(at) bytes, not \(size)")
            return size
        }
    }

    /// A big-endian `UInt32` at `at`, which it advances.
    @inline(__always)
    private static func put(_ value: UInt32, into raw: UnsafeMutableRawBufferPointer, at: inout Int) {
        raw.storeBytes(of: value.bigEndian, toByteOffset: at, as: UInt32.self)
        at += 4
    }

    /// An element: its length as a big-endian `UInt32`, then its bytes, at `at`, which it advances.
    @inline(__always)
    private static func put(_ bytes: UnsafeRawBufferPointer, into raw: UnsafeMutableRawBufferPointer, at: inout Int) {
        put(UInt32(bytes.count), into: raw, at: &at)
        if let source = bytes.baseAddress, bytes.count > 0 {
            (raw.baseAddress! + at).copyMemory(from: source, byteCount: bytes.count)
        }
        at += bytes.count
    }
}
