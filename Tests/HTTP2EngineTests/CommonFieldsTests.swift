import HTTP2Engine
import NIOCore
import Testing

/// The engine hands out string literals for common field names and values instead of decoding them (issue 11):
/// what the owner sees must be byte for byte what was sent, for the common fields, for near-misses of the same
/// length, and for the rest.
@Suite("HTTP/2 common field names and values")
struct CommonFieldsTests {
    @Test(
        "a received block is exactly what was sent",
        arguments: [
            // Common names and values (gRPC request metadata, REST-ish fields).
            [
                ("te", "trailers"), ("user-agent", "grpc-python/1.66"), ("grpc-timeout", "1S"),
                ("grpc-accept-encoding", "identity,deflate,gzip"), ("grpc-encoding", "identity"),
                ("accept", "*/*"), ("accept-encoding", "gzip"), ("authorization", "Bearer t"), ("x-zero", "0"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("request-id", "r1"),
            ],
            // Same lengths as common ones, one byte off (first, middle, last), and a different case of a value.
            [
                ("tf", "trailerz"), ("user-agenu", "application/grpd"), ("grpc-statuz", "POSt"),
                ("content-typf", "Application/grpc"), ("accept-encodinh", "20O"), ("xrpc-accept-encoding", "gzi"),
                ("date", "https"), ("server", "applicatioN/json"), ("accepu", "0"), ("x", "application/grpc+protp"),
            ],
            // Values around the common lengths: empty, one byte, and longer than any literal.
            [("x-empty", ""), ("x-one", "1"), ("x-long", String(repeating: "application/grpc", count: 4))],
        ])
    func receivedAsSent(extra: [(String, String)]) throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let headers = ConnectionPair.requestHeaders(extra: extra)
        let stream = try pair.clientSession.startRequest(headers: headers, endStream: false)
        pair.clientSession.sendData(stream: stream, ByteBuffer(string: "x"), endStream: true)
        try pair.interact()
        guard case .headers(1, let received, endStream: false) = pair.serverDelegate.events(for: 1).first else {
            Issue.record("expected the request's headers, got \(pair.serverDelegate.events(for: 1))")
            return
        }
        #expect(received == headers)
        #expect(received.fields.map { Array($0.value.utf8) } == headers.fields.map { Array($0.value.utf8) })
    }
}
