import Foundation
import GatewayTestSupport
import Testing

/// An Instill async trigger of several `data` items is one operation; read through the Abacus.AI and Craft AI
/// surfaces with their real SDKs, every item shows, not the first one alone (review 17, leftover 2).
@Suite("a batch operation read through the Abacus.AI and Craft AI surfaces")
struct BatchOperationSurfacesTests {
    /// An async `upper` run of the three items `a`, `b`, `c` (each `{"p": …}`) through Instill REST, finished.
    static func batch(port: Int) async throws -> String {
        let client = try await TestHTTPClient.connect(port: port)
        let response = try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger-async", headers: jsonHeaders,
            body: try jsonBody(["data": ["a", "b", "c"].map { ["variable": ["p": $0]] }]))
        let started = try json(response.body)
        let name = try #require(started.operationName, "\(started)")
        let done = try await AsyncClient(client: client).waitDone(name)
        #expect(done["done"] as? Bool == true, "\(done)")
        return String(name.dropFirst("operations/".count))
    }

    @Test("abacusai: describe_pipeline_version shows one step per item with its inputs and outputs")
    func abacus() async throws {
        try await withTestGateway { gateway in
            let id = try await Self.batch(port: gateway.port)
            let answer = try await Peers.abacus("describe_version", port: gateway.port, [id])
            let version = try #require(answer["version"] as? [String: Any], "\(answer)")
            #expect(version["status"] as? String == "COMPLETE")
            let steps = try #require(version["step_versions"] as? [[String: Any]], "\(version)")
            try #require(steps.count == 3, "\(steps)")
            for (item, letter) in ["a", "b", "c"].enumerated() {
                let step = steps[item]
                #expect(step["step_name"] as? String == "upper[\(item)]")
                #expect(step["pipeline_step_version"] as? String == "\(id).\(item)")
                let outputs = step["output_variable_mappings"] as? [[String: Any]]
                #expect(outputs?.count == 1 && outputs?.first?["value"] as? String == letter.uppercased(), "\(step)")
                let inputs = step["function_variable_mappings"] as? [[String: Any]]
                #expect(inputs?.first?["value"] as? String == letter, "\(step)")
            }
            // Each step is readable by its own id; the operation id alone is the first; past the last is unknown.
            let client = try await TestHTTPClient.connect(port: gateway.port)
            for (reference, expected) in [("\(id).2", "C"), (id, "A")] {
                let response = try await client.request(
                    "GET", "/api/v0/describePipelineStepVersion?pipelineStepVersion=\(reference)")
                let body = try json(response.body)
                let result = body["result"] as? [String: Any]
                let outputs = result?["outputVariableMappings"] as? [[String: Any]]
                #expect(outputs?.first?["value"] as? String == expected, "\(reference): \(body)")
            }
            let past = try await client.request(
                "GET", "/api/v0/describePipelineStepVersion?pipelineStepVersion=\(id).3")
            #expect(past.status == 404, "\(past.bodyString)")
            #expect(try json(past.body)["error"] as? String == "no pipeline step version \"\(id).3\"")
        }
    }

    @Test("craft-ai-sdk: the execution's every input and output is the list of the items' values, in item order")
    func craft() async throws {
        try await withTestGateway { gateway in
            let id = try await Self.batch(port: gateway.port)
            let execution = try await Peers.craft("get_execution", port: gateway.port, [id])
            let result = try #require(execution["result"] as? [String: Any], "\(execution)")
            let outputs = try #require(result["outputs"] as? [[String: Any]], "\(result)")
            #expect(outputs.count == 1, "\(outputs)")
            #expect(outputs.first?["pipeline_output_name"] as? String == "p")
            #expect(outputs.first?["data_type"] as? String == "array")
            #expect(outputs.first?["value"] as? [String] == ["A", "B", "C"], "\(outputs)")
            let inputs = try #require(result["inputs"] as? [[String: Any]], "\(result)")
            #expect(inputs.first?["value"] as? [String] == ["a", "b", "c"], "\(inputs)")
            let output = try await Peers.craft("execution_output", port: gateway.port, [id, "p"])
            let read = output["result"] as? [String: Any]
            #expect(
                read?["value"] as? [String] == ["A", "B", "C"] && read?["data_type"] as? String == "array", "\(output)")
            let input = try await Peers.craft("execution_input", port: gateway.port, [id, "p"])
            #expect((input["result"] as? [String: Any])?["value"] as? [String] == ["a", "b", "c"], "\(input)")
        }
    }
}
