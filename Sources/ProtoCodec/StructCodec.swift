import CTriggerProtos
import NIOCore
import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `google.protobuf.Struct` / `Value` / `ListValue` ↔ the model's `ValueObject` / `Value`.
///
/// Decoding keeps the entries in the order they arrived (protobuf-c unpacks a map as its repeated entries,
/// in wire order); a key sent twice keeps its first position and its last value. A string that is a base64
/// data URI becomes `.blob`, decoded straight from protobuf-c's C string. A `Value` with no kind set is
/// read as null. Encoding writes a blob back as a data-URI string, and entries in the object's order; a
/// `largeInteger` goes out as its nearest double, since `number_value` is a double by the protocol (a client
/// that needs integers past 2^53 exact uses the REST surface, whose JSON keeps their digits).
///
/// Depth is counted as `ProtoLimits.maxNestingDepth` documents; `WireDepthGuard` has already refused deeper
/// input before unpacking, and the check here keeps the recursion bounded on its own.
enum StructCodec {
    typealias PBStruct = Google__Protobuf__Struct
    typealias PBValue = Google__Protobuf__Value
    typealias PBList = Google__Protobuf__ListValue
    typealias PBEntry = Google__Protobuf__Struct__FieldsEntry

    // MARK: Decoding

    /// The object of a `Struct` at nesting level `depth` (1 for a batch item's variables or an output).
    static func object(_ message: UnsafePointer<PBStruct>?, depth: Int = 1) throws -> ValueObject {
        guard let message else { return ValueObject() }
        guard depth <= ProtoLimits.maxNestingDepth else { throw tooDeep() }
        var entries: [(key: String, value: Value)] = []
        entries.reserveCapacity(message.pointee.n_fields)
        for i in 0..<message.pointee.n_fields {
            guard let entry = message.pointee.fields[i] else { continue }
            entries.append((key: string(entry.pointee.key), value: try value(entry.pointee.value, depth: depth)))
        }
        return ValueObject(entries)
    }

    /// A `Value` found inside a container at level `depth`.
    ///
    /// - Throws: `.invalidArgument` for a `number_value` that is NaN or infinite: JSON has no such number, so an
    ///   http runner, a REST reader of the stored run and the Instill SDK's own `MessageToDict` could not be given
    ///   it (it became `null` on JSON hops; protobuf's JSON mapping refuses it in a `Value` too), and a REST
    ///   client's `1e400` is refused the same way (SDK review 56, M2).
    static func value(_ message: UnsafePointer<PBValue>?, depth: Int) throws -> Value {
        guard let message else { return .null }
        let v = message.pointee
        switch v.kind_case {
        case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
            guard v.number_value.isFinite else {
                throw GatewayError(
                    .invalidArgument,
                    "a number_value is \(v.number_value): JSON, which runners and REST readers get, has no such number")
            }
            return .number(v.number_value)
        case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
            return try stringOrBlob(v.string_value)
        case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
            return .bool(v.bool_value != 0)
        case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
            return .object(try object(v.struct_value, depth: depth + 1))
        case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
            return .list(try list(v.list_value, depth: depth + 1))
        default:
            return .null
        }
    }

    static func list(_ message: UnsafePointer<PBList>?, depth: Int) throws -> [Value] {
        guard let message else { return [] }
        guard depth <= ProtoLimits.maxNestingDepth else { throw tooDeep() }
        var values: [Value] = []
        values.reserveCapacity(message.pointee.n_values)
        for i in 0..<message.pointee.n_values {
            values.append(try value(message.pointee.values[i], depth: depth))
        }
        return values
    }

    /// A protobuf-c string as a Swift `String` (NULL reads as empty; invalid UTF-8 is repaired with U+FFFD).
    static func string(_ cString: UnsafePointer<CChar>?) -> String {
        guard let cString else { return "" }
        return String(cString: cString)
    }

    /// A string field generated as `bytes` (scripts/regen-protos.sh: `Value.string_value` and object keys, which
    /// may hold NUL) as a Swift `String`: every byte kept, invalid UTF-8 repaired with U+FFFD (a client's request
    /// was refused for it before unpacking, by `WireDepthGuard`; a runner's answer is carried).
    static func string(_ bytes: ProtobufCBinaryData) -> String {
        guard let data = bytes.data, bytes.len > 0 else { return "" }
        return String(decoding: UnsafeBufferPointer(start: data, count: bytes.len), as: UTF8.self)
    }

