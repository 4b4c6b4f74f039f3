import TriggerModel

/// The two wire forms of the model's values, `google.protobuf.Struct`/`Value`/`ListValue` (the Instill
/// messages) and `trigger.runner.v1.Object`/`Value`/`ListValue` (the runner's), differ only in `Value`'s case
/// numbers (runner: null 1, bool 2, number 3, string 4, list 5, object 6, blob 7; google: null 1, number 2,
/// string 3, bool 4, struct 5, list 6): the runner's `Object { repeated Entry entries = 1 }` with
/// `Entry { key = 1, value = 2 }` has the wire form of `Struct`'s `map<string, Value> fields = 1`, and both
/// `ListValue`s are `repeated Value values = 1`. Every tag involved is one byte, so renumbering keeps every
/// length. `ValueWireTranscoder` walks one form, checks that it is what decoding and re-encoding would write
/// (the canonical form below), and copies it with each `Value` tag renumbered: the other form, without
/// protobuf-c unpack → model → pack (issue 11; `InstillResponsePassthrough`, `InstillRequestPassthrough`).
///
/// Canonical, as protobuf-c's packer (`protobuf_c_message_pack`) and our codecs write:
/// - an object holds only entries; a list only values;
/// - an entry is its key, when the key is not empty (proto3 writes no empty string outside a oneof), then
///   exactly one value, in that order, each once; keys are distinct as `ValueObject` compares them
///   (`ValueObject.isSameKey`), at most `maxCheckedKeys` per object;
/// - a value holds exactly one case, of those both forms have (never the runner's `blob_value`, whose Instill
///   form is a data-URI string; never a string the Struct decoder reads as a data URI, whose runner form is a
///   blob); `null_value` is 0 and `bool_value` 0 or 1 in one byte; `number_value` is finite (a client's NaN or
///   infinity is refused by the decoder, `StructCodec`; a runner's is carried by the decoding path);
/// - strings (keys and values) are well-formed UTF-8 (the decoders repair other bytes) without NUL (which the
///   decoders carry since values and keys are generated as `bytes`, but a rare case is left to them: the ids, still
///   C strings, share this check);
/// - every length is a minimal varint of at most 5 bytes within its message;
/// - objects and lists nest within `ProtoLimits.maxNestingDepth`, counted as `WireDepthGuard` counts them;
/// - object entries and list values number at most `maxMembers` in all, counted as `WireDepthGuard` counts them.
/// Anything else, valid or not, gets "no", and the caller decodes as before, with the same result or error:
/// this check never decides what is an error.
struct ValueWireTranscoder {
    /// Objects with more keys are left to the decoder: the duplicate check here is quadratic.
    static let maxCheckedKeys = 32

    /// Which one-byte tag each `Value` case has in the form read, and which it gets in the copy.
    struct ValueTags {
        var null: (from: UInt8, to: UInt8)
        var bool: (from: UInt8, to: UInt8)
        var number: (from: UInt8, to: UInt8)
        var string: (from: UInt8, to: UInt8)
        var list: (from: UInt8, to: UInt8)
        var object: (from: UInt8, to: UInt8)
        /// The form read is `google.protobuf.Value`, whose decoder (`StructCodec`) makes a string that is a data
        /// URI a blob: any string value starting `data:` (in any case, as `DataURI.parseHeader` reads it) is
        /// then left to the decoder.
        var dataURIStrings: Bool

        /// `trigger.runner.v1.Value` → `google.protobuf.Value`.
        static let runnerToInstill = ValueTags(
            null: (0x08, 0x08), bool: (0x10, 0x20), number: (0x19, 0x11), string: (0x22, 0x1A),
            list: (0x2A, 0x32), object: (0x32, 0x2A), dataURIStrings: false)
        /// `google.protobuf.Value` → `trigger.runner.v1.Value`.
        static let instillToRunner = ValueTags(
            null: (0x08, 0x08), bool: (0x20, 0x10), number: (0x11, 0x19), string: (0x1A, 0x22),
            list: (0x32, 0x2A), object: (0x2A, 0x32), dataURIStrings: true)
    }

    let source: UnsafePointer<UInt8>
    private let target: UnsafeMutablePointer<UInt8>
    let count: Int
    private let tags: ValueTags
    /// Bytes before this offset are in `target` already.
    private var copied = 0
    private var depth = 0
    /// Object entries and list values seen so far, and how many the caller's decoder would accept.
    private var members = 0
    private let maxMembers: Int

    /// Reads `count` bytes at `source`; `target` has room for as many, written at the same offsets.
    init(
        source: UnsafePointer<UInt8>, target: UnsafeMutablePointer<UInt8>, count: Int, tags: ValueTags,
        maxMembers: Int = .max
    ) {
        self.maxMembers = maxMembers
        self.source = source
        self.target = target
        self.count = count
        self.tags = tags
    }

    /// The payload range of the length-delimited field whose one-byte tag is at `tag`, when its length is a
    /// minimal varint and the payload ends within `limit`.
    func length(after tag: Int, within limit: Int) -> (start: Int, end: Int)? {
        Self.length(in: source, after: tag, within: limit)
    }

    /// `length(after:within:)` over any bytes (message wrappers that are not copied).
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

    /// An object (`Struct`, `Object`) at nesting level 1 or below: entries (field 1) only, with distinct keys.
    mutating func object(from start: Int, to end: Int) -> Bool {
        depth += 1
        guard depth <= ProtoLimits.maxNestingDepth else { return false }
        var pos = start
        var entries = 0
        while pos < end {
            guard source[pos] == 0x0A, let entry = length(after: pos, within: end) else { return false }
            entries += 1
            members += 1
            guard entries <= Self.maxCheckedKeys, members <= maxMembers,
                self.entry(from: entry.start, to: entry.end, after: start)
            else { return false }
            pos = entry.end
        }
        depth -= 1
        return true
    }

