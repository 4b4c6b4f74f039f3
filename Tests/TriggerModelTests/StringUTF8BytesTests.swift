import Foundation
import Testing
import TriggerModel

@Suite("withUTF8Bytes: a string's UTF-8 lent as it is")
struct StringUTF8BytesTests {
    @Test(
        "small, heap, non-ASCII and empty strings, and substrings from the middle, give exactly their UTF-8 bytes",
        arguments: ["", "abc", "fifteen bytes!!", "/v1beta/namespaces/demo/pipelines/echo/trigger", "héllo → wörld ✓"]
    )
    func bytes(_ text: String) {
        #expect(text.withUTF8Bytes { Array($0) } == Array(text.utf8))
        let inner = text.dropFirst().dropLast()
        #expect(inner.withUTF8Bytes { Array($0) } == Array(inner.utf8))
    }

    @Test("a string bridged from NSString (not native UTF-8 until copied) gives the same bytes")
    func bridged() {
        let text = NSString(string: "bridged ✓ text over fifteen bytes") as String
        #expect(text.withUTF8Bytes { Array($0) } == Array("bridged ✓ text over fifteen bytes".utf8))
    }

    @Test("the body's error reaches the caller")
    func bodyErrors() {
        struct Stop: Error {}
        #expect(throws: Stop.self) { try "text".withUTF8Bytes { _ in throw Stop() } }
    }
}
