import Foundation
import GatewayTestSupport
import Testing

/// Stream mode over REST (API.md §2, issue 5): SSE on HTTP/1.1 and HTTP/2, through every backend kind,
/// with cancellation, backend failure and the idle rule. Clients are curl and a raw socket.
@Suite("Stream mode: SSE end to end", .serialized)
struct StreamSSETests {
    static let tokens = #"{"data":[{"variable":{"prompt":"one two three","delay_ms":20}}]}"#

    @Test(
        "curl -N gets one event per backend event with no-cache, over HTTP/1.1 and HTTP/2",
        arguments: StreamBackend.allCases, [false, true]
    )
    func sse(backend: StreamBackend, http2: Bool) async throws {
        try await withStreamSetup(backend) { setup in
            // HTTP/1.1 asks with Accept on /trigger; HTTP/2 uses /trigger-stream.
            let arguments =
                http2
                ? [
                    "--http2-prior-knowledge", "-H", "content-type: application/json", "-d", Self.tokens,
                    "\(setup.sseBase)/tokens/trigger-stream",
                ]
                : [
                    "-H", "content-type: application/json", "-H", "accept: text/event-stream", "-d", Self.tokens,
                    "\(setup.sseBase)/tokens/trigger",
                ]
            let (headers, events, raw) = try await curlSSE(arguments)
            #expect(headers.contains(http2 ? "http/2 200" : "http/1.1 200"), "\(headers)")
            #expect(headers.contains("content-type: text/event-stream"), "\(headers)")
            #expect(headers.contains("cache-control: no-cache"), "\(headers)")
            #expect(
                events.map(\.name) == [
                    "PIPELINE_STATUS_UPDATED", "PIPELINE_OUTPUT_UPDATED", "PIPELINE_OUTPUT_UPDATED",
                    "PIPELINE_OUTPUT_UPDATED", "PIPELINE_OUTPUT_UPDATED",
                ], "\(raw)")
            #expect(events.first?.data["status"] as? String == "RUNNING", "\(raw)")
            let tokens = events.dropFirst().dropLast().map {
                ($0.data["outputs"] as? [[String: Any]])?.first?["token"] as? String
            }
            #expect(tokens == ["one", "two", "three"], "\(raw)")
            let final = events.last?.data
            #expect((final?["outputs"] as? [[String: Any]])?.first?["text"] as? String == "one two three", "\(raw)")
            #expect(final?["metadata"] != nil, "the final event carries the sync response's metadata: \(raw)")
        }
    }

    @Test(
        "an unknown pipeline is a plain 404 JSON error, no 200 and no error event, over HTTP/1.1 and h2c",
        arguments: StreamBackend.allCases, [false, true]
    )
    func unknownPipelineBeforeFirstEvent(backend: StreamBackend, http2: Bool) async throws {
        try await withStreamSetup(backend) { setup in
            let answer = try await curlBeforeStart(
                "\(setup.sseBase)/nope/trigger-stream", http2: http2, body: #"{"data":[{"variable":{}}]}"#)
            #expect(answer.status == 404, "\(backend): \(answer.headers)\(answer.body)")
            #expect(answer.headers.contains("content-type: application/json"), "\(answer.headers)")
            #expect(!answer.body.contains("event:"), "no SSE event: \(answer.body)")
            #expect(answer.json?["code"] as? Int == 5, "NOT_FOUND: \(answer.body)")
            #expect((answer.json?["message"] as? String)?.contains("nope") == true, "\(answer.body)")
        }
    }

    @Test(
        "a backend that is down before the stream starts: the same JSON error and status as sync mode, not 200",
        arguments: [StreamBackend.http, .grpc], [false, true]
    )
    func backendDownBeforeFirstEvent(backend: StreamBackend, http2: Bool) async throws {
        try await withStreamSetup(backend) { setup in
            let runner = try #require(setup.runner)
            await runner.stop(signal: SIGKILL)
            let body = #"{"data":[{"variable":{"prompt":"a b"}}]}"#
            let sync = try await curlBeforeStart("\(setup.sseBase)/tokens/trigger", http2: http2, body: body)
            let stream = try await curlBeforeStart(
                "\(setup.sseBase)/tokens/trigger-stream", http2: http2, body: body)
            #expect([502, 503].contains(sync.status), "\(sync.headers)\(sync.body)")
            #expect(stream.status == sync.status, "\(backend): \(stream.headers)\(stream.body)")
            #expect(stream.headers.contains("content-type: application/json"), "\(stream.headers)")
            #expect(!stream.body.contains("event:"), "no SSE event: \(stream.body)")
            let code = try #require(stream.json?["code"] as? Int, "\(stream.body)")
            #expect(code == sync.json?["code"] as? Int, "same google.rpc code as sync: \(stream.body) / \(sync.body)")
        }
    }

    @Test("a pipeline that fails after its first event still answers 200 and then the error event")
    func failureAfterFirstEventIsAnEvent() async throws {
        for backend in StreamBackend.allCases {
            try await withStreamSetup(backend) { setup in
                let (headers, events, raw) = try await curlSSE([
                    "-H", "content-type: application/json",
                    "-d", #"{"data":[{"variable":{"message":"boom","code":"FAILED_PRECONDITION"}}]}"#,
                    "\(setup.sseBase)/fail/trigger-stream",
                ])
                #expect(headers.contains("http/1.1 200"), "\(backend): \(headers)")
                #expect(
                    events.map(\.name) == ["PIPELINE_STATUS_UPDATED", "PIPELINE_ERROR_UPDATED"], "\(backend): \(raw)")
                #expect(events.last?.data["code"] as? Int == 9, "\(backend): \(raw)")
            }
        }
    }

    /// A request answered before any stream began, read by curl: its status line, headers and JSON body.
    func curlBeforeStart(_ url: String, http2: Bool, body: String) async throws -> (
        status: Int, headers: String, body: String, json: [String: Any]?
    ) {
        let curl = try #require(TestProcess.which("curl"))
        let out = try await TestProcess.run(
            curl,
            ["-siN", "--max-time", "30"] + (http2 ? ["--http2-prior-knowledge"] : [])
                + ["-H", "content-type: application/json", "-d", body, url])
        #expect(out.status == 0, "curl: \(out.stderr)")
        let text = out.stdoutString.replacingOccurrences(of: "\r\n", with: "\n")
        let parts = text.components(separatedBy: "\n\n")
        let headers = (parts.first ?? "").lowercased()
        let responseBody = parts.dropFirst().joined(separator: "\n\n")
        let statusLine = headers.split(separator: "\n").first ?? ""
        let status = statusLine.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let json = try? JSONSerialization.jsonObject(with: Data(responseBody.utf8)) as? [String: Any]
        return (status, headers, responseBody, json)
    }

    @Test("an event is flushed as it arrives: the first token comes long before the stream ends")
    func flushedAsItArrives() async throws {
        for backend in StreamBackend.allCases {
            try await withStreamSetup(backend) { setup in
                let started = now
                // 5 words 3 s apart: the stream lasts 12 s; the first token is due at once.
                let (text, closedAt) = try await RawSSEClient.firstEventThenClose(
                    port: setup.gateway.port, path: "/v1beta/namespaces/demo/pipelines/tokens/trigger",
                    json: #"{"data":[{"variable":{"prompt":"a b c d e","delay_ms":3000}}]}"#,
                    eventName: "PIPELINE_OUTPUT_UPDATED"
                )
                #expect(text.contains(#""token":"a""#), "\(backend): \(text)")
                #expect(closedAt - started < 3, "\(backend): the first token waited for later ones")
            }
        }
    }

    @Test(
        "a client that reads one event and hangs up cancels the backend run within 1 s",
        arguments: StreamBackend.allCases)
    func hangUpCancels(backend: StreamBackend) async throws {
        try await withStreamSetup(backend) { setup in
            let before = setup.cancellationTimes.count
            let (text, closedAt) = try await RawSSEClient.firstEventThenClose(
                port: setup.gateway.port, path: "/v1beta/namespaces/demo/pipelines/tokens/trigger",
                json: #"{"data":[{"variable":{"prompt":"a b c d e f g h i j","delay_ms":300}}]}"#,
                eventName: "PIPELINE_OUTPUT_UPDATED"
            )
            #expect(text.contains(#""token":"a""#), "\(text)")
            let cancelledAt = try #require(
                await setup.cancellation(after: before), "the backend run was never cancelled")
            #expect(
                cancelledAt - closedAt < 1.0,
                "cancellation reached the backend \(cancelledAt - closedAt) s after the hang-up")
        }
    }

    @Test(
        "curl over HTTP/2 piped into grep -m1 (it exits after one event) cancels the backend run",
        arguments: [StreamBackend.inProcess, .http])
    func curlHangUpOverHTTP2(backend: StreamBackend) async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withStreamSetup(backend) { setup in
            let before = setup.cancellationTimes.count
            let script =
                "\(curl) -sN --http2-prior-knowledge -H 'content-type: application/json' "
                + #"-d '{"data":[{"variable":{"prompt":"a b c d e f g h i j","delay_ms":300}}]}' "#
                + "\(setup.sseBase)/tokens/trigger-stream | grep -m1 -q '\"token\"'"
            let out = try await TestProcess.run("/bin/sh", ["-c", script])
            let grepExited = now
            #expect(out.status == 0, "grep saw no token: \(out.stderr)")
            // curl dies on its next write (the next token, 300 ms later), which resets the stream.
            let cancelledAt = try #require(
                await setup.cancellation(after: before), "the backend run was never cancelled")
            #expect(cancelledAt - grepExited < 1.0, "\(cancelledAt - grepExited) s")
        }
    }

    @Test(
        "a backend that dies mid-stream gives an error event within 1 s, never a clean end",
        arguments: [StreamBackend.http, .grpc])
    func backendDies(backend: StreamBackend) async throws {
        try await withStreamSetup(backend) { setup in
            let runner = try #require(setup.runner)
            let body = FileManager.default.temporaryDirectory.appendingPathComponent("tg-sse-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: body) }
            async let result = curlSSE(
                [
                    "-H", "content-type: application/json", "-H", "accept: text/event-stream",
                    "-d",
                    #"{"data":[{"variable":{"prompt":"a b c d e f g h i j k l m n o p q r s t","delay_ms":200}}]}"#,
                    "\(setup.sseBase)/tokens/trigger",
                ], outputFile: body)
            // Kill mid-stream: once curl has received a token (the stream lasts 4 s).
            #expect(await fileContains(body, "PIPELINE_OUTPUT_UPDATED"), "no token reached curl")
            runner.signal(SIGKILL)
            let killedAt = now
            let (_, events, raw) = try await result
            let endedAt = now
            #expect(endedAt - killedAt < 1.0, "the stream ended \(endedAt - killedAt) s after the backend died")
            #expect(events.contains { $0.name == "PIPELINE_OUTPUT_UPDATED" && $0.data["metadata"] == nil }, "\(raw)")
            #expect(events.last?.name == "PIPELINE_ERROR_UPDATED", "\(raw)")
            #expect(events.last?.data["code"] as? Int == 14, "backend failure is UNAVAILABLE: \(raw)")
            #expect(!events.contains { $0.data["metadata"] != nil }, "no clean end: \(raw)")
        }
    }

    @Test(
        "a stream that keeps producing outlives the request timeout; a silent one is cut at timeouts.stream_idle",
        arguments: StreamBackend.allCases)
    func idleVersusTotal(backend: StreamBackend) async throws {
        try await withStreamSetup(backend, timeouts: "request: 1s, stream_idle: 1s") { setup in
            // 8 words 400 ms apart: 2.8 s in total, never 1 s without an event.
            var (_, events, raw) = try await curlSSE([
                "-H", "content-type: application/json", "-H", "accept: text/event-stream",
                "-d", #"{"data":[{"variable":{"prompt":"a b c d e f g h","delay_ms":400}}]}"#,
                "\(setup.sseBase)/tokens/trigger",
            ])
            #expect(
                (events.last?.data["outputs"] as? [[String: Any]])?.first?["text"] as? String == "a b c d e f g h",
                "\(raw)")

            let before = setup.cancellationTimes.count
            let started = now
            (_, events, raw) = try await curlSSE([
                "-H", "content-type: application/json", "-H", "accept: text/event-stream",
                "-d", #"{"data":[{"variable":{"prompt":"a b","delay_ms":5000}}]}"#,
                "\(setup.sseBase)/tokens/trigger",
            ])
            let ended = now
            #expect(
                events.map(\.name) == ["PIPELINE_STATUS_UPDATED", "PIPELINE_OUTPUT_UPDATED", "PIPELINE_ERROR_UPDATED"],
                "\(raw)")
            #expect(events.last?.data["code"] as? Int == 4, "DEADLINE_EXCEEDED: \(raw)")
            #expect(ended - started < 4, "cut at the idle timeout, not when the backend spoke again")
            #expect(await setup.cancellation(after: before) != nil, "the silent backend run was cancelled")
        }
    }
}
