import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// JSON integers past 2^53 (RFC 8259 §6: outside the interoperable range, but valid) come back with their
/// digits on every REST answer: sync, SSE and a stored async operation, read by curl and by Python's `json`
/// (what the Craft AI and Abacus.AI SDKs parse with), never rounded or written as `….0`.
@Suite("integers past 2^53 over REST")
struct LargeIntegerTests {
    /// 2^53, 2^53 + 1, Int64.max, UInt64.max, 2^64, -2^63, then 0.1 and -0 (written 0), as a client sends them.
    static let sent =
        "[9007199254740992,9007199254740993,9223372036854775807,18446744073709551615,"
        + "18446744073709551616,-9223372036854775808,0.1,-0]"
    static let answered =
        "[9007199254740992,9007199254740993,9223372036854775807,18446744073709551615,"
        + "18446744073709551616,-9223372036854775808,0.1,0]"
    static let body = #"{"data":[{"variable":{"n":\#(sent)}}]}"#

    /// Python's `json` reads `text` and prints the integers of `path` (`outputs[0].n` of its answer) as it sees
    /// them: `int` values print exactly, floats with a `.0` or an exponent.
    static func pythonReads(_ text: String, _ expression: String) async throws -> String {
        let script = "import json,sys; d=json.loads(sys.stdin.read()); print(repr(\(expression)))"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-int-\(UUID().uuidString)").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let out = try await TestProcess.run("/bin/sh", ["-c", "\"$0\" -c \"$1\" < \"$2\"", Peers.python, script, file])
        #expect(out.status == 0, "\(out.stderr)")
        return out.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let pythonValue =
        "[9007199254740992, 9007199254740993, 9223372036854775807, 18446744073709551615, 18446744073709551616, "
        + "-9223372036854775808, 0.1, 0]"

    @Test("sync trigger (curl): the outputs carry the same digits, and Python reads them as the same ints")
    func sync() async throws {
        try await withTestGateway { gateway in
            let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
            let out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--max-time", "20", "-H", "content-type: application/json", "-d", Self.body,
                    "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
                ])
            #expect(out.status == 0, "\(out.stderr)")
            #expect(out.stdoutString.contains(#"{"outputs":[{"n":\#(Self.answered)}]"#), "\(out.stdoutString)")
            #expect(try await Self.pythonReads(out.stdoutString, "d['outputs'][0]['n']") == Self.pythonValue)
        }
    }

    @Test("through an http runner (a demo-runner process): the hop and the answer keep the digits")
    func httpRunner() async throws {
        try await withDemoRunnerProcess(transport: "http") { runnerPort in
            try await withTestGateway(yaml: httpPoolConfig(port: runnerPort)) { gateway in
                let client = try await gateway.client()
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: Self.body))
                #expect(response.status == 200, "\(response.bodyString)")
                #expect(
                    response.bodyString.contains(#"{"outputs":[{"n":\#(Self.answered)}]"#), "\(response.bodyString)")
                await client.close()
            }
        }
    }

    @Test("SSE trigger (curl -N): the output event carries the same digits")
    func sse() async throws {
        try await withTestGateway { gateway in
            let (headers, _, raw) = try await curlSSE([
                "-H", "content-type: application/json", "-H", "accept: text/event-stream", "-d", Self.body,
                "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
            ])
            #expect(headers.contains("content-type: text/event-stream"), "\(headers)")
            #expect(raw.contains(#""n":\#(Self.answered)"#), "\(raw)")
        }
    }

    @Test("async trigger: the stored operation answers with the same digits after its run (2^53 + 1 stays that)")
    func asyncOperation() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let accepted = try await client.client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger-async", headers: jsonHeaders,
                body: ByteBuffer(string: Self.body))
            #expect(accepted.status == 200, "\(accepted.bodyString)")
            let name = try #require((try json(accepted.body)["operation"] as? [String: Any])?["name"] as? String)
            #expect(try await client.waitDone(name)["done"] as? Bool == true)
            let done = try await client.client.request("GET", "/v1beta/\(name)").bodyString
            // The stored request and result keep integers past 2^53 as digits (`OperationPayloadCodec
            // .largeIntegerDigits`, README), so the run saw them and the answer carries them exactly.
            #expect(done.contains(#""outputs":[{"n":\#(Self.answered)}]"#), "\(done)")
            let n = "d['operation']['response']['outputs'][0]['n']"
            #expect(try await Self.pythonReads(done, n) == Self.pythonValue, "\(done)")
            #expect(try await Self.pythonReads(done, "\(n)[1]") == "9007199254740993", "\(done)")
            await client.client.close()
        }
    }

    /// The SDK reviewer of session 54: `2.0` reached an http runner and came back as `2`, which Python reads as an
    /// `int` (`NumberForm`).
    @Test(
        "numbers written as floats stay floats for Python: sync in process (curl), through an http runner process, SSE, and an async run through the store"
    )
    func floatsStayFloats() async throws {
        let body = #"{"data":[{"variable":{"f":[2.0,1e2,-0.0,2.5,2,1E-2]}}]}"#
        let answered = "[2.0,100.0,-0.0,2.5,2,0.01]"
        let python = "[2.0, 100.0, -0.0, 2.5, 2, 0.01]"
        try await withTestGateway { gateway in
            let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
            let out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--max-time", "20", "-H", "content-type: application/json", "-d", body,
                    "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
                ])
            #expect(out.stdoutString.contains(#"{"outputs":[{"f":\#(answered)}]"#), "\(out.stdoutString)")
            #expect(try await Self.pythonReads(out.stdoutString, "d['outputs'][0]['f']") == python)

            let (_, _, raw) = try await curlSSE([
                "-H", "content-type: application/json", "-H", "accept: text/event-stream", "-d", body,
                "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
            ])
            #expect(raw.contains(#""f":\#(answered)"#), "\(raw)")

            // Stored: the values and their form (`OperationPayloadCodec.numberForms`), so the async answer is the
            // sync one.
            let client = try await AsyncClient.connect(port: gateway.port)
            let accepted = try await client.client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger-async", headers: jsonHeaders,
                body: ByteBuffer(string: body))
            let name = try #require((try json(accepted.body)["operation"] as? [String: Any])?["name"] as? String)
            #expect(try await client.waitDone(name)["done"] as? Bool == true)
            let done = try await client.client.request("GET", "/v1beta/\(name)").bodyString
            #expect(done.contains(#""outputs":[{"f":\#(answered)}]"#), "\(done)")
            #expect(try await Self.pythonReads(done, "d['operation']['response']['outputs'][0]['f']") == python)
            await client.client.close()
        }
        try await withDemoRunnerProcess(transport: "http") { runnerPort in
            try await withTestGateway(yaml: httpPoolConfig(port: runnerPort)) { gateway in
                let client = try await gateway.client()
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: body))
                #expect(response.bodyString.contains(#"{"outputs":[{"f":\#(answered)}]"#), "\(response.bodyString)")
                await client.close()
            }
        }
    }

    @Test("a number past a double's range (1e400) is a 400 naming it, not an infinity or a null")
    func outOfRange() async throws {
        try await withTestGateway { gateway in
            let client = try await TestHTTPClient.connect(port: gateway.port)
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{"n":1e400}}]}"#))
            #expect(response.status == 400, "\(response.bodyString)")
            #expect(response.bodyString.contains("1e400 is out of range"), "\(response.bodyString)")
            await client.close()
        }
    }
}
