package import NIOCore
package import TriggerModel

extension JSONValueCodec {
    /// Appends `value` as compact JSON: objects in their key order, blobs as `data:<type>[;filename=...];base64,...` URIs,
    /// integral numbers without a fraction, non-finite numbers as `null` (JSON has no NaN or infinity).
    package static func write(_ value: Value, into buffer: inout ByteBuffer) {
        var inline = InlineBlobs()
        write(value, into: &buffer, blobs: &inline)
    }

    /// Appends `object` as a JSON object in its key order.
    package static func write(_ object: ValueObject, into buffer: inout ByteBuffer) {
        var inline = InlineBlobs()
        write(object, into: &buffer, blobs: &inline)
    }

    /// As `write(_:into:)`, with each blob handed to `blobs` (inline as a data URI, or cut out of the text to
    /// be encoded later: `StreamedJSONBody`).
    static func write<Blobs: JSONBlobWriter>(_ value: Value, into buffer: inout ByteBuffer, blobs: inout Blobs) {
        switch value {
        case .null: buffer.writeStaticString("null")
        case .bool(let b): buffer.writeStaticString(b ? "true" : "false")
        case .number(let n, let form): writeNumber(n, form: form, into: &buffer)
        case .largeInteger(let i): buffer.writeString(i.digits)
        case .string(let s): writeString(s, into: &buffer)
        case .list(let elements):
            buffer.writeInteger(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                write(element, into: &buffer, blobs: &blobs)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let object): write(object, into: &buffer, blobs: &blobs)
        case .blob(let blob): blobs.write(blob, into: &buffer)
        }
    }

    static func write<Blobs: JSONBlobWriter>(_ object: ValueObject, into buffer: inout ByteBuffer, blobs: inout Blobs) {
        var first = true
        for (key, value) in object {
            // The brace or comma, the key and its colon in one write.
            writeString(key, after: first ? "{" : ",", then: ":", into: &buffer)
            first = false
            write(value, into: &buffer, blobs: &blobs)
        }
        buffer.writeStaticString(first ? "{}" : "}")
    }

    /// Appends `blob` as a JSON string holding its base64 data URI (`DataURI`), which needs no JSON escapes:
    /// the header is percent-encoded printable ASCII without `"` or a backslash.
    package static func writeBlob(_ blob: Blob, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        DataURI.encode(blob, into: &buffer)
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Appends `string` quoted and escaped per RFC 8259 §7: `"`, `\` and control characters only; everything else
    /// (including non-ASCII) is written as UTF-8. `prefix` and `suffix` (JSON text, such as `,"key":` before a
    /// value or `:` after a key) are written before and after it.
    package static func writeString(
        _ string: String, after prefix: StaticString = "", then suffix: StaticString = "", into buffer: inout ByteBuffer
    ) {
        string.withUTF8Bytes { utf8 in
            // Nothing to escape (keys, ids, most values): prefix, quotes, text and suffix in one write (each
            // `ByteBuffer` write costs ~170 to ~250 instructions of checks, issue 11; `PieceWriter`).
            if !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                let bound = prefix.utf8CodeUnitCount + utf8.count + 2 + suffix.utf8CodeUnitCount
                buffer.writePieces(atMost: bound) { out in
                    out.write(prefix)
                    out.write(byte: UInt8(ascii: "\""))
                    out.write(UnsafeRawBufferPointer(utf8))
                    out.write(byte: UInt8(ascii: "\""))
                    out.write(suffix)
                }
                return
            }
            if prefix.utf8CodeUnitCount > 0 { buffer.writeStaticString(prefix) }
            buffer.writeInteger(UInt8(ascii: "\""))
            var runStart = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                if runStart < i { buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                switch c {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                case 0x08: buffer.writeStaticString("\\b")
                case 0x0C: buffer.writeStaticString("\\f")
                default:
                    let hex: StaticString = "0123456789abcdef"
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(hex.utf8Start[Int(c >> 4)])
                    buffer.writeInteger(hex.utf8Start[Int(c & 0xF)])
                }
            }
            if runStart < utf8.count { buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[runStart...])) }
            buffer.writeInteger(UInt8(ascii: "\""))
            if suffix.utf8CodeUnitCount > 0 { buffer.writeStaticString(suffix) }
        }
    }

    /// Integral doubles below this magnitude are written as plain integers; from here on Swift's shortest form
    /// is already exponential (`1e+16`), never a `.0` fraction.
    package static let plainIntegralLimit: Double = 1e16

    /// Appends `number`: integral values below 1e16 as plain integers (`1`, not `1.0`; `9007199254740992`, not
    /// `9007199254740992.0`), others in Swift's shortest round-trip form (which is valid JSON: `0.1`, `1e-05`,
    /// `1e+300`).
    ///
    /// With `form` `.float`, an integral value below 1e16 keeps a fraction (`2.0`, `-0.0`), as Python prints a
    /// `float` (`NumberForm`); every other value prints the same in either form.
    package static func writeNumber(_ number: Double, form: NumberForm = .plain, into buffer: inout ByteBuffer) {
        guard number.isFinite else {
            buffer.writeStaticString("null")
            return
        }
        if number == number.rounded(.towardZero) && abs(number) < plainIntegralLimit {
            guard form == .float else { return writeInteger(Int64(number), into: &buffer) }
            if number == 0 && number.sign == .minus { buffer.writeInteger(UInt8(ascii: "-")) }
            writeInteger(Int64(number), into: &buffer)
            buffer.writeStaticString(".0")
        } else {
            buffer.writeString(number.description)
        }
    }

    /// Appends `float` in its own shortest form, so a `Float` 0.1 prints as `0.1` rather than its `Double` widening.
    static func writeFloat(_ float: Float, into buffer: inout ByteBuffer) {
        guard float.isFinite else {
            buffer.writeStaticString("null")
            return
        }
        // Inclusive: Swift prints 2^24 itself as `16777216.0` (past it, exponential).
        if float == float.rounded(.towardZero) && abs(float) <= 16_777_216 {
            writeInteger(Int64(float), into: &buffer)
        } else {
            buffer.writeString(float.description)
        }
    }

    static func writeInteger(_ value: Int64, into buffer: inout ByteBuffer) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { scratch in
            var magnitude = value.magnitude
            var i = scratch.count
            repeat {
                i -= 1
                scratch[i] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                i -= 1
                scratch[i] = UInt8(ascii: "-")
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[i...]))
        }
    }
}

/// Where the JSON writer puts a blob: `InlineBlobs` writes its data URI into the text; `StreamedJSONBody`'s
/// builder cuts large blobs out of the text so that their base64 is produced only as the body is sent.
protocol JSONBlobWriter {
    mutating func write(_ blob: Blob, into buffer: inout ByteBuffer)
}

/// Every blob written in place as its data URI (`JSONValueCodec.writeBlob`).
struct InlineBlobs: JSONBlobWriter {
    func write(_ blob: Blob, into buffer: inout ByteBuffer) {
        JSONValueCodec.writeBlob(blob, into: &buffer)
    }
}
