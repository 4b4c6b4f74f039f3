import NIOCore
import TriggerModel

/// Checks the nesting of a serialized message on the wire, before protobuf-c unpacks it.
///
/// protobuf-c unpacks recursively with no depth limit (about 1 KiB of stack per level), and
/// `google.protobuf.Struct`/`Value`/`ListValue` (and the runner's `Object`/`Value`/`ListValue`) nest without
/// bound, so a few megabytes of `2a 0x 0a 0x …` would overflow the stack. This walk knows, for each message
/// kind, which fields hold which sub-message (`WireSchema`), descends only into those, and rejects more than
/// `ProtoLimits.maxNestingDepth` objects/lists. It touches each byte once (a parent skips over what its
/// child walked) and recurses at most a few frames per container level.
///
/// With `maxMembers` it also counts the `Struct` fields and `ListValue` values (the runner's `Object` entries
/// and `ListValue` values) of the whole message, and rejects more than that many (`CodecLimits.maxJSONMembers`,
/// review 24 M2): 10^6 one-field entries are ~8 MB on the wire and would cost protobuf-c an allocation each,
/// then a `ValueObject` entry each, before any check of ours.
///
/// It also rejects what no protobuf parser accepts (truncated fields, 11-byte varints, field number 0,
/// group wire types, which protobuf-c 1.4 does not support either), all as `.invalidArgument`.
///
/// With `checkingStrings` (a client's request) it also rejects a `string` field the schema knows
/// (`WireSchema.stringField`) that is not well-formed UTF-8, as protobuf's own parsers do for proto3 strings
/// (protobuf-go, C++ and upb refuse to parse them): protobuf-c does not check strings, and the decoders repaired
/// bad bytes with U+FFFD, so a client's data reached the runner changed (protocol review 58, L12). A NUL is refused
/// only in the fields protobuf-c still gives as C strings (ids, `secret` entries), which would cut it; values and
/// object keys are generated as `bytes` and carry it (scripts/regen-protos.sh). A runner's answer is not checked
/// here: its bytes must not fail a call that ran.
enum WireDepthGuard {
    static func check(
        _ bytes: ByteBuffer, as schema: WireSchema, what: String, maxMembers: Int = .max, checkingStrings: Bool = false
    ) throws {
        try bytes.withUnsafeReadableBytes {
            try check($0, as: schema, what: what, maxMembers: maxMembers, checkingStrings: checkingStrings)
        }
    }

    static func check(
        _ bytes: UnsafeRawBufferPointer, as schema: WireSchema, what: String, maxMembers: Int = .max,
        checkingStrings: Bool = false
    ) throws {
        var walker = Walker(maxMembers: maxMembers, checkingStrings: checkingStrings)
        do {
            try walker.walk(bytes, schema, depth: 0)
        } catch {
            switch error {
            case .tooDeep:
                throw GatewayError(
                    .invalidArgument,
                    "\(what): values nest deeper than the limit of \(ProtoLimits.maxNestingDepth) levels"
                )
            case .tooWide:
                throw GatewayError(
                    .invalidArgument,
                    "\(what): more than the limit of \(maxMembers) struct fields and list values in the message"
                )
            case .invalid(let reason):
                throw GatewayError(.invalidArgument, "malformed protobuf: not a valid \(what) (\(reason))")
            case .badString(let field, let hasNUL):
                throw GatewayError(
                    .invalidArgument,
                    hasNUL
                        ? "\(what): \(field) holds a NUL byte, which this gateway cannot carry in a protobuf string"
                        : "\(what): \(field) is not valid UTF-8 (a protobuf string must be)")
            }
        }
    }

    private enum Malformed: Error {
        case tooDeep
        case tooWide
        case invalid(String)
        /// A string field (named as `WireSchema.stringField` names it) that is not UTF-8, or holds a NUL.
        case badString(field: String, hasNUL: Bool)
    }

    private struct Walker {
        let maxMembers: Int
        let checkingStrings: Bool
        var members = 0

        init(maxMembers: Int, checkingStrings: Bool) {
            self.maxMembers = maxMembers
            self.checkingStrings = checkingStrings
        }

