import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// What craft-ai-sdk reads back from an execution or a deployment (reviews 59 of the SDK and of the diff): the
/// per-name output reads and their cap, the surface's nouns, the keys the SDK documents, outputs that would land
/// under one name, and the challenge of an endpoint's 401.
@Suite("Craft AI reads back: per-name outputs, wording, documented keys, shadowed outputs")
struct CraftReadBackTests {
    typealias REST = CraftRESTTests

    /// `run_pipeline`'s form: `json_inputs` and, when given, `outputs_mapping` (JSON); returns the execution id.
    static func run(
        _ client: TestHTTPClient, _ token: String, _ pipeline: String, inputs: String, outputsMapping: String? = nil
    ) async throws -> String {
        func field(_ name: String, _ value: String) -> String {
            "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
        }
        let body = ([field("json_inputs", inputs)] + (outputsMapping.map { [field("outputs_mapping", $0)] } ?? []))
            .joined(separator: "&")
        let response = try await client.request(
            "POST", "/api/v1/pipelines/\(pipeline)/run",
            headers: REST.bearer(token) + [("content-type", "application/x-www-form-urlencoded")],
            body: ByteBuffer(string: body)
        )
        try #require(response.status == 200, "\(response.bodyString)")
        return try #require(try json(response.body)["execution_id"] as? String)
    }

    /// Diff review 59, M4: `a → b` with echo's output `b` unmapped (echo is described by its runner, so the
    /// configuration cannot see the clash): the endpoint result held `b` twice and the last one won.
    @Test("an unmapped runner output a mapping shadows is left out of the result, with one warning")
    func shadowedRunnerOutput() async throws {
        let yaml = """
            craft:
              long_poll_wait: 5s
              deployments:
                - name: clash
                  pipeline: echo
                  output_mappings:
                    - {pipeline_output_name: a, endpoint_output_name: b}
            """
        let log = RecordedLog()
        try await withTestGateway(yaml: yaml, log: log) { gateway in
            let client = try await gateway.client()
            for _ in 0..<2 {
                var response = try await client.request(
                    "POST", "/endpoints/clash", headers: jsonHeaders + [("authorization", "EndpointToken any")],
                    body: try jsonBody(["a": 1, "b": 2]))
                let id = try #require(try json(response.body)["execution_id"] as? String, "\(response.bodyString)")
                response = try await client.request("GET", "/endpoints/v1/clash/executions/\(id)?token=any")
                #expect(response.status == 200, "\(response.bodyString)")
                let outputs = try json(response.body)["outputs"] as? [String: [String: Any]]
                #expect(outputs?.count == 1, "\(response.bodyString)")
                #expect(outputs?["b"]?["value"] as? Int == 1, "\(response.bodyString)")
            }
            let warnings = log.lines.filter { $0.message.hasPrefix("a pipeline output is left out") }
            #expect(warnings.count == 1, "\(log.lines)")
            #expect(warnings.first?.metadata["craft.output"] == "b", "\(warnings)")
            #expect(warnings.first?.metadata["craft.mapped_from"] == "a", "\(warnings)")
        }
    }
}
