import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// The access log of the real executable (issue 16 item 2): one line per request on stderr, found by the
/// request id its client got back, in logfmt by default and JSON with `--log-format json`.
@Suite("Access log: one line per request, logfmt and JSON")
struct AccessLogTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

    /// A REST trigger with curl (HTTP/1.1) and a gRPC one with curl --http2-prior-knowledge, each with its
    /// own request id.
    static func drive(port: Int, rest restID: String, grpc grpcID: String) async throws {
        let curl = try #require(TestProcess.which("curl"))
        let rest = try await TestProcess.run(
            curl,
            [
                "-sS", "-H", "content-type: application/json", "-H", "request-id: \(restID)",
                "-H", "traceparent: 00-\(traceID)-00f067aa0ba902b7-01",
                "-d", #"{"data":[{"variable":{"prompt":"hi"}}]}"#,
                "http://127.0.0.1:\(port)/v1beta/namespaces/demo/pipelines/upper/trigger",
            ])
        #expect(rest.status == 0, "\(rest.stderr)")
        #expect(rest.stdoutString.contains("HI"), "\(rest.stdoutString)")
        let grpc = try await GRPCSyncMetadataTests.call(port: port, headers: ["request-id: \(grpcID)"])
        #expect(grpc.contains("hello world"), "\(grpc)")
    }

    /// The log's lines that carry `needle`, waiting up to 5 s for one.
    /// The log lines containing `needle`, once at least `count` of them were written (a request's warning may
    /// come before its access line).
    static func lines(of server: TestProcess.Server, containing needle: String, count: Int = 1) async -> [Substring] {
        _ = await server.logOccurrences(of: needle, atLeast: count, timeout: .seconds(5))
        return server.logged.split(separator: "\n").filter { $0.contains(needle) }
    }

    /// A logfmt line's pairs (values unquoted; the tests' values have no escapes).
    static func logfmt(_ line: Substring) -> [String: String] {
        var fields: [String: String] = [:]
        var rest = line[...]
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingCharacters(in: .whitespaces)
            var after = rest[rest.index(after: equals)...]
            let value: Substring
            if after.first == "\"" {
                after = after.dropFirst()
                let close = after.firstIndex(of: "\"") ?? after.endIndex
                value = after[..<close]
                rest = close < after.endIndex ? after[after.index(after: close)...] : ""
            } else {
                let space = after.firstIndex(of: " ") ?? after.endIndex
                value = after[..<space]
                rest = after[space...]
            }
            fields[key] = String(value)
        }
        return fields
    }

    @Test("logfmt by default: each request's line by its request id, with its fields")
    func logfmtLines() async throws {
        try await ProcessTests.withGatewayProcess { server in
            try await Self.drive(port: server.port, rest: "log-rest-1", grpc: "log-grpc-1")
            let restLines = await Self.lines(of: server, containing: "request_id=log-rest-1")
            #expect(restLines.count == 1, "\(server.logged)")
            let rest = Self.logfmt(try #require(restLines.first))
            #expect(rest["msg"] == "request")
            #expect(rest["level"] == "info")
            #expect(rest["frontend"] == "rest")
            #expect(rest["protocol"] == "HTTP/1.1")
            #expect(rest["method"] == "POST")
            #expect(rest["path"] == "/v1beta/namespaces/demo/pipelines/upper/trigger")
            #expect(rest["operation"] == "triggerPipeline")
            #expect(rest["namespace"] == "demo")
            #expect(rest["pipeline"] == "upper")
            #expect(rest["route"] == "demo/*")
            #expect(rest["pool"] == "demo")
            #expect(rest["mode"] == "sync")
            #expect(rest["status"] == "200")
            #expect(rest["bytes_in"] == "\(#"{"data":[{"variable":{"prompt":"hi"}}]}"#.utf8.count)")
            #expect(Int(rest["bytes_out"] ?? "") ?? 0 > 0)
            #expect(Int(rest["duration_us"] ?? "") ?? -1 >= 0)
            #expect(rest["trace_id"] == Self.traceID)

            let grpcLines = await Self.lines(of: server, containing: "request_id=log-grpc-1")
            #expect(grpcLines.count == 1, "\(server.logged)")
            let grpc = Self.logfmt(try #require(grpcLines.first))
            #expect(grpc["frontend"] == "grpc")
            #expect(grpc["protocol"] == "HTTP/2")
            #expect(grpc["path"] == GRPCDetailsTests.path)
            #expect(grpc["operation"] == GRPCDetailsTests.path)
            #expect(grpc["pipeline"] == "echo")
            #expect(grpc["grpc_status"] == "0")
            #expect(grpc["trace_id"]?.count == 32)  // started by the gateway: the client sent none
        }
    }

    @Test("--log-format json: every line is a JSON object; the request lines carry typed fields")
    func jsonLines() async throws {
        try await ProcessTests.withGatewayProcess(["--log-format", "json"]) { server in
            // Review 9, finding 6: `serve --log-format json 2>&1 | jq` reads stdout's ready line too.
            let ready = try #require(
                try JSONSerialization.jsonObject(with: Data(server.readyLine.utf8)) as? [String: Any],
                "not JSON: \(server.readyLine)")
            #expect(ready["msg"] as? String == "listening on 127.0.0.1:\(server.port)", "\(server.readyLine)")
            #expect(ready["listen.address"] as? String == "127.0.0.1:\(server.port)", "\(server.readyLine)")
            #expect(ready["ts"] is String && ready["level"] as? String == "info", "\(server.readyLine)")
            try await Self.drive(port: server.port, rest: "log-rest-2", grpc: "log-grpc-2")
            _ = await Self.lines(of: server, containing: "log-grpc-2")
            _ = await Self.lines(of: server, containing: "log-rest-2")
            var requests: [String: [String: Any]] = [:]
            for line in server.logged.split(separator: "\n") {
                let object = try #require(
                    try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
                #expect(object["ts"] is String && object["level"] is String && object["msg"] is String)
                if object["msg"] as? String == "request", let id = object["request_id"] as? String {
                    #expect(requests[id] == nil, "two lines for \(id)")
                    requests[id] = object
                }
            }
            let rest = try #require(requests["log-rest-2"], "\(server.logged)")
            #expect(rest["status"] as? Int == 200)
            #expect(rest["operation"] as? String == "triggerPipeline")
            #expect(rest["trace_id"] as? String == Self.traceID)
            #expect((rest["bytes_out"] as? Int ?? 0) > 0)
            let grpc = try #require(requests["log-grpc-2"], "\(server.logged)")
            #expect(grpc["grpc_status"] as? Int == 0)
            #expect(grpc["frontend"] as? String == "grpc")
            #expect(grpc["mode"] as? String == "sync")
        }
    }

    @Test("a pipeline id with C0 and C1 controls (ESC, CSI U+009B, NEL U+0085) is escaped in logfmt and JSON, one line")
    func controlCharactersEscaped() async throws {
        // review 8's log-injection repro: percent-encoded in the path, decoded into the pipeline id.
        let path = "/v1beta/namespaces/demo/pipelines/q%22x%5C%1B%5B31m%C2%9B31mred%C2%85level=critical/trigger"
        for format in ["logfmt", "json"] {
            try await ProcessTests.withGatewayProcess(["--log-format", format]) { server in
                let client = try await TestHTTPClient.connect(port: server.port)
                let response = try await client.request(
                    "POST", path, headers: jsonHeaders + [("request-id", "log-ctl-\(format)")],
                    body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#))
                #expect(response.status >= 400, "\(response.bodyString)")
                await client.close()
                let lines = await Self.lines(of: server, containing: "log-ctl-\(format)")
                #expect(lines.count == 1, "\(server.logged)")
                let line = try #require(lines.first)
                let raw = line.unicodeScalars.filter { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
                #expect(raw.isEmpty, "raw controls \(raw.map(\.value)) in \(line)")
                #expect(line.contains(#"q\"x\\\u001b[31m\u009b31mred\u0085level=critical"#), "\(line)")
                if format == "json" {
                    let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    #expect(object?["pipeline"] as? String == "q\"x\\\u{1B}[31m\u{9B}31mred\u{85}level=critical")
                }
            }
        }
    }

    @Test("a client that goes away: the sent status plus response_flags=DC (499 only before any head)")
    func downstreamDisconnect() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await ProcessTests.withGatewayProcess { server in
            let base = "http://127.0.0.1:\(server.port)/v1beta/namespaces/demo/pipelines"
            let slowTokens = #"{"data":[{"variable":{"prompt":"a b c d e f g h i j","delay_ms":300}}]}"#
            // curl piped into grep -m1: grep exits after the first token, curl dies on its next write (the next
            // token, 300 ms later) and its socket closes mid-stream, after the 200 head and some events.
            for (id, http2) in [("log-dc-sse1", false), ("log-dc-sse2", true)] {
                let script =
                    "\(curl) -sN \(http2 ? "--http2-prior-knowledge" : "") -H 'request-id: \(id)' "
                    + "-H 'content-type: application/json' -d '\(slowTokens)' \(base)/tokens/trigger-stream "
                    + "| grep -m1 -q '\"token\"'"
                let out = try await TestProcess.run("/bin/sh", ["-c", script])
                #expect(out.status == 0, "grep saw no token: \(out.stderr)")
                let line = try #require(
                    await Self.lines(of: server, containing: "request_id=\(id)").first, "\(server.logged)")
                let fields = Self.logfmt(line)
                #expect(fields["protocol"] == (http2 ? "HTTP/2" : "HTTP/1.1"), "\(line)")
                #expect(fields["mode"] == "stream", "\(line)")
                #expect(fields["status"] == "200", "the status that was sent: \(line)")
                #expect(fields["response_flags"] == "DC", "\(line)")
                #expect(Int(fields["bytes_out"] ?? "") ?? 0 > 0, "\(line)")
            }

            // Gone before any head: 499, and DC too.
            let gone = try await TestProcess.run(
                curl,
                [
                    "-sS", "--max-time", "1", "-H", "request-id: log-dc-sync", "-H", "content-type: application/json",
                    "-d", #"{"data":[{"variable":{"ms":5000}}]}"#, "\(base)/sleep/trigger",
                ])
            #expect(gone.status == 28, "curl timed out: \(gone.stderr)")
            let syncLine = try #require(
                await Self.lines(of: server, containing: "request_id=log-dc-sync").first, "\(server.logged)")
            #expect(Self.logfmt(syncLine)["status"] == "499", "\(syncLine)")
            #expect(Self.logfmt(syncLine)["response_flags"] == "DC", "\(syncLine)")

            // A gRPC stream the client cancels (RST_STREAM) after one message: HEADERS went out with 200, no
            // status did.
            _ = try await Peers.grpcio(
                "stream-first-cancel", port: server.port,
                ["tokens", #"[{"prompt":"a b c d e f g h i j","delay_ms":300}]"#])
            let grpcLine = try #require(
                await Self.lines(of: server, containing: "pipeline=tokens").first { $0.contains("frontend=grpc") },
                "\(server.logged)")
            let grpc = Self.logfmt(grpcLine)
            #expect(grpc["status"] == "200", "\(grpcLine)")
            #expect(grpc["grpc_status"] == "1", "CANCELLED: \(grpcLine)")
            #expect(grpc["response_flags"] == "DC", "\(grpcLine)")

            // A stream read to its end carries no flag.
            let whole = try await TestProcess.run(
                curl,
                [
                    "-sSN", "-H", "request-id: log-dc-none", "-H", "content-type: application/json",
                    "-d", #"{"data":[{"variable":{"prompt":"a b"}}]}"#, "\(base)/tokens/trigger-stream",
                ])
            #expect(whole.stdoutString.contains("PIPELINE_OUTPUT_UPDATED"), "\(whole.stdoutString)")
            let wholeLine = try #require(
                await Self.lines(of: server, containing: "request_id=log-dc-none").first, "\(server.logged)")
            #expect(Self.logfmt(wholeLine)["status"] == "200", "\(wholeLine)")
            #expect(Self.logfmt(wholeLine)["response_flags"] == "-", "\(wholeLine)")
        }
    }

    /// Review 26 L7: `log.level: warning` (what quiets a noisy instance) also turned the access log off.
    @Test("--log-level warning quiets the application log and keeps the access log (logger=access)")
    func levelFromFlag() async throws {
        try await ProcessTests.withGatewayProcess(["--log-level", "warning"]) { server in
            try await Self.drive(port: server.port, rest: "log-rest-3", grpc: "log-grpc-3")
            // Lines that must NOT appear: look once the gateway has exited and its whole log is read.
            #expect(await server.stopAndReadLog(), "the gateway's stderr did not end")
            let rest = try #require(
                server.logged.split(separator: "\n").first { $0.contains("request_id=log-rest-3") }, "\(server.logged)")
            #expect(Self.logfmt(rest)["logger"] == "access", "\(rest)")
            #expect(Self.logfmt(rest)["msg"] == "request", "\(rest)")
            #expect(server.logged.contains("request_id=log-grpc-3"), "\(server.logged)")
            #expect(!server.logged.contains("configuration loaded"), "\(server.logged)")
            #expect(!server.logged.contains("logger=trigger-gateway msg=request"), "\(server.logged)")
        }
    }

    @Test("log.access false leaves the access log out and keeps the application log; a reload switches it back on")
    func accessSwitch() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-access-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try "log: {access: false}\n".write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            try await Self.drive(port: server.port, rest: "log-rest-off", grpc: "log-grpc-off")
            try "log: {access: true}\n".write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1)
            #expect(server.logged.contains("log.access=true"), "\(server.logged)")
            try await Self.drive(port: server.port, rest: "log-rest-on", grpc: "log-grpc-on")
            #expect(await server.stopAndReadLog(), "the gateway's stderr did not end")
            #expect(server.logged.contains("configuration loaded"), "\(server.logged)")
            #expect(!server.logged.contains("log-rest-off"), "\(server.logged)")
            #expect(!server.logged.contains("log-grpc-off"), "\(server.logged)")
            #expect(server.logged.contains("request_id=log-rest-on"), "\(server.logged)")
            #expect(server.logged.contains("request_id=log-grpc-on"), "\(server.logged)")
        }
    }

    @Test("a backend failure: the access line says 502 with the endpoint, and a warning names the request id")
    func backendFailureCarriesRequestID() async throws {
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(
            host: "127.0.0.1", port: 0
        ).get()
        let deadPort = probe.localAddress!.port!
        try await probe.close()
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("tg-log-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: config) }
        try """
        pools:
          - {name: runner, transport: http, connect_timeout: 1s, endpoints: ["127.0.0.1:\(deadPort)"]}
        routes: [{namespace: demo, pipeline: "*", pool: runner}]
        """.write(to: config, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", config.path]) { server in
            let client = try await TestHTTPClient.connect(port: server.port)
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: jsonHeaders + [("request-id", "log-fail-1")],
                body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#))
            #expect(response.status == 502)
            await client.close()
            let lines = await Self.lines(of: server, containing: "request_id=log-fail-1", count: 2)
            let access = try #require(lines.first { $0.contains("msg=request ") }, "\(server.logged)")
            let fields = Self.logfmt(access)
            #expect(fields["status"] == "502")
            #expect(fields["pool"] == "runner")
            #expect(fields["endpoint"]?.hasSuffix("127.0.0.1:\(deadPort)") == true, "\(access)")
            let warning = try #require(lines.first { $0.contains("msg=\"trigger failed\"") }, "\(server.logged)")
            #expect(Self.logfmt(warning)["backend.endpoint"]?.hasSuffix("127.0.0.1:\(deadPort)") == true, "\(warning)")
            #expect(Self.logfmt(warning)["level"] == "warning")
        }
    }

    @Test("a head refused for a control character in a field: the access line names its method and path (review 10)")
    func refusedHeadNamesItsLine() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await ProcessTests.withGatewayProcess { server in
            let out = try await TestProcess.run(
                curl,
                [
                    "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Request-Id: abc\u{1B}[31mRED",
                    "http://127.0.0.1:\(server.port)/healthz?probe=1",
                ])
            #expect(out.stdoutString == "400", "\(out.stdoutString)")
            let lines = await Self.lines(of: server, containing: "status=400")
            let access = try #require(lines.first { $0.contains("msg=request ") }, "\(server.logged)")
            let fields = Self.logfmt(access)
            #expect(fields["method"] == "GET", "\(access)")
            #expect(fields["path"] == "/healthz", "\(access)")
            #expect(fields["operation"] == "unmatched", "\(access)")
            // The refused value itself is not logged (the generated request id replaces the bad one).
            #expect(!access.contains("RED"), "\(access)")
        }
    }

    @Test("log: {format: json} in the file: the lines are JSON; --log-format logfmt overrides it")
    func formatFromFile() async throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("tg-log-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: config) }
        try "log: {format: json, level: info}\n".write(to: config, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", config.path]) { server in
            _ = await server.logOccurrences(of: "configuration loaded", timeout: .seconds(5))
            let first = try #require(server.logged.split(separator: "\n").first)
            let object = try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any]
            #expect(object?["msg"] as? String == "configuration loaded", "\(first)")
            // Review 10, finding 9: counts are JSON numbers on every line (`.stringConvertible`), not strings.
            #expect(await server.stopAndReadLog())
            let objects = try server.logged.split(separator: "\n").map {
                try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "\($0)")
            }
            for (message, key) in [("scheduler started", "schedules"), ("draining connections", "connections.open")] {
                let line = try #require(objects.first { $0["msg"] as? String == message }, "\(server.logged)")
                #expect(line[key] is NSNumber && !(line[key] is String), "\(message): \(line)")
                #expect((line[key] as? NSNumber)?.intValue == 0, "\(message): \(line)")
            }
        }
        try await ProcessTests.withGatewayProcess(["--config", config.path, "--log-format", "logfmt"]) { server in
            _ = await server.logOccurrences(of: "configuration loaded", timeout: .seconds(5))
            #expect(server.logged.hasPrefix("ts="), "\(server.logged)")
        }
    }

    @Test(
        "the surfaces' lines name the pipeline, route, pool and mode: an Abacus run (pipelineId in the body), a Craft endpoint trigger, GetNamespacePipeline"
    )
    func surfaceLines() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await ProcessTests.withGatewayProcess { server in
            let base = "http://127.0.0.1:\(server.port)"
            let calls: [(id: String, arguments: [String])] = [
                (
                    "log-abacus-1",
                    [
                        "-H", "content-type: application/json", "-H", "apiKey: k", "-d", #"{"pipelineId":"upper"}"#,
                        "\(base)/api/v0/runPipeline",
                    ]
                ),
                (
                    "log-craft-1",
                    [
                        "-H", "content-type: application/json", "-H", "authorization: EndpointToken t", "-d",
                        #"{"prompt":"hi"}"#, "\(base)/endpoints/upper",
                    ]
                ),
                ("log-meta-1", ["\(base)/v1beta/namespaces/demo/pipelines/upper"]),
            ]
            for call in calls {
                let out = try await TestProcess.run(curl, ["-sS", "-H", "request-id: \(call.id)"] + call.arguments)
                #expect(out.status == 0 && !out.stdoutString.contains(#""code""#), "\(call.id): \(out.stdoutString)")
            }
            let expected: [String: (operation: String, mode: String?)] = [
                "log-abacus-1": ("abacusRunPipeline", "async"),
                "log-craft-1": ("craftTriggerEndpoint", "async"),
                "log-meta-1": ("getNamespacePipeline", nil),
            ]
            for (id, want) in expected {
                // The async runs' `operation run` lines carry the accepting request's id too (review 26 H2).
                let lines = await Self.lines(of: server, containing: "request_id=\(id)").filter {
                    $0.contains(" msg=request ")
                }
                #expect(lines.count == 1, "\(server.logged)")
                let line = Self.logfmt(try #require(lines.first))
                #expect(line["operation"] == want.operation, "\(line)")
                #expect(line["status"] == "200", "\(line)")
                #expect(line["namespace"] == "demo", "\(id): \(line)")
                #expect(line["pipeline"] == "upper", "\(id): \(line)")
                #expect(line["route"] == "demo/*", "\(id): \(line)")
                #expect(line["pool"] == "demo", "\(id): \(line)")
                #expect(line["mode"] == want.mode, "\(id): \(line)")
            }
        }
    }
}
