import DemoRunner
import Foundation
import GatewayTestSupport
import NIOCore
import OperationStore
import Synchronization
import Testing
import TriggerModel

/// The Abacus.AI surface's wire rules with a plain HTTP client (what the SDK tests cannot reach): the envelope
/// on every failure, GET and POST alike, the body cap, HTTP/2, and the configured namespace.
@Suite("Abacus.AI surface over raw HTTP")
struct AbacusRESTTests {
    private func post(_ client: TestHTTPClient, _ action: String, _ body: String, headers: [(String, String)] = [])
        async throws
        -> (status: Int, body: [String: Any])
    {
        let response = try await client.request(
            "POST",
            "/api/v0/\(action)",
            headers: [("content-type", "application/json")] + headers,
            body: ByteBuffer(string: body)
        )
        return (response.status, try json(response.body))
    }

    @Test(
        "failures are {success:false,error,errorType,requestId} with a fitting status; the request id matches the header"
    )
    func envelope() async throws {
        try await withTestGateway(yaml: AbacusInteropTests.namedRoutes) { gateway in
            let client = try await gateway.client()
            var response = try await client.request("POST", "/api/v0/runPipeline", body: ByteBuffer(string: "[1]"))
            var body = try json(response.body)
            #expect(response.status == 400)
            #expect(body["success"] as? Bool == false)
            #expect(body["errorType"] as? String == "InvalidParameterError", "\(body)")
            #expect(body["requestId"] as? String == response.header("request-id"))

            response = try await client.request("GET", "/api/v0/noSuchMethod")
            body = try json(response.body)
            #expect(response.status == 404)
            #expect(body["errorType"] as? String == "Generic404Error", "\(body)")

            var (status, answer) = try await post(client, "runPipeline", #"{"pipelineId": 12}"#)
            #expect(status == 400 && answer["errorType"] as? String == "InvalidParameterError", "\(answer)")
            (status, answer) = try await post(client, "runPipeline", #"{"pipelineVariableMappings": null}"#)
            #expect(status == 400 && answer["errorType"] as? String == "MissingParameterError", "\(answer)")
            (status, answer) = try await post(client, "listPipelineVersions", #"{"pipelineId": "echo", "limit": -1}"#)
            #expect(status == 400 && answer["errorType"] as? String == "InvalidParameterError", "\(answer)")
            (status, answer) = try await post(client, "describePipeline", #"{"pipelineId": "nope"}"#)
            #expect(status == 404 && answer["errorType"] as? String == "DataNotFoundError", "\(answer)")
            await client.close()
        }
    }

    @Test(
        "a method an action does not take: 405 in the envelope, Allow listing exactly the methods it takes",
        arguments: [
            ("OPTIONS", "runPipeline", "POST"), ("GET", "runPipeline", "POST"),
            ("PUT", "version", "GET, HEAD, POST"), ("DELETE", "describePipeline", "GET, HEAD, POST"),
        ])
    func methodNotAllowed(method: String, action: String, allow: String) async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(method, "/api/v0/\(action)")
            #expect(response.status == 405)
            #expect(response.header("allow") == allow, "schemathesis found Allow: GET on runPipeline once")
            let body = try json(response.body)
            #expect(body["success"] as? Bool == false && body["errorType"] as? String == "MethodNotAllowed", "\(body)")
        }
    }

    @Test(
        "an /api/v0/ method the gateway does not serve is 404 \"does not serve\" whatever the HTTP method (no 405)",
        arguments: ["DELETE", "POST", "GET", "PUT"])
    func unservedMethodAnyVerb(method: String) async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(method, "/api/v0/deletePipeline?pipelineId=echo")
            #expect(response.status == 404, "\(response.bodyString)")
            #expect(response.header("allow") == nil)
            let body = try json(response.body)
            #expect(body["success"] as? Bool == false, "\(body)")
            #expect(
                (body["error"] as? String)?.contains("does not serve the Abacus.AI API method \"deletePipeline\"")
                    == true, "\(body)")
            // The connection is still usable afterwards.
            #expect(try await client.request("GET", "/api/v0/version").status == 200)
        }
    }

    @Test("reads take GET with a query string as well as POST with JSON; runPipeline is POST only; HEAD has no body")
    func getAndPost() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            // GET and HEAD are safe methods: they never start a run (405, Allow: POST, nothing stored).
            for method in ["GET", "HEAD"] {
                let refused = try await client.request(method, "/api/v0/runPipeline?pipelineId=echo")
                #expect(refused.status == 405 && refused.header("allow") == "POST", "\(method) \(refused.bodyString)")
            }
            let stored = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(stored.operations.isEmpty)
            let mappings = #"[{"name":"w","variableType":"STRING","value":"q"}]"#
            let query = mappings.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            // POST with the parameters in the query string (the client's `query_params`) and no body.
            var response = try await client.request(
                "POST",
                "/api/v0/runPipeline?pipelineId=echo&pipelineVariableMappings=\(query)"
            )
            let started = try json(response.body)
            #expect(started["success"] as? Bool == true, "\(started)")
            let id = try #require((started["result"] as? [String: Any])?["pipelineVersion"] as? String)
            let mapped = (started["result"] as? [String: Any])?["pipelineVariableMappings"] as? [[String: Any]]
            #expect(mapped?.first?["value"] as? String == "q", "\(started)")
            var (_, answer) = try await post(client, "describePipelineVersion", #"{"pipelineVersion":"\#(id)"}"#)
            #expect((answer["result"] as? [String: Any])?["pipelineVersion"] as? String == id, "\(answer)")
            (_, answer) = try await post(client, "describePipelineStepVersion", #"{"pipelineStepVersion":"\#(id)"}"#)
            #expect((answer["result"] as? [String: Any])?["pipelineVersion"] as? String == id, "\(answer)")
            response = try await client.request("GET", "/api/v0/listPipelineVersions?pipelineId=echo&limit=5")
            #expect(((try json(response.body))["result"] as? [[String: Any]])?.count == 1, "\(response.bodyString)")
            // Idempotency-Key: the same key and mappings give the same version; other mappings are a conflict.
            let keyed = [("idempotency-key", "k1")]
            let run = #"{"pipelineId":"echo","pipelineVariableMappings":[{"name":"a","value":1}]}"#
            let (_, first) = try await post(client, "runPipeline", run, headers: keyed)
            let (_, again) = try await post(client, "runPipeline", run, headers: keyed)
            let firstID = (first["result"] as? [String: Any])?["pipelineVersion"] as? String
            #expect(firstID != nil && firstID == (again["result"] as? [String: Any])?["pipelineVersion"] as? String)
            let (conflict, other) = try await post(
                client,
                "runPipeline",
                #"{"pipelineId":"echo","pipelineVariableMappings":[{"name":"a","value":2}]}"#,
                headers: keyed
            )
            #expect(conflict == 409 && other["errorType"] as? String == "ConflictError", "\(other)")
            response = try await client.request("HEAD", "/api/v0/version")
            #expect(response.status == 200 && response.body.readableBytes == 0)
            #expect(response.header("content-length") == String(#"{"success":true,"result":"1.4.119"}"#.utf8.count))
            await client.close()
        }
    }

    @Test("getApiEndpoint names the gateway as the client reached it: Host on HTTP/1.1, :authority on h2c")
    func apiEndpoint() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "GET",
                "/api/v0/getApiEndpoint",
                headers: [("host", "gw.example:8443")]
            )
            let result = try json(response.body)["result"] as? [String: Any]
            #expect(result?["apiEndpoint"] as? String == "http://gw.example:8443", "\(response.bodyString)")
            #expect(result?["predictEndpoint"] as? String == "http://gw.example:8443")
            await client.close()

            // HTTP/1.0 may omit Host: then the gateway cannot name its URL, and says so in the envelope.
            let reply = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [Array("GET /api/v0/getApiEndpoint HTTP/1.0\r\n\r\n".utf8)]
            )
            let text = String(decoding: reply, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.0 400") || text.hasPrefix("HTTP/1.1 400"), "\(text)")
            #expect(text.contains(#""errorType":"InvalidRequest""#), "\(text)")
            // An empty Host (RFC 9112 §3.2: the target has no authority) names no URL either: it answered
            // `http://`, which the client then called for everything (protocol review 58, L6).
            let empty = String(
                decoding: try await RawTCPClient.exchange(
                    port: gateway.port,
                    sending: [Array("GET /api/v0/getApiEndpoint HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n".utf8)]),
                as: UTF8.self)
            #expect(empty.hasPrefix("HTTP/1.1 400") && empty.contains("an empty one"), "\(empty)")

            // An absolute-form target (RFC 9112 §3.2.2, as a client configured with the gateway as its HTTP proxy
            // sends): its authority, not Host, names the gateway; with HTTP/1.0 and no Host at all, too.
            for (version, host) in [("1.1", "host: ignored.example\r\n"), ("1.0", "")] {
                let absolute = try await RawTCPClient.exchange(
                    port: gateway.port,
                    sending: [
                        Array(
                            "GET http://proxied.example:9000/api/v0/getApiEndpoint HTTP/\(version)\r\n\(host)\r\n".utf8)
                    ])
                let answer = String(decoding: absolute, as: UTF8.self)
                #expect(answer.contains(" 200 OK"), "\(answer)")
                let body = answer.split(separator: "\r\n\r\n", maxSplits: 1).last.map(String.init) ?? ""
                let result = try json(ByteBuffer(string: body))["result"] as? [String: Any]
                #expect(result?["apiEndpoint"] as? String == "http://proxied.example:9000", "\(answer)")
            }

            let out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http2-prior-knowledge", "http://127.0.0.1:\(gateway.port)/api/v0/getApiEndpoint",
                ]
            )
            let h2 = try json(ByteBuffer(bytes: out.stdout))["result"] as? [String: Any]
            #expect(
                h2?["apiEndpoint"] as? String == "http://127.0.0.1:\(gateway.port)",
                "\(out.stdoutString) \(out.stderr)"
            )
        }
    }

    @Test(
        "a body at the cap is read; one byte over is 413 and nothing is stored",
        arguments: [(4096, 200), (4097, 413)]
    )
    func bodyCap(size: Int, status: Int) async throws {
        try await withTestGateway(yaml: "limits:\n  max_body_bytes: 4096\n") { gateway in
            let prefix =
                #"{"pipelineId":"echo","pipelineVariableMappings":[{"name":"pad","variableType":"STRING","value":""#
            let suffix = #""}]}"#
            let body = prefix + String(repeating: "x", count: size - prefix.utf8.count - suffix.utf8.count) + suffix
            let client = try await gateway.client()
            let response = try await client.request("POST", "/api/v0/runPipeline", body: ByteBuffer(string: body))
            #expect(response.status == status, "\(response.bodyString)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.count == (status == 200 ? 1 : 0))
            await client.close()
        }
    }

    @Test("abacus.namespace chooses the namespace pipelineIds name; other namespaces' versions are not found")
    func configuredNamespace() async throws {
        let yaml = """
            pools:
              - {name: demo, transport: inprocess}
            routes:
              - {namespace: prod, pipeline: "*", pool: demo}
              - {namespace: demo, pipeline: "*", pool: demo}
            abacus:
              namespace: prod
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let (status, answer) = try await post(client, "runPipeline", #"{"pipelineId":"upper"}"#)
            #expect(status == 200, "\(answer)")
            let id = try #require((answer["result"] as? [String: Any])?["pipelineVersion"] as? String)
            #expect(try await gateway.store.get(id: id)?.ref.namespace == "prod")

            // A run of namespace demo (through the Instill surface) is no pipeline version of this surface.
            let instill = try await client.request(
                "POST",
                "/v1beta/namespaces/demo/pipelines/echo/trigger-async",
                headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#)
            )
            let name = try #require((try json(instill.body)["operation"] as? [String: Any])?["name"] as? String)
            let (missing, body) = try await post(
                client,
                "describePipelineVersion",
                #"{"pipelineVersion":"\#(name.dropFirst("operations/".count))"}"#
            )
            #expect(missing == 404 && body["errorType"] as? String == "DataNotFoundError", "\(body)")

            // A reload (SIGHUP) moves the surface to the new namespace for the requests that follow.
            let reloaded = yaml.replacingOccurrences(
                of: "abacus:\n  namespace: prod",
                with: "abacus:\n  namespace: demo"
            )
            try #require(reloaded != yaml)
            try gateway.reload(yaml: reloaded)
            let (_, moved) = try await post(client, "runPipeline", #"{"pipelineId":"upper"}"#)
            let movedID = try #require((moved["result"] as? [String: Any])?["pipelineVersion"] as? String, "\(moved)")
            #expect(try await gateway.store.get(id: movedID)?.ref.namespace == "demo")
            await client.close()
        }
    }

    @Test("while the store cannot take writes, runPipeline is NotReadyError 503 with Retry-After; then runs again")
    func storeDown() async throws {
        try await WriteFailingStore.withGateway { gateway, store in
            let client = try await gateway.client()
            store.failing.withLock { $0 = true }
            let down = try await ReadinessTests.waitForStatus(503, "/readyz?component=async", port: gateway.port)
            #expect(down != nil, "async readiness never went down")
            let refused = try await client.request(
                "POST",
                "/api/v0/runPipeline",
                body: ByteBuffer(string: #"{"pipelineId":"echo"}"#)
            )
            #expect(refused.status == 503 && refused.header("retry-after") == "1", "\(refused.bodyString)")
            #expect(try json(refused.body)["errorType"] as? String == "NotReadyError", "\(refused.bodyString)")
            store.failing.withLock { $0 = false }
            #expect(try await ReadinessTests.waitForStatus(200, "/readyz?component=async", port: gateway.port) != nil)
            let (status, answer) = try await post(client, "runPipeline", #"{"pipelineId":"echo"}"#)
            #expect(status == 200, "\(answer)")
            await client.close()
        }
    }

    /// curl's answer to `arguments` (PORT replaced by the gateway's), with the body sent on stdin when given:
    /// the status and the body parsed as JSON.
    private static func curl(_ arguments: [String], port: Int, stdin: Data? = nil) async throws
        -> (status: Int, body: [String: Any])
    {
        let curl = try #require(TestProcess.which("curl"))
        let output = try await TestProcess.run(
            curl,
            ["-sS", "-o", "-", "-w", "\n%{http_code}"]
                + arguments.map { $0.replacingOccurrences(of: "PORT", with: String(port)) },
            stdin: stdin
        )
        #expect(output.status == 0, "\(output.stderr)")
        let text = output.stdoutString
        let cut = text.lastIndex(of: "\n") ?? text.startIndex
        let body = try JSONSerialization.jsonObject(with: Data(text[..<cut].utf8)) as? [String: Any]
        return (Int(text[text.index(after: cut)...]) ?? 0, body ?? [:])
    }

    @Test(
        "a head the decoder refuses (two Content-Lengths, Content-Length with Transfer-Encoding) is answered in the envelope on /api/v0/ and in Craft's shape on /api/v1/ (protocol review 58, L5)",
        arguments: ["content-length: 2\r\ncontent-length: 3", "content-length: 2\r\ntransfer-encoding: chunked"])
    func decoderRefusalsInSurfaceShape(fields: String) async throws {
        try await withTestGateway { gateway in
            for path in ["/api/v0/runPipeline", "/api/v1/pipelines/echo/run"] {
                let request = "POST \(path) HTTP/1.1\r\nhost: gw\r\n\(fields)\r\n\r\n{}"
                let reply = String(
                    decoding: try await RawTCPClient.exchange(port: gateway.port, sending: [Array(request.utf8)]),
                    as: UTF8.self)
                #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply)")
                if path.hasPrefix("/api/v0/") {
                    #expect(reply.contains(#""success":false"#) && reply.contains(#""errorType":"#), "\(reply)")
                } else {
                    #expect(reply.contains(#""name":"#) && reply.contains(#""request_id":"#), "\(reply)")
                }
            }
        }
    }

    @Test(
        "the frontend's own refusals on /api/v0/ are the envelope too: no Host, a body over the cap (declared or streamed; HTTP/1.1 and h2c), headers over the cap",
        arguments: [
            ("no Host", ["-H", "Host:", "http://127.0.0.1:PORT/api/v0/getApiEndpoint"], 400, "InvalidParameterError"),
            (
                "declared", ["--data-binary", "@-", "http://127.0.0.1:PORT/api/v0/runPipeline"], 413,
                "InvalidParameterError"
            ),
            (
                "chunked", ["-X", "POST", "-T", "-", "http://127.0.0.1:PORT/api/v0/runPipeline"], 413,
                "InvalidParameterError"
            ),
            (
                "h2c declared",
                ["--http2-prior-knowledge", "--data-binary", "@-", "http://127.0.0.1:PORT/api/v0/runPipeline"],
                413, "InvalidParameterError"
            ),
            (
                "h2c streamed",
                ["--http2-prior-knowledge", "-X", "POST", "-T", "-", "http://127.0.0.1:PORT/api/v0/runPipeline"],
                413, "InvalidParameterError"
            ),
            (
                "headers",
                ["-H", "x-pad: \(String(repeating: "p", count: 9000))", "http://127.0.0.1:PORT/api/v0/version"],
                431, "InvalidRequest"
            ),
        ] as [(String, [String], Int, String)])
    func frontendRefusalsInEnvelope(name: String, arguments: [String], status: Int, errorType: String) async throws {
        try await withTestGateway(yaml: "limits: {max_body_bytes: 4096, max_header_bytes: 8192}\n") { gateway in
            let pad = String(repeating: "x", count: 5000)
            let body = #"{"pipelineId":"echo","pipelineVariableMappings":[{"name":"p","value":"\#(pad)"}]}"#
            let requestID = "envelope-\(name.replacingOccurrences(of: " ", with: "-"))"
            let (answered, envelope) = try await Self.curl(
                ["-H", "content-type: application/json", "-H", "request-id: \(requestID)"] + arguments,
                port: gateway.port,
                stdin: Data(body.utf8)
            )
            #expect(answered == status, "\(name): \(envelope)")
            #expect(envelope["success"] as? Bool == false, "\(name): \(envelope)")
            #expect(envelope["errorType"] as? String == errorType, "\(name): \(envelope)")
            #expect((envelope["error"] as? String)?.isEmpty == false, "\(name): \(envelope)")
            #expect(envelope["requestId"] as? String == requestID, "\(name): \(envelope)")
            #expect(envelope["code"] == nil, "no Instill error body on /api/v0/: \(envelope)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.isEmpty)
        }
    }

    @Test(
        "on a wildcard route (demo/*) a pipelineId the runner lacks is DataNotFoundError 404 (its Describe says so), for runs and reads; nothing is stored"
    )
    func unknownPipelineOnWildcardRoute() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            for (action, body) in [
                ("runPipeline", #"{"pipelineId":"nope","pipelineVariableMappings":[]}"#),
                ("describePipeline", #"{"pipelineId":"nope2"}"#),
                ("listPipelineVersions", #"{"pipelineId":"nope3","limit":5}"#),
            ] {
                let (status, answer) = try await post(client, action, body)
                #expect(status == 404, "\(action): \(answer)")
                #expect(answer["success"] as? Bool == false && answer["errorType"] as? String == "DataNotFoundError")
                #expect((answer["error"] as? String)?.contains("nope") == true, "\(answer)")
            }
            let response = try await client.request("GET", "/api/v0/describePipeline?pipelineId=nope4")
            #expect(response.status == 404, "\(response.bodyString)")
            var page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.isEmpty, "\(page.operations.map(\.ref))")
            // A pipeline the runner has still runs.
            let (status, answer) = try await post(client, "runPipeline", #"{"pipelineId":"echo"}"#)
            #expect(status == 200, "\(answer)")
            page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.map(\.ref.pipeline) == ["echo"])
            await client.close()
        }
    }

    /// The demo pipelines, counting the `Describe` calls that reach the runner.
    final class CountingDescriber: TriggerRunner, PipelineDescribing {
        let pipelines = DemoPipelines()
        let describes = Atomic<Int>(0)

        func run(_ request: TriggerRequest) async throws -> TriggerResult { try await pipelines.run(request) }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            pipelines.runStreaming(request)
        }

        func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
            describes.add(1, ordering: .sequentiallyConsistent)
            return try await pipelines.describePipeline(ref)
        }
    }

    @Test(
        "one Describe over the grpc hop serves a burst of Abacus.AI, Craft AI and Instill calls (one cache for all surfaces)"
    )
    func describeCachedAcrossSurfaces() async throws {
        let runner = CountingDescriber()
        try await withGatewayOverBackend(runner, transport: "grpc") { gateway in
            let client = try await gateway.client()
            for _ in 0..<3 {
                let (status, answer) = try await post(client, "describePipeline", #"{"pipelineId":"echo"}"#)
                #expect(status == 200, "\(answer)")
            }
            let (status, answer) = try await post(client, "runPipeline", #"{"pipelineId":"echo"}"#)
            #expect(status == 200, "\(answer)")
            let refresh = try await client.request(
                "POST", "/api/v1/auth/refresh", headers: [("content-type", "application/json")],
                body: ByteBuffer(string: #"{"refresh_token":"any"}"#))
            let token = try #require(try json(refresh.body)["access_token"] as? String)
            for _ in 0..<2 {
                let response = try await client.request(
                    "GET", "/api/v1/pipelines/echo", headers: [("authorization", "Bearer \(token)")])
                #expect(response.status == 200, "\(response.bodyString)")
            }
            let instill = try await client.request("GET", "/v1beta/namespaces/demo/pipelines/echo")
            #expect(instill.status == 200, "\(instill.bodyString)")
            #expect(runner.describes.load(ordering: .sequentiallyConsistent) == 1)
            // Another pipeline is its own Describe; an unknown one is asked each time (failures are not kept).
            _ = try await post(client, "describePipeline", #"{"pipelineId":"upper"}"#)
            for _ in 0..<2 {
                let (status, _) = try await post(client, "describePipeline", #"{"pipelineId":"nope"}"#)
                #expect(status == 404)
            }
            #expect(runner.describes.load(ordering: .sequentiallyConsistent) == 4)
            await client.close()
        }
    }

    @Test("a runner that cannot be asked (its pool is down) refuses nothing: the run is stored, as async triggers are")
    func runnerDownStillAccepts() async throws {
        let yaml = """
            pools:
              - {name: away, transport: grpc, endpoints: ["127.0.0.1:1"]}
            routes:
              - {namespace: demo, pipeline: "*", pool: away}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            let (status, answer) = try await post(client, "runPipeline", #"{"pipelineId":"anything"}"#)
            #expect(status == 200, "\(answer)")
            let id = try #require((answer["result"] as? [String: Any])?["pipelineVersion"] as? String, "\(answer)")
            #expect(try await gateway.store.get(id: id)?.ref.pipeline == "anything")
            await client.close()
        }
    }
}
