@testable import GatewayServer
import Testing

/// Where the streaming relay (`HTTP1BodyRelay`) finds a body's large data URI, and what it expects the body to
/// end with.
@Suite("RelayPrefixScanner")
struct RelayPrefixScannerTests {
    static func scan(_ text: String) -> RelayPrefixScanner.Result {
        RelayPrefixScanner.scan(Array(text.utf8))
    }

    static func found(_ prefix: String, closer: String) -> RelayPrefixScanner.Result {
        .found(start: prefix.utf8.count, closer: Array(closer.utf8))
    }

    @Test("the payload's start and the closing quote and brackets, whatever the spacing and the values before it")
    func found() {
        let compact = #"{"data":[{"variable":{"file":"data:application/octet-stream;base64,"#
        #expect(Self.scan(compact + "AAAA") == Self.found(compact, closer: #""}}]}"#))
        let spaced = #"{"data": [{"variable": {"n": 7, "l": [1, {"x": "}]"}], "file": "data:;base64,"#
        #expect(Self.scan(spaced + "AAAA") == Self.found(spaced, closer: #""}}]}"#))
        let escaped = #"{"a\"{[":"\"[","data":[{"variable":{"f":"data:image/png;name=a.png;base64,"#
        #expect(Self.scan(escaped + "QUJD") == Self.found(escaped, closer: #""}}]}"#))
    }

    @Test("a small data URI that ends within the bytes is skipped for the one after it")
    func skipsSmallDataURI() {
        let prefix = #"{"data":[{"variable":{"s":"data:;base64,AAEC","file":"data:;base64,"#
        #expect(Self.scan(prefix + "AAAA") == Self.found(prefix, closer: #""}}]}"#))
    }

    @Test("undecided within the bytes: more are needed; brackets that do not nest: not of the shape")
    func undecided() {
        #expect(Self.scan(#"{"data":[{"variable":{"file":"da"#) == .needMore)
        #expect(Self.scan(#"{"data":[{"variable":{"file":"data:application/oct"#) == .needMore)
        #expect(Self.scan(#"{"data":[{"variable":{"text":"plain strings are skipped"#) == .needMore)
        #expect(Self.scan(#"{"data":[{"variable":{"file":"data:text/plain,no base64 here"}}]}"#) == .needMore)
        #expect(Self.scan(#"]{"file":"data:;base64,AAAA"#) == .none)
        #expect(Self.scan("") == .needMore)
    }
}
