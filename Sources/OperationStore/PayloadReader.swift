import NIOCore
import TriggerModel

/// Reads what `PayloadWriter` wrote. Inline blob bytes are slices of the row's buffer (no copy); spilled
/// blobs come from `resolveBlob` (a file or side-table row, by name).
///
/// Any inconsistency means the stored row is damaged: it throws `.internalError` rather than guessing.
struct PayloadReader {
    var buffer: ByteBuffer
    let resolveBlob: (String) throws -> ByteBuffer
    /// Bounds recursion on damaged input; the frontends cap nesting far below this.
    private var depth = 0
    /// When set, a spilled blob `resolveBlob` reports lost (`.dataLoss`: its file is gone) is read as empty and
    /// the first such error kept in `lostBlob`, instead of failing the whole payload (review 27, H1).
    var toleratesLostBlobs = false
    private(set) var lostBlob: GatewayError?

    init(buffer: ByteBuffer, resolveBlob: @escaping (String) throws -> ByteBuffer) {
        self.buffer = buffer
        self.resolveBlob = resolveBlob
    }

    static func corrupt(_ what: String) -> GatewayError {
        GatewayError(.internalError, "stored operation payload is damaged (\(what))")
    }

    mutating func byte() throws -> UInt8 {
        guard let b = buffer.readInteger(as: UInt8.self) else { throw Self.corrupt("truncated") }
        return b
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw Self.corrupt("varint") }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func count() throws -> Int {
        let value = try varint()
        // Every counted element takes at least one byte, so no honest count exceeds what is left.
        guard value <= UInt64(buffer.readableBytes) else { throw Self.corrupt("length") }
        return Int(value)
    }

    mutating func bool() throws -> Bool { try byte() != 0 }

    mutating func string() throws -> String {
        let length = try count()
        guard let s = buffer.readString(length: length) else { throw Self.corrupt("string") }
        return s
    }

    mutating func optionalString() throws -> String? {
        try byte() == 0 ? nil : try string()
    }

    mutating func uint64() throws -> UInt64 {
        guard let v = buffer.readInteger(endianness: .big, as: UInt64.self) else { throw Self.corrupt("number") }
        return v
    }

    mutating func bytes() throws -> ByteBuffer {
        let length = try count()
        guard let slice = buffer.readSlice(length: length) else { throw Self.corrupt("bytes") }
        return slice
    }

    mutating func value() throws -> Value {
        guard let tag = PayloadTag(rawValue: try byte()) else { throw Self.corrupt("tag") }
        switch tag {
        case .null: return .null
        case .boolFalse: return .bool(false)
        case .boolTrue: return .bool(true)
        case .number: return .number(Double(bitPattern: try uint64()))
        case .floatNumber: return .number(Double(bitPattern: try uint64()), form: .float)
        case .largeInteger:
            guard let integer = LargeInteger(try string()) else { throw Self.corrupt("large integer") }
            return .largeInteger(integer)
        case .string: return .string(try string())
        case .list:
            let n = try count()
            try enter()
            defer { depth -= 1 }
            var items: [Value] = []
            items.reserveCapacity(min(n, 1024))
            for _ in 0..<n { items.append(try value()) }
            return .list(items)
        case .object:
            try enter()
            defer { depth -= 1 }
            return .object(try object())
        case .inlineBlob:
            let contentType = try string()
            let fileName = try optionalString()
            return .blob(Blob(contentType: contentType, fileName: fileName, bytes: try bytes()))
        case .spilledBlob:
            let contentType = try string()
            let fileName = try optionalString()
            let name = try string()
            guard let size = Int(exactly: try varint()) else { throw Self.corrupt("blob size") }
            let bytes: ByteBuffer
            do {
                bytes = try resolveBlob(name)
            } catch let error as GatewayError where error.code == .dataLoss && toleratesLostBlobs {
                if lostBlob == nil { lostBlob = error }
                return .blob(Blob(contentType: contentType, fileName: fileName, bytes: ByteBuffer()))
            }
            guard bytes.readableBytes == size else { throw Self.corrupt("blob \(name) has the wrong size") }
            return .blob(Blob(contentType: contentType, fileName: fileName, bytes: bytes))
        }
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Value.maximumDepth else { throw Self.corrupt("nesting") }
    }

    mutating func object() throws -> ValueObject {
        let n = try count()
        var entries: [(key: String, value: Value)] = []
        entries.reserveCapacity(min(n, 1024))
        for _ in 0..<n {
            let key = try string()
            entries.append((key: key, value: try value()))
        }
        return ValueObject(entries)
    }

    mutating func objects() throws -> [ValueObject] {
        let n = try count()
        var objects: [ValueObject] = []
        objects.reserveCapacity(min(n, 1024))
        for _ in 0..<n { objects.append(try object()) }
        return objects
    }

    mutating func stringMap() throws -> [String: String] {
        let n = try count()
        var map: [String: String] = [:]
        for _ in 0..<n {
            let key = try string()
            map[key] = try string()
        }
        return map
    }
}
