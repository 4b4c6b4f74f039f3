import Testing
import WireCodecs

/// The fields every gRPC server of the package answers with (gRPC PROTOCOL-HTTP2.md "Responses").
@Suite("gRPC response fields: headers, status trailers, Trailers-Only")
struct GRPCResponseFieldsTests {
    static func names(_ fields: [(String, String)]) -> [String] { fields.map(\.0) }

    @Test("Response-Headers name the content type, and the encoding only when one is used")
    func headers() {
        #expect(Self.names(GRPCResponseFields.headers()) == [":status", "content-type"])
        let gzip = GRPCResponseFields.headers(encoding: .gzip)
        #expect(gzip.first { $0.0 == "grpc-encoding" }?.1 == "gzip")
        #expect(gzip.contains { $0.0 == "grpc-accept-encoding" })
    }

    @Test("OK has no grpc-message; a message is percent-encoded")
    func status() {
        #expect(GRPCResponseFields.status(code: 0, message: nil).map(\.1) == ["0"])
        #expect(GRPCResponseFields.status(code: 0, message: "").count == 1)
        let failed = GRPCResponseFields.status(code: 5, message: "not found: é%")
        #expect(failed.map(\.0) == ["grpc-status", "grpc-message"])
        #expect(failed[1].1 == "not found: %C3%A9%25")
    }

    @Test("a message at the cap is sent whole; one byte past it is cut and marked", arguments: [0, 1])
    func messageCap(past: Int) {
        let message = String(repeating: "x", count: GRPCResponseFields.maxStatusMessageBytes + past)
        let sent = GRPCResponseFields.status(code: 13, message: message)[1].1
        if past == 0 {
            #expect(sent == message)
        } else {
            #expect(sent.hasSuffix("%E2%80%A6"))  // "…"
            #expect(sent.utf8.count == GRPCResponseFields.maxStatusMessageBytes / 4 + 9)
        }
    }

    @Test("Trailers-Only: response headers, extra fields, then the status, in one block")
    func trailersOnly() {
        let fields = GRPCResponseFields.trailersOnly(
            code: 12, message: "no", extra: [("grpc-accept-encoding", "identity,gzip")])
        #expect(
            Self.names(fields) == [":status", "content-type", "grpc-accept-encoding", "grpc-status", "grpc-message"])
    }
}
