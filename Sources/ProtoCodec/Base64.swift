/// Standard base64 (RFC 4648 §4) over raw buffers, for data URIs. ProtoCodec may not depend on ExtrasBase64,
/// and working on raw buffers lets a data URI go from protobuf-c's C string to a `ByteBuffer` in one pass.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// 0–63 for alphabet bytes, 0xFF for anything else.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(i) }
        return table
    }()

    static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Writes exactly `encodedCount(source.count)` bytes, padded with `=`.
    static func encode(_ source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer) {
        precondition(target.count >= encodedCount(source.count))
        alphabet.withUnsafeBufferPointer { alphabet in
            var i = 0
            var o = 0
            while i + 3 <= source.count {
                let n = UInt32(source[i]) << 16 | UInt32(source[i + 1]) << 8 | UInt32(source[i + 2])
                target[o] = alphabet[Int(n >> 18)]
                target[o + 1] = alphabet[Int(n >> 12 & 63)]
                target[o + 2] = alphabet[Int(n >> 6 & 63)]
                target[o + 3] = alphabet[Int(n & 63)]
                i += 3
                o += 4
            }
            let rest = source.count - i
            if rest > 0 {
                let n = UInt32(source[i]) << 16 | (rest == 2 ? UInt32(source[i + 1]) << 8 : 0)
                target[o] = alphabet[Int(n >> 18)]
                target[o + 1] = alphabet[Int(n >> 12 & 63)]
                target[o + 2] = rest == 2 ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "=")
                target[o + 3] = UInt8(ascii: "=")
            }
        }
    }

    /// The decoded length of `source`, or nil if it is not base64: padding is optional, but when present it
    /// must complete the last quantum; no whitespace, no URL-safe alphabet.
    static func decodedCount(_ source: UnsafeRawBufferPointer) -> Int? {
        var count = source.count
        if count >= 1, source[count - 1] == UInt8(ascii: "=") {
            guard count % 4 == 0 else { return nil }
            count -= 1
            if source[count - 1] == UInt8(ascii: "=") { count -= 1 }
        }
        switch count % 4 {
        case 0: return count / 4 * 3
        case 2: return count / 4 * 3 + 1
        case 3: return count / 4 * 3 + 2
        default: return nil
        }
    }

    /// Decodes into `target`, which must hold `decodedCount(source)` bytes. False when a byte is not in the
    /// alphabet. Unused bits of the last quantum are ignored, as Go's and Python's default decoders do.
    static func decode(_ source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer) -> Bool {
        guard let decoded = decodedCount(source), target.count >= decoded else { return false }
        let significant = decoded / 3 * 4 + (decoded % 3 == 0 ? 0 : decoded % 3 + 1)
        return decodeTable.withUnsafeBufferPointer { table in
            var i = 0
            var o = 0
            while i + 4 <= significant {
                let a = table[Int(source[i])]
                let b = table[Int(source[i + 1])]
                let c = table[Int(source[i + 2])]
                let d = table[Int(source[i + 3])]
                if (a | b | c | d) & 0xC0 != 0 { return false }
                let n = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                target[o] = UInt8(truncatingIfNeeded: n >> 16)
                target[o + 1] = UInt8(truncatingIfNeeded: n >> 8)
                target[o + 2] = UInt8(truncatingIfNeeded: n)
                i += 4
                o += 3
            }
            let rest = significant - i
            guard rest > 0 else { return true }
            let a = table[Int(source[i])]
            let b = table[Int(source[i + 1])]
            let c = rest == 3 ? table[Int(source[i + 2])] : 0
            if (a | b | c) & 0xC0 != 0 { return false }
            let n = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6
            target[o] = UInt8(truncatingIfNeeded: n >> 16)
            if rest == 3 { target[o + 1] = UInt8(truncatingIfNeeded: n >> 8) }
            return true
        }
    }
}
