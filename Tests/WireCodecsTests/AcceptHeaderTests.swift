import Testing
import WireCodecs

@Suite("AcceptHeader (RFC 9110 §12.5.1)")
struct AcceptHeaderTests {
    static let sse = "text/event-stream"
    static let json = "application/json"

    @Test(
        "weights of SSE and JSON under various Accept headers",
        arguments: [
            // No header, empty, or nothing valid: anything goes.
            ([], 1000, 1000),
            ([""], 1000, 1000),
            (["garbage"], 1000, 1000),
            (["text/event-stream"], 1000, 0),
            (["Text/Event-Stream"], 1000, 0),
            (["TEXT/*"], 1000, 0),
            (["*/*"], 1000, 1000),
            (["text/event-stream;q=0, application/json"], 0, 1000),
            (["text/event-stream; q=0.5, application/json;q=0.4"], 500, 400),
            (["text/event-stream;Q=0.001"], 1, 0),
            // The more specific range wins whatever the order.
            (["*/*;q=0.1, text/event-stream;q=0"], 0, 100),
            (["text/event-stream;q=0, text/*"], 0, 0),
            (["text/*;q=0.3, */*;q=0.2"], 300, 200),
            // Several field lines are one list.
            (["application/json;q=0.2", "text/event-stream"], 1000, 200),
            // Parameters other than q do not stop a match; the more specific range wins.
            (["application/json;charset=utf-8;q=0.7, application/json;q=0.1"], 0, 700),
            // Malformed members are skipped, the others count.
            (["text/event-stream;q=2, application/json"], 0, 1000),
            (["*/json, application/json;q=0.5"], 0, 500),
        ] as [([String], Int, Int)])
    func weights(lines: [String], sse: Int, json: Int) {
        let accept = AcceptHeader(lines: lines)
        #expect(accept.quality(of: Self.sse) == sse)
        #expect(accept.quality(of: Self.json) == json)
    }

    @Test(
        "qvalue: 0 to 1 with at most three decimals; 1.000 at the edge, 1.001 and four decimals past it",
        arguments: [
            ("0", 0), ("0.", 0), ("0.5", 500), ("0.999", 999), ("1", 1000), ("1.000", 1000),
            ("1.001", nil), ("0.5555", nil), ("2", nil), ("-0", nil), ("", nil), (".5", nil),
        ] as [(String, Int?)])
    func qvalues(text: String, value: Int?) {
        let accept = AcceptHeader(lines: ["text/plain;q=\(text)"])
        if let value {
            #expect(accept.ranges?.first?.quality == value)
        } else {
            #expect(accept.ranges == nil)
        }
    }

    @Test(
        "a bare lowercase media type is read from its bytes, as the general parse reads it; anything else is left to it",
        arguments: [
            ("application/json", true), ("text/event-stream", true), ("*/*", true), ("text/*", true),
            ("application/vnd.api+json", true), ("Application/json", false), ("application/json ", false),
            (" application/json", false), ("application/json;q=0.5", false), ("text/event-stream, */*", false),
            ("*/json", false), ("application/", false), ("/json", false), ("a/b/c", false), ("", false),
            ("application", false), ("app\u{e9}/json", false),
        ]
    )
    func bareMediaType(line: String, taken: Bool) {
        let bare = AcceptHeader.parseBareMediaType(line)
        #expect((bare != nil) == taken)
        if let bare { #expect(bare == AcceptHeader.parseMember(Substring(line))) }
    }

    @Test("only a range naming the type counts as explicit")
    func explicit() {
        #expect(AcceptHeader(lines: ["text/event-stream"]).namesExplicitly(Self.sse))
        #expect(!AcceptHeader(lines: ["text/*"]).namesExplicitly(Self.sse))
        #expect(!AcceptHeader(lines: []).namesExplicitly(Self.sse))
    }
}

@Suite("GRPCContentType")
struct GRPCContentTypeTests {
    @Test(
        "application/grpc and application/grpc+codec are gRPC; look-alikes are not",
        arguments: [
            ("application/grpc", GRPCContentType.grpc(codec: "proto")),
            ("Application/GRPC", .grpc(codec: "proto")),
            ("application/grpc; charset=utf-8", .grpc(codec: "proto")),
            ("application/grpc+proto", .grpc(codec: "proto")),
            ("application/grpc+json", .grpc(codec: "json")),
            ("application/grpc+", .lookalike("application/grpc+")),
            ("application/grpc-web+proto", .lookalike("application/grpc-web+proto")),
            ("application/grpc-web", .lookalike("application/grpc-web")),
            ("application/grpcx", .lookalike("application/grpcx")),
            ("application/json", .other),
            // Told apart by their first bytes (no parse): blanks first, any case, too short, empty.
            (" \tAPPLICATION/GRPC+JSON ; x=y", .grpc(codec: "json")),
            ("  application/grpc-web", .lookalike("application/grpc-web")),
            ("application/grp", .other),
            ("application/grpd", .other),
            ("Application/JSON; charset=utf-8", .other),
            ("", .other),
        ] as [(String, GRPCContentType)])
    func classify(header: String, expected: GRPCContentType) {
        #expect(GRPCContentType(header: header) == expected)
    }
}
