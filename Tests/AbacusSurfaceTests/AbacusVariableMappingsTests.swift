import AbacusSurface
import NIOCore
import Testing
import TriggerModel
import WireCodecs

/// Decodes `pipelineVariableMappings` given as JSON text the way `runPipeline` does: the request body through
/// `AbacusParameters` (the gateway's JSON parser, so data URIs are already binaries, as they are on the wire),
/// then the mappings.
private func decode(_ json: String) throws(AbacusError) -> ValueObject {
    let body = ByteBuffer(string: #"{"pipelineVariableMappings":"# + json + "}")
    let parameters = try AbacusParameters(body: body, query: { _ in nil }, limits: .defaults)
    return try AbacusVariableMappings.decode(try parameters.value("pipelineVariableMappings"), limits: .defaults)
}

/// The `AbacusError` decoding `json` throws; records an issue when it throws none.
private func failure(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) -> AbacusError? {
    do {
        let decoded = try decode(json)
        Issue.record("expected an AbacusError, decoded \(decoded)", sourceLocation: sourceLocation)
    } catch {
        return error
    }
    return nil
}

@Suite("Abacus pipelineVariableMappings decoder")
struct AbacusVariableMappingsTests {
    @Test("camelCase (PythonFunctionArgument) and snake_case (plain dict) keys decode alike")
    func bothSpellings() throws {
        let camel = try decode(#"[{"variableType":"INTEGER","name":"n","isRequired":true,"value":3}]"#)
        let snake = try decode(#"[{"variable_type":"INTEGER","name":"n","is_required":true,"value":3}]"#)
        #expect(camel == ["n": .number(3)])
        #expect(snake == camel)
        let itemTypes = try decode(#"[{"name":"l","variable_type":"LIST","item_type":"INTEGER","value":["1",2]}]"#)
        #expect(itemTypes == ["l": .list([.number(1), .number(2)])])
        let pipelineVariable = try decode(#"[{"pipeline_variable":"p","variableType":"STRING","value":"x"}]"#)
        #expect(pipelineVariable == ["p": .string("x")])
    }

    @Test(
        "each variableType types its value",
        arguments: [
            (#"{"variableType":"INTEGER","value":42}"#, Value.number(42)),
            (#"{"variableType":"INTEGER","value":"-7"}"#, .number(-7)),
            (#"{"variableType":"INTEGER","value":9007199254740992}"#, .number(9_007_199_254_740_992)),
            // Past 2^53, exactly (abacusai sends a Python int's digits): as a number or as a string.
            (#"{"variableType":"INTEGER","value":9007199254740993}"#, .integer(Int64(1) << 53 + 1)),
            (#"{"variableType":"INTEGER","value":"-9007199254740993"}"#, .integer(-(Int64(1) << 53 + 1))),
            (
                #"{"variableType":"INTEGER","value":18446744073709551616}"#,
                .largeInteger(LargeInteger("18446744073709551616")!)
            ),
            (#"{"variableType":"INTEGER","value":"18446744073709551615"}"#, .integer(UInt64.max)),
            (#"{"variableType":"FLOAT","value":2.5}"#, .number(2.5)),
            (#"{"variableType":"FLOAT","value":"1e3"}"#, .number(1000)),
            (#"{"variableType":"BOOLEAN","value":false}"#, .bool(false)),
            (#"{"variableType":"BOOLEAN","value":"True"}"#, .bool(true)),
            (#"{"variableType":"STRING","value":"hello"}"#, .string("hello")),
            (#"{"variableType":"string","value":"lower-case type name"}"#, .string("lower-case type name")),
            (#"{"variableType":"JSON","value":{"a":[1,null]}}"#, .object(["a": .list([.number(1), .null])])),
            (#"{"variableType":"JSON","value":"{\"a\":1}"}"#, .object(["a": .number(1)])),
            (#"{"variableType":"JSON","value":"plain text"}"#, .string("plain text")),
            (#"{"variableType":"JSON","value":7}"#, .number(7)),
            (#"{"variableType":"LIST","value":[1,"a",true]}"#, .list([.number(1), .string("a"), .bool(true)])),
            (#"{"variableType":"LIST","value":"[1,2]"}"#, .list([.number(1), .number(2)])),
            (#"{"variableType":"DATASET_ID","value":"ds-1"}"#, .string("ds-1")),
            (#"{"variableType":"FEATURE_GROUP","value":"fg"}"#, .string("fg")),
            (#"{"value":{"untyped":true}}"#, .object(["untyped": .bool(true)])),
        ]
    )
    func typedValues(mapping: String, expected: Value) throws {
        let object = String(mapping.dropFirst())
        let decoded = try decode(#"[{"name":"v","# + object + "]")
        #expect(decoded["v"] == expected)
    }

    /// The SDK reviewer of session 54: a FLOAT `2.0` was carried as the number 2, written `2`, and a version's
    /// mappings showed it as INTEGER.
    @Test(
        "FLOAT keeps the float form whatever the value was written as; INTEGER makes it plain; the rendered type follows",
        arguments: [
            (#"{"variableType":"FLOAT","value":2.0}"#, "2.0", "FLOAT"),
            (#"{"variableType":"FLOAT","value":2}"#, "2.0", "FLOAT"),
            (#"{"variableType":"FLOAT","value":"2"}"#, "2.0", "FLOAT"),
            (#"{"variableType":"FLOAT","value":9007199254740993}"#, "9007199254740992.0", "FLOAT"),
            (#"{"variableType":"FLOAT","value":2.5}"#, "2.5", "FLOAT"),
            (#"{"variableType":"INTEGER","value":2.0}"#, "2", "INTEGER"),
            (#"{"value":2.0}"#, "2.0", "FLOAT"),  // untyped: as written
            (#"{"value":2}"#, "2", "INTEGER"),
        ]
    )
    func numberForms(mapping: String, written: String, type: String) throws {
        let decoded = try decode(#"[{"name":"v","# + String(mapping.dropFirst()) + "]")
        let value = try #require(decoded["v"])
        #expect(String(buffer: JSONValueCodec.encode(value)) == written)
        let rendered = String(buffer: JSONValueCodec.encode(AbacusVariableMappings.render(decoded)))
        #expect(rendered == #"[{"name":"v","variableType":"\#(type)","value":\#(written)}]"#)
    }

    @Test("ATTACHMENT: a data URI becomes a binary with its content type, file name and bytes")
    func attachment() throws {
        let decoded = try decode(
            #"[{"name":"f","variableType":"ATTACHMENT","value":"data:text/plain;filename=a.txt;base64,aGVsbG8="}]"#
        )
        let blob = try #require(decoded["f"]?.blobValue)
        #expect(blob.contentType == "text/plain")
        #expect(blob.fileName == "a.txt")
        #expect(String(buffer: blob.bytes) == "hello")
        // Given as a Value string (not through the body parser), DataURI decodes it the same way.
        let direct = try AbacusVariableMappings.decode(
            .list([
                .object([
                    "name": .string("f"), "variableType": .string("ATTACHMENT"), "value": .string("data:;base64,AAE="),
                ])
            ]),
            limits: .defaults
        )
        #expect(direct["f"]?.blobValue?.bytes == ByteBuffer(bytes: [0, 1]))
    }

    @Test("STRING keeps a data URI as the text the caller sent, byte for byte")
    func stringKeepsDataURI() throws {
        let uri = "data:image/png;base64,iVBORw0KGgo="
        let decoded = try decode(#"[{"name":"s","variableType":"STRING","value":""# + uri + #""}]"#)
        #expect(decoded["s"] == .string(uri))
    }

    @Test(
        "a value of the wrong type is an InvalidParameterError naming the mapping",
        arguments: [
            #"{"name":"v","variableType":"INTEGER","value":1.5}"#,
            #"{"name":"v","variableType":"INTEGER","value":"12x"}"#,
            #"{"name":"v","variableType":"INTEGER","value":true}"#,
            #"{"name":"v","variableType":"INTEGER","value":9.007199254740994e15}"#,
            #"{"name":"v","variableType":"INTEGER","value":1e300}"#,
            #"{"name":"v","variableType":"INTEGER","value":"1e300"}"#,
            #"{"name":"v","variableType":"FLOAT","value":"abc"}"#,
            #"{"name":"v","variableType":"FLOAT","value":"0x1p3"}"#,  // hex: Swift's parser reads 8, Python's refuses
            #"{"name":"v","variableType":"FLOAT","value":[1]}"#,
            #"{"name":"v","variableType":"BOOLEAN","value":1}"#,
            #"{"name":"v","variableType":"BOOLEAN","value":"yes"}"#,
            #"{"name":"v","variableType":"STRING","value":5}"#,
            #"{"name":"v","variableType":"LIST","value":{"a":1}}"#,
            #"{"name":"v","variableType":"LIST","value":"not a list"}"#,
            #"{"name":"v","variableType":"LIST","itemType":"INTEGER","value":[1,"x"]}"#,
            #"{"name":"v","variableType":"ATTACHMENT","value":"hello"}"#,
            #"{"name":"v","variableType":"ATTACHMENT","value":12}"#,
            #"{"name":"v","variableType":"MODEL_ID","value":""}"#,
            #"{"name":"v","variableType":"MODEL_ID","value":3}"#,
            #"{"name":"v","variableType":"COLOUR","value":"red"}"#,
            #"{"name":"v","variableType":7,"value":"red"}"#,
            #"{"name":"v","isRequired":"yes","value":1}"#,
            #"{"name":"","value":1}"#,
            #"{"name":5,"value":1}"#,
            #"{"name":"v","variableType":"STRING","variable_type":"INTEGER","value":"1"}"#,
        ]
    )
    func invalidValues(mapping: String) throws {
        let error = try #require(failure("[" + mapping + "]"))
        #expect(error.type == .invalidParameter, "\(error)")
        #expect(error.httpStatus == 400)
        #expect(error.message.contains("pipelineVariableMappings[0]"), "\(error.message)")
        // The field to fix is named: a LIST's item is wrong for its `itemType` (SDK review 56, L4).
        let field = mapping.contains("itemType") ? "for itemType INTEGER" : "for variableType"
        #expect(!mapping.contains("LIST") || error.message.contains(field), "\(error.message)")
    }

    @Test("a data URI whose payload is not base64 is an InvalidParameterError, not a string")
    func badBase64() throws {
        let error = try #require(
            failure(#"[{"name":"f","variableType":"ATTACHMENT","value":"data:text/plain;base64,@@@"}]"#)
        )
        #expect(error.type == .invalidParameter)
        #expect(error.message.contains("base64"), "\(error.message)")
        // The same text reaching the decoder as a string (not through the body parser) fails the same way.
        let direct = #expect(throws: AbacusError.self) {
            try AbacusVariableMappings.decode(
                .list([
                    .object([
                        "name": .string("f"), "variableType": .string("ATTACHMENT"),
                        "value": .string("data:;base64,@@"),
                    ])
                ]),
                limits: .defaults
            )
        }
        #expect(direct?.message.contains("pipelineVariableMappings[0].value") == true, "\(String(describing: direct))")
    }

    @Test("a data URI with a raw space or non-ASCII filename: the error says to percent-encode it (review 8)")
    func rawFileName() throws {
        for name in ["pic x.png", "pic 🚀.png"] {
            let error = try #require(
                failure(
                    #"[{"name":"f","variableType":"ATTACHMENT","value":"data:image/png;filename=\#(name);base64,iVBORw0KGgo="}]"#
                ))
            #expect(error.type == .invalidParameter)
            #expect(error.message.contains("percent-encode"), "\(error.message)")
            #expect(error.message.contains("filename=\(name)"), "\(error.message)")
        }
        // Percent-encoded, the same name is a binary with its name decoded.
        let decoded = try decode(
            #"[{"name":"f","variableType":"ATTACHMENT","value":"data:image/png;filename=pic%20%F0%9F%9A%80.png;base64,iVBORw0KGgo="}]"#
        )
        #expect(try #require(decoded["f"]?.blobValue).fileName == "pic 🚀.png")
    }

    @Test("the list and each item must have the right shape; a name may be given once")
    func shapes() throws {
        #expect(failure(#"{"name":"v"}"#)?.type == .invalidParameter)
        #expect(failure(#"["v"]"#)?.message.contains("pipelineVariableMappings[0] must be an object") == true)
        let duplicate = failure(#"[{"name":"v","value":1},{"name":"v","value":2}]"#)
        #expect(duplicate?.type == .invalidParameter)
        #expect(duplicate?.message.contains("pipelineVariableMappings[1]") == true)
    }

    @Test("a missing name, or a required variable without a value, is a MissingParameterError")
    func missing() throws {
        #expect(failure(#"[{"variableType":"STRING","value":"x"}]"#)?.type == .missingParameter)
        #expect(failure(#"[{"name":"v","variableType":"STRING"}]"#)?.type == .missingParameter)
        #expect(
            failure(#"[{"name":"v","variableType":"STRING","is_required":true,"value":null}]"#)?.type
                == .missingParameter
        )
        // Not required and no value: the variable is left out.
        #expect(try decode(#"[{"name":"v","isRequired":false},{"name":"w","value":1}]"#) == ["w": .number(1)])
    }

    @Test("no mappings (absent, null, empty list) is a run with no variables, in the order given otherwise")
    func none() throws {
        #expect(try AbacusVariableMappings.decode(nil, limits: .defaults).isEmpty)
        #expect(try decode("null").isEmpty)
        #expect(try decode("[]").isEmpty)
        #expect(try decode(#"[{"name":"b","value":1},{"name":"a","value":2}]"#).keys == ["b", "a"])
    }

    @Test("rendering names each variable with its inferred type; a binary renders as a data URI")
    func rendering() throws {
        let blob = Blob(contentType: "text/plain", fileName: "hi.txt", bytes: ByteBuffer(string: "hi"))
        let variables: ValueObject = [
            "i": .number(3), "f": .number(0.5), "b": .bool(true), "s": .string("x"), "l": .list([]),
            "o": .object([:]), "n": .null, "a": .blob(blob),
        ]
        let rendered = AbacusVariableMappings.render(variables)
        let json = String(buffer: JSONValueCodec.encode(rendered))
        #expect(json.hasPrefix(#"[{"name":"i","variableType":"INTEGER","value":3},{"name":"f","variableType":"FLOAT""#))
        #expect(
            json.contains(
                #"{"name":"a","variableType":"ATTACHMENT","value":"data:text/plain;filename=hi.txt;base64,aGk="}"#
            ),
            "\(json)"
        )
        guard case .list(let items) = rendered else {
            Issue.record("not a list: \(rendered)")
            return
        }
        let types = items.compactMap { $0.objectValue?["variableType"]?.stringValue }
        #expect(types == ["INTEGER", "FLOAT", "BOOLEAN", "STRING", "LIST", "JSON", "JSON", "ATTACHMENT"])
        // What renders decodes back to the same variables (a version's mappings can be replayed), but for the
        // null, which a required mapping may not carry.
        var replayable = variables
        replayable["n"] = nil
        let text = JSONValueCodec.encode(AbacusVariableMappings.render(replayable))
        let replayed = try AbacusVariableMappings.decode(try JSONValueCodec.decode(text), limits: .defaults)
        #expect(replayed == replayable)
    }
}
