import Crypto
package import NIOCore
import TriggerModel

/// Where `PayloadWriter` puts bytes: a buffer (for storage) or a hasher (for request digests), so the
/// digest of a 32 MiB request needs no second copy of it.
protocol PayloadSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer)
}

extension ByteBuffer: PayloadSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer) { writeBytes(bytes) }
}

/// A sink that gathers small writes in a fixed 128-byte scratch and hands them to `base` in one write: when the next
/// write does not fit, and at `finish()`. A write larger than the scratch goes to `base` as it is, after what was
/// gathered (a blob's bytes are not copied twice). `base` receives the same bytes in the same order.
///
/// Why: `PayloadWriter` writes each tag byte, varint and string on its own, and a `ByteBuffer.writeBytes` costs
/// ~250–375 instructions with NIO's capacity and exclusivity checks (`PayloadWriter.varint` alone 5.6 k per
/// accepted-and-run operation, the request's and result's encodings ~20 k; bench/README.md, branch asynccost4).
struct GatheringSink<Base: PayloadSink>: PayloadSink {
    private var base: Base
    /// 128 bytes, kept inline in the sink (no allocation).
    private typealias Scratch = (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    )
    private var scratch: Scratch = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// Bytes gathered in `scratch`, not yet written to `base`.
    private var used = 0

    /// The scratch's size in bytes.
    static var capacity: Int { MemoryLayout<Scratch>.size }

    init(_ base: Base) {
        self.base = base
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        if used + bytes.count > Self.capacity {
            flush()
            if bytes.count > Self.capacity {
                base.write(bytes)
                return
            }
        }
        let at = used
        withUnsafeMutableBytes(of: &scratch) { ($0.baseAddress! + at).copyMemory(from: source, byteCount: bytes.count) }
        used += bytes.count
    }

    /// `base`, with every byte written so far.
    mutating func finish() -> Base {
        flush()
        return base
    }

