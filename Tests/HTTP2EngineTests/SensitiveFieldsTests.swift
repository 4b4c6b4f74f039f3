import HTTP2Engine
import NIOCore
import Testing

/// Sensitive fields (RFC 7541 §6.2.3 "literal never indexed", libnghttp2's `NGHTTP2_NV_FLAG_NO_INDEX`): a session
/// reports how each received field came (``HTTP2Headers/Field/neverIndexed``) and sends a field so marked never
/// indexed, which is what lets the gateway forward a client's sensitive value as the client sent it (§7.1.3: an
/// intermediary must). Over a client and a server session in memory: what the server's decoder reports is how the
/// client's encoder wrote each field.
@Suite("HTTP/2 sensitive (never-indexed) fields")
struct SensitiveFieldsTests {
    /// The server's view of request `stream`'s fields named `name`: whether each came never indexed.
    private func received(_ pair: ConnectionPair, stream: Int32, name: String) -> [Bool] {
        guard case .headers(stream, let headers, _) = pair.serverDelegate.events(for: stream).first else {
            Issue.record("expected request \(stream)'s headers, got \(pair.serverDelegate.events(for: stream))")
            return []
        }
        return headers.fields.filter { $0.name == name }.map(\.neverIndexed)
    }

    private func send(_ pair: ConnectionPair, _ fields: [(String, String, neverIndexed: Bool)]) throws -> Int32 {
        var headers = ConnectionPair.requestHeaders()
        for (name, value, neverIndexed) in fields {
            headers.add(lowercasedName: name, value: value, neverIndexed: neverIndexed)
        }
        let stream = try pair.clientSession.startRequest(headers: headers, endStream: true)
        try pair.interact()
        return stream.rawValue
    }

    @Test("a marked field goes never indexed on every message, an unmarked one as the encoder chooses")
    func markedFieldNeverIndexed() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        for _ in 0..<3 {
            let stream = try send(
                pair, [("x-api-secret", "s3cr3t", neverIndexed: true), ("x-plain", "v", neverIndexed: false)])
            // Indexed by the encoder on the first message and then sent as an index, the secret would read false.
            #expect(received(pair, stream: stream, name: "x-api-secret") == [true])
            #expect(received(pair, stream: stream, name: "x-plain") == [false])
        }
    }

    @Test(
        "a marked per-message field takes no priming turn: the next unmarked one indexes, the one after goes never indexed"
    )
    func markedFieldTakesNoPrimingTurn() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        // `request-id` is one of HPACKNamePriming's names: the first message carrying it would index it.
        let marked = try send(pair, [("request-id", "client-1", neverIndexed: true)])
        #expect(received(pair, stream: marked, name: "request-id") == [true])
        // The priming turn is still this message's: indexed (name and value), so not never indexed.
        let first = try send(pair, [("request-id", "gw-2", neverIndexed: false)])
        #expect(received(pair, stream: first, name: "request-id") == [false])
        let second = try send(pair, [("request-id", "gw-3", neverIndexed: false)])
        #expect(received(pair, stream: second, name: "request-id") == [true])
    }

    @Test("the mark is how a field is encoded, not what it is: equality and hashing ignore it")
    func equalityIgnoresMark() {
        let marked = HTTP2Headers.Field(name: "tracestate", value: "a=1", neverIndexed: true)
        let plain = HTTP2Headers.Field(name: "tracestate", value: "a=1")
        #expect(marked == plain)
        #expect(marked.hashValue == plain.hashValue)
        var headers = HTTP2Headers()
        headers.add(lowercasedName: "tracestate", value: "a=1", neverIndexed: true)
        headers.add(lowercasedName: "tracestate", value: "b=2")
        #expect(headers == ["tracestate": "a=1", "tracestate": "b=2"])
        #expect(headers.fields.map(\.neverIndexed) == [true, false])
    }
}