        mutating func walk(_ bytes: UnsafeRawBufferPointer, _ schema: WireSchema, depth: Int) throws(Malformed) {
            var depth = depth
            if schema.isContainer {
                depth += 1
                guard depth <= ProtoLimits.maxNestingDepth else { throw .tooDeep }
            }
            var i = 0
            while i < bytes.count {
                let key = try varint(bytes, &i)
                let field = key >> 3
                guard field > 0, field <= 0x1FFF_FFFF else { throw .invalid("field number \(field)") }
                switch key & 7 {
                case 0:
                    _ = try varint(bytes, &i)
                case 1:
                    try skip(8, bytes, &i)
                case 5:
                    try skip(4, bytes, &i)
                case 2:
                    let declared = try varint(bytes, &i)
                    guard declared <= UInt64(bytes.count - i) else { throw .invalid("truncated field \(field)") }
                    let length = Int(declared)
                    if let child = schema.child(field: field) {
                        // A container's field 1 is one of its members (an entry, a list value).
                        if schema.isContainer {
                            members += 1
                            guard members <= maxMembers else { throw .tooWide }
                        }
                        try walk(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + length)]), child, depth: depth)
                    } else if checkingStrings, let string = schema.stringField(field) {
                        // One pass over the bytes; a second only to word a refusal.
                        let start = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + i
                        let valid =
                            string.carriesNUL
                            ? UTF8Validation.isWellFormed(start, count: length)
                            : UTF8Validation.isWellFormedWithoutNUL(start, count: length)
                        if !valid {
                            throw .badString(
                                field: string.name,
                                hasNUL: !string.carriesNUL && UTF8Validation.isWellFormed(start, count: length))
                        }
                    }
                    i += length
                default:
                    throw .invalid("wire type \(key & 7) of field \(field)")
                }
            }
        }

    }

    private static func varint(_ bytes: UnsafeRawBufferPointer, _ i: inout Int) throws(Malformed) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while i < bytes.count, shift < 64 {
            let byte = bytes[i]
            i += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw .invalid(i >= bytes.count ? "truncated varint" : "varint longer than 10 bytes")
    }

    private static func skip(_ n: Int, _ bytes: UnsafeRawBufferPointer, _ i: inout Int) throws(Malformed) {
        guard bytes.count - i >= n else { throw .invalid("truncated fixed-width field") }
        i += n
    }
}

/// The message kinds `WireDepthGuard` walks, and which of their fields hold which sub-message. Field
/// numbers are those of protos/ (and must change with them; the round-trip tests catch a mismatch).
enum WireSchema {
    // pipeline.pipeline.v1beta (and vdp.pipeline.v1beta, field for field the same)
    case triggerRequest(release: Bool)
    // pipeline.v1beta: `name = 1, inputs = 2, data = 3` for a pipeline and a release alike
    case namedTriggerRequest
    case triggerData
    /// A `map<string, string>` entry (`TriggerData.secret`, `.connection_references`): key 1, value 2.
    case stringMapEntry
    case triggerResponse
    case triggerMetadata
    case triggerTraceEntry
    case trace
    // google.protobuf
    case pbStruct
    case pbStructEntry
    case pbValue
    case pbList
    // trigger.runner.v1
    case runRequest
    case runInput
    case runResponse
    case runTraceEntry
    case runTrace
    case runEvent
    case runStatusEvent
    case runOutputEvent
    case runEndEvent
    case runObject
    case runEntry
    case runValue
    case runList

    var isContainer: Bool {
        switch self {
        case .pbStruct, .pbList, .runObject, .runList: true
        default: false
        }
    }

    /// A client request's `string` field, for `WireDepthGuard`'s UTF-8 check (nil for any other field): the
    /// trigger requests' ids and the values a client sends, its name in messages, and whether the decoder keeps a
    /// NUL in it (a field generated as `bytes`, scripts/regen-protos.sh) or would cut the string there (`char *`).
    func stringField(_ field: UInt64) -> (name: String, carriesNUL: Bool)? {
        switch (self, field) {
        case (.triggerRequest, 1): ("namespace_id", false)
        case (.triggerRequest, 2): ("pipeline_id", false)
        case (.triggerRequest(release: true), 3): ("release_id", false)
        case (.namedTriggerRequest, 1): ("name", false)
        case (.stringMapEntry, 1): ("a map key", false)
        case (.stringMapEntry, 2): ("a map value", false)
        case (.pbStructEntry, 1): ("a Struct key", true)
        case (.pbValue, 3): ("a string_value", true)
        default: nil
        }
    }

    func child(field: UInt64) -> WireSchema? {
        switch (self, field) {
        case (.triggerRequest(let release), _):
            switch field {
            case release ? 4 : 3: .pbStruct
            case release ? 5 : 4: .triggerData
            default: nil
            }
        case (.namedTriggerRequest, 2): .pbStruct
        case (.namedTriggerRequest, 3): .triggerData
        case (.triggerData, 1): .pbStruct
        case (.triggerData, 2), (.triggerData, 3): .stringMapEntry
        case (.triggerResponse, 1): .pbStruct
        case (.triggerResponse, 2): .triggerMetadata
        case (.triggerMetadata, 1): .triggerTraceEntry
        case (.triggerTraceEntry, 2): .trace
        case (.trace, 2), (.trace, 3), (.trace, 4): .pbStruct
        case (.pbStruct, 1): .pbStructEntry
        case (.pbStructEntry, 2): .pbValue
        case (.pbValue, 5): .pbStruct
        case (.pbValue, 6): .pbList
        case (.pbList, 1): .pbValue
        case (.runRequest, 6): .runInput
        case (.runInput, 1): .runObject
        case (.runResponse, 1): .runObject
        case (.runResponse, 2): .runTraceEntry
        case (.runTraceEntry, 2): .runTrace
        case (.runTrace, 2), (.runTrace, 3), (.runTrace, 4): .runObject
        case (.runEvent, 1): .runStatusEvent
        case (.runEvent, 2): .runOutputEvent
        case (.runEvent, 3): .runEndEvent
        case (.runStatusEvent, 2): .runObject
        case (.runOutputEvent, 2): .runObject
        case (.runEndEvent, 1): .runResponse
        case (.runObject, 1): .runEntry
        case (.runEntry, 2): .runValue
        case (.runValue, 5): .runList
        case (.runValue, 6): .runObject
        case (.runList, 1): .runValue
        default: nil
        }
    }
}
