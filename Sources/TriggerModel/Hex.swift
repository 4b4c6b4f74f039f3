extension Sequence<UInt8> {
    /// Two lowercase hex digits per byte (digests, signatures): `[0x0a, 0xff]` → `"0aff"`.
    package var lowercaseHex: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Lowercase hex of 64-bit words, a word of digits at a time: the request, trace and span ids on the hot path.
///
/// `public`, not `package`, with its `@inlinable` members: Swift 6.3.1 serialises no `@inlinable` body of a
/// `package` type, so callers in other modules called these out of line instead of inlining them (bench/README.md,
/// "Branch asynccost4", which found it for `GroupCommit`).
public enum HexWord {
    /// Writes the 16 lowercase hex digits of `value`, most significant first, at `destination` (16 bytes; no
    /// alignment needed): `0x0123456789abcdef` → `"0123456789abcdef"`.
    ///
    /// Each half's eight nibbles are spread into the eight bytes of a word (a byte per nibble, most significant
    /// last), then made digits all at once: `'0'` plus the nibble, plus 39 more (`'a'` − `'0'` − 10) where the
    /// nibble is 10 or more (bit 4 of nibble + 6). A loop of a digit at a time was ~8 instructions a digit
    /// (~135 per 32-digit id; bench/README.md, "Branch hotpath9").
    @inlinable
    public static func write(_ value: UInt64, to destination: UnsafeMutableRawPointer) {
        destination.storeBytes(of: digits(UInt32(truncatingIfNeeded: value >> 32)).bigEndian, as: UInt64.self)
        destination.storeBytes(
            of: digits(UInt32(truncatingIfNeeded: value)).bigEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// The 32 lowercase hex digits of `high` then `low` (a 128-bit id: the request id, a trace id), in one
    /// allocation.
    @inlinable
    public static func string(_ high: UInt64, _ low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            let start = UnsafeMutableRawPointer(buffer.baseAddress!)
            write(high, to: start)
            write(low, to: start + 16)
            return 32
        }
    }

    /// The 8 hex digits of `half` as the bytes of a word, the least significant digit in the lowest byte (so
    /// stored big-endian they read most significant first).
    @inlinable
    static func digits(_ half: UInt32) -> UInt64 {
        var x = UInt64(half)
        x = (x | x << 16) & 0x0000_FFFF_0000_FFFF
        x = (x | x << 8) & 0x00FF_00FF_00FF_00FF
        x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F
        let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return x &+ 0x3030_3030_3030_3030 &+ letters &* 39
    }
}
