import DemoRunner
import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// `limits.max_json_members` (review 24 M2: one 12 MB body of 10^6 keys cost 3.2 s of CPU and +260 MB) at its
/// edge and one past it, over real sockets: curl on each REST surface, answered in that surface's error shape,
/// and grpcio, whose `Struct` fields count alike.
@Suite("JSON member cap: each surface at the edge and one past it")
struct JSONMemberLimitTests {
    static let cap = 1000
    static let capConfig = "limits: {max_json_members: \(cap)}\n"

    /// `{"k0":0,…}` with `keys` members.
    static func object(keys: Int) -> String {
        "{" + (0..<keys).map { "\"k\($0)\":0" }.joined(separator: ",") + "}"
    }

    /// curl's status and JSON answer for a POST of `body` to `path` (HTTP/1.1, or h2c with `http2`).
    static func post(
        _ path: String, port: Int, body: String, headers: [String] = [], http2: Bool = false
    ) async throws -> (status: Int, answer: [String: Any]) {
        let curl = try #require(TestProcess.which("curl"), "scripts/setup.sh --test installs curl")
        let output = try await TestProcess.run(
            curl,
            ["-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "content-type: application/json", "--data-binary", "@-"]
                + (http2 ? ["--http2-prior-knowledge"] : []) + headers.flatMap { ["-H", $0] }
                + ["http://127.0.0.1:\(port)\(path)"],
            stdin: Data(body.utf8)
        )
        #expect(output.status == 0, "\(output.stderr)")
        let text = output.stdoutString
        let cut = try #require(text.lastIndex(of: "\n"), "\(text) \(output.stderr)")
        let answer = try JSONSerialization.jsonObject(with: Data(text[..<cut].utf8)) as? [String: Any]
        return (Int(text[text.index(after: cut)...]) ?? 0, answer ?? [:])
    }

    @Test(
        "Instill REST: a trigger body of max_json_members members runs; one more is 400 INVALID_ARGUMENT (HTTP/1.1 and h2c)",
        arguments: [(997, false), (998, false), (997, true), (998, true)])
    func instillREST(keys: Int, http2: Bool) async throws {
        try await withTestGateway(yaml: Self.capConfig) { gateway in
            // data, [0], variable and the keys.
            let body = #"{"data":[{"variable":"# + Self.object(keys: keys) + "}]}"
            let (status, answer) = try await Self.post(
                "/v1beta/namespaces/demo/pipelines/echo/trigger", port: gateway.port, body: body, http2: http2)
            if keys + 3 <= Self.cap {
                #expect(status == 200, "\(answer)")
                let outputs = answer["outputs"] as? [[String: Any]]
                #expect(outputs?.first?.count == keys)
            } else {
                #expect(status == 400, "\(answer)")
                #expect(answer["code"] as? Int == 3, "\(answer)")
                #expect(
                    answer["message"] as? String
                        == "data[0].variable: more than the limit of 1000 object members and array elements in the body",
                    "\(answer)")
            }
        }
    }

    @Test(
        "Instill REST at the default cap: 100,000 members run, 100,001 are refused",
        arguments: [99_997, 99_998])
    func instillRESTDefault(elements: Int) async throws {
        try await withTestGateway { gateway in
            // data, [0], variable, v and the elements.
            let list = "[" + Array(repeating: "0", count: elements - 1).joined(separator: ",") + "]"
            let body = #"{"data":[{"variable":{"v":"# + list + "}}]}"
            let (status, answer) = try await Self.post(
                "/v1beta/namespaces/demo/pipelines/echo/trigger", port: gateway.port, body: body)
            if elements + 3 <= 100_000 {
                #expect(status == 200, "\(answer.keys)")
                let outputs = answer["outputs"] as? [[String: Any]]
                #expect((outputs?.first?["v"] as? [Any])?.count == elements - 1)
            } else {
                #expect(status == 400, "\(answer)")
                #expect(answer["code"] as? Int == 3, "\(answer)")
                #expect((answer["message"] as? String)?.contains("limit of 100000 object members") == true, "\(answer)")
            }
        }
    }