    /// An entry: a non-empty `key = 1` or none, then `value = 2`, nothing else; its key not one of the entries
    /// from `objectStart` up to it (read again from the source rather than kept: no allocation per object).
    private mutating func entry(from start: Int, to end: Int, after objectStart: Int) -> Bool {
        var pos = start
        var key = (start: start, count: 0)
        if pos < end, source[pos] == 0x0A {
            guard let range = length(after: pos, within: end), range.end > range.start,
                isCanonicalString(from: range.start, to: range.end)
            else { return false }
            key = (range.start, range.end - range.start)
            pos = range.end
        }
        guard isNewKey(key, entriesFrom: objectStart) else { return false }
        guard pos < end, source[pos] == 0x12, let value = length(after: pos, within: end), value.end == end else {
            return false
        }
        return self.value(from: value.start, to: value.end)
    }

    /// Whether no entry between `objectStart` and `key` (entries already checked) has a key `ValueObject` takes
    /// for the same (`ValueObject.isSameKey`).
    private func isNewKey(_ key: (start: Int, count: Int), entriesFrom objectStart: Int) -> Bool {
        var pos = objectStart
        while let entry = length(after: pos, within: key.start), entry.end <= key.start {
            var other = (start: entry.start, count: 0)
            if entry.start < entry.end, source[entry.start] == 0x0A,
                let range = length(after: entry.start, within: entry.end)
            {
                other = (range.start, range.end - range.start)
            }
            if ValueObject.isSameKey(utf8: bytes(other), bytes(key)) { return false }
            pos = entry.end
        }
        return true
    }
    private func bytes(_ key: (start: Int, count: Int)) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: source + key.start, count: key.count)
    }

    /// A `Value`: exactly one case, written in canonical form, its tag renumbered into `target`.
    private mutating func value(from start: Int, to end: Int) -> Bool {
        guard start < end else { return false }  // no case set: decoded as null, written as `null_value`
        let tag = source[start]
        if tag == tags.null.from {
            return end - start == 2 && source[start + 1] == 0 && retag(start, tags.null.to)
        }
        if tag == tags.bool.from {
            return end - start == 2 && source[start + 1] <= 1 && retag(start, tags.bool.to)
        }
        if tag == tags.number.from {
            guard end - start == 9 else { return false }
            var bits: UInt64 = 0
            withUnsafeMutableBytes(of: &bits) {
                $0.copyMemory(from: UnsafeRawBufferPointer(start: source + start + 1, count: 8))
            }
            return Double(bitPattern: UInt64(littleEndian: bits)).isFinite && retag(start, tags.number.to)
        }
        if tag == tags.string.from {
            // The data scheme first: five bytes decline a data URI (the decoder takes it), where the UTF-8 scan
            // read all of it for nothing: 44 M instructions of a 24 MiB data URI's gRPC trigger, 14 % of its cost,
            // which the decoder's own check (`WireDepthGuard`) then read again (diff review 59, L12).
            guard let range = length(after: start, within: end), range.end == end,
                !(tags.dataURIStrings && startsWithDataScheme(from: range.start, to: range.end)),
                isCanonicalString(from: range.start, to: range.end)
            else { return false }
            return retag(start, tags.string.to)
        }
        if tag == tags.list.from {
            guard let range = length(after: start, within: end), range.end == end else { return false }
            return retag(start, tags.list.to) && list(from: range.start, to: range.end)
        }
        if tag == tags.object.from {
            guard let range = length(after: start, within: end), range.end == end else { return false }
            return retag(start, tags.object.to) && object(from: range.start, to: range.end)
        }
        return false  // the runner's blob_value, an unknown field, a wrong wire type
    }

    /// A `ListValue`: values (field 1) only.
    private mutating func list(from start: Int, to end: Int) -> Bool {
        depth += 1
        guard depth <= ProtoLimits.maxNestingDepth else { return false }
        var pos = start
        while pos < end {
            members += 1
            guard members <= maxMembers, source[pos] == 0x0A, let item = length(after: pos, within: end),
                value(from: item.start, to: item.end)
            else { return false }
            pos = item.end
        }
        depth -= 1
        return true
    }

    /// `data:` in any case, which `DataURI.parseHeader` needs before it reads a string as a data URI.
    private func startsWithDataScheme(from start: Int, to end: Int) -> Bool {
        guard end - start >= 5 else { return false }
        let d = source + start
        return d[0] | 0x20 == UInt8(ascii: "d") && d[1] | 0x20 == UInt8(ascii: "a") && d[2] | 0x20 == UInt8(ascii: "t")
            && d[3] | 0x20 == UInt8(ascii: "a") && d[4] == UInt8(ascii: ":")
    }

    /// Well-formed UTF-8 without NUL.
    func isCanonicalString(from start: Int, to end: Int) -> Bool {
        UTF8Validation.isWellFormedWithoutNUL(source + start, count: end - start)
    }

    /// Copies what precedes `tag`, then writes `newTag` in its place. Always true (for chaining).
    mutating func retag(_ tag: Int, _ newTag: UInt8) -> Bool {
        copy(upTo: tag)
        target[tag] = newTag
        copied = tag + 1
        return true
    }

    /// Copies the source up to `end` (what is not copied yet).
    mutating func copy(upTo end: Int) {
        guard end > copied else { return }
        (target + copied).update(from: source + copied, count: end - copied)
        copied = end
    }
}
