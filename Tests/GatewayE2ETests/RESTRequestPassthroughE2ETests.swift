import Foundation
import GatewayTestSupport
import NIOCore
import Testing
import TriggerModel

/// What an http runner receives for a REST trigger, on the wire (issue 11, `RESTRequestPassthrough`): a body
/// already in the runner's form is carried as the client's text (whitespace dropped), any other is decoded and
/// written again; the runner's request is the writer's form either way, and the answer the same.
@Suite("REST trigger bodies on the wire to an http runner")
struct RESTRequestPassthroughE2ETests {
    /// Answers each batch element's variables as an output.
    struct EchoVariables: TriggerRunner {
        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            TriggerResult(outputs: request.inputs.map(\.variables))
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "not streamed here")) }
        }
    }

    @Test(
        "canonical bodies arrive as the client's text, others as the writer's; the answer is the variables",
        arguments: [
            (
                #" { "data" : [ { "variable" : { "prompt" : "hi", "n" : [1, 2.5] } , "secret" : { } } ] } "#,
                #""data":[{"variable":{"prompt":"hi","n":[1,2.5]},"secret":{}}]}"#
            ),
            (
                #"{"inputs":[{"a":"x"},{"b":true}]}"#,
                #""data":[{"variable":{"a":"x"},"secret":{}},{"variable":{"b":true},"secret":{}}]}"#
            ),
            (
                // Not canonical (`1.00`, `1E2`, an escaped slash): decoded, and written as the writer writes them;
                // a number written as a float stays one (`1.0`, `100.0`).
                #"{"data":[{"variable":{"n":1.00,"m":1E2,"s":"a\/b"}}]}"#,
                #""data":[{"variable":{"n":1.0,"m":100.0,"s":"a/b"},"secret":{}}]}"#
            ),
            (
                // `2.0` is the writer's form now (carried as the client's text: `RESTRequestPassthroughTests` tells
                // the two paths apart; on the wire they give the same bytes).
                #"{"data":[{"variable":{"n":2.0,"k":[-0.0,3]}}]}"#,
                #""data":[{"variable":{"n":2.0,"k":[-0.0,3]},"secret":{}}]}"#
            ),
        ])
    func runnerBody(client body: String, runnerData: String) async throws {
        try await withHTTPBackend(runner: EchoVariables()) { backendPort in
            let relay = try await RecordingRelay(backendPort: backendPort)
            let yaml = """
                pools: [{name: runner, transport: http, endpoints: ["127.0.0.1:\(relay.port)"]}]
                routes: [{namespace: demo, pipeline: "*", pool: runner}]
                """
            try await withTestGateway(yaml: yaml) { gateway in
                let client = try await gateway.client()
                defer { Task { await client.close() } }
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                    headers: [("content-type", "application/json")], body: ByteBuffer(string: body))
                #expect(response.status == 200, "\(response.bodyString)")
                // The runner's outputs are the variables it decoded from the gateway's request.
                let expectedOutputs = runnerData.dropFirst(#""data":["#.count).dropLast(2)
                    .replacingOccurrences(of: #","secret":{}}"#, with: "")
                    .replacingOccurrences(of: #"{"variable":"#, with: "")
                #expect(response.bodyString == #"{"outputs":[\#(expectedOutputs)],"metadata":{}}"#)
            }
            await relay.close()
            let sent = relay.connections.map { String(decoding: $0, as: UTF8.self) }.joined()
            #expect(sent.contains(#""return_traces":false,"# + runnerData), "\(sent)")
        }
    }
}
