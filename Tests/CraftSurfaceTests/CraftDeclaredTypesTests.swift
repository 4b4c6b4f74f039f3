import CraftSurface
import GatewayConfig
import NIOCore
import Testing
import TriggerModel

@Suite("Craft AI declared input types (review 23 I2)")
struct CraftDeclaredTypesTests {
    /// One value of each kind the Craft surface takes, by the `data_type` it shows.
    static let samples: [(type: String, value: Value)] = [
        ("string", .string("abc")),
        ("number", .number(1.5)),
        ("number", .integer(Int64(1) << 60)),
        ("boolean", .bool(false)),
        ("array", .list([.number(1)])),
        ("json", .object(["k": .string("v")])),
        ("file", .blob(Blob(bytes: ByteBuffer(bytes: [0, 1])))),
    ]

    @Test(
        "each declared type takes its own values (json any but a file), and null; refuses every other kind",
        arguments: CraftPipelineConfiguration.dataTypes)
    func acceptAndRefuse(type: String) throws {
        let pipeline = CraftPipelineConfiguration(name: "p", inputs: [.init(name: "x", dataType: type)])
        for sample in Self.samples {
            let accepted = sample.type == type || (type == "json" && sample.type != "file")
            #expect(CraftExecution.value(sample.value, isOf: type) == accepted, "\(sample) as \(type)")
            do {
                let inputs: ValueObject = ["x": sample.value, "other": .blob(Blob(bytes: ByteBuffer()))]
                try CraftExecution.checkDeclaredTypes(inputs, of: pipeline)
                #expect(accepted, "\(sample) passed as \(type)")
            } catch {
                #expect(!accepted, "\(sample) refused as \(type): \(error.message)")
                #expect(error.code == .invalidArgument)
                #expect(
                    error.message
                        == "input \"x\" of pipeline p is declared \(type) (craft.pipelines), got \(sample.type)")
            }
        }
        try CraftExecution.checkDeclaredTypes(["x": .null], of: pipeline)
        try CraftExecution.checkDeclaredTypes([:], of: pipeline)
    }

    @Test("an execution's request checks the pipeline inputs after the mappings against the declared types")
    func requestChecksMappedInputs() throws {
        let pipeline = CraftPipelineConfiguration(name: "echo", inputs: [.init(name: "n", dataType: "number")])
        let mappings = CraftMappings(inputs: [.init(pipelineInputName: "n", source: .endpointInput("count"))])
        func request(_ inputs: ValueObject) throws(GatewayError) -> TriggerRequest {
            try CraftExecution.request(
                ref: PipelineRef(namespace: "demo", pipeline: "echo"), inputs: inputs, mappings: mappings,
                deployment: nil, cap: CraftIOCap(limit: 1000), principal: nil, requestID: "r", declared: pipeline)
        }
        #expect(try request(["count": .number(3)]).inputs.first?.variables["n"] == .number(3))
        #expect(throws: GatewayError.self) { try request(["count": .string("abc")]) }
    }
}
