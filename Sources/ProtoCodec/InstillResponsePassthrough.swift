import NIOCore
import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Recognises a grpc runner's `RunResponse` (protos/trigger/runner/v1/runner.proto) that, with its value tags
/// renumbered, is byte for byte the `TriggerNamespacePipelineResponse` that decoding it (`RunnerCodec`) and
/// encoding the result again (`InstillCodec.encodeTriggerResponse`) would give an Instill gRPC client (issue 11:
/// that unpack and repack cost ~13 k instructions of a ~186 k gRPC call).
///
/// Why renumbering is enough: `RunResponse.outputs = 1` and `TriggerNamespacePipelineResponse.outputs = 1` are
/// both repeated messages; the runner's `Object { repeated Entry entries = 1 }` with `Entry { key = 1, value = 2 }`
/// has the wire form of `google.protobuf.Struct`'s `map<string, Value> fields = 1`; both `ListValue`s are
/// `repeated Value values = 1`. Only `Value`'s case numbers differ (runner: null 1, bool 2, number 3, string 4,
/// list 5, object 6, blob 7; google: null 1, number 2, string 3, bool 4, struct 5, list 6), and every tag
/// involved is one byte, so lengths do not change.
///
/// The scan answers yes only when re-encoding would write the same bytes, checking what protobuf-c's packer
/// (`protobuf_c_message_pack`) and our codecs do:
/// - `RunResponse` holds only `outputs` (no `traces`, which would become `metadata`; no `error`, which is a
///   failure) and no unknown field (the encoder writes none);
/// - an `Object` holds only `entries`; a `ListValue` only `values`;
/// - an `Entry` is its key, when the key is not empty (proto3 writes no empty string outside a oneof), then
///   exactly one value, in that order, each once; keys are distinct as Swift compares them (`ValueObject`
///   merges keys that are `==`, which includes canonically equivalent ones: bytes are compared for ASCII keys,
///   `String`s otherwise), at most `maxCheckedKeys` per object;
/// - a `Value` holds exactly one case, never `blob_value` (the Instill form is a data-URI string); `null_value`
///   is 0 and `bool_value` 0 or 1 in one byte; `number_value` is not a NaN (kept to the decoding path rather
///   than relying on how NaN payloads travel);
/// - strings (keys and values) are well-formed UTF-8 without NUL (`String(cString:)` would repair or cut them);
/// - every length is a minimal varint of at most 5 bytes within its message;
/// - objects and lists nest within `ProtoLimits.maxNestingDepth`, counted as `WireDepthGuard` counts them.
/// Anything else, valid or not, gets "no", and the caller decodes as before, with the same result or error:
/// this check never decides what is an error.
enum InstillResponsePassthrough {
    /// Objects with more keys are left to the decoder: the duplicate check here is quadratic.
    static let maxCheckedKeys = 32

