/// Well-formed UTF-8 as Unicode defines it (§3.9, table 3-7: no overlong forms, no surrogates, nothing past
/// U+10FFFF), which is what `String(validating:as:)` accepts and what `String(decoding:as:)` and
/// `String(cString:)` leave unrepaired. The passthrough scanners (issue 11) use it to accept only text that
/// decoding would not change.
package enum UTF8Validation {
    /// The length (2 to 4) of the well-formed multi-byte sequence starting at `bytes`, of which `available`
    /// bytes are readable; 0 when there is none (an ASCII byte, a stray continuation byte, an ill-formed or
    /// truncated sequence).
    package static func sequenceLength(_ bytes: UnsafePointer<UInt8>, available: Int) -> Int {
        guard available > 0 else { return 0 }
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch bytes[0] {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            high = 0x9F
        case 0xF0:
            length = 4
            low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            high = 0x8F
        default: return 0
        }
        guard available >= length, (low...high).contains(bytes[1]) else { return 0 }
        for i in 2..<length where bytes[i] & 0xC0 != 0x80 { return 0 }
        return length
    }

    /// Whether the `count` bytes at `bytes` are well-formed UTF-8 with no NUL byte: text that `String(cString:)`
    /// and `String(decoding:as:)` keep whole (the passthrough scanners' canonical string, issue 11).
    ///
    /// Eight bytes at a time while they are ASCII without NUL: a word with no high bit set and no zero byte is
    /// valid whole (`haszero` of "Bit Twiddling Hacks", exact as a yes/no); at a word holding either, one byte or
    /// one multi-byte sequence is checked, then words again. A byte at a time cost ~7 instructions a byte, ~700
    /// per relayed stream event of 64 characters (bench/callgrind `--only stream`, twenty-first session).
    package static func isWellFormedWithoutNUL(_ bytes: UnsafePointer<UInt8>, count: Int) -> Bool {
        isWellFormed(bytes, count: count, refusingNUL: true)
    }

    /// Whether the `count` bytes at `bytes` are well-formed UTF-8, NUL included: what `String(validating:as:)`
    /// accepts, without making the string (a multipart field's text may be a 32 MiB data URI).
    package static func isWellFormed(_ bytes: UnsafePointer<UInt8>, count: Int) -> Bool {
        isWellFormed(bytes, count: count, refusingNUL: false)
    }

    @inline(__always)
    private static func isWellFormed(_ bytes: UnsafePointer<UInt8>, count: Int, refusingNUL: Bool) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let raw = UnsafeRawPointer(bytes)
        var pos = 0
        while pos < count {
            if count - pos >= 8 {
                let word = raw.loadUnaligned(fromByteOffset: pos, as: UInt64.self)
                let zeroBytes = refusingNUL ? (word &- ones) & ~word : 0
                if (word | zeroBytes) & highBits == 0 {
                    pos += 8
                    continue
                }
            }
            let c = bytes[pos]
            if refusingNUL && c == 0 { return false }
            if c < 0x80 {
                pos += 1
                continue
            }
            let length = sequenceLength(bytes + pos, available: count - pos)
            guard length > 0 else { return false }
            pos += length
        }
        return true
    }
}
