import Foundation
import GatewayTestSupport
import NIOCore
import Testing

@Suite("REST sync triggers over HTTP/1.1 to the in-process demo runner")
struct RESTSyncTests {
    static let kinds = ["namespaces", "namespace", "users", "organizations"]

    @Test("every {ns-kind} alias, with and without a release, runs the pipeline", arguments: kinds)
    func aliases(kind: String) async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            for path in [
                "/v1beta/\(kind)/demo/pipelines/upper/trigger",
                "/v1beta/\(kind)/demo/pipelines/upper/releases/v2/trigger",
            ] {
                let response = try await client.request(
                    "POST", path, headers: jsonHeaders,
                    body: try jsonBody(["data": [["variable": ["prompt": "hello"]]]])
                )
                #expect(response.status == 200, "\(path): \(response.bodyString)")
                #expect(try outputs(response.body).first?["prompt"] as? String == "HELLO")
                #expect(response.header("request-id")?.isEmpty == false)
            }
            await client.close()
        }
    }

    @Test("echo returns each batch item's variables unchanged, in order, through one keep-alive connection")
    func echoBatchKeepAlive() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            for round in 0..<3 {
                let body = ByteBuffer(
                    string:
                        #"{"data":[{"variable":{"b":2,"a":[1,"x",null,true],"n":{"k":1.5}}},{"variable":{"i":\#(round)}}]}"#
                )
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders, body: body)
                #expect(response.status == 200)
                // Key order is kept: the raw text shows it, which a dictionary compare would not.
                #expect(
                    response.bodyString.contains(#"{"b":2,"a":[1,"x",null,true],"n":{"k":1.5}}"#),
                    "\(response.bodyString)")
                let outs = try outputs(response.body)
                #expect(outs.count == 2)
                #expect(outs[1]["i"] as? Int == round)
            }
            #expect(client.isActive)
            await client.close()
        }
    }

    @Test("legacy inputs bodies are accepted, and data wins when both are present")
    func legacyInputs() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            var response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"inputs":[{"x":"legacy"}]}"#)
            )
            #expect(try outputs(response.body).first?["x"] as? String == "legacy")
            response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"inputs":[{"x":"legacy"}],"data":[{"variable":{"x":"data"}}]}"#)
            )
            #expect(try outputs(response.body).first?["x"] as? String == "data")
            await client.close()
        }
    }

    @Test("a data URI string is a binary: blob-info sees its bytes, echo returns it as a data URI")
    func dataURIBlob() async throws {
        try await withTestGateway { gateway in
            let bytes = randomBytes(10_000)
            let uri = "data:image/png;base64," + Data(bytes).base64EncodedString()
            let client = try await gateway.client()
            var response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/blob-info/trigger", headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["img": uri]]]])
            )
            #expect(response.status == 200, "\(response.bodyString)")
            let info = try outputs(response.body).first?["img"] as? [String: Any]
            #expect(info?["size"] as? Int == 10_000)
            #expect(info?["sha256"] as? String == (try sha256Hex(bytes)))
            #expect(info?["content_type"] as? String == "image/png")

            response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                body: try jsonBody(["data": [["variable": ["img": uri]]]])
            )
            #expect(try outputs(response.body).first?["img"] as? String == uri)
            await client.close()
        }
    }

    @Test(
        "a data URI whose media type is not type/subtype is a 400, small or large (fast path), JSON and multipart alike"
    )
    func dataURIBadMediaType() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            for payload in ["AAAA", String(repeating: "A", count: 100_000)] {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                    body: try jsonBody(["data": [["variable": ["img": "data:???;base64," + payload]]]])
                )
                #expect(response.status == 400, "\(response.bodyString.prefix(300))")
                #expect(response.bodyString.contains(#"invalid data URI: media type \"???\" is not type/subtype"#))
            }
            var form = MultipartBody()
            form.field("variables[0].img", "data:???;base64,AAAA")
            let multipart = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: [("content-type", form.contentType)], body: form.finished())
            #expect(multipart.status == 400, "\(multipart.bodyString)")
            #expect(multipart.bodyString.contains("variables[0].img: invalid data URI: media type"))
            await client.close()
        }
    }

    @Test("unknown pipeline, unknown route, unknown path: 404 with a JSON error naming it")
    func notFound() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            for path in [
                "/v1beta/namespaces/demo/pipelines/nope/trigger",
                "/v1beta/namespaces/elsewhere/pipelines/echo/trigger",
                "/v1beta/namespaces/demo/pipelines/echo/frobnicate",
                "/nothing-here",
            ] {
                let response = try await client.request(
                    "POST", path, headers: jsonHeaders, body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#))
                #expect(response.status == 404, "\(path)")
                let error = try json(response.body)
                #expect(error["code"] as? Int == 5)
                #expect((error["message"] as? String)?.isEmpty == false)
            }
            await client.close()
        }
    }

    @Test("wrong method is 405 with Allow; unsupported content type is 415")
    func methodAndContentType() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            var response = try await client.request("GET", "/v1beta/namespaces/demo/pipelines/echo/trigger")
            #expect(response.status == 405)
            #expect(response.header("allow") == "POST")
            response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: [("content-type", "text/xml")], body: ByteBuffer(string: "<a/>")
            )
            #expect(response.status == 415)
            #expect(try json(response.body)["message"] as? String != nil)
            // The connection is still usable after both errors.
            response = try await client.request("GET", "/v1beta/__liveness")
            #expect(response.status == 200)
            await client.close()
        }
    }

    @Test("a pipeline's failure comes back as a JSON error with its own code and message")
    func failPipeline() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/fail/trigger", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{"message":"boom at step 3"}}]}"#)
            )
            #expect(response.status == 500)
            #expect(try json(response.body)["code"] as? Int == 13)
            #expect(try json(response.body)["message"] as? String == "boom at step 3")
            await client.close()
        }
    }

    @Test("health endpoints answer on every path")
    func health() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            for path in ["/v1beta/__liveness", "/v1beta/__readiness", "/healthz", "/readyz"] {
                let response = try await client.request("GET", path)
                #expect(response.status == 200, "\(path)")
            }
            await client.close()
        }
    }

    @Test("Request-Id is echoed when sent")
    func requestIDEcho() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: jsonHeaders + [("request-id", "abc-123")],
                body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#)
            )
            #expect(response.header("request-id") == "abc-123")
            await client.close()
        }
    }

    @Test("Request-Id: 200 bytes are echoed, 201 bytes or a space are replaced by one of the gateway's")
    func requestIDLimit() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let edge = String(repeating: "r", count: 200)
            for (sent, kept) in [(edge, true), (edge + "r", false), ("sp ace", false)] {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                    headers: jsonHeaders + [("request-id", sent)],
                    body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#)
                )
                #expect(response.status == 200)
                let echoed = try #require(response.header("request-id"))
                if kept {
                    #expect(echoed == sent)
                } else {
                    #expect(echoed.count == 32 && echoed.allSatisfy(\.isHexDigit), "\(echoed.prefix(80))")
                }
            }
            await client.close()
        }
    }

    @Test("/metrics answers carry request-id like every other answer (the probes' too)")
    func requestIDOnMetrics() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            for path in ["/metrics", "/healthz", "/readyz"] {
                let response = try await client.request("GET", path, headers: [("request-id", "scrape-1")])
                #expect(response.status == 200, "\(path)")
                #expect(response.header("request-id") == "scrape-1", "\(path)")
            }
            await client.close()
        }
    }
}