    /// The gateway's run request adds members of its own (the ids): the http demo-runner, which decodes it with
    /// the default limits, must not refuse a body the gateway accepted at the cap.
    @Test("Instill REST over an http runner: a body at the default cap runs")
    func atTheCapOverHTTPRunner() async throws {
        let runner = try await DemoHTTPServer.bind(
            host: "127.0.0.1", port: 0, runner: DemoPipelines(), group: MultiThreadedEventLoopGroup.singleton)
        let port = try #require(runner.localAddress?.port)
        let yaml = """
            pools: [{name: runner, transport: http, endpoints: ["127.0.0.1:\(port)"]}]
            routes: [{namespace: demo, pipeline: "*", pool: runner}]
            """
        do {
            try await withTestGateway(yaml: yaml) { gateway in
                // data, [0], variable, v and 99,996 elements: 100,000.
                let list = "[" + Array(repeating: "0", count: 99_996).joined(separator: ",") + "]"
                let (status, answer) = try await Self.post(
                    "/v1beta/namespaces/demo/pipelines/echo/trigger", port: gateway.port,
                    body: #"{"data":[{"variable":{"v":"# + list + "}}]}")
                #expect(status == 200, "\(answer)")
                let outputs = answer["outputs"] as? [[String: Any]]
                #expect((outputs?.first?["v"] as? [Any])?.count == 99_996)
            }
        } catch {
            try? await runner.close()
            throw error
        }
        try await runner.close()
    }

    @Test(
        "Craft REST: an endpoint body of max_json_members inputs is accepted; one more is 400 in Craft's shape",
        arguments: [1000, 1001])
    func craftREST(keys: Int) async throws {
        try await withTestGateway(yaml: Self.capConfig) { gateway in
            let (status, answer) = try await Self.post(
                "/endpoints/echo", port: gateway.port, body: Self.object(keys: keys),
                headers: ["authorization: EndpointToken t", "request-id: craft-wide"])
            if keys <= Self.cap {
                #expect(status / 100 == 2, "\(answer)")
                #expect(answer["execution_id"] as? String != nil, "\(answer)")
            } else {
                #expect(status == 400, "\(answer)")
                #expect(answer["name"] as? String == "INVALID_ARGUMENT", "\(answer)")
                #expect(
                    answer["message"] as? String
                        == "body: more than the limit of 1000 object members and array elements in the body",
                    "\(answer)")
                #expect(answer["request_id"] as? String == "craft-wide", "\(answer)")
                #expect(answer["code"] == nil, "no Instill error body on a Craft path: \(answer)")
            }
        }
    }

    @Test(
        "Abacus REST: a body of max_json_members members is read; one more is 400 InvalidParameterError",
        arguments: [998, 999])
    func abacusREST(elements: Int) async throws {
        try await withTestGateway(yaml: AbacusInteropTests.namedRoutes + "\n" + Self.capConfig) { gateway in
            // pipelineId, x and the elements.
            let list = "[" + Array(repeating: "0", count: elements).joined(separator: ",") + "]"
            let (status, answer) = try await Self.post(
                "/api/v0/listPipelineVersions", port: gateway.port, body: #"{"pipelineId":"echo","x":"# + list + "}",
                headers: ["request-id: abacus-wide"])
            if elements + 2 <= Self.cap {
                #expect(status == 200 && answer["success"] as? Bool == true, "\(answer)")
            } else {
                #expect(status == 400, "\(answer)")
                #expect(answer["success"] as? Bool == false, "\(answer)")
                #expect(answer["errorType"] as? String == "InvalidParameterError", "\(answer)")
                #expect((answer["error"] as? String)?.contains("limit of 1000 object members") == true, "\(answer)")
                #expect(answer["requestId"] as? String == "abacus-wide", "\(answer)")
            }
        }
    }

    @Test(
        "gRPC (grpcio): a Struct of max_json_members fields or list values runs; one more is INVALID_ARGUMENT",
        arguments: [("keys", 1000), ("keys", 1001), ("list", 1000), ("list", 1001)])
    func grpc(kind: String, members: Int) async throws {
        try await withTestGateway(yaml: Self.capConfig) { gateway in
            let answer = try await Peers.grpcio("wide", port: gateway.port, [kind, String(members)])
            if members <= Self.cap {
                #expect(answer["members"] as? Int == members, "\(answer)")
            } else {
                #expect(answer["code"] as? String == "INVALID_ARGUMENT", "\(answer)")
                #expect(
                    answer["details"] as? String
                        == "TriggerNamespacePipelineRequest: more than the limit of 1000 struct fields and list values in the message",
                    "\(answer)")
            }
        }
    }
}
