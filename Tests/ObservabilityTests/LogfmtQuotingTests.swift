import Logging
import Observability
import SeededRandom
import Testing
import TestScheduling

/// The logfmt quoting decision, taken eight bytes at a time (branch hotpath5), against the rule a byte at a time:
/// a value is quoted when it is empty or holds a byte up to SP, DEL, `=`, `"`, `\`, or a C1 control (`C2 80`–`C2
/// 9F`); every other value is written bare, byte for byte.
@Suite("Log lines: logfmt quoting a word at a time")
struct LogfmtQuotingTests {
    /// The rule a byte at a time, as the writer applied it before.
    static func byteRule(_ bytes: [UInt8]) -> Bool {
        if bytes.isEmpty { return true }
        for (index, byte) in bytes.enumerated() {
            if byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\"")
                || byte == UInt8(ascii: "\\")
            {
                return true
            }
            if byte == 0xC2, index + 1 < bytes.count, (0x80...0x9F).contains(bytes[index + 1]) { return true }
        }
        return false
    }

    static func decided(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { LineWriter.logfmtNeedsQuotes($0) }
    }

    @Test("each byte 0x00–0xFF at each position of 1- to 25-byte values: as the byte rule says", .cpuBound)
    func everyByteAtEveryPosition() {
        #expect(Self.decided([]))
        for length in 1...25 {
            for position in 0..<length {
                for c in UInt8.min...UInt8.max {
                    var value = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                    value[position] = c
                    #expect(Self.decided(value) == Self.byteRule(value), "byte \(c) at \(position) of \(length)")
                }
            }
        }
    }

    @Test("a C1 control's two bytes at each position, across a word's edge too, and a lone C2 at the end")
    func c1AtEveryPosition() {
        for length in 2...25 {
            for position in 0..<length {
                for second: UInt8 in [0x20, 0x41, 0x7F, 0x80, 0x85, 0x9B, 0x9F, 0xA0, 0xA9, 0xC2, 0xFF] {
                    var value = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                    value[position] = 0xC2
                    if position + 1 < length { value[position + 1] = second }
                    #expect(
                        Self.decided(value) == Self.byteRule(value), "C2 \(second) at \(position) of \(length)")
                }
            }
        }
    }

    /// The tail (the last 1–7 bytes, one padded or overlapping word since branch hotpath6): two bytes of the
    /// rule's edges at every two positions of the values whose tail is all or part of them (1–7 bytes, and 9–15
    /// after one whole word), each value cut from the middle of a buffer of `=` so that a byte read outside it
    /// would be one that needs quotes.
    static let equalSigns = [UInt8](repeating: UInt8(ascii: "="), count: 8)

    @Test("the tail's 1–7 bytes: two edge bytes at every two positions, values cut from a buffer of `=`", .cpuBound)
    func tailPairs() {
        let edges: [UInt8] = [0x00, 0x20, 0x21, 0x3D, 0x22, 0x5C, 0x7F, 0x80, 0x9F, 0xA0, 0xC2, 0xFF, 0x61, 0x76]
        for length in Array(1...7) + Array(9...15) {
            for first in 0..<length {
                for second in first..<length {
                    for a in edges {
                        for b in edges {
                            var value = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                            value[first] = a
                            value[second] = b
                            let framed = Self.equalSigns + value + Self.equalSigns
                            let decided = framed.withUnsafeBufferPointer {
                                LineWriter.logfmtNeedsQuotes(UnsafeBufferPointer(rebasing: $0[8..<(8 + length)]))
                            }
                            if decided != Self.byteRule(value) {
                                Issue.record("\(value): \(decided), the byte rule says \(Self.byteRule(value))")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("seeded values with the rule's edges next to each other: as the byte rule says")
    func seededValues() {
        var random = SplitMix64(seed: 5)
        let edges: [UInt8] = [
            0x00, 0x09, 0x0A, 0x1F, 0x20, 0x21, 0x22, 0x3C, 0x3D, 0x3E, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0x9F,
            0xA0, 0xC1, 0xC2, 0xC3, 0xFF,
        ]
        for _ in 0..<5_000 {
            let length = Int.random(in: 0...40, using: &random)
            let value = (0..<length).map { _ -> UInt8 in
                Int.random(in: 0..<6, using: &random) == 0
                    ? edges.randomElement(using: &random)! : UInt8.random(in: 0x21...0x7E, using: &random)
            }
            #expect(Self.decided(value) == Self.byteRule(value), "\(value)")
        }
    }

    /// The line's field as the rule writes it (ASCII values): bare, or quoted with `"`, `\`, newline, return and
    /// tab backslash-escaped and the other controls as `\u00XX`.
    static func expectedField(_ value: [UInt8]) -> [UInt8] {
        guard byteRule(value) else { return Array("k=".utf8) + value }
        var out = Array(#"k=""#.utf8)
        for byte in value {
            switch byte {
            case UInt8(ascii: "\""): out += Array(#"\""#.utf8)
            case UInt8(ascii: "\\"): out += Array(#"\\"#.utf8)
            case 0x0A: out += Array(#"\n"#.utf8)
            case 0x0D: out += Array(#"\r"#.utf8)
            case 0x09: out += Array(#"\t"#.utf8)
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                out += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        return out + [UInt8(ascii: "\"")]
    }

    @Test(
        "the written field: each ASCII byte at each position of 1- to 25-byte values, bare or quoted and escaped",
        .cpuBound)
    func writtenField() {
        let prefix = Array("ts=2026-11-30T02:39:29.007Z level=info logger=t msg=m ".utf8)
        for length in 1...25 {
            for position in 0..<length {
                for c in UInt8(0)...UInt8(0x7F) {
                    var value = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                    value[position] = c
                    let line = LineLogHandler.line(
                        format: .logfmt, timestamp: (1_796_006_369, 7), level: .info, label: "t", message: "m",
                        metadata: ["k": .string(String(decoding: value, as: UTF8.self))])
                    #expect(
                        line == prefix + Self.expectedField(value) + [0x0A], "byte \(c) at \(position) of \(length)")
                }
            }
        }
    }
}
