import SeededRandom
import Testing
import TriggerModel

@Suite("Hex words")
struct HexWordTests {
    private static func written(_ value: UInt64) -> String {
        // Written at an odd offset: the stores must not need alignment, and must not write outside their 16 bytes.
        var bytes = [UInt8](repeating: UInt8(ascii: "."), count: 18)
        bytes.withUnsafeMutableBytes { HexWord.write(value, to: $0.baseAddress! + 1) }
        #expect(bytes.first == UInt8(ascii: ".") && bytes.last == UInt8(ascii: "."))
        return String(decoding: bytes[1..<17], as: UTF8.self)
    }

    private static func reference(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    @Test("Every nibble value at every position, and the edges, read as String(radix: 16) zero-padded")
    func everyNibble() {
        for position in 0..<16 {
            for nibble in UInt64(0)...15 {
                let value = nibble << (4 * UInt64(position))
                #expect(Self.written(value) == Self.reference(value))
            }
        }
        for value in [UInt64.max, 0, 1, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, 0x9999_AAAA_0000_FFFF] {
            #expect(Self.written(value) == Self.reference(value))
        }
        #expect(Self.written(0x0123_4567_89AB_CDEF) == "0123456789abcdef")
    }

    @Test("A 128-bit id: the high word's digits, then the low word's")
    func twoWords() {
        #expect(HexWord.string(0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210) == "0123456789abcdeffedcba9876543210")
        #expect(HexWord.string(0, 1) == "00000000000000000000000000000001")
        #expect(HexWord.string(.max, 0).utf8.count == 32)
    }

    @Test("20 000 seeded random words")
    func randomWords() {
        var random = SplitMix64(seed: 11)
        for _ in 0..<20_000 {
            let value = random.next() as UInt64
            #expect(Self.written(value) == Self.reference(value))
        }
    }
}
