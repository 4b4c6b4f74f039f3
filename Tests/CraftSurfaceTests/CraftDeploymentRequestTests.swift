import CraftSurface
import GatewayConfig
import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("Craft AI create_deployment bodies and execution log queries")
struct CraftDeploymentRequestTests {
    private func request(_ json: String, rule: CraftDeploymentConfiguration.ExecutionRule = .endpoint) throws
        -> CraftDeploymentRequest
    {
        try CraftDeploymentRequest(.json(ByteBuffer(string: json)), rule: rule, limits: .defaults)
    }

    @Test("the SDK's body: names, mode, path; resource hints ignored; an empty mapping list is none")
    func parses() throws {
        let parsed = try request(
            #"{"pipeline_name":"p","name":"d","mode":"elastic","ram_request":"1Gi","gpu_request":0,"#
                + #""execution_timeout_s":60,"inputs_mapping":[],"outputs_mapping":[]}"#)
        #expect(parsed.name == "d" && parsed.pipeline == "p" && parsed.mode == "elastic")
        #expect(parsed.endpointURLPath == nil && !parsed.hasMappings)
        #expect(
            try request(#"{"pipeline_name":"p","name":"d","inputs_mapping":[{"pipeline_input_name":"a"}]}"#)
                .hasMappings)
    }

    @Test(
        "refused bodies: no name, no pipeline, wrong types, not JSON",
        arguments: [
            #"{"pipeline_name":"p"}"#, #"{"name":"d"}"#, #"{"name":"","pipeline_name":"p"}"#,
            #"{"name":3,"pipeline_name":"p"}"#, #"{"name":"d","pipeline_name":"p","inputs_mapping":{}}"#, "[1]",
        ])
    func refused(body: String) throws {
        #expect(throws: GatewayError.self) { try request(body) }
        do {
            _ = try request(body)
        } catch let error as GatewayError {
            #expect(error.code == .invalidArgument, "\(error)")
        }
    }

    @Test("a form is not a creation body (415)")
    func form() {
        #expect {
            try CraftDeploymentRequest(.form(ByteBuffer(string: "name=d")), rule: .endpoint, limits: .defaults)
        } throws: { ($0 as? GatewayError)?.code == .unsupportedMediaType }
    }

    @Test("mismatch: the same deployment is none; each difference is named")
    func mismatch() throws {
        let existing = CraftDeploymentConfiguration(name: "d", pipeline: "p", endpointURLPath: "d")
        #expect(try request(#"{"pipeline_name":"p","name":"d"}"#).mismatch(with: existing) == nil)
        #expect(
            try request(#"{"pipeline_name":"p","name":"d","endpoint_url_path":"d"}"#).mismatch(with: existing) == nil)
        #expect(
            try request(#"{"pipeline_name":"q","name":"d"}"#).mismatch(with: existing)?.contains("pipeline \"p\"")
                == true)
        #expect(
            try request(#"{"pipeline_name":"p","name":"d","endpoint_url_path":"x"}"#).mismatch(with: existing)?
                .contains("endpoint path \"d\"") == true)
        #expect(
            try request(#"{"pipeline_name":"p","name":"d","mode":"low_latency"}"#).mismatch(with: existing) != nil)
        #expect(try request(#"{"pipeline_name":"p","name":"d"}"#, rule: .periodic).mismatch(with: existing) != nil)
        var released = existing
        released.release = "v1"
        #expect(try request(#"{"pipeline_name":"p","name":"d"}"#).mismatch(with: released)?.contains("v1") == true)
        var mapped = existing
        mapped.outputMappings = []
        #expect(try request(#"{"pipeline_name":"p","name":"d"}"#).mismatch(with: mapped) != nil)
    }

    @Test("the hint names the configuration entry to add")
    func hint() throws {
        let hint = try request(#"{"pipeline_name":"p","name":"d","endpoint_url_path":"x"}"#).configurationHint
        #expect(hint.contains("{name: d, pipeline: p, execution_rule: endpoint, endpoint_url_path: x}"), "\(hint)")
        #expect(hint.contains("craft.deployments"))
    }

    private func query(_ json: String) throws -> CraftLogQuery {
        try CraftLogQuery(.json(ByteBuffer(string: json)), limits: .defaults)
    }

    @Test("log query: an empty body or {} is everything; from/to inclusive at their edge, not just past it")
    func logBounds() throws {
        let lines: [(milliseconds: Int64, line: Int)] = [(100, 1), (200, 2), (300, 3)]
        #expect(try CraftLogQuery(.json(ByteBuffer()), limits: .defaults).select(lines) == [1, 2, 3])
        #expect(try query("{}").select(lines) == [1, 2, 3])
        #expect(try query(#"{"from":200}"#).select(lines) == [2, 3])
        #expect(try query(#"{"from":201}"#).select(lines) == [3])
        #expect(try query(#"{"to":200}"#).select(lines) == [1, 2])
        #expect(try query(#"{"to":199}"#).select(lines) == [1])
        #expect(try query(#"{"from":200,"to":200}"#).select(lines) == [2])
        #expect(try query(#"{"from":301}"#).select(lines) == [])
    }

    @Test("log query: limit 1 and at the count keep the oldest; 0, negative, fractional and unknown keys are refused")
    func logLimit() throws {
        let lines: [(milliseconds: Int64, line: Int)] = [(100, 1), (200, 2), (300, 3)]
        #expect(try query(#"{"limit":1}"#).select(lines) == [1])
        #expect(try query(#"{"limit":3}"#).select(lines) == [1, 2, 3])
        #expect(try query(#"{"limit":4}"#).select(lines) == [1, 2, 3])
        for body in [#"{"limit":0}"#, #"{"limit":-1}"#, #"{"limit":1.5}"#, #"{"from":"x"}"#, #"{"since":1}"#] {
            #expect(throws: GatewayError.self, "\(body)") { try query(body) }
        }
        do {
            _ = try query(#"{"limit":0}"#)
        } catch let error as GatewayError {
            #expect(error.code == .invalidArgument)
            #expect(error.message == "\"limit\" must be at least 1 (it is 0)")
        }
    }
}
