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
        #expect(try both.count("limit") == 5)
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
        "a count is an integer from 0 to 2^53: the edges pass, one past them does not",
        arguments: [
            ("0", 0 as Int?), ("9007199254740992", 9_007_199_254_740_992), ("-1", nil), ("9007199254740994", nil),
            ("1.5", nil), (#""7""#, 7), (#""x""#, nil), ("true", nil),
        ]
    )
    func count(json: String, expected: Int?) throws {
        let body = #"{"limit":"# + json + "}"
        if let expected {
            #expect(try parameters(body).count("limit") == expected)
        } else {
            let error = #expect(throws: AbacusError.self) { try parameters(body).count("limit") }
            #expect(error?.type == .invalidParameter)
        }
    }

    @Test("a body that is not a JSON object is InvalidParameterError", arguments: ["[1]", "{", "\"s\"", "{\"a\":}"])
    func notAnObject(body: String) {
        let error = #expect(throws: AbacusError.self) { try parameters(body) }
        #expect(error?.type == .invalidParameter)
    }
}
