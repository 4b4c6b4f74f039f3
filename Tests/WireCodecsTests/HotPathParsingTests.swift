import NIOCore
import Testing
import TriggerModel
import WireCodecs

/// The short cuts the REST hot path takes for its usual values (issue 11) answer exactly what the general
/// parsers answer, at their edges.
@Suite("Hot-path short cuts agree with the general parsers")
struct HotPathParsingTests {
    @Test(
        "MediaType.parse: a plain lowercase type is returned as it is; anything else takes the general path",
        arguments: [
            ("application/json", "application/json", [:]),
            ("application/vnd.api+json", "application/vnd.api+json", [:]),
            ("text/event-stream", "text/event-stream", [:]),
            // Uppercase, blanks and parameters: lowercased, trimmed, split (the general path).
            ("Application/JSON", "application/json", [:]),
            (" application/json ", "application/json", [:]),
            ("application/json;charset=utf-8", "application/json", ["charset": "utf-8"]),
            ("multipart/form-data; boundary=AbC", "multipart/form-data", ["boundary": "AbC"]),
            ("", "", [:]),
        ] as [(String, String, [String: String])])
    func mediaType(header: String, type: String, parameters: [String: String]) {
        let parsed = MediaType.parse(header)
        #expect(parsed.type == type)
        #expect(parsed.parameters == parameters)
    }

    @Test("Accept: a line that is exactly */* is the range the general parse makes of it")
    func acceptWildcard() {
        let short = AcceptHeader(lines: ["*/*"])
        // The same range through the general parse (blanks and a weight make it skip the short cut).
        let general = AcceptHeader(lines: [" */* ;q=1"])
        #expect(short == general)
        #expect(AcceptHeader(lines: ["*/*", "text/event-stream;q=0"]).quality(of: "text/event-stream") == 0)
        #expect(AcceptHeader(lines: []).quality(of: "application/json") == 1000)
        #expect(!AcceptHeader(lines: []).namesExplicitly("text/event-stream"))
        #expect(!AcceptHeader(lines: ["*/*"]).namesExplicitly("text/event-stream"))
        #expect(AcceptHeader(lines: ["Text/Event-Stream"]).namesExplicitly("TEXT/event-stream"))
    }

    @Test(
        "JSON strings: written in one piece when nothing needs escaping, escaped otherwise",
        arguments: [
            ("", #""""#), ("echo", #""echo""#), ("naïve €", "\"naïve €\""),
            ("a\"b", #""a\"b""#), ("a\\b", #""a\\b""#), ("line\nnext", #""line\nnext""#),
            ("\u{01}", #""\u0001""#), ("\"", #""\"""#),
        ])
    func jsonString(text: String, json: String) {
        var buffer = ByteBuffer(string: "x")  // written after what the buffer already holds
        JSONValueCodec.writeString(text, into: &buffer)
        #expect(String(buffer: buffer) == "x" + json)
    }

    @Test(
        "JSON strings with a prefix and a suffix: the same bytes as three writes, escaped or not",
        arguments: [
            ("", #""""#), ("echo", #""echo""#), ("naïve €", "\"naïve €\""), ("a\"b", #""a\"b""#),
            ("line\nnext", #""line\nnext""#), ("\u{01}", #""\u0001""#),
        ])
    func jsonStringBetween(text: String, json: String) {
        for (prefix, suffix) in [("", ""), (",", ":"), ("{\"namespace\":", ""), ("", ":")]
            as [(StaticString, StaticString)]
        {
            var buffer = ByteBuffer(string: "x")
            JSONValueCodec.writeString(text, after: prefix, then: suffix, into: &buffer)
            #expect(String(buffer: buffer) == "x" + prefix.description + json + suffix.description)
        }
    }

    @Test("PieceWriter: pieces in order after what the buffer holds, up to exactly the bound")
    func pieceWriter() {
        var buffer = ByteBuffer(string: "x")
        let text = "naïve"
        let bound = 1 + 5 + text.utf8.count + 3 + 19
        buffer.writePieces(atMost: bound) { out in
            out.write(byte: UInt8(ascii: "["))
            out.write("HTTP/")
            out.write(text)
            out.write(UnsafeRawBufferPointer(start: nil, count: 0))
            "a\r\n".utf8.withContiguousStorageIfAvailable { out.write(UnsafeRawBufferPointer($0)) }
            out.write(decimal: Int.max)
            #expect(out.count == bound)
        }
        #expect(String(buffer: buffer) == "x[HTTP/naïvea\r\n\(Int.max)")
        buffer.writePieces(atMost: 64) { $0.write(decimal: 0) }
        #expect(String(buffer: buffer).hasSuffix("\(Int.max)0"))
    }

    @Test("a long string with nothing to escape grows the buffer as needed")
    func jsonLongString() {
        let text = String(repeating: "abcdefgh", count: 10_000)
        var buffer = ByteBuffer()
        JSONValueCodec.writeString(text, into: &buffer)
        #expect(buffer.readableBytes == text.utf8.count + 2)
        #expect(String(buffer: buffer) == "\"" + text + "\"")
    }

    @Test("percent-decoding without escapes, on contiguous and on non-contiguous bytes")
    func unescaped() {
        #expect(PercentDecoding.unescaped("plain".utf8, plusAsSpace: false) == "plain")
        #expect(PercentDecoding.unescaped("a+b".utf8, plusAsSpace: false) == "a+b")
        #expect(PercentDecoding.unescaped("a+b".utf8, plusAsSpace: true) == nil)
        #expect(PercentDecoding.unescaped("a%41".utf8, plusAsSpace: false) == nil)
        // A collection with no contiguous storage takes the generic loop.
        let reversed = "cba".utf8.reversed()
        #expect(PercentDecoding.unescaped(reversed, plusAsSpace: false) == "abc")
        #expect(PercentDecoding.unescaped("%a".utf8.reversed(), plusAsSpace: false) == nil)
        #expect(PercentDecoding.decodeStrictly("b+a".utf8.reversed(), plusAsSpace: true) == "a b")
    }
}
