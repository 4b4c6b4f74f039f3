import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("RESTTriggerBody")
struct RESTTriggerBodyTests {
    private func decode(_ text: String) throws -> [TriggerInput] {
        try RESTTriggerBody.decode(json: buffer(text), limits: .defaults)
    }

    @Test("data elements give variables and secrets")
    func dataElements() throws {
        let inputs = try decode(
            #"{"data":[{"variable":{"prompt":"hi","n":2},"secret":{"key":"s3cr3t"}},{"variable":{"prompt":"yo"}}]}"#
        )
        #expect(inputs.count == 2)
        #expect(inputs[0].variables == ["prompt": .string("hi"), "n": .number(2)])
        #expect(inputs[0].secrets == ["key": "s3cr3t"])
        #expect(inputs[1].variables == ["prompt": .string("yo")])
        #expect(inputs[1].secrets.isEmpty)
    }

    @Test("Legacy inputs are accepted; data wins when both are present; unknown keys are ignored")
    func legacyInputs() throws {
        let legacy = try decode(#"{"inputs":[{"a":1},{"a":2}],"extra":true}"#)
        #expect(legacy.map(\.variables) == [["a": .number(1)], ["a": .number(2)]])
        let both = try decode(#"{"inputs":[{"a":1}],"data":[{"variable":{"b":2}}]}"#)
        #expect(both.map(\.variables) == [["b": .number(2)]])
    }

    @Test("Batch size is accepted at the limit and rejected one past it", arguments: [1, 32, 33])
    func batchLimit(count: Int) throws {
        let elements = Array(repeating: #"{"variable":{"x":1}}"#, count: count).joined(separator: ",")
        let body = "{\"data\":[\(elements)]}"
        if count <= 32 {
            #expect(try decode(body).count == count)
        } else {
            let error = gatewayError { _ = try decode(body) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == "data has 33 elements, more than the batch limit of 32")
        }
    }

    @Test(
        "Malformed bodies fail with clear messages",
        arguments: [
            (#"[1]"#, "request body must be a JSON object"),
            (#"{}"#, #"request body has no "data" array (nor a legacy "inputs" array)"#),
            (#"{"data":{}}"#, "data must be an array, found an object"),
            (#"{"data":[]}"#, "data is empty: a trigger needs at least one batch element"),
            (#"{"data":[1]}"#, "data[0] must be an object, found a number"),
            (#"{"data":[{"variable":{}},{"variable":"x"}]}"#, "data[1].variable must be an object, found a string"),
            (#"{"data":[{"secret":{"k":1}}]}"#, "data[0].secret.k must be a string, found a number"),
            (#"{"data":[{"secret":[]}]}"#, "data[0].secret must be an object, found an array"),
            // Secrets are C strings on the grpc runner hop: a NUL is refused, not cut there (review 59, L10).
            (
                #"{"data":[{"secret":{"k":"a\u0000b"}}]}"#,
                "data[0].secret.k holds a NUL byte, which this gateway cannot carry in a secret"
            ),
            (
                #"{"data":[{"variable":{}},{"secret":{"k\u0000":"v"}}]}"#,
                #"data[1].secret.k\u0000 holds a NUL byte, which this gateway cannot carry in a secret"#
            ),
            (#"{"inputs":[[]]}"#, "inputs[0] must be an object, found an array"),
            (
                #"{"data":[{"variable":{"a":}}]}"#,
                "invalid JSON at byte 26: unexpected '}', expected a value (in data[0].variable.a)"
            ),
        ]
    )
    func malformed(text: String, message: String) {
        let error = gatewayError { _ = try decode(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == message)
    }
}