    private static func stringOrBlob(_ field: ProtobufCBinaryData) throws -> Value {
        guard let data = field.data, field.len > 0 else { return .string("") }
        let bytes = UnsafeRawBufferPointer(start: data, count: field.len)
        if bytes.count >= UnpackAllocation.largeBytes, bytes.first.map({ $0 | 0x20 }) == UInt8(ascii: "d"),
            let storage = UnpackAllocation.current?.take(data)
        {
            return try largeStringOrBlob(storage, count: bytes.count)
        }
        do {
            if let blob = try DataURI.decode(bytes) { return .blob(blob) }
        } catch {
            throw GatewayError(.invalidArgument, DataURI.message(for: error))
        }
        return .string(String(decoding: bytes, as: UTF8.self))
    }

    /// A large string whose storage was taken over from protobuf-c (`UnpackAllocation`; `count` bytes): a data
    /// URI is decoded in place and its blob is a slice of that storage, anything else
    /// becomes a `String`.
    private static func largeStringOrBlob(_ storage: ByteBuffer, count: Int) throws -> Value {
        var storage = storage
        let decoded: (contentType: String, fileName: String?, payloadOffset: Int, byteCount: Int)?
        do {
            decoded = try storage.withUnsafeMutableReadableBytes { raw in
                try DataURI.decodeInPlace(UnsafeMutableRawBufferPointer(rebasing: raw[..<count]))
            }
        } catch let failure as Base64.Failure {
            throw GatewayError(.invalidArgument, DataURI.message(for: failure))
        }
        guard let decoded else {
            return .string(storage.withUnsafeReadableBytes { String(decoding: $0[..<count], as: UTF8.self) })
        }
        let bytes = storage.getSlice(at: storage.readerIndex + decoded.payloadOffset, length: decoded.byteCount)!
        return .blob(Blob(contentType: decoded.contentType, fileName: decoded.fileName, bytes: bytes))
    }

    private static func tooDeep() -> GatewayError {
        GatewayError(.invalidArgument, "values nest deeper than the limit of \(ProtoLimits.maxNestingDepth) levels")
    }

    // MARK: Encoding

    static func encode(_ object: ValueObject, in arena: ProtoArena) -> UnsafeMutablePointer<PBStruct> {
        let message: UnsafeMutablePointer<PBStruct> = arena.message(google__protobuf__struct__init)
        (message.pointee.n_fields, message.pointee.fields) = arena.repeated(object.entries) { key, value in
            let entry: UnsafeMutablePointer<PBEntry> = arena.message(google__protobuf__struct__fields_entry__init)
            entry.pointee.key = arena.bytes(key)
            entry.pointee.value = encode(value, in: arena)
            return entry
        }
        return message
    }

    static func encode(_ value: Value, in arena: ProtoArena) -> UnsafeMutablePointer<PBValue> {
        let message: UnsafeMutablePointer<PBValue> = arena.message(google__protobuf__value__init)
        switch value {
        case .null:
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE
            message.pointee.null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE
        case .bool(let b):
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE
            message.pointee.bool_value = b ? 1 : 0
        case .number(let n, _):
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE
            message.pointee.number_value = n
        case .largeInteger(let i):
            // `number_value` is a double by the protocol: an integer past 2^53 goes out as its nearest one.
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE
            message.pointee.number_value = i.doubleValue
        case .string(let s):
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
            message.pointee.string_value = arena.bytes(s)
        case .blob(let blob):
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
            message.pointee.string_value = dataURI(blob, in: arena)
        case .object(let object):
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE
            message.pointee.struct_value = encode(object, in: arena)
        case .list(let values):
            let list: UnsafeMutablePointer<PBList> = arena.message(google__protobuf__list_value__init)
            (list.pointee.n_values, list.pointee.values) = arena.repeated(values) { encode($0, in: arena) }
            message.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE
            message.pointee.list_value = list
        }
        return message
    }

    /// The data URI for `blob` in `arena`, written in place without a `String`.
    private static func dataURI(_ blob: Blob, in arena: ProtoArena) -> ProtobufCBinaryData {
        let header = DataURI.header(for: blob)
        let total = header.count + Base64.encodedLength(blob.count)
        let target = arena.array(of: UInt8.self, count: total)!
        let written = DataURI.write(
            blob,
            header: header,
            into: UnsafeMutableRawBufferPointer(start: target, count: total)
        )
        return ProtobufCBinaryData(len: written, data: target)
    }

    /// A repeated `Struct` field: the pointer array and its count.
    static func encode(
        _ objects: [ValueObject],
        in arena: ProtoArena
    ) -> (count: Int, items: UnsafeMutablePointer<UnsafeMutablePointer<PBStruct>?>?) {
        arena.repeated(objects) { encode($0, in: arena) }
    }
}