    private mutating func flush() {
        guard used > 0 else { return }
        let count = used
        used = 0
        withUnsafeBytes(of: &scratch) { base.write(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }
}

/// SHA-256 (swift-crypto) as a payload sink: request digests hash the canonical form as it is written.
package struct SHA256Sink: PayloadSink {
    private var hasher = SHA256()

    package init() {}

    mutating func write(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    package mutating func update(_ bytes: UnsafeRawBufferPointer) { write(bytes) }

    package mutating func update(_ bytes: some Sequence<UInt8>) {
        let array = Array(bytes)
        array.withUnsafeBytes { write($0) }
    }

    /// The digest as 64 lowercase hex digits.
    package func finalizeHex() -> String {
        hasher.finalize().lowercaseHex
    }
}

/// A blob kept outside the row: `name` is unique within its operation (`<dataDir>/blobs/<op-id>/<name>`
/// for SQLite, a side-table key for PostgreSQL).
package struct SpilledBlob: Sendable, Equatable {
    package var name: String
    package var bytes: ByteBuffer

    package init(name: String, bytes: ByteBuffer) {
        self.name = name
        self.bytes = bytes
    }
}

/// Tags of the stored value format (one byte before each value).
enum PayloadTag: UInt8 {
    case null = 0
    case boolFalse = 1
    case boolTrue = 2
    case number = 3
    case string = 4
    case list = 5
    case object = 6
    case inlineBlob = 7
    case spilledBlob = 8
    /// A `Value.largeInteger`, as its decimal text (a length, then ASCII).
    case largeInteger = 9
    /// A `Value.number` written as a float (`NumberForm.float`: `2.0`), as its IEEE-754 bits like `number`.
    /// Read since 43cf5865 (landed in 1e893806); written by default since f6b13ef2 (`OperationPayloadCodec
    /// .numberForms`).
    case floatNumber = 10
}

/// Writes the store's compact binary form of model values: tag bytes, LEB128 lengths, UTF-8 strings,
/// numbers as IEEE-754 bit patterns (exact round trip), blob bytes raw (no base64).
///
/// Blobs larger than `inlineLimit` are not written inline: they are collected in `spilled` and only their
/// name and size go into the stream. `inlineLimit == nil` keeps everything inline (the digest form).
struct PayloadWriter<Sink: PayloadSink> {
    var sink: Sink
    let inlineLimit: Int?
    let spillPrefix: String
    /// Whether a `Value.largeInteger` is written as its digits (`PayloadTag.largeInteger`) or as its nearest
    /// double (`PayloadTag.number`, what versions before 54e6771 wrote and can read). See
    /// `OperationPayloadCodec.largeIntegerDigits`.
    let largeIntegerDigits: Bool
    /// Whether a `Value.number` in the float form is written as `PayloadTag.floatNumber` or as a plain `number`
    /// (what every version up to 1e893806 wrote, and all that versions before 43cf5865 can read). See
    /// `OperationPayloadCodec.numberForms`.
    let numberForms: Bool
    private(set) var spilled: [SpilledBlob] = []

    init(sink: Sink, inlineLimit: Int?, spillPrefix: String = "", largeIntegerDigits: Bool, numberForms: Bool) {
        self.sink = sink
        self.inlineLimit = inlineLimit
        self.spillPrefix = spillPrefix
        self.largeIntegerDigits = largeIntegerDigits
        self.numberForms = numberForms
    }

    mutating func byte(_ byte: UInt8) {
        withUnsafeBytes(of: byte) { sink.write($0) }
    }

    mutating func varint(_ value: UInt64) {
        var scratch: (UInt64, UInt64) = (0, 0)
        var value = value
        let count = withUnsafeMutableBytes(of: &scratch) { raw -> Int in
            var n = 0
            repeat {
                var b = UInt8(value & 0x7f)
                value >>= 7
                if value != 0 { b |= 0x80 }
                raw[n] = b
                n += 1
            } while value != 0
            return n
        }
        withUnsafeBytes(of: scratch) { sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    mutating func count(_ value: Int) { varint(UInt64(value)) }

    mutating func bool(_ value: Bool) { byte(value ? 1 : 0) }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            count(utf8.count)
            sink.write(UnsafeRawBufferPointer(utf8))
        }
    }

    mutating func optionalString(_ value: String?) {
        if let value {
            byte(1)
            string(value)
        } else {
            byte(0)
        }
    }

    mutating func uint64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { sink.write($0) }
    }

    mutating func bytes(_ buffer: ByteBuffer) {
        count(buffer.readableBytes)
        buffer.withUnsafeReadableBytes { sink.write($0) }
    }

    mutating func value(_ value: Value) {
        switch value {
        case .null:
            byte(PayloadTag.null.rawValue)
        case .bool(let b):
            byte(b ? PayloadTag.boolTrue.rawValue : PayloadTag.boolFalse.rawValue)
        case .number(let n, let form):
            byte(form == .float && numberForms ? PayloadTag.floatNumber.rawValue : PayloadTag.number.rawValue)
            uint64(n.bitPattern)
        case .largeInteger(let i):
            if largeIntegerDigits {
                byte(PayloadTag.largeInteger.rawValue)
                string(i.digits)
            } else {
                byte(PayloadTag.number.rawValue)
                uint64(i.doubleValue.bitPattern)
            }
        case .string(let s):
            byte(PayloadTag.string.rawValue)
            string(s)
        case .list(let items):
            byte(PayloadTag.list.rawValue)
            count(items.count)
            for item in items { self.value(item) }
        case .object(let object):
            byte(PayloadTag.object.rawValue)
            self.object(object)
        case .blob(let blob):
            if let inlineLimit, blob.count > inlineLimit {
                let name = "\(spillPrefix)\(spilled.count)"
                spilled.append(SpilledBlob(name: name, bytes: blob.bytes))
                byte(PayloadTag.spilledBlob.rawValue)
                string(blob.contentType)
                optionalString(blob.fileName)
                string(name)
                count(blob.count)
            } else {
                byte(PayloadTag.inlineBlob.rawValue)
                string(blob.contentType)
                optionalString(blob.fileName)
                bytes(blob.bytes)
            }
        }
    }

    mutating func object(_ object: ValueObject) {
        count(object.count)
        for (key, value) in object {
            string(key)
            self.value(value)
        }
    }

    mutating func objects(_ objects: [ValueObject]) {
        count(objects.count)
        for object in objects { self.object(object) }
    }

    /// Dictionaries are written sorted by key, so equal requests always give equal bytes (and digests).
    mutating func stringMap(_ map: [String: String]) {
        count(map.count)
        for key in map.keys.sorted() {
            string(key)
            string(map[key]!)
        }
    }
}
