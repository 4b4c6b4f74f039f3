import CraftSurface
import GatewayConfig
import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("Craft AI mappings and the I/O cap")
struct CraftMappingsTests {
    @Test("no mappings: inputs and outputs pass under their own names")
    func identity() throws {
        let mappings = CraftMappings()
        let inputs: ValueObject = ["a": .number(1), "b": .string("x")]
        #expect(try mappings.pipelineInputs(from: inputs, environment: { _ in nil }) == inputs)
        let outputs = mappings.mappedOutputs(["o": .bool(true)])
        #expect(outputs.map(\.endpointOutputName) == ["o"])
        #expect(outputs.map(\.mappingType) == ["endpoint"])
    }

    @Test("input sources: rename, default, required, constant, environment, null; others pass through")
    func inputSources() throws {
        let mappings = CraftMappings(inputs: [
            .init(pipelineInputName: "prompt", source: .endpointInput("text"), isRequired: true),
            .init(pipelineInputName: "n", source: .endpointInput("count"), defaultValue: .number(7)),
            .init(pipelineInputName: "c", source: .constant(.list([.string("k")]))),
            .init(pipelineInputName: "e", source: .environmentVariable("REGION")),
            .init(pipelineInputName: "z", source: .null),
        ])
        let environment: (String) -> String? = { $0 == "REGION" ? "eu" : nil }
        let mapped = try mappings.pipelineInputs(
            from: ["text": .string("hi"), "z": .number(1), "extra": .bool(true)], environment: environment)
        #expect(
            mapped == [
                "prompt": .string("hi"), "n": .number(7), "c": .list([.string("k")]), "e": .string("eu"),
                "extra": .bool(true),
            ])

