import SeededRandom
import Testing
import TriggerModel

@Suite("UTF-8 validation, with NUL refused and allowed")
struct UTF8ValidationTests {
    /// What the check must answer: Swift's own validation, and no NUL.
    private static func reference(_ bytes: [UInt8]) -> Bool {
        !bytes.contains(0) && String(validating: bytes, as: UTF8.self) != nil
    }

    /// Both checks against their references: `isWellFormedWithoutNUL` against `reference`, `isWellFormed`
    /// against Swift's validation alone (a NUL is well-formed).
    private static func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        #expect(
            check(bytes, refusingNUL: false) == (String(validating: bytes, as: UTF8.self) != nil), "\(bytes)",
            sourceLocation: sourceLocation)
        return check(bytes, refusingNUL: true)
    }

    private static func check(_ bytes: [UInt8], refusingNUL: Bool) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            // A copy with one readable byte more than `count` after it: the check must not read past `count`
            // to decide (the byte after is ASCII, which would hide a truncated sequence at the end).
            let padded = UnsafeMutablePointer<UInt8>.allocate(capacity: buffer.count + 1)
            defer { padded.deallocate() }
            if let base = buffer.baseAddress { padded.update(from: base, count: buffer.count) }
            padded[buffer.count] = UInt8(ascii: "a")
            return refusingNUL
                ? UTF8Validation.isWellFormedWithoutNUL(padded, count: buffer.count)
                : UTF8Validation.isWellFormed(padded, count: buffer.count)
        }
    }

    @Test("A NUL, a stray byte or a bad sequence at every position of 0–24 bytes is found, in and across words")
    func everyPosition() {
        let sequences: [[UInt8]] = [
            [0x00], [0x80], [0xFF], [0xC0, 0x80], [0xE0, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xE6, 0x97], [0xC3, 0xA9], Array("€".utf8), Array("𝄞".utf8), Array("\u{7F}".utf8),
        ]
        for length in 0...24 {
            for position in 0...length {
                for sequence in sequences {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    bytes.insert(contentsOf: sequence, at: position)
                    #expect(Self.check(bytes) == Self.reference(bytes), "\(bytes)")
                }
                // Cut at the end: every proper prefix of a multi-byte sequence.
                for cut in 1..<4 {
                    let bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length) + Array("𝄞".utf8).prefix(cut)
                    #expect(!Self.check(bytes), "\(bytes)")
                }
            }
        }
    }

    @Test("Agrees with Swift's validation on 20 000 random strings (seeded)")
    func randomStrings() {
        var random = SplitMix64(seed: 0x5EED_0F_07F8)
        let pieces: [[UInt8]] = [
            Array("a".utf8), Array("hello, world ".utf8), Array("é".utf8), Array("中文".utf8), Array("🙂".utf8),
            [0x00], [0x80], [0xC2], [0xE0, 0x80], [0xF0, 0x9F], [0xED, 0xBF, 0xBF], [0xF8],
        ]
        for _ in 0..<20_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &random) {
                // ASCII pieces most of the time, as real text is.
                let index =
                    Int.random(in: 0..<100, using: &random) < 80
                    ? Int.random(in: 0...1, using: &random) : Int.random(in: 2..<pieces.count, using: &random)
                bytes += pieces[index]
            }
            #expect(Self.check(bytes) == Self.reference(bytes), "\(bytes)")
        }
    }
}