    /// The Instill response message for `runResponse`, or nil when `runResponse` is not in canonical form.
    static func instillResponse(fromRunResponse runResponse: ByteBuffer) -> ByteBuffer? {
        let count = runResponse.readableBytes
        var out = ByteBufferAllocator().buffer(capacity: max(count, 1))
        let accepted = runResponse.withUnsafeReadableBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return true }  // no outputs: the empty message
            return out.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                var scanner = Scanner(
                    source: base.assumingMemoryBound(to: UInt8.self),
                    target: target.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    count: count
                )
                return scanner.runResponse() ? count : 0
            } == count
        }
        return accepted ? out : nil
    }

    /// Walks the runner's message, copying it to `target` as it goes with each `Value` tag renumbered.
    struct Scanner {
        private let source: UnsafePointer<UInt8>
        private let target: UnsafeMutablePointer<UInt8>
        private let count: Int
        /// Bytes before this offset are in `target` already.
        private var copied = 0
        private var depth = 0
        /// Keys of the objects being scanned (offset and length), innermost last.
        private var keys: [(start: Int, count: Int)] = []

        init(source: UnsafePointer<UInt8>, target: UnsafeMutablePointer<UInt8>, count: Int) {
            self.source = source
            self.target = target
            self.count = count
        }

        /// The whole message: `outputs` (field 1, length-delimited) only.
        mutating func runResponse() -> Bool {
            var pos = 0
            while pos < count {
                guard source[pos] == 0x0A, let end = length(after: pos, within: count) else { return false }
                guard object(from: end.start, to: end.end) else { return false }
                pos = end.end
            }
            copy(upTo: count)
            return true
        }

        /// The payload range of the length-delimited field whose one-byte tag is at `tag`, when its length is a
        /// minimal varint and the payload ends within `limit`.
        private func length(after tag: Int, within limit: Int) -> (start: Int, end: Int)? {
            Self.length(in: source, after: tag, within: limit)
        }

        /// `length(after:within:)` over any bytes (the event wrappers, which are not copied).
        static func length(in source: UnsafePointer<UInt8>, after tag: Int, within limit: Int) -> (start: Int, end: Int)? {
            var pos = tag + 1
            var value = 0
            var shift = 0
            while true {
                guard pos < limit, shift < 35 else { return nil }
                let byte = source[pos]
                pos += 1
                value |= Int(byte & 0x7F) << shift
                if byte & 0x80 == 0 {
                    // A last byte of 0 after others adds nothing: a longer encoding than protobuf-c writes.
                    if byte == 0 && shift > 0 { return nil }
                    break
                }
                shift += 7
            }
            guard value <= limit - pos else { return nil }
            return (pos, pos + value)
        }

        /// `Object`: `Entry`s (field 1) only, with distinct keys.
        private mutating func object(from start: Int, to end: Int) -> Bool {
            depth += 1
            guard depth <= ProtoLimits.maxNestingDepth else { return false }
            let frame = keys.count
            var pos = start
            while pos < end {
                guard source[pos] == 0x0A, let entry = length(after: pos, within: end) else { return false }
                guard keys.count - frame < Self.maxKeys, self.entry(from: entry.start, to: entry.end, frame: frame)
                else { return false }
                pos = entry.end
            }
            keys.removeSubrange(frame...)
            depth -= 1
            return true
        }

        private static var maxKeys: Int { InstillResponsePassthrough.maxCheckedKeys }

        /// `Entry`: a non-empty `key = 1` or none, then `value = 2`, nothing else.
        private mutating func entry(from start: Int, to end: Int, frame: Int) -> Bool {
            var pos = start
            var key = (start: start, count: 0)
            if pos < end, source[pos] == 0x0A {
                guard let range = length(after: pos, within: end), range.end > range.start,
                    isCanonicalString(from: range.start, to: range.end)
                else { return false }
                key = (range.start, range.end - range.start)
                pos = range.end
            }
            for other in keys[frame...] where sameKey(other, key) { return false }
            keys.append(key)
            guard pos < end, source[pos] == 0x12, let value = length(after: pos, within: end), value.end == end else {
                return false
            }
            return self.value(from: value.start, to: value.end)
        }

        /// Whether `ValueObject` would take keys `a` and `b` for one key.
        private func sameKey(_ a: (start: Int, count: Int), _ b: (start: Int, count: Int)) -> Bool {
            if isASCII(a), isASCII(b) {
                return a.count == b.count && memcmp(source + a.start, source + b.start, a.count) == 0
            }
            // Canonical equivalence can make different bytes (and different lengths) one key.
            return string(a) == string(b)
        }

        private func isASCII(_ key: (start: Int, count: Int)) -> Bool {
            for i in key.start..<(key.start + key.count) where source[i] >= 0x80 { return false }
            return true
        }

        private func string(_ key: (start: Int, count: Int)) -> String {
            String(decoding: UnsafeBufferPointer(start: source + key.start, count: key.count), as: UTF8.self)
        }

        /// `Value`: exactly one case, written in canonical form, its tag renumbered into `target`.
        private mutating func value(from start: Int, to end: Int) -> Bool {
            guard start < end else { return false }  // no case set: decoded as null, written as `null_value`
            switch source[start] {
            case 0x08:  // null_value = 1 (varint) → null_value = 1
                return end - start == 2 && source[start + 1] == 0 && retag(start, 0x08)
            case 0x10:  // bool_value = 2 (varint) → bool_value = 4
                return end - start == 2 && source[start + 1] <= 1 && retag(start, 0x20)
            case 0x19:  // number_value = 3 (fixed64) → number_value = 2
                guard end - start == 9 else { return false }
                var bits: UInt64 = 0
                withUnsafeMutableBytes(of: &bits) {
                    $0.copyMemory(from: UnsafeRawBufferPointer(start: source + start + 1, count: 8))
                }
                return !Double(bitPattern: UInt64(littleEndian: bits)).isNaN && retag(start, 0x11)
            case 0x22:  // string_value = 4 → string_value = 3
                guard let range = length(after: start, within: end), range.end == end,
                    isCanonicalString(from: range.start, to: range.end)
                else { return false }
                return retag(start, 0x1A)
            case 0x2A:  // list_value = 5 → list_value = 6
                guard let range = length(after: start, within: end), range.end == end else { return false }
                return retag(start, 0x32) && list(from: range.start, to: range.end)
            case 0x32:  // object_value = 6 → struct_value = 5
                guard let range = length(after: start, within: end), range.end == end else { return false }
                return retag(start, 0x2A) && object(from: range.start, to: range.end)
            default:  // blob_value, an unknown field, a wrong wire type
                return false
            }
        }

        /// `ListValue`: `Value`s (field 1) only.
        private mutating func list(from start: Int, to end: Int) -> Bool {
            depth += 1
            guard depth <= ProtoLimits.maxNestingDepth else { return false }
            var pos = start
            while pos < end {
                guard source[pos] == 0x0A, let item = length(after: pos, within: end),
                    value(from: item.start, to: item.end)
                else { return false }
                pos = item.end
            }
            depth -= 1
            return true
        }

        /// Well-formed UTF-8 without NUL.
        private func isCanonicalString(from start: Int, to end: Int) -> Bool {
            var pos = start
            while pos < end {
                let c = source[pos]
                if c == 0 { return false }
                if c < 0x80 {
                    pos += 1
                    continue
                }
                let length = UTF8Validation.sequenceLength(source + pos, available: end - pos)
                guard length > 0 else { return false }
                pos += length
            }
            return true
        }

        /// Copies what precedes `tag`, then writes `newTag` in its place. Always true (for chaining).
        private mutating func retag(_ tag: Int, _ newTag: UInt8) -> Bool {
            copy(upTo: tag)
            target[tag] = newTag
            copied = tag + 1
            return true
        }

        private mutating func copy(upTo end: Int) {
            guard end > copied else { return }
            (target + copied).update(from: source + copied, count: end - copied)
            copied = end
        }
    }
}

