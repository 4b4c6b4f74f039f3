import HTTP2Engine
import NIOCore
import Testing

/// RFC 9113 §8.2.1 calls a field value with leading or trailing whitespace malformed; RFC 9110 §5.5 lets a
/// recipient strip it instead. The server role does the latter (the Instill SDK sends `authorization:
/// Bearer ` with its default empty token, and gRPC servers accept it).
@Suite("HTTP/2 field values with surrounding whitespace")
struct HeaderWhitespaceTests {
    @Test(
        "the server takes the stream and sees the value trimmed",
        arguments: [
            ("Bearer ", "Bearer"), (" x", "x"), ("\tBearer t0k \t", "Bearer t0k"), ("a b", "a b"), ("", ""),
        ])
    func trimmed(value: String, seen: String) throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let headers = ConnectionPair.requestHeaders(extra: [("authorization", value)])
        let stream = try pair.clientSession.startRequest(headers: headers, endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "x"), endStream: true)
        try pair.interact()
        guard case .headers(1, let received, endStream: false) = pair.serverDelegate.events(for: 1).first else {
            Issue.record("expected the request's headers, got \(pair.serverDelegate.events(for: 1))")
            return
        }
        #expect(received.first(name: "authorization") == seen)
        #expect(pair.serverDelegate.events(for: 1).last == .closed(1, .noError), "no RST_STREAM")
    }
}
