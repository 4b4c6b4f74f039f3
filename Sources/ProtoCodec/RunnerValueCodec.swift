import CTriggerProtos
import NIOCore
import TriggerModel

/// `trigger.runner.v1.Object` / `Value` / `ListValue` / `Blob` ↔ the model's `ValueObject` / `Value` / `Blob`.
///
/// Unlike `google.protobuf.Struct`, blobs are their own case with raw bytes, so no string is sniffed for a
/// data URI here: a string stays a string. A blob's bytes are copied once, from protobuf-c's unpacked
/// message into a `ByteBuffer` (protobuf-c itself copies them out of the wire buffer while unpacking); on
/// encode they are not copied at all until `pack` (the arena points into the blob's storage).
enum RunnerValueCodec {
    typealias PBObject = Trigger__Runner__V1__Object
    typealias PBEntry = Trigger__Runner__V1__Entry
    typealias PBValue = Trigger__Runner__V1__Value
    typealias PBList = Trigger__Runner__V1__ListValue
    typealias PBBlob = Trigger__Runner__V1__Blob

    // MARK: Decoding

    static func object(_ message: UnsafePointer<PBObject>?, depth: Int = 1) throws -> ValueObject {
        guard let message else { return ValueObject() }
        guard depth <= ProtoLimits.maxNestingDepth else { throw tooDeep() }
        var entries: [(key: String, value: Value)] = []
        entries.reserveCapacity(message.pointee.n_entries)
        for i in 0..<message.pointee.n_entries {
            guard let entry = message.pointee.entries[i] else { continue }
            entries.append(
                (key: StructCodec.string(entry.pointee.key), value: try value(entry.pointee.value, depth: depth))
            )
        }
        return ValueObject(entries)
    }

    static func value(_ message: UnsafePointer<PBValue>?, depth: Int) throws -> Value {
        guard let message else { return .null }
        let v = message.pointee
        switch v.kind_case {
        case TRIGGER__RUNNER__V1__VALUE__KIND_BOOL_VALUE:
            return .bool(v.bool_value != 0)
        case TRIGGER__RUNNER__V1__VALUE__KIND_NUMBER_VALUE:
            return .number(v.number_value)
        case TRIGGER__RUNNER__V1__VALUE__KIND_STRING_VALUE:
            return .string(StructCodec.string(v.string_value))
        case TRIGGER__RUNNER__V1__VALUE__KIND_LIST_VALUE:
            guard depth + 1 <= ProtoLimits.maxNestingDepth else { throw tooDeep() }
            var values: [Value] = []
            if let list = v.list_value {
                values.reserveCapacity(list.pointee.n_values)
                for i in 0..<list.pointee.n_values {
                    values.append(try value(list.pointee.values[i], depth: depth + 1))
                }
            }
            return .list(values)
        case TRIGGER__RUNNER__V1__VALUE__KIND_OBJECT_VALUE:
            return .object(try object(v.object_value, depth: depth + 1))
        case TRIGGER__RUNNER__V1__VALUE__KIND_BLOB_VALUE:
            return .blob(blob(v.blob_value))
        default:
            return .null
        }
    }

    static func blob(_ message: UnsafePointer<PBBlob>?) -> Blob {
        guard let message else { return Blob(bytes: ByteBuffer()) }
        let data = InstillCodec.rawBytes(message.pointee.data)
        var bytes = ByteBufferAllocator().buffer(capacity: data.count)
        bytes.writeBytes(data)
        let fileName = StructCodec.string(message.pointee.file_name)
        return Blob(
            contentType: StructCodec.string(message.pointee.content_type),
            fileName: fileName.isEmpty ? nil : fileName,
            bytes: bytes
        )
    }

    private static func tooDeep() -> GatewayError {
        GatewayError(.invalidArgument, "values nest deeper than the limit of \(ProtoLimits.maxNestingDepth) levels")
    }

    // MARK: Encoding

    static func encode(_ object: ValueObject, in arena: ProtoArena) -> UnsafeMutablePointer<PBObject> {
        let message: UnsafeMutablePointer<PBObject> = arena.message(trigger__runner__v1__object__init)
        (message.pointee.n_entries, message.pointee.entries) = arena.repeated(object.entries) { key, value in
            let entry: UnsafeMutablePointer<PBEntry> = arena.message(trigger__runner__v1__entry__init)
            entry.pointee.key = arena.bytes(key)
            entry.pointee.value = encode(value, in: arena)
            return entry
        }
        return message
    }

    static func encode(_ value: Value, in arena: ProtoArena) -> UnsafeMutablePointer<PBValue> {
        let message: UnsafeMutablePointer<PBValue> = arena.message(trigger__runner__v1__value__init)
        switch value {
        case .null:
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_NULL_VALUE
            message.pointee.null_value = TRIGGER__RUNNER__V1__NULL_VALUE__NULL_VALUE
        case .bool(let b):
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_BOOL_VALUE
            message.pointee.bool_value = b ? 1 : 0
        case .number(let n, _):
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_NUMBER_VALUE
            message.pointee.number_value = n
        case .largeInteger(let i):
            // `number_value` is a double by the protocol: an integer past 2^53 goes out as its nearest one.
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_NUMBER_VALUE
            message.pointee.number_value = i.doubleValue
        case .string(let s):
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_STRING_VALUE
            message.pointee.string_value = arena.bytes(s)
        case .list(let values):
            let list: UnsafeMutablePointer<PBList> = arena.message(trigger__runner__v1__list_value__init)
            (list.pointee.n_values, list.pointee.values) = arena.repeated(values) { encode($0, in: arena) }
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_LIST_VALUE
            message.pointee.list_value = list
        case .object(let object):
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_OBJECT_VALUE
            message.pointee.object_value = encode(object, in: arena)
        case .blob(let blob):
            let pb: UnsafeMutablePointer<PBBlob> = arena.message(trigger__runner__v1__blob__init)
            pb.pointee.data = arena.binary(blob.bytes)
            pb.pointee.content_type = arena.cString(blob.contentType)
            if let fileName = blob.fileName { pb.pointee.file_name = arena.cString(fileName) }
            message.pointee.kind_case = TRIGGER__RUNNER__V1__VALUE__KIND_BLOB_VALUE
            message.pointee.blob_value = pb
        }
        return message
    }

    static func encode(
        _ objects: [ValueObject],
        in arena: ProtoArena
    ) -> (count: Int, items: UnsafeMutablePointer<UnsafeMutablePointer<PBObject>?>?) {
        arena.repeated(objects) { encode($0, in: arena) }
    }

    static func objects(
        _ count: Int,
        _ items: UnsafeMutablePointer<UnsafeMutablePointer<PBObject>?>?
    ) throws -> [ValueObject] {
        var result: [ValueObject] = []
        result.reserveCapacity(count)
        for i in 0..<count { result.append(try object(items![i])) }
        return result
    }
}