// MARK: Stream events

extension InstillResponsePassthrough {
    /// For a runner's `RunEvent` holding an `OutputEvent` whose outputs are in canonical form: the event's name
    /// and Instill's stream message for it (`TriggerNamespacePipelineWithStreamResponse`, whose `outputs = 1`
    /// and `metadata = 2` are the unary response's, so `TriggerResult.instillProto` serves both), else nil.
    ///
    /// `RunEvent { output = 2 { name = 1, outputs = 2 … } }` becomes `{ outputs = 1 … }`: the wrapper and the
    /// name are dropped and each `outputs` tag is rewritten, every `Object` checked and renumbered as in
    /// `instillResponse(fromRunResponse:)` (one byte per tag, so the lengths stay). A name that is not
    /// canonical (NUL, ill-formed UTF-8), fields out of order or repeated, or any other field gets nil.
    static func instillStreamOutput(fromRunEvent event: ByteBuffer) -> (name: String, message: ByteBuffer)? {
        let count = event.readableBytes
        guard count > 0 else { return nil }
        var out = ByteBufferAllocator().buffer(capacity: count)
        var found: (name: String, outputsStart: Int)?
        event.withUnsafeReadableBytes { raw in
            let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                var scanner = Scanner(
                    source: base, target: target.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count)
                found = scanner.outputEvent()
                return found == nil ? 0 : count
            }
        }
        guard let found else { return nil }
        // The copied wrapper and name precede the outputs in `out`; the message starts after them.
        out.moveReaderIndex(forwardBy: found.outputsStart)
        return (found.name, out)
    }

    /// The `RunResponse` of a `RunEvent { end = 3 { result = 1 { … } } }` (a slice of `event`), when that is
    /// all the event holds; nil otherwise (another case, no result, other fields).
    static func endEventResult(fromRunEvent event: ByteBuffer) -> ByteBuffer? {
        let count = event.readableBytes
        let range = event.withUnsafeReadableBytes { raw -> (start: Int, end: Int)? in
            guard count > 0 else { return nil }
            let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            guard base[0] == 0x1A, let end = Scanner.length(in: base, after: 0, within: count), end.end == count,
                end.start < count, base[end.start] == 0x0A,
                let result = Scanner.length(in: base, after: end.start, within: count), result.end == count
            else { return nil }
            return result
        }
        guard let range else { return nil }
        return event.getSlice(at: event.readerIndex + range.start, length: range.end - range.start)
    }
}

extension InstillResponsePassthrough.Scanner {
    /// `RunEvent { output = 2 { name = 1, outputs = 2 … } }`, copied with each `outputs` tag (2) written as
    /// Instill's (1) and every value renumbered; the name and where the outputs start in the copy.
    fileprivate mutating func outputEvent() -> (name: String, outputsStart: Int)? {
        guard source[0] == 0x12, let output = length(after: 0, within: count), output.end == count else { return nil }
        var pos = output.start
        var name = ""
        if pos < count, source[pos] == 0x0A {
            guard let range = length(after: pos, within: count), isCanonicalString(from: range.start, to: range.end)
            else { return nil }
            name = string((range.start, range.end - range.start))
            pos = range.end
        }
        let outputsStart = pos
        while pos < count {
            guard source[pos] == 0x12, let field = length(after: pos, within: count), retag(pos, 0x0A),
                object(from: field.start, to: field.end)
            else { return nil }
            pos = field.end
        }
        copy(upTo: count)
        return (name, outputsStart)
    }
}
