import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// HTTP/2 on the shared port: the sniffer, REST over h2c with curl and nghttp, connection-level errors.
@Suite("HTTP/2 on the shared port")
struct H2InteropTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    static let emptySettings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]

    /// The frame types in a server's byte stream, in order (9-byte headers, RFC 9113 §4.1).
    static func frameTypes(_ bytes: [UInt8]) -> [UInt8] {
        var types: [UInt8] = []
        var i = 0
        while i + 9 <= bytes.count {
            let length = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            types.append(bytes[i + 3])
            i += 9 + length
        }
        return types
    }

    @Test("the preface is recognised when it arrives one byte per read; our SETTINGS come first")
    func prefaceByteAtATime() async throws {
        try await withTestGateway { gateway in
            let chunks = (Self.preface + Self.emptySettings).map { [$0] }
            let reply = try await RawTCPClient.exchange(
                port: gateway.port, sending: chunks, pauseBetweenChunks: .milliseconds(2), timeout: .seconds(1)
            )
            #expect(Self.frameTypes(reply).first == 4, "first frame should be SETTINGS: \(reply.prefix(32))")
        }
    }

    @Test("a near-preface that diverges is served as HTTP/1.1")
    func nearPrefaceIsHTTP1() async throws {
        try await withTestGateway { gateway in
            let request = Array("PRI /healthz HTTP/1.1\r\nhost: x\r\n\r\n".utf8)
            let reply = try await RawTCPClient.exchange(
                port: gateway.port, sending: request.map { [$0] }, timeout: .seconds(1))
            #expect(
                String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 "),
                "\(String(decoding: reply, as: UTF8.self))")
        }
    }

    @Test("a malformed frame gets GOAWAY for the connection")
    func malformedFrameGoAway() async throws {
        try await withTestGateway { gateway in
            // DATA on stream 0 is a connection error (RFC 9113 §6.1).
            let garbage: [UInt8] = [0, 0, 4, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
            let reply = try await RawTCPClient.exchange(
                port: gateway.port, sending: [Self.preface + Self.emptySettings + garbage], timeout: .seconds(2)
            )
            #expect(Self.frameTypes(reply).contains(7), "expected GOAWAY in \(Self.frameTypes(reply))")
        }
    }

    @Test("REST over h2c with curl --http2-prior-knowledge: JSON, multipart, and the 413 cap")
    func curlH2C() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway(yaml: "limits:\n  max_body_bytes: 65536\n") { gateway in
            let base = "http://127.0.0.1:\(gateway.port)/v1beta/organizations/demo/pipelines"
            var out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version}", "-H", "content-type: application/json",
                    "-d", #"{"data":[{"variable":{"w":"up"}}]}"#, "\(base)/upper/releases/r9/trigger",
                ])
            let lines = out.stdoutString.split(separator: "\n")
            #expect(lines.last == "2", "\(out.stdoutString) \(out.stderr)")
            #expect(lines.first?.contains(#""w":"UP""#) == true)

            let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-h2-\(UUID().uuidString).bin")
            let bytes = randomBytes(40_000, seed: 9)
            try Data(bytes).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http2-prior-knowledge", "-F", "variables[0].f=@\(file.path)", "\(base)/blob-info/trigger",
                ])
            let info = try outputs(ByteBuffer(bytes: out.stdout)).first?["f"] as? [String: Any]
            #expect(info?["sha256"] as? String == (try sha256Hex(bytes)), "\(out.stdoutString)")

            out = try await TestProcess.run(
                curl,
                [
                    "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                    "-H", "content-type: application/json", "--data-binary", "@-", "\(base)/echo/trigger",
                ], stdin: Data(count: 70_000))
            #expect(out.stdoutString == "413", "\(out.stdoutString) \(out.stderr)")
        }
    }

    /// RFC 9110 §10.1.1 holds for HTTP/2 too: a request that expects 100-continue gets an immediate 100 or its
    /// final answer. Without the 100, curl waits its `--expect100-timeout` (1 s by default; 30 s here) first.
    @Test("curl over h2c with Expect: 100-continue gets the 100 at once, then its answer", .timeLimit(.minutes(1)))
    func expectContinueH2() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withTestGateway { gateway in
            let out = try await TestProcess.run(
                curl,
                [
                    "-sS", "-v", "--http2-prior-knowledge", "--expect100-timeout", "30", "-H", "Expect: 100-continue",
                    "-H", "content-type: application/json", "-d", #"{"data":[{"variable":{"k":"expected"}}]}"#,
                    "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
                ])
            #expect(out.stderr.contains("< HTTP/2 100"), "\(out.stderr)")
            #expect(out.stderr.contains("< HTTP/2 200"), "\(out.stderr)")
            #expect(out.stdoutString.contains(#""k":"expected""#), "\(out.stdoutString)")
        }
    }

    @Test("nghttp, nghttp2's own client, gets REST answers over h2c")
    func nghttpClient() async throws {
        let nghttp = try #require(TestProcess.which("nghttp"))
        try await withTestGateway { gateway in
            let body = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tg-nghttp-\(UUID().uuidString).json")
            try #"{"data":[{"variable":{"k":"v"}}]}"#.write(to: body, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: body) }
            let out = try await TestProcess.run(
                nghttp,
                [
                    "-d", body.path, "-H", "content-type: application/json",
                    "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
                ])
            #expect(out.status == 0, "\(out.stderr)")
            #expect(try outputs(ByteBuffer(bytes: out.stdout)).first?["k"] as? String == "v", "\(out.stdoutString)")
        }
    }
}