        #expect(throws: GatewayError.self) {
            try mappings.pipelineInputs(from: ["count": .number(1)], environment: environment)
        }
        #expect(throws: GatewayError.self) {
            try mappings.pipelineInputs(from: ["text": .string("x")], environment: { _ in nil })
        }
        // The operator's values, hidden from reads (security review 60, M4): the environment's, the constant, and
        // the default only when the caller left its input out.
        #expect(mappings.environmentInputNames == ["e"])
        #expect(
            try mappings.mapped(from: ["text": .string("hi")], environment: environment).operatorFilled == [
                "e", "c", "n",
            ])
        #expect(
            try mappings.mapped(from: ["text": .string("hi"), "count": .number(2)], environment: environment)
                .operatorFilled == ["e", "c"])
    }

    @Test("output destinations: renamed, dropped by is_null, unmapped ones pass; the label round-trips")
    func outputDestinations() throws {
        let mappings = CraftMappings(outputs: [
            .init(pipelineOutputName: "a", destination: .endpointOutput("A")),
            .init(pipelineOutputName: "b", destination: .null),
        ])
        let outputs = mappings.mappedOutputs(["a": .number(1), "b": .number(2), "c": .number(3)])
        #expect(outputs.map(\.endpointOutputName) == ["A", nil, "c"])
        #expect(outputs.map(\.mappingType) == ["endpoint", "is_null", "endpoint"])
        // A run's unmapped output is the run's; what a mapping says stays.
        let ofRun = mappings.mappedOutputs(["a": .number(1), "b": .number(2), "c": .number(3)], unmappedType: "run")
        #expect(ofRun.map(\.mappingType) == ["endpoint", "is_null", "run"])
        let restored = try CraftMappings(outputsLabel: mappings.outputsLabel)
        #expect(restored.outputs == mappings.outputs)
        #expect(CraftMappings().outputsLabel == nil)
    }

    @Test(
        "the SDK's inputs_mapping / outputs_mapping fields parse; datastore paths and environment variables are refused"
    )
    func sdkFields() throws {
        // As the SDK sends them: every key of InputSource, the unused ones null.
        let inputs = try CraftMappings.inputMappings(
            json: ByteBuffer(
                string:
                    #"[{"pipeline_input_name":"a","constant_value":3,"is_required":false,"environment_variable_name":null},{"pipeline_input_name":"c","is_null":true}]"#
            ),
            limits: .defaults
        )
        #expect(inputs.map(\.source) == [.constant(.number(3)), .null])
        #expect(throws: GatewayError.self) {
            try CraftMappings.inputMappings(
                json: ByteBuffer(string: #"[{"pipeline_input_name":"a","datastore_path":"x"}]"#), limits: .defaults)
        }
        // Review 23 H1: the gateway's environment is not a client's to read.
        let refused = #expect(throws: GatewayError.self) {
            try CraftMappings.inputMappings(
                json: ByteBuffer(string: #"[{"pipeline_input_name":"b","environment_variable_name":"HOME"}]"#),
                limits: .defaults)
        }
        #expect(refused?.code == .invalidArgument)
        #expect(refused?.message.contains("inputs_mapping[0]: environment_variable_name") == true)
        let outputs = try CraftMappings.outputMappings(
            json: ByteBuffer(
                string:
                    #"[{"pipeline_output_name":"o","endpoint_output_name":"p"},{"pipeline_output_name":"q","is_null":true}]"#
            ),
            limits: .defaults
        )
        #expect(outputs.map(\.destination) == [.endpointOutput("p"), .null])
        #expect(throws: GatewayError.self) {
            try CraftMappings.outputMappings(json: ByteBuffer(string: "{}"), limits: .defaults)
        }
    }

    /// Review 59, F10 and F2: the same mistakes `craft.deployments` refuses; before, the last entry or the first
    /// source won without a word.
    /// What a run's `inputs_mapping` (`inputs`) or `outputs_mapping` of `json` is refused with; an issue when it is
    /// taken.
    static func refusal(inputs: Bool, json: String) -> GatewayError? {
        #expect(throws: GatewayError.self) {
            if inputs {
                _ = try CraftMappings.inputMappings(json: ByteBuffer(string: json), limits: .defaults)
            } else {
                _ = try CraftMappings.outputMappings(json: ByteBuffer(string: json), limits: .defaults)
            }
        }
    }

    @Test(
        "a run's mapping that maps one input twice, gives an input two sources, or sends two outputs to one name is refused",
        arguments: [
            (
                true,
                #"[{"pipeline_input_name":"x","constant_value":1},{"pipeline_input_name":"x","constant_value":2}]"#,
                #"inputs_mapping[1]: duplicate pipeline_input_name "x""#
            ),
            (
                true, #"[{"pipeline_input_name":"x","constant_value":1,"is_null":true}]"#,
                "inputs_mapping[0] has more than one source (constant_value, is_null)"
            ),
            (
                true, #"[{"pipeline_input_name":"x","endpoint_input_name":"a","constant_value":false}]"#,
                "inputs_mapping[0] has more than one source (endpoint_input_name, constant_value)"
            ),
            (
                false,
                #"[{"pipeline_output_name":"o","is_null":true},{"pipeline_output_name":"o","endpoint_output_name":"p"}]"#,
                #"outputs_mapping[1]: duplicate pipeline_output_name "o""#
            ),
            (
                false,
                #"[{"pipeline_output_name":"o","endpoint_output_name":"x"},{"pipeline_output_name":"q","endpoint_output_name":"x"}]"#,
                #"outputs_mapping[1]: duplicate endpoint_output_name "x""#
            ),
        ])
    func ambiguousRunMappings(inputs: Bool, json: String, message: String) {
        let error = Self.refusal(inputs: inputs, json: json)
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == message)
    }

    /// Diff review 59, M4: `a → b` with pipeline output `b` unmapped put two outputs under `b`, the last one
    /// winning without a word (and `…/outputs/b` naming either).
    @Test("an unmapped output whose name a mapping sends another output to is left out: the mapped one wins")
    func shadowedOutput() {
        let mappings = CraftMappings(outputs: [.init(pipelineOutputName: "a", destination: .endpointOutput("b"))])
        for outputs: ValueObject in [
            ["a": .number(1), "b": .number(2), "c": .number(3)], ["b": .number(2), "a": .number(1), "c": .number(3)],
        ] {
            let mapped = mappings.mappedOutputs(outputs)
            #expect(mapped.map(\.pipelineOutputName).sorted() == ["a", "c"], "\(mapped)")
            #expect(mapped.first { $0.endpointOutputName == "b" }?.value == .number(1), "\(mapped)")
        }
        // Swapped names, or the other output mapped too: nothing is shadowed.
        let swapped = CraftMappings(outputs: [
            .init(pipelineOutputName: "a", destination: .endpointOutput("b")),
            .init(pipelineOutputName: "b", destination: .endpointOutput("a")),
        ])
        #expect(swapped.mappedOutputs(["a": .number(1), "b": .number(2)]).count == 2)
    }

    /// Diff review 59, M4: when the pipeline's outputs are declared (`craft.pipelines`), a run's mapping onto
    /// the name of an output it leaves unmapped is refused when the execution is made.
    @Test("a run's outputs_mapping onto a declared output's name that no mapping mentions is 400 naming both")
    func runMappingShadowsDeclaredOutput() {
        let declared = CraftPipelineConfiguration(
            name: "p", outputs: [.init(name: "a", dataType: "json"), .init(name: "b", dataType: "json")])
        let mappings = CraftMappings(outputs: [.init(pipelineOutputName: "a", destination: .endpointOutput("b"))])
        let error = #expect(throws: GatewayError.self) {
            _ = try CraftExecution.request(
                ref: PipelineRef(namespace: "demo", pipeline: "p"), inputs: [:], mappings: mappings, deployment: nil,
                cap: CraftIOCap(limit: 1000), principal: nil, requestID: "r", declared: declared)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(#"outputs_mapping"#) == true, "\(String(describing: error))")
        #expect(error?.message.contains(#""a""#) == true && error?.message.contains(#""b""#) == true)
    }

    /// Review 59, F8: craft-ai-sdk puts names into URL paths unencoded, so it could not read these back.
    @Test(
        "a run's mapping naming an endpoint input or output the SDK cannot put into a URL path is 400",
        arguments: [
            (true, #"[{"pipeline_input_name":"x","endpoint_input_name":"a/b"}]"#, "a/b"),
            (true, #"[{"pipeline_input_name":"x","endpoint_input_name":".."}]"#, ".."),
            (false, #"[{"pipeline_output_name":"o","endpoint_output_name":"a?b"}]"#, "a?b"),
            (false, #"[{"pipeline_output_name":"o","endpoint_output_name":"a#b"}]"#, "a#b"),
            (false, #"[{"pipeline_output_name":"o","endpoint_output_name":"%"}]"#, "%"),
            (false, #"[{"pipeline_output_name":"o","endpoint_output_name":"."}]"#, "."),
        ])
    func unreadableRunMappingNames(inputs: Bool, json: String, name: String) {
        let error = Self.refusal(inputs: inputs, json: json)
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("\"\(name)\"") == true, "\(String(describing: error))")
        #expect(error?.message.hasPrefix(inputs ? "inputs_mapping[0]" : "outputs_mapping[0]") == true)
    }

    @Test("one source per input: a false constant, is_null false and null keys do not count as a second")
    func oneSource() throws {
        let inputs = try CraftMappings.inputMappings(
            json: ByteBuffer(
                string:
                    #"[{"pipeline_input_name":"a","constant_value":false,"is_null":false,"endpoint_input_name":null},{"pipeline_input_name":"b","constant_value":0}]"#
            ),
            limits: .defaults)
        #expect(inputs.map(\.source) == [.constant(.bool(false)), .constant(.number(0))])
    }

    @Test("a configured deployment's mappings: its constants and defaults as configured")
    func fromConfiguration() throws {
        let deployment = CraftDeploymentConfiguration(
            name: "d", pipeline: "p", endpointURLPath: "d",
            inputMappings: [
                .init(pipelineInputName: "x", source: .constant(.object(["k": .list([.number(1), .bool(true)])]))),
                .init(pipelineInputName: "y", source: .endpointInput("Y"), defaultValue: .string("dflt")),
            ],
            outputMappings: [.init(pipelineOutputName: "o", destination: .null)]
        )
        let mappings = CraftMappings(deployment: deployment)
        #expect(mappings.inputs?[0].source == .constant(.object(["k": .list([.number(1), .bool(true)])])))
        #expect(mappings.inputs?[1].defaultValue == .string("dflt"))
        #expect(mappings.outputs?[0].destination == .null)
    }

    @Test("the cap: the JSON size of non-file values, files exempt; at the cap passes, one byte over is 413")
    func capEdges() throws {
        let cap = CraftIOCap(limit: 10)
        let file = Value.blob(Blob(bytes: ByteBuffer(repeating: 0, count: 1000)))
        // "12345678" is 10 bytes of JSON.
        try cap.checkInputs(["s": .string("12345678"), "f": file])
        do {
            try cap.checkInputs(["s": .string("123456789"), "f": file])
            Issue.record("one byte over the cap passed")
        } catch {
            #expect(error.code == .payloadTooLarge)
            #expect(error.message.contains("11 bytes") && error.message.contains("cap of 10 bytes"), "\(error.message)")
        }
        #expect(throws: GatewayError.self) { try cap.checkOutputs(["a": .number(12345), "b": .number(123456)]) }
        #expect(CraftIOCap.nonFileBytes(["a": .number(12345), "b": .bool(true)]) == 9)
        do {
            try CraftIOCap(limit: 60_000).checkInputs(["s": .string(String(repeating: "x", count: 60_000))])
        } catch {
            #expect(error.message.contains("0.06 MB"), "\(error.message)")
        }
    }

    @Test("run_pipeline bodies: form json_inputs; multipart json_inputs plus file parts; conflicts and unknown fields")
    func pipelineRunBodies() throws {
        var run = try CraftRequestBody.form(ByteBuffer(string: "json_inputs=%7B%22prompt%22%3A+%22hello+world%22%7D"))
            .pipelineRun(limits: .defaults)
        #expect(run.inputs == ["prompt": .string("hello world")])
        run = try CraftRequestBody.multipart([
            MultipartPart(name: "json_inputs", body: ByteBuffer(string: #"{"n":1}"#)),
            MultipartPart(name: "doc", fileName: "doc", body: ByteBuffer(string: "PDF")),
        ]).pipelineRun(limits: .defaults)
        #expect(run.inputs["n"] == .number(1))
        #expect(run.inputs["doc"]?.blobValue?.bytes == ByteBuffer(string: "PDF"))
        #expect(throws: GatewayError.self) {
            try CraftRequestBody.multipart([
                MultipartPart(name: "json_inputs", body: ByteBuffer(string: #"{"doc":1}"#)),
                MultipartPart(name: "doc", fileName: "doc", body: ByteBuffer(string: "PDF")),
            ]).pipelineRun(limits: .defaults)
        }
        #expect(throws: GatewayError.self) {
            try CraftRequestBody.form(ByteBuffer(string: "other=1")).pipelineRun(limits: .defaults)
        }
        #expect(throws: GatewayError.self) {
            try CraftRequestBody.json(ByteBuffer(string: "{}")).pipelineRun(limits: .defaults)
        }
    }

    /// Craft AI sends files only as parts (CLIENTS.md §3.4, §3.5): a text input that looks like a base64 data
    /// URI is text, in `json_inputs` (form and multipart), an endpoint's JSON body and its multipart fields, and a
    /// mapping's constant; a file part is still a file.
    @Test("a string input that is a data URI stays a string on every Craft body; a file part is a file")
    func dataURIStringsStayText() throws {
        let uri = "data:text/plain;base64,aGVsbG8="
        let json = #"{"s":"\#(uri)"}"#
        let form = "json_inputs=%7B%22s%22%3A%22data%3Atext%2Fplain%3Bbase64%2CaGVsbG8%3D%22%7D"  // `json`, encoded
        var run = try CraftRequestBody.form(ByteBuffer(string: form)).pipelineRun(limits: .defaults)
        #expect(run.inputs["s"] == .string(uri))
        run = try CraftRequestBody.multipart([
            MultipartPart(name: "json_inputs", body: ByteBuffer(string: json)),
            MultipartPart(
                name: "inputs_mapping",
                body: ByteBuffer(string: #"[{"pipeline_input_name":"c","constant_value":"\#(uri)"}]"#)),
            MultipartPart(name: "doc", fileName: "doc", body: ByteBuffer(string: uri)),
        ]).pipelineRun(limits: .defaults)
        #expect(run.inputs["s"] == .string(uri))
        #expect(run.inputs["doc"]?.blobValue?.bytes == ByteBuffer(string: uri))
        #expect(run.mappings.inputs?.first?.source == .constant(.string(uri)))
        #expect(
            try CraftRequestBody.json(ByteBuffer(string: json)).endpointInputs(limits: .defaults)["s"] == .string(uri))
        let fields = try CraftRequestBody.multipart([
            MultipartPart(name: "s", body: ByteBuffer(string: "\"\(uri)\"")),
            MultipartPart(name: "f", fileName: "f", body: ByteBuffer(string: "x")),
        ]).endpointInputs(limits: .defaults)
        #expect(fields["s"] == .string(uri))
        #expect(fields["f"]?.blobValue != nil)
    }

    /// `limits.max_json_members` holds for a form's fields together (review 24 M2), and a multipart endpoint
    /// field over it is refused rather than taken as a string.
    @Test("JSON fields of one body share max_json_members: at the cap accepted, one past refused", arguments: [5, 6])
    func memberCapAcrossFields(members: Int) throws {
        var limits = CodecLimits.defaults
        limits.maxJSONMembers = 5
        func list(_ n: Int) -> String { "[" + Array(repeating: "0", count: n).joined(separator: ",") + "]" }
        // json_inputs {"a": [members − 4]}: members − 3; inputs_mapping, one element of two members: 3 more.
        let run = CraftRequestBody.multipart([
            MultipartPart(name: "json_inputs", body: ByteBuffer(string: #"{"a":"# + list(members - 4) + "}")),
            MultipartPart(
                name: "inputs_mapping", body: ByteBuffer(string: #"[{"pipeline_input_name":"a","is_null":true}]"#)),
        ])
        let endpoint = CraftRequestBody.multipart([
            MultipartPart(name: "a", body: ByteBuffer(string: list(members - 3))),
            MultipartPart(name: "b", body: ByteBuffer(string: list(3))),
        ])
        if members <= 5 {
            #expect(try run.pipelineRun(limits: limits).inputs["a"] != nil)
        } else {
            let error = #expect(throws: GatewayError.self) { try run.pipelineRun(limits: limits) }
            #expect(
                error?.message
                    == "inputs_mapping[0]: more than the limit of 5 object members and array elements in the body")
        }
        // The endpoint's fields: members − 3 elements, then 3 more.
        if members <= 5 {
            #expect(try endpoint.endpointInputs(limits: limits)["b"] != nil)
        } else {
            let error = #expect(throws: GatewayError.self) { try endpoint.endpointInputs(limits: limits) }
            #expect(error?.message == "b[2]: more than the limit of 5 object members and array elements in the body")
        }
    }

    @Test("endpoint bodies: JSON object, empty, multipart with JSON-encoded fields and files")
    func endpointBodies() throws {
        #expect(try CraftRequestBody.json(ByteBuffer()).endpointInputs(limits: .defaults) == [:])
        #expect(
            try CraftRequestBody.json(ByteBuffer(string: #"{"a":[1]}"#)).endpointInputs(limits: .defaults) == [
                "a": .list([.number(1)])
            ])
        #expect(throws: GatewayError.self) {
            try CraftRequestBody.json(ByteBuffer(string: "[1]")).endpointInputs(limits: .defaults)
        }
        let inputs = try CraftRequestBody.multipart([
            MultipartPart(name: "prompt", body: ByteBuffer(string: #""hello""#)),
            MultipartPart(name: "n", body: ByteBuffer(string: "3")),
            MultipartPart(name: "plain", body: ByteBuffer(string: "not json")),
            MultipartPart(name: "file", fileName: "file", body: ByteBuffer(string: "BYTES")),
        ]).endpointInputs(limits: .defaults)
        #expect(inputs["prompt"] == .string("hello"))
        #expect(inputs["n"] == .number(3))
        #expect(inputs["plain"] == .string("not json"))
        #expect(inputs["file"]?.blobValue?.fileName == "file")
    }
}
