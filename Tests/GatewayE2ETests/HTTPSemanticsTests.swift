import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// HTTP semantics peers get right (issue 10, items 5–9): HEAD, percent-decoded paths, `Accept`, the HTTP/1.1
/// message rules, curl's default `-d` content type and `WWW-Authenticate`. On the wire: raw sockets where a
/// well-behaved client would not send the request, curl where it would.
@Suite("HTTP semantics on both HTTP versions")
struct HTTPSemanticsTests {
    static let trigger = "/v1beta/namespaces/demo/pipelines/echo/trigger"
    static let body = #"{"data":[{"variable":{"k":"v"}}]}"#

    /// One response parsed from raw HTTP/1.1 bytes: status, lowercased headers, and where it ends.
    struct RawResponse {
        var status: Int
        var headers: [String: String]
        var body: String
        /// Whether all the bytes its content-length announced have arrived.
        var isComplete: Bool
    }

    /// Splits a byte stream of keep-alive responses using each one's content-length (as a client would).
    /// `bodiless` lists which responses answer a HEAD (their content-length describes no bytes).
    static func responses(_ bytes: [UInt8], bodiless: Set<Int> = []) -> [RawResponse] {
        var text = Substring(String(decoding: bytes, as: UTF8.self))
        var out: [RawResponse] = []
        while let end = text.range(of: "\r\n\r\n") {
            let lines = text[..<end.lowerBound].split(separator: "\r\n")
            guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1.1 ") else { break }
            let status = Int(statusLine.dropFirst(9).prefix(3)) ?? 0
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                    in: .whitespaces)
            }
            let length = bodiless.contains(out.count) ? 0 : Int(headers["content-length"] ?? "0") ?? 0
            let bodyStart = end.upperBound
            let announcedEnd = text.utf8.index(bodyStart, offsetBy: length, limitedBy: text.endIndex)
            let bodyEnd = announcedEnd ?? text.endIndex
            out.append(
                RawResponse(
                    status: status, headers: headers, body: String(text[bodyStart..<bodyEnd]),
                    isComplete: announcedEnd != nil))
            text = text[bodyEnd...]
        }
        return out
    }

    static func request(_ method: String, _ target: String, headers: [String] = ["host: x"], body: String = "")
        -> String
    {
        var lines = ["\(method) \(target) HTTP/1.1"] + headers
        if !body.isEmpty { lines.append("content-length: \(body.utf8.count)") }
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    // MARK: 5. HEAD

    @Test(
        "h1HeadWhereGetIsServed: HEAD answers GET's headers with no body, and the next response on the connection is intact",
        arguments: [
            "/healthz", "/readyz", "/v1beta/__liveness", "/metrics", "/v1beta/operations", "/v1beta/operations/nope",
        ])
    func h1Head(path: String) async throws {
        try await withTestGateway { gateway in
            let bytes = Array(
                (Self.request("HEAD", path) + Self.request("GET", path, headers: ["host: x", "connection: close"])).utf8
            )
            let reply = try await RawTCPClient.exchange(port: gateway.port, sending: [bytes])
            let answers = Self.responses(reply, bodiless: [0])
            try #require(answers.count == 2, "\(String(decoding: reply, as: UTF8.self))")
            let (head, get) = (answers[0], answers[1])
            #expect(head.status == get.status)
            #expect(head.headers["content-type"] == get.headers["content-type"])
            if path == "/metrics" {
                // The HEAD itself is counted by the time the GET renders (new series): the length GET would have
                // had at the HEAD's moment, not the same as the next one's.
                #expect((head.headers["content-length"].flatMap { Int($0) } ?? 0) > 0, "\(answers)")
            } else {
                #expect(head.headers["content-length"] == String(get.body.utf8.count), "\(answers)")
            }
            #expect(get.body.utf8.count > 0)
        }
    }

    @Test(
        "a 405 keeps its Allow header, also for HEAD (which gets no body); Allow lists HEAD where GET is allowed",
        arguments: [
            ("HEAD", HTTPSemanticsTests.trigger, "POST"), ("GET", HTTPSemanticsTests.trigger, "POST"),
            ("POST", "/healthz", "GET, HEAD"), ("DELETE", "/v1beta/operations/x", "GET, HEAD"),
        ])
    func methodNotAllowed(method: String, path: String, allow: String) async throws {
        try await withTestGateway { gateway in
            let bytes = Array(
                (Self.request(method, path)
                    + Self.request("GET", "/healthz", headers: ["host: x", "connection: close"])).utf8)
            let reply = try await RawTCPClient.exchange(port: gateway.port, sending: [bytes])
            let answers = Self.responses(reply, bodiless: method == "HEAD" ? [0] : [])
            try #require(answers.count == 2, "\(String(decoding: reply, as: UTF8.self))")
            #expect(answers[0].status == 405)
            #expect(answers[0].headers["allow"] == allow)
            #expect(answers[1].status == 200, "the next response must not be corrupted: \(answers)")
        }
    }

    @Test(
        "a method RFC 9110 does not define is 405 with Allow, as OpenAPI tooling expects, naming the method cut to 40 bytes (protocol review 58, L7)",
        arguments: ["FOO", String(repeating: "M", count: 1000)])
    func unrecognizedMethod(method: String) async throws {
        try await withTestGateway { gateway in
            let bytes = Array(
                (Self.request(method, Self.trigger)
                    + Self.request("GET", "/healthz", headers: ["host: x", "connection: close"])).utf8)
            let reply = try await RawTCPClient.exchange(port: gateway.port, sending: [bytes])
            let answers = Self.responses(reply, bodiless: [])
            try #require(answers.count == 2, "\(String(decoding: reply, as: UTF8.self).prefix(400))")
            #expect(answers[0].status == 405)
            #expect(answers[0].headers["allow"] == "POST")
            let text = String(decoding: reply, as: UTF8.self)
            #expect(text.contains("\"\(method.prefix(40)) is not allowed on"), "\(text.prefix(600))")
            #expect(
                !text.contains(String(method.prefix(41))) || method.count <= 40, "echoed whole: \(text.prefix(600))")
            #expect(answers[1].status == 200, "the next response must not be corrupted: \(answers)")
        }
    }

    @Test("h2HeadWhereGetIsServed: curl -I over h2c gets 200 and the GET body's content-length, no reset")
    func h2Head() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway { gateway in
            for path in ["/healthz", "/v1beta/operations"] {
                let url = "http://127.0.0.1:\(gateway.port)\(path)"
                let head = try await TestProcess.run(curl, ["-sS", "--http2-prior-knowledge", "-I", url])
                #expect(head.status == 0, "\(head.stderr)")
                #expect(head.stdoutString.hasPrefix("HTTP/2 200"), "\(head.stdoutString)")
                let get = try await TestProcess.run(curl, ["-sS", "--http2-prior-knowledge", url])
                #expect(
                    head.stdoutString.lowercased().contains("content-length: \(get.stdout.count)"),
                    "\(head.stdoutString)")
            }
        }
    }

    @Test("HEAD on the SSE routes (RFC 9110 §9.3.2): headers, no body, never an event stream; both HTTP versions")
    func headOnStreamRoutes() async throws {
        let curl = try #require(TestProcess.which("curl"))
        let stream = "/v1beta/namespaces/demo/pipelines/echo/trigger-stream"
        try await withTestGateway { gateway in
            for path in [stream, Self.trigger] {
                let bytes = Array(
                    (Self.request("HEAD", path, headers: ["host: x", "accept: text/event-stream"])
                        + Self.request("GET", "/healthz", headers: ["host: x", "connection: close"])).utf8)
                let reply = try await RawTCPClient.exchange(port: gateway.port, sending: [bytes])
                let answers = Self.responses(reply, bodiless: [0])
                try #require(answers.count == 2, "\(String(decoding: reply, as: UTF8.self))")
                #expect(answers[0].status == 405, "\(answers[0])")
                #expect(answers[0].headers["content-type"] != "text/event-stream", "\(answers[0])")
                #expect(answers[0].headers["transfer-encoding"] == nil, "a HEAD answer is no stream: \(answers[0])")
                #expect(answers[1].status == 200, "no body between the two answers: \(answers)")
                let h2 = try await TestProcess.run(
                    curl,
                    [
                        "-sS", "--http2-prior-knowledge", "-I", "-H", "accept: text/event-stream", "--max-time", "5",
                        "http://127.0.0.1:\(gateway.port)\(path)",
                    ])
                #expect(h2.status == 0, "\(h2.stderr)")
                #expect(h2.stdoutString.hasPrefix("HTTP/2 405"), "\(h2.stdoutString)")
                #expect(!h2.stdoutString.contains("text/event-stream"), "\(h2.stdoutString)")
            }
        }
    }

    @Test("request-line edges: a bare LF is a 400 naming it; absolute-form routes; OPTIONS * and CONNECT get 501")
    func requestLineEdges() async throws {
        try await withTestGateway { gateway in
            // A request line ended by a bare LF: refused (RFC 9112 §2.2 lets us), in words, and the connection closed.
            let bare = try await RawTCPClient.exchange(
                port: gateway.port, sending: [Array("GET /healthz HTTP/1.1\nhost: x\r\n\r\n".utf8)])
            let refused = Self.responses(bare)
            try #require(refused.count == 1, "\(String(decoding: bare, as: UTF8.self))")
            #expect(refused[0].status == 400)
            #expect(refused[0].body.contains("the request line ends with a bare LF"), "\(refused[0].body)")
            // Absolute-form routes as origin-form would (RFC 9112 §3.2.2); then the asterisk- and authority-forms.
            let bytes = Array(
                (Self.request("GET", "http://gw.example:8080/healthz")
                    + Self.request("OPTIONS", "*") + Self.request("CONNECT", "gw.example:443")
                    + Self.request("GET", "/healthz", headers: ["host: x", "connection: close"])).utf8)
            let reply = try await RawTCPClient.exchange(port: gateway.port, sending: [bytes])
            let answers = Self.responses(reply)
            try #require(answers.count == 4, "\(String(decoding: reply, as: UTF8.self))")
            #expect(answers[0].status == 200, "\(answers[0])")
            #expect(answers[1].status == 501, "\(answers[1])")
            #expect(answers[1].body.contains("asterisk-form"), "\(answers[1].body)")
            #expect(answers[2].status == 501, "\(answers[2])")
            #expect(answers[2].body.contains("not a proxy"), "\(answers[2].body)")
            #expect(answers[3].status == 200)
        }
    }

    // MARK: 6. Percent-decoded path segments

    @Test(
        "path segments are percent-decoded after splitting; an encoded / stays in its segment and matches nothing",
        arguments: [
            ("/v1beta/namespaces/demo/pipelines/ec%68o/trigger", 200),
            ("/v1beta/namespaces/de%6D%6f/pipelines/%65cho/releases/v%31/trigger", 200),
            ("/v1beta/namespaces/demo/pipelines/echo/trigg%65r", 200),
            ("/v1beta/namespaces/demo/pipelines/ec%2Fho/trigger", 404),
            ("/v1beta/namespaces/demo/pipelines/echo%2Ftrigger", 404),
            ("/v1beta/namespaces/demo%2Fpipelines%2Fecho/trigger", 404),
            ("/v1beta/namespaces/demo/pipelines/ec%6/trigger", 400),
            ("/v1beta/namespaces/demo/pipelines/ec%zzo/trigger", 400),
        ])
    func percentDecodedPath(path: String, status: Int) async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", path, headers: jsonHeaders, body: ByteBuffer(string: Self.body))
            #expect(response.status == status, "\(response.bodyString)")
            if status == 200 { #expect(try outputs(response.body).first?["k"] as? String == "v") }
            if status >= 400 { #expect(try json(response.body)["message"] is String) }
            await client.close()
        }
    }

    @Test("operation ids in paths are percent-decoded, for reads and for :cancel")
    func percentDecodedOperationID() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (status, body) = try await client.trigger("echo", ["x": 1])
            try #require(status == 200, "\(body)")
            let name = try #require(body.operationName)
            let id = String(name.dropFirst("operations/".count))
            let encoded = id.utf8.map { String(format: "%%%02X", $0) }.joined()
            let read = try await client.get("/v1beta/operations/\(encoded)")
            #expect(read.status == 200, "\(read.json)")
            #expect((read.json["operation"] as? [String: Any])?["name"] as? String == name)
            // The operation may have finished already: a cancel then answers 409, but never 404.
            let cancel = try await client.post("/v1beta/operations/\(encoded):cancel")
            #expect(cancel.status == 200 || cancel.status == 409, "\(cancel.json)")
            let missing = try await client.get("/v1beta/operations/\(encoded)%2Fx")
            #expect(missing.status == 404)
            await client.client.close()
        }
    }

    // MARK: 7. Accept

    @Test(
        "Accept chooses JSON or SSE on :trigger per RFC 9110 §12.5.1, and 406 when neither is acceptable",
        arguments: [
            ([], "application/json"),
            (["*/*"], "application/json"),
            (["text/event-stream"], "text/event-stream"),
            (["Text/Event-Stream"], "text/event-stream"),
            (["text/*"], "text/event-stream"),
            (["text/event-stream;q=0, application/json"], "application/json"),
            (["text/event-stream;q=0.001, application/json;q=0"], "text/event-stream"),
            (["application/json;q=0.1", "text/event-stream"], "text/event-stream"),
            (["text/event-stream, application/json"], "text/event-stream"),
            (["application/xml"], nil),
            (["text/event-stream;q=0, application/json;q=0"], nil),
        ] as [([String], String?)])
    func accept(lines: [String], contentType: String?) async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", Self.trigger, headers: jsonHeaders + lines.map { ("accept", $0) },
                body: ByteBuffer(string: Self.body)
            )
            if let contentType {
                #expect(response.status == 200, "\(response.bodyString)")
                #expect(response.header("content-type") == contentType, "\(response.bodyString)")
            } else {
                #expect(response.status == 406, "\(response.bodyString)")
                #expect(try json(response.body)["code"] as? Int == 3)
            }
            await client.close()
        }
    }

    @Test(
        "trigger-stream answers only SSE: 406 when Accept excludes it, SSE otherwise",
        arguments: [
            ([], 200),
            (["*/*"], 200),
            (["text/event-stream"], 200),
            (["text/event-stream;q=0, application/json"], 406),
            (["application/json"], 406),
        ] as [([String], Int)])
    func acceptOnTriggerStream(lines: [String], status: Int) async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger-stream",
                headers: jsonHeaders + lines.map { ("accept", $0) }, body: ByteBuffer(string: Self.body)
            )
            #expect(response.status == status, "\(lines): \(response.bodyString)")
            if status == 200 { #expect(response.header("content-type") == "text/event-stream") }
            await client.close()
        }
    }

    @Test("HTTP/1.0 (RFC 9112 §6.1, RFC 9110 §10.1.1): a stream is close-delimited, not chunked; no 100 Continue")
    func http10StreamAndExpect() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway { gateway in
            let base = "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines"
            let stream = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http1.0", "-N", "-D", "-", "-H", "content-type: application/json",
                    "-d", #"{"data":[{"variable":{"prompt":"one two"}}]}"#, "\(base)/tokens/trigger-stream",
                ])
            let text = stream.stdoutString
            let head = text.components(separatedBy: "\r\n\r\n").first?.lowercased() ?? ""
            #expect(head.hasPrefix("http/1.1 200"), "\(text)")
            #expect(!head.contains("transfer-encoding"), "\(text)")
            #expect(head.contains("connection: close"), "\(text)")
            // The events themselves, with no chunk-size lines between them, and the stream ended by the close.
            let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            #expect(body.hasPrefix("event: "), "\(text)")
            #expect(body.contains("PIPELINE_OUTPUT_UPDATED") && !body.contains("\r\n"), "\(text)")
            #expect(stream.status == 0, "\(stream.stderr)")
            let expect = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http1.0", "-v", "-H", "Expect: 100-continue", "-H", "content-type: application/json",
                    "-d", Self.body, "\(base)/echo/trigger",
                ])
            #expect(!expect.stderr.contains(" 100 Continue"), "\(expect.stderr)")
            #expect(expect.stderr.contains("< HTTP/1.1 200"), "\(expect.stderr)")
        }
    }

    @Test("Accept is negotiated the same way over h2c")
    func acceptH2() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway { gateway in
            let url = "http://127.0.0.1:\(gateway.port)\(Self.trigger)"
            for (accept, expected) in [
                ("text/event-stream;q=0, application/json", "200 application/json"),
                ("image/png", "406 application/json"), ("TEXT/EVENT-STREAM", "200 text/event-stream"),
            ] {
                let out = try await TestProcess.run(
                    curl,
                    [
                        "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{content_type}",
                        "-H", "content-type: application/json", "-H", "accept: \(accept)", "-d", Self.body, url,
                    ])
                #expect(out.stdoutString == expected, "\(accept): \(out.stdoutString) \(out.stderr)")
            }
        }
    }

    // MARK: 8. HTTP/1.1 message rules

    @Test(
        "h1 message rules: Host required once on HTTP/1.1, Transfer-Encoding codings, absolute-form targets",
        arguments: [
            // Host: exactly one on 1.1; 1.0 may omit it.
            ("POST \(trigger) HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 33\r\n\r\n\(body)", 400),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: a\r\nhost: b\r\ncontent-type: application/json\r\ncontent-length: 33\r\n\r\n\(body)",
                400
            ),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: a b\r\ncontent-type: application/json\r\ncontent-length: 33\r\n\r\n\(body)",
                400
            ),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: \r\ncontent-type: application/json\r\ncontent-length: 33\r\n\r\n\(body)",
                200
            ),
            ("POST \(trigger) HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 33\r\n\r\n\(body)", 200),
            // Transfer-Encoding: chunked alone is served; an unknown coding is 501; chunked not last is 400.
            (
                "POST \(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n21\r\n\(body)\r\n0\r\n\r\n",
                200
            ),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\n\r\n21\r\n\(body)\r\n0\r\n\r\n",
                501
            ),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: xchunked\r\n\r\n21\r\n\(body)\r\n0\r\n\r\n",
                400
            ),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked, gzip\r\n\r\n21\r\n\(body)\r\n0\r\n\r\n",
                400
            ),
            // Malformed chunked framing after the head (RFC 9112 §7.1): a 400 JSON answer, not a silent close.
            (
                "POST \(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n\(body)\r\n0\r\n\r\n",
                400
            ),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffffff\r\n\(body)\r\n0\r\n\r\n",
                400
            ),
            (
                "POST \(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n21\r\n\(body)XX0\r\n\r\n",
                400
            ),
            // Absolute-form (RFC 9112 §3.2.2) is served; the authority does not route.
            (
                "POST http://x\(trigger) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 33\r\n\r\n\(body)",
                200
            ),
            (
                "POST HTTP://other.example:8080\(trigger)?a=b HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 33\r\n\r\n\(body)",
                200
            ),
            ("GET http://x HTTP/1.1\r\nhost: x\r\n\r\n", 404),
        ] as [(String, Int)])
    func h1MessageRules(request: String, status: Int) async throws {
        try await withTestGateway { gateway in
            // One complete answer is all this test reads: a 200 leaves the connection open.
            let reply = try await RawTCPClient.exchange(
                port: gateway.port, sending: [Array(request.utf8)], timeout: .seconds(3),
                until: { Self.responses($0).first?.isComplete ?? false })
            let answers = Self.responses(reply)
            try #require(answers.count >= 1, "no answer: \(String(decoding: reply, as: UTF8.self))")
            #expect(answers[0].status == status, "\(String(decoding: reply, as: UTF8.self))")
            if status == 200 { #expect(answers[0].body.contains(#""k":"v""#)) }
            if status >= 400 { #expect(answers[0].headers["content-type"] == "application/json") }
        }
    }

    // MARK: 9. curl's default -d content type, WWW-Authenticate

    @Test("curl -d (application/x-www-form-urlencoded) with a JSON object body triggers the pipeline")
    func curlDefaultContentType() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway { gateway in
            for http in ["--http1.1", "--http2-prior-knowledge"] {
                let out = try await TestProcess.run(
                    curl,
                    [
                        "-sS", http, "-w", "\n%{http_code}", "-d", Self.body,
                        "http://127.0.0.1:\(gateway.port)\(Self.trigger)",
                    ])
                #expect(out.stdoutString.hasSuffix("\n200"), "\(http): \(out.stdoutString) \(out.stderr)")
                #expect(out.stdoutString.contains(#""k":"v""#))
            }
        }
    }

    @Test(
        "a form-urlencoded body that is not a JSON object keeps 415; a JSON one passes",
        arguments: [
            ("a=b&c=d", 415), ("[1,2]", 415), ("", 415), (#"{"data":"#, 415),
            (#"{"data":[{"variable":{"k":"v"}}]}"#, 200),
            (#"{"nodata":1}"#, 400),
        ])
    func formLabelledBodies(body: String, status: Int) async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", Self.trigger, headers: [("content-type", "application/x-www-form-urlencoded")],
                body: ByteBuffer(string: body)
            )
            #expect(response.status == status, "\(response.bodyString)")
            await client.close()
        }
    }

    @Test(
        "a body in a content coding other than identity: 415 + Accept-Encoding: identity in each surface's shape, HTTP/1.1 and h2",
        arguments: ["--http1.1", "--http2-prior-knowledge"])
    func contentCodingRefused(version: String) async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway { gateway in
            func post(_ path: String, coding: String) async throws -> String {
                let out = try await TestProcess.run(
                    curl,
                    [
                        "-sS", "--max-time", "10", version, "-D", "-", "-H", "content-type: application/json",
                        "-H", "content-encoding: \(coding)", "-d", Self.body, "http://127.0.0.1:\(gateway.port)\(path)",
                    ])
                return out.stdoutString.lowercased()
            }
            let surfaces = [
                (Self.trigger, #""code":3"#), ("/api/v0/runPipeline", #""success":false"#),
                ("/api/v1/pipelines/echo/run", #""name":"#),
            ]
            for (path, shape) in surfaces {
                for coding in ["gzip", "br", "identity, gzip", "x-unknown"] {
                    let answer = try await post(path, coding: coding)
                    if path == Self.trigger || path.hasPrefix("/api/v1/") {
                        #expect(answer.contains(" 415"), "\(path) \(coding): \(answer)")
                    }
                    #expect(answer.contains("accept-encoding: identity"), "\(path) \(coding): \(answer)")
                    #expect(answer.contains("is not supported: send the body uncompressed"), "\(answer)")
                    #expect(answer.contains(shape), "\(path): \(answer)")
                }
            }
            for coding in ["identity", "IDENTITY"] {
                let answer = try await post(Self.trigger, coding: coding)
                #expect(answer.contains(" 200"), "\(coding): \(answer)")
            }
        }
    }

    /// A route that reads no body answered a request whose client held its body back for `100 Continue` (RFC 9110
    /// §10.1.1) and kept the connection: the client's next request was then taken for the unread body, and hung.
    /// Craft's refused `create_pipeline` (and `delete_pipeline`) answer without reading: the connection now ends.
    @Test("an upload held back for 100 Continue to a route that reads no body: answered, Connection: close, closed")
    func heldBackBodyToARouteThatReadsNone() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let token = try await CraftRESTTests.accessToken(client)
            await client.close()
            let head = Self.request(
                "POST", "/api/v1/pipelines",
                headers: [
                    "host: x", "authorization: Bearer \(token)", "content-type: multipart/form-data; boundary=b",
                    "content-length: 500", "expect: 100-continue",
                ])
            let reply = try await RawTCPClient.exchange(
                port: gateway.port, sending: [Array((head + Self.request("GET", "/healthz")).utf8)],
                timeout: .seconds(20))
            let answers = Self.responses(reply)
            try #require(answers.count == 1, "\(String(decoding: reply, as: UTF8.self))")
            #expect(answers[0].status == 501, "\(answers[0])")
            #expect(answers[0].headers["connection"] == "close", "\(answers[0])")
            #expect(!String(decoding: reply, as: UTF8.self).contains("100 Continue"))
        }
    }

    /// A gRPC client pointed at the port over HTTP/1.1 (curl without --http2-prior-knowledge) read only "no endpoint
    /// at POST /pipeline…": the answer says what it needs. 505, not 404 (protocol review 58, L4): a 404 is cacheable
    /// and reads as UNIMPLEMENTED to a gRPC client behind a proxy that downgraded its call.
    @Test(
        "a gRPC call over HTTP/1.1 is 505 saying gRPC needs HTTP/2; an unknown path with gRPC's type is 404 saying so; another's 404 does not"
    )
    func grpcOverHTTP1() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let path = "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline"
            var response = try await client.request(
                "POST", path, headers: [("content-type", "application/grpc")], body: ByteBuffer(bytes: [0, 0, 0, 0, 0]))
            #expect(response.status == 505)
            #expect(
                try json(response.body)["message"] as? String
                    == "\(path) is a gRPC method: gRPC needs HTTP/2 (h2c with prior knowledge on this port, or h2 over TLS)"
            )
            #expect(try json(response.body)["code"] as? Int == 12, "UNIMPLEMENTED")
            response = try await client.request(
                "POST", "/pipeline.pipeline.v1beta.PipelinePublicService/Nope",
                headers: [("content-type", "application/grpc")], body: ByteBuffer(bytes: [0, 0, 0, 0, 0]))
            #expect(response.status == 404)
            #expect(
                try json(response.body)["message"] as? String
                    == "no endpoint at POST /pipeline.pipeline.v1beta.PipelinePublicService/Nope: gRPC needs HTTP/2 (h2c with prior knowledge on this port, or h2 over TLS)"
            )
            response = try await client.request(
                "POST", "/nope", headers: jsonHeaders, body: ByteBuffer(string: Self.body))
            #expect(try json(response.body)["message"] as? String == "no endpoint at POST /nope")
            await client.close()
        }
    }

    @Test("a 401 carries WWW-Authenticate: Bearer, on both HTTP versions, a pipeline's own 401 too")
    func wwwAuthenticate() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway(yaml: "tokens:\n  - {name: a, token: t0k}\n") { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", Self.trigger, headers: jsonHeaders, body: ByteBuffer(string: Self.body))
            #expect(response.status == 401)
            #expect(response.header("www-authenticate") == "Bearer")
            await client.close()
            let out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-H",
                    "content-type: application/json",
                    "-d", Self.body, "http://127.0.0.1:\(gateway.port)\(Self.trigger)",
                ])
            #expect(out.stdoutString.lowercased().contains("www-authenticate: bearer"), "\(out.stdoutString)")
        }
        // A pipeline's own UNAUTHENTICATED (16) is a 401 as well: the header too (it was missing).
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/fail/trigger", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{"message":"key refused","code":16}}]}"#))
            #expect(response.status == 401)
            #expect(response.header("www-authenticate") == "Bearer")
            await client.close()
        }
    }
}
