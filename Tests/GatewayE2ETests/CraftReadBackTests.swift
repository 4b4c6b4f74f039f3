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

    /// Review 59, F11: `…/outputs/{name}` applied the cap to the whole output set, so a 1-byte output of an
    /// execution with a large one was unreadable. Cap 100: `s` of `length` a's is length + 2 bytes of JSON.
    @Test(
        "a per-name output read caps that value alone: at the cap it reads, one byte past is 413", arguments: [98, 99])
    func perNameOutputCap(length: Int) async throws {
        try await withTestGateway(yaml: "craft: {max_io_bytes: 100, long_poll_wait: 5s}\n") { gateway in
            let client = try await gateway.client()
            let token = try await REST.accessToken(client)
            // Made through Instill (no cap on its inputs), read through Craft AI: both anonymous (auth off).
            let instill = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger-async", headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["s": String(repeating: "a", count: length), "n": 1]]]]))
            let name = try #require(try json(instill.body).operationName, "\(instill.bodyString)")
            let id = String(name.dropFirst("operations/".count))
            // The whole set (length + 2 + 1 bytes) stays over the cap on the whole-set read.
            var response = try await client.request(
                "GET", "/api/v1/executions/\(id)/outputs?wait_for_completion=true", headers: REST.bearer(token))
            #expect(response.status == 413, "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(id)/outputs/n", headers: REST.bearer(token))
            #expect(response.status == 200, "\(response.bodyString)")
            #expect(response.bodyString == "1")
            response = try await client.request(
                "GET", "/api/v1/executions/\(id)/outputs/s", headers: REST.bearer(token))
            if length + 2 <= 100 {
                #expect(response.status == 200, "\(response.bodyString)")
                #expect(response.bodyString == "\"\(String(repeating: "a", count: length))\"")
            } else {
                #expect(response.status == 413, "\(response.bodyString)")
                let message = try json(response.body)["message"] as? String
                #expect(
                    message?.contains(#"output "s" is 101 bytes, over the cap of 100 bytes"#) == true,
                    "\(message ?? "")")
            }
        }
    }

    /// Review 59, F12: the Craft surface said "operation … not found" / "was cancelled"; an output mapped
    /// `is_null` read 404 by name although `get_pipeline_execution` lists it with a null value.
    @Test("executions are named executions in Craft messages (operations elsewhere); an is_null output reads null")
    func wordingAndNullOutput() async throws {
        try await withTestGateway(yaml: "craft: {long_poll_wait: 5s}\n") { gateway in
            let client = try await gateway.client()
            let token = try await REST.accessToken(client)
            let unknown = String(repeating: "0", count: 26)
            var response = try await client.request("GET", "/api/v1/executions/\(unknown)", headers: REST.bearer(token))
            #expect(response.status == 404)
            #expect(try json(response.body)["message"] as? String == "execution \(unknown) not found")
            response = try await client.request("GET", "/v1beta/operations/\(unknown)")
            #expect(response.status == 404)
            #expect(response.bodyString.contains("operation \(unknown) not found"), "\(response.bodyString)")

            let sleeping = try await Self.run(client, token, "sleep", inputs: #"{"ms":60000}"#)
            response = try await client.request("POST", "/v1beta/operations/\(sleeping):cancel")
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(sleeping)/outputs?wait_for_completion=true", headers: REST.bearer(token))
            #expect(response.status == 499)
            #expect(try json(response.body)["message"] as? String == "execution \(sleeping) was cancelled")
            response = try await client.request("GET", "/api/v1/executions/\(sleeping)", headers: REST.bearer(token))
            let error = try json(response.body)["error"] as? [String: Any]
            #expect(error?["message"] as? String == "execution \(sleeping) was cancelled", "\(response.bodyString)")

            let id = try await Self.run(
                client, token, "echo", inputs: #"{"x":1,"y":2}"#,
                outputsMapping: #"[{"pipeline_output_name":"x","is_null":true}]"#)
            response = try await client.request(
                "GET", "/api/v1/executions/\(id)/outputs?wait_for_completion=true", headers: REST.bearer(token))
            #expect(response.status == 200, "\(response.bodyString)")
            response = try await client.request(
                "GET", "/api/v1/executions/\(id)/outputs/x", headers: REST.bearer(token))
            #expect(response.status == 200, "\(response.bodyString)")
            #expect(response.bodyString == "null")
            response = try await client.request(
                "GET", "/api/v1/executions/\(id)/outputs/y", headers: REST.bearer(token))
            #expect(response.bodyString == "2")
        }
    }

    /// Review 59, F12: RFC 9110 §11.6.1 has a 401 name the schemes that work; on `/endpoints/` they are
    /// `EndpointToken` (what the SDK sends) and `Bearer`, not `Bearer` alone.
    @Test("a 401 under /endpoints/ challenges EndpointToken and Bearer; under /api/v1/ Bearer")
    func endpointChallenge() async throws {
        try await withTestGateway(yaml: "tokens: [{name: alice, token: ALICE-0123456789abcdef}]\n") { gateway in
            let client = try await gateway.client()
            var response = try await client.request(
                "POST", "/endpoints/echo", headers: jsonHeaders, body: try jsonBody(["a": 1]))
            #expect(response.status == 401, "\(response.bodyString)")
            #expect(response.header("www-authenticate") == "EndpointToken, Bearer")
            response = try await client.request(
                "GET", "/endpoints/v1/echo/executions/\(String(repeating: "0", count: 26))?token=wrong")
            #expect(response.status == 401, "\(response.bodyString)")
            #expect(response.header("www-authenticate") == "EndpointToken, Bearer")
            response = try await client.request("GET", "/api/v1/pipelines")
            #expect(response.status == 401)
            #expect(response.header("www-authenticate") == "Bearer")
        }
    }

    /// Review 59, F9: keys the SDK documents were missing (KeyError in scripts): `created_at` on the list items
    /// (which scripts sort by), the deployment's mappings, and the keys the gateway has no value for.
    @Test("list items carry created_at; get_deployment its mappings (constants and defaults redacted) and nulls")
    func documentedKeys() async throws {
        let yaml = """
            tokens: [{name: alice, token: ALICE}, {name: bob, token: BOB}]
            craft:
              pipelines:
                - {name: echo, inputs: [{name: k, data_type: string}], outputs: [{name: k, data_type: string}]}
              deployments:
                - name: open
                  pipeline: echo
                  input_mappings:
                    - {pipeline_input_name: k, constant_value: visible}
                    - {pipeline_input_name: e, environment_variable_name: HOME}
                  output_mappings:
                    - {pipeline_output_name: k, endpoint_output_name: K}
                    - {pipeline_output_name: e, is_null: true}
                - name: alices
                  pipeline: echo
                  tokens: [alice]
                  input_mappings:
                    - {pipeline_input_name: k, constant_value: for-alice}
                    - {pipeline_input_name: t, endpoint_input_name: T, default_value: dflt, is_required: true}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let bob = try await REST.accessToken(client, sdkToken: "BOB")
            let alice = try await REST.accessToken(client, sdkToken: "ALICE")
            func items(_ path: String) async throws -> [[String: Any]] {
                let response = try await client.request("GET", path, headers: REST.bearer(bob))
                return try #require(
                    try JSONSerialization.jsonObject(with: Data(response.bodyString.utf8)) as? [[String: Any]])
            }
            for item in try await items("/api/v1/pipelines") + (try await items("/api/v1/deployments")) {
                let createdAt = item["created_at"] as? String
                #expect(createdAt?.hasSuffix("Z") == true && createdAt?.count == 24, "\(item)")
            }
            func deployment(_ name: String, _ token: String) async throws -> [String: Any] {
                let response = try await client.request(
                    "GET", "/api/v1/deployments/\(name)", headers: REST.bearer(token))
                #expect(response.status == 200, "\(response.bodyString)")
                return try json(response.body)
            }
            let open = try await deployment("open", bob)
            for key in ["created_by", "updated_by", "description"] {
                #expect(open.keys.contains(key) && open[key] is NSNull, "\(key): \(open)")
            }
            #expect(
                open["created_at"] as? String != nil && open["updated_at"] as? String == open["created_at"] as? String)
            let inputs = try #require(open["inputs_mapping"] as? [[String: Any]], "\(open)")
            #expect(inputs.count == 2)
            #expect(inputs.first?["pipeline_input_name"] as? String == "k")
            #expect(inputs.first?["data_type"] as? String == "string")
            // The operator's constant is no reader's (security review 60, M4), as in the executions' inputs.
            #expect(inputs.first?["constant_value"] is NSNull, "\(open)")
            #expect(inputs.first?["constant_value_redacted"] as? Bool == true, "\(open)")
            #expect(inputs.last?["environment_variable_name"] as? String == "HOME")
            #expect(inputs.last?["data_type"] is NSNull)
            let outputs = try #require(open["outputs_mapping"] as? [[String: Any]], "\(open)")
            #expect(outputs.first?["endpoint_output_name"] as? String == "K")
            #expect(outputs.last?["is_null"] as? Bool == true)

            // A deployment whose tokens leave bob out: both read its constants and defaults redacted, alice (who may
            // trigger it) too: its executions no longer show them either (security review 60, M4).
            for caller in [bob, alice] {
                let mapping = try #require(
                    (try await deployment("alices", caller))["inputs_mapping"] as? [[String: Any]])
                #expect(mapping.first?["constant_value"] is NSNull, "\(mapping)")
                #expect(mapping.first?["constant_value_redacted"] as? Bool == true, "\(mapping)")
                #expect(mapping.last?["default_value"] is NSNull && mapping.last?["is_required"] as? Bool == true)
                #expect(mapping.last?["default_value_redacted"] as? Bool == true, "\(mapping)")
            }
        }
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
