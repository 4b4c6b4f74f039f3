import Testing
import TriggerModel

@Suite("PercentDecoding")
struct PercentDecodingTests {
    @Test(
        "%XX becomes its byte in either case; text without escapes is unchanged",
        arguments: [
            ("ec%68o", "echo"), ("EC%4Fo", "ECOo"), ("a%2Fb", "a/b"), ("a%2fb", "a/b"), ("%E2%82%AC", "€"),
            ("plain", "plain"), ("", ""), ("a+b", "a+b"),
        ])
    func decodes(text: String, decoded: String) {
        #expect(PercentDecoding.decode(text.utf8) == decoded)
        #expect(PercentDecoding.decodeStrictly(text.utf8) == decoded)
    }

    @Test(
        "a % without two hex digits is literal when lenient and malformed when strict",
        arguments: [
            "%", "%4", "a%", "%zz", "%4g", "100%", "%%41",
        ])
    func malformed(text: String) {
        #expect(PercentDecoding.decodeStrictly(text.utf8) == nil)
        #expect(PercentDecoding.decodeBytes(text.utf8, strict: true) == nil)
        // Lenient: the % stays, a following valid escape still decodes.
        let lenient = PercentDecoding.decode(text.utf8)
        #expect(lenient.contains("%"))
        if text == "%%41" { #expect(lenient == "%A") }
    }

    @Test(
        "an escape at the very end is decoded: the edge is the last two bytes",
        arguments: [
            ("x%41", "xA"), ("x%4", nil),
        ] as [(String, String?)])
    func escapeAtEnd(text: String, strict: String?) {
        #expect(PercentDecoding.decodeStrictly(text.utf8) == strict)
    }

    @Test("plus is a space only when asked (form encoding)")
    func plusAsSpace() {
        #expect(PercentDecoding.decode("a+b%2B".utf8, plusAsSpace: true) == "a b+")
        #expect(PercentDecoding.decode("a+b%2B".utf8) == "a+b+")
        #expect(PercentDecoding.decodeStrictly("a+b".utf8, plusAsSpace: true) == "a b")
    }

    @Test("bytes that are not UTF-8 decode to U+FFFD in strings and stay raw as bytes")
    func invalidUTF8() {
        #expect(PercentDecoding.decode("%FF".utf8) == "\u{FFFD}")
        #expect(PercentDecoding.decodeBytes("%FF%00".utf8) == [0xFF, 0x00])
    }
}
