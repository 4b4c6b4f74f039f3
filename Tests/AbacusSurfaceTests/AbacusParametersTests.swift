import AbacusSurface
import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("Abacus call parameters")
struct AbacusParametersTests {
    private func parameters(_ body: String?, query: [String: String] = [:]) throws(AbacusError) -> AbacusParameters {
        try AbacusParameters(body: body.map { ByteBuffer(string: $0) }, query: { query[$0] }, limits: .defaults)
    }

    @Test("the body wins over the query; query values are text, converted where a number is asked for")
    func sources() throws {
        let both = try parameters(#"{"pipelineId":"a"}"#, query: ["pipelineId": "b", "limit": "5"])
        #expect(try both.requiredString("pipelineId") == "a")
        #expect(try both.integer("limit", in: 1...1000) == 5)
        let queryOnly = try parameters(nil, query: ["pipelineVariableMappings": #"[{"name":"x","value":1}]"#])
        #expect(
            try queryOnly.value("pipelineVariableMappings")
                == .list([.object(["name": .string("x"), "value": .number(1)])])
        )
        #expect(try parameters("").string("pipelineId") == nil)
    }

    @Test("a missing or null required string is MissingParameterError; a non-string InvalidParameterError")
    func requiredString() throws {
        for body in [#"{}"#, #"{"pipelineId":null}"#, #"{"pipelineId":""}"#] {
            #expect(throws: AbacusError.missingParameter("pipelineId is required")) {
                try parameters(body).requiredString("pipelineId")
            }
        }
        let error = #expect(throws: AbacusError.self) {
            try parameters(#"{"pipelineId":3}"#).requiredString("pipelineId")
        }
        #expect(error?.type == .invalidParameter)
    }

    @Test(
        "an integer parameter: its range's edges pass; one past either edge, a fraction, a non-number get one message",
        arguments: [
            ("1", 1 as Int?, "1"), ("1000", 1000, "1000"), (#""7""#, 7, "7"), ("null", nil, ""), ("2.0", 2, "2"),
            (#""2.0""#, 2, "2"), ("1e3", 1000, "1000"), (#""1000.5""#, nil, #""1000.5""#), (#""2x""#, nil, #""2x""#),
            ("0", nil, "0"), ("1001", nil, "1001"), ("-1", nil, "-1"), ("1.5", nil, "1.5"),
            ("18446744073709551616", nil, "18446744073709551616"), (#""x""#, nil, #""x""#),
            ("true", nil, "the boolean true"),
        ]
    )
    func integer(json: String, expected: Int?, shown: String) throws {
        let body = #"{"limit":"# + json + "}"
        if expected != nil || json == "null" {
            #expect(try parameters(body).integer("limit", in: 1...1000) == expected)
        } else {
            #expect(throws: AbacusError.invalidParameter("limit must be an integer from 1 to 1000 (it is \(shown))")) {
                try parameters(body).integer("limit", in: 1...1000)
            }
        }
    }

    @Test(
        "an integer parameter in the query string: a JSON number is the number (Python writes a float as 2.0), anything else gets the same message"
    )
    func integerInQuery() throws {
        #expect(try parameters(nil, query: ["limit": "1000"]).integer("limit", in: 1...1000) == 1000)
        #expect(try parameters(nil, query: ["limit": "2.0"]).integer("limit", in: 1...1000) == 2)
        #expect(try parameters(nil, query: ["limit": "1e3"]).integer("limit", in: 1...1000) == 1000)
        #expect(try parameters(nil).integer("limit", in: 1...1000) == nil)
        for text in ["0", "1001", "-1", "1.5", "ten", "1000.0000001", "NaN", "0x10", "2,0", ""] {
            #expect(throws: AbacusError.invalidParameter("limit must be an integer from 1 to 1000 (it is \(text))")) {
                try parameters(nil, query: ["limit": text]).integer("limit", in: 1...1000)
            }
        }
    }

    @Test("a body that is not a JSON object is InvalidParameterError", arguments: ["[1]", "{", "\"s\"", "{\"a\":}"])
    func notAnObject(body: String) {
        let error = #expect(throws: AbacusError.self) { try parameters(body) }
        #expect(error?.type == .invalidParameter)
    }
}
