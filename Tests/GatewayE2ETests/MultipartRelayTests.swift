import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// The streaming relay of multipart file uploads to http runners (issue 12, `HTTP1BodyRelay` fed by
/// `MultipartFileObserver`): the runner request starts while the file arrives, its base64 made as the bytes
/// come; a body that fails, turns out to be of another shape, or whose client goes away never reaches the
/// runner whole. Observed from the runner's side (`RecordingRunner`) and with curl and the demo-runner.
@Suite("Streaming relay of multipart uploads to http runners")
struct MultipartRelayTests {
    static let path = BodyRelayTests.path
    static let boundary = "relay-b0undary"

    /// A `multipart/form-data` body: `fields` (name, text) first, then the file part (with `extraHeaders`,
    /// CRLF-terminated lines), then `after`, then the close delimiter as curl writes it.
    static func form(
        fields: [(String, String)] = [("variables[0].n", "7")], file: [UInt8], extraHeaders: String = "",
        after: [(String, String)] = []
    ) -> [UInt8] {
        func field(_ name: String, _ value: String) -> String {
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        var body = Array(fields.map(field).joined().utf8)
        body += Array(
            ("--\(boundary)\r\nContent-Disposition: form-data; name=\"variables[0].file\"; filename=\"blob.bin\"\r\n"
                + "Content-Type: application/octet-stream\r\n\(extraHeaders)\r\n").utf8)
        body += file
        body += Array(("\r\n" + after.map(field).joined() + "--\(boundary)--\r\n").utf8)
        return body
    }

    static func head(_ length: Int, requestID: String = "mp-relay") -> String {
        "POST \(path) HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=\(boundary)\r\n"
            + "request-id: \(requestID)\r\ncontent-length: \(length)\r\n\r\n"
    }

    /// The same request with no `Content-Length` (one chunk): its length is not known ahead, so it is
    /// served the ordinary way, store and forward.
    static func chunkedRequest(_ body: [UInt8], requestID: String = "mp-relay") -> [UInt8] {
        Array(
            ("POST \(path) HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=\(boundary)\r\n"
                + "request-id: \(requestID)\r\ntransfer-encoding: chunked\r\n\r\n"
                + String(body.count, radix: 16) + "\r\n").utf8) + body + Array("\r\n0\r\n\r\n".utf8)
    }

    /// Sends all of `body` but its last `held` bytes, waits for the runner to hold `ahead` bytes of its
    /// request body (the relay started before the client's body ended), then sends the rest.
    static func sendHoldingBack(
        _ socket: SlowSocket, _ body: [UInt8], runner: RecordingRunner, ahead: Int, held: Int = 4096
    ) async throws {
        try await blocking {
            _ = socket.send(head(body.count)); _ = socket.send(Array(body[..<(body.count - held)]))
        }
        let started = await eventually(within: .seconds(20)) { runner.largestBodySeen >= ahead }
        #expect(started, "the runner got \(runner.largestBodySeen) bytes before the client's body ended")
        try await blocking { _ = socket.send(Array(body[(body.count - held)...])) }
    }

    static func file(of json: [UInt8]) throws -> String? {
        let object = try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any]
        let variable = ((object?["data"] as? [[String: Any]])?.first)?["variable"] as? [String: Any]
        return variable?["file"] as? String
    }

    @Test("a 3 MiB file: the runner holds 1 MiB before the last part is sent, and gets the unrelayed path's JSON")
    func relayedAhead() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            // 3 MiB + 1: the base64 ends with a padded quantum.
            let bytes = randomBytes((3 << 20) + 1, seed: 31)
            let body = Self.form(file: bytes, after: [])
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendHoldingBack(socket, body, runner: runner, ahead: 1 << 20)
            let answer = try await BodyRelayTests.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(300))")
            #expect(runner.wholeBodies.count == 1 && runner.cutOff == 0)
            // The same upload without a Content-Length is not relayed: the runner must get the same bytes.
            let ordinary = try await SlowSocket.connect(port: gateway.port)
            try await blocking { _ = ordinary.send(Self.chunkedRequest(body)) }
            let second = try await BodyRelayTests.response(ordinary)
            #expect(second.text.hasPrefix("HTTP/1.1 200"), "\(second.text.prefix(300))")
            try #require(runner.wholeBodies.count == 2)
            let (relayed, unrelayed) = (runner.wholeBodies[0], runner.wholeBodies[1])
            #expect(relayed == unrelayed, "relayed \(relayed.count) bytes, unrelayed \(unrelayed.count)")
            let uri = try #require(try Self.file(of: relayed))
            #expect(uri.hasSuffix(";base64," + Data(bytes).base64EncodedString()))
            let object = try JSONSerialization.jsonObject(with: Data(relayed)) as? [String: Any]
            let variable = ((object?["data"] as? [[String: Any]])?.first)?["variable"] as? [String: Any]
            #expect(variable?["n"] as? Int == 7)
        }
    }

    @Test("a malformed close delimiter at the body's end: the ordinary 400; the runner saw a cut-off request only")
    func malformedEndAborted() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            var body = Self.form(file: randomBytes(3 << 20, seed: 32))
            // `--boundary--\r\n` becomes `--boundaryxx\r\n`: bytes after a boundary that are neither `--` nor CRLF.
            body[body.count - 4] = UInt8(ascii: "x")
            body[body.count - 3] = UInt8(ascii: "x")
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendHoldingBack(socket, body, runner: runner, ahead: 1 << 20)
            let answer = try await BodyRelayTests.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 400"), "\(answer.text.prefix(300))")
            #expect(answer.text.contains("unexpected bytes after a boundary"), "\(answer.text.prefix(400))")
            #expect(await eventually(within: .seconds(10)) { runner.cutOff == 1 })
            #expect(runner.wholeBodies.isEmpty)
        }
    }

    @Test("the client gone mid-file: the runner request is cut off, and curl's next upload is served")
    func clientGoneMidBody() async throws {
        let curl = try #require(TestProcess.which("curl"))
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let bytes = randomBytes(3 << 20, seed: 33)
            let body = Self.form(file: bytes)
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await blocking {
                _ = socket.send(Self.head(body.count)); _ = socket.send(Array(body[..<(body.count / 2)]))
            }
            #expect(await eventually(within: .seconds(20)) { runner.largestBodySeen >= 1 << 20 })
            socket.shutdown()
            #expect(await eventually(within: .seconds(10)) { runner.cutOff == 1 })
            #expect(runner.wholeBodies.isEmpty)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mprelay-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let file = directory.appendingPathComponent("blob.bin")
            try Data(bytes).write(to: file)
            let out = try await TestProcess.run(
                curl,
                [
                    "-sS", "-w", "\n%{http_code}", "-F",
                    "variables[0].file=@\(file.path);type=application/octet-stream",
                    "http://127.0.0.1:\(gateway.port)\(Self.path)",
                ])
            #expect(out.stdoutString.hasSuffix("\n200"), "\(out.stdoutString.suffix(300)) \(out.stderr)")
            try #require(runner.wholeBodies.count == 1)
            #expect(
                try Self.file(of: runner.wholeBodies[0])?.hasSuffix(";base64," + Data(bytes).base64EncodedString())
                    == true)
        }
    }

    /// The relay assumes the file is the body's last part; a field after it shows when the file's part ends
    /// short of the derived length: the request sent ahead is cut off and the body is served the ordinary way.
    @Test("a field after the file: the request sent ahead is cut off, the ordinary one answers 200 with both")
    func fieldAfterFileServedOrdinarily() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let bytes = randomBytes(3 << 20, seed: 34)
            let body = Self.form(file: bytes, after: [("variables[0].m", "1")])
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendHoldingBack(socket, body, runner: runner, ahead: 1 << 20, held: 300)
            let answer = try await BodyRelayTests.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(300))")
            #expect(await eventually(within: .seconds(10)) { runner.cutOff == 1 })
            let whole = try #require(runner.wholeBodies.first)
            #expect(try Self.file(of: whole)?.hasSuffix(";base64," + Data(bytes).base64EncodedString()) == true)
            let object = try JSONSerialization.jsonObject(with: Data(whole)) as? [String: Any]
            let variable = ((object?["data"] as? [[String: Any]])?.first)?["variable"] as? [String: Any]
            #expect(variable?["m"] as? Int == 1)
        }
    }

    @Test("curl -F uploads reach demo-runner with the file's sha256, relayed and not (1 byte under the threshold)")
    func curlDemoRunner() async throws {
        let curl = try #require(TestProcess.which("curl"))
        try await withDemoRunnerProcess(transport: "http") { runnerPort in
            try await withTestGateway(yaml: httpPoolConfig(port: runnerPort)) { gateway in
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mprelay-\(UUID())")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                for (size, seed) in [(5 << 20, 35), ((1 << 20) - 1, 36), (1 << 20, 37), ((1 << 20) + 2, 38)] {
                    let bytes = randomBytes(size, seed: UInt64(seed))
                    let file = directory.appendingPathComponent("blob-\(size).bin")
                    try Data(bytes).write(to: file)
                    let out = try await TestProcess.run(
                        curl,
                        [
                            "-sS", "-F", "variables[0].blob=@\(file.path);type=application/octet-stream",
                            "http://127.0.0.1:\(gateway.port)\(Self.path)",
                        ])
                    let info = try outputs(ByteBuffer(bytes: out.stdout)).first?["blob"] as? [String: Any]
                    #expect(info?["size"] as? Int == size, "\(out.stdoutString.prefix(300)) \(out.stderr)")
                    #expect(info?["sha256"] as? String == (try sha256Hex(bytes)))
                }
            }
        }
    }

    /// The relay thresholds (`HTTP1BodyRelay.minimumBytes` of file) and the codec limits at their edge and one
    /// past: a relayed body is one the runner holds bytes of before the client's last bytes; a refused one
    /// never reaches the runner.
    @Test("a file of exactly 1 MiB is relayed")
    func relayThreshold() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let atEdge = Self.form(file: randomBytes(1 << 20, seed: 39))
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendHoldingBack(socket, atEdge, runner: runner, ahead: 512 << 10)
            #expect(try await BodyRelayTests.response(socket).text.hasPrefix("HTTP/1.1 200"))
            #expect(runner.wholeBodies.count == 1)
        }
    }

    @Test("a file one byte under 1 MiB is not relayed: the runner gets nothing of it before the body ends")
    func underRelayThreshold() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let under = Self.form(file: randomBytes((1 << 20) - 1, seed: 40))
            let held = 4096
            let second = try await SlowSocket.connect(port: gateway.port)
            try await blocking {
                _ = second.send(Self.head(under.count)); _ = second.send(Array(under[..<(under.count - held)]))
            }
            // A whole small request through the same runner meanwhile: a relay would have started its runner
            // request when the file part began, before this one.
            let client = try await gateway.client()
            let probe = try await client.request(
                "POST", Self.path, headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{"k":"v"}}]}"#))
            #expect(probe.status == 200)
            await client.close()
            #expect(runner.wholeBodies.count == 1 && runner.largestBodySeen < 1 << 10)
            try await blocking { _ = second.send(Array(under[(under.count - held)...])) }
            #expect(try await BodyRelayTests.response(second).text.hasPrefix("HTTP/1.1 200"))
            #expect(runner.wholeBodies.count == 2 && runner.cutOff == 0)
        }
    }

    @Test("a body of exactly max_body_bytes is relayed; one byte more is 413 and never reaches the runner")
    func bodyCap() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        let cap = 4 << 20
        let yaml = "limits: {max_body_bytes: \(cap)}\n" + httpPoolConfig(port: runner.port)
        try await withTestGateway(yaml: yaml) { gateway in
            let empty = Self.form(file: [])
            let atCap = Self.form(file: randomBytes(cap - empty.count, seed: 41))
            #expect(atCap.count == cap)
            let socket = try await SlowSocket.connect(port: gateway.port)
            try await Self.sendHoldingBack(socket, atCap, runner: runner, ahead: 1 << 20)
            #expect(try await BodyRelayTests.response(socket).text.hasPrefix("HTTP/1.1 200"))
            #expect(runner.wholeBodies.count == 1)

            let over = Self.form(file: randomBytes(cap + 1 - empty.count, seed: 42))
            let second = try await SlowSocket.connect(port: gateway.port)
            try await blocking {
                _ = second.send(Self.head(over.count)); _ = second.send(over)
            }
            let answer = try await BodyRelayTests.response(second)
            #expect(answer.text.hasPrefix("HTTP/1.1 413"), "\(answer.text.prefix(300))")
            #expect(runner.wholeBodies.count == 1 && runner.cutOff == 0)
        }
    }

    @Test("part caps: a file part with 16 KiB of headers, or as part 1024, is relayed; one past is 400, nothing sent")
    func partCaps() async throws {
        let runner = try await RecordingRunner.start()
        defer { runner.stop() }
        try await withTestGateway(yaml: httpPoolConfig(port: runner.port)) { gateway in
            let headerCap = 16 * 1024
            // The file part's header fields: its two lines and the padding line. The blank line that ends the
            // block does not count (as for the request head's max_header_bytes, review 18 F6).
            let fixed =
                "Content-Disposition: form-data; name=\"variables[0].file\"; filename=\"blob.bin\"\r\n"
                + "Content-Type: application/octet-stream\r\n" + "X-Pad: \r\n"
            let padding = headerCap - fixed.utf8.count
            let fields = (0..<1024).map { ("variables[0].f\($0)", "\($0)") }
            var expected = runner.wholeBodies.count
            for (extra, parts, status) in [
                (padding, 1, 200), (padding + 1, 1, 400), (0, 1024, 200), (0, 1025, 400),
            ] {
                let before = parts == 1 ? [] : Array(fields.prefix(parts - 1))
                let body = Self.form(
                    fields: before, file: randomBytes(2 << 20, seed: UInt64(extra + parts)),
                    extraHeaders: "X-Pad: " + String(repeating: "a", count: extra) + "\r\n")
                let socket = try await SlowSocket.connect(port: gateway.port)
                if status == 200 {
                    try await Self.sendHoldingBack(socket, body, runner: runner, ahead: 1 << 20)
                    expected += 1
                } else {
                    try await blocking {
                        _ = socket.send(Self.head(body.count)); _ = socket.send(body)
                    }
                }
                let answer = try await BodyRelayTests.response(socket)
                #expect(answer.text.hasPrefix("HTTP/1.1 \(status)"), "\(extra) \(parts): \(answer.text.prefix(300))")
                #expect(runner.wholeBodies.count == expected && runner.cutOff == 0, "\(extra) \(parts)")
            }
        }
    }
}

/// Back-pressure of the streaming relay (`HTTP1BodyRelay.queueHighWater`): a runner that reads slower than the
/// client sends keeps the gateway's memory at what the body path holds anyway (the gathered body or the file)
/// plus a window, not plus a second copy of the body queued for the runner. Measured as the peak RSS growth
/// (`VmHWM`) of a gateway process over one upload, in bytes, against a runner reading every 5 ms.
@Suite("Streaming relay back-pressure from a slow runner")
struct RelayBackPressureTests {
    static func highWaterMark(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        let kib = try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kib << 10
    }

    /// Uploads `body` (after a small warm-up request) through a gateway process to a slow runner; returns
    /// the gateway's peak RSS growth over the upload, after checking that the runner got the whole request.
    static func peakGrowth(head: String, body: [UInt8]) async throws -> Int {
        let runner = try await RecordingRunner.start(readEvery: .milliseconds(5))
        defer { runner.stop() }
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("mprelay-\(UUID()).yaml")
        try ("limits: {max_body_bytes: 64MiB}\n" + httpPoolConfig(port: runner.port))
            .write(to: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: config) }
        return try await ProcessTests.withGatewayProcess(["--config", config.path, "--log-level", "warning"]) {
            server in
            let warm = try await SlowSocket.connect(port: server.port)
            let small = Array(#"{"data":[{"variable":{"k":"v"}}]}"#.utf8)
            try await blocking {
                _ = warm.send(BodyRelayTests.head(small.count)); _ = warm.send(small)
            }
            #expect(try await BodyRelayTests.response(warm).text.hasPrefix("HTTP/1.1 200"))
            let idle = try highWaterMark(server.pid)
            let socket = try await SlowSocket.connect(port: server.port)
            try await blocking {
                _ = socket.send(head); _ = socket.send(body)
            }
            let answer = try await BodyRelayTests.response(socket)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(300))")
            #expect(runner.wholeBodies.count == 2 && runner.cutOff == 0)
            return try highWaterMark(server.pid) - idle
        }
    }

    @Test("a 16 MiB multipart file to a slow runner: peak RSS growth stays under 1.5× the file")
    func multipart() async throws {
        let file = randomBytes(16 << 20, seed: 51)
        let body = MultipartRelayTests.form(file: file)
        let growth = try await Self.peakGrowth(head: MultipartRelayTests.head(body.count), body: body)
        // Without back-pressure the file's base64 (4/3 of it) queues up for the runner: over 2× the file.
        #expect(growth <= file.count * 3 / 2, "peak RSS grew by \(growth >> 20) MiB for a \(file.count >> 20) MiB file")
    }

    @Test("a 16 MiB base64 JSON body to a slow runner: peak RSS growth stays under 1.5× the body")
    func json() async throws {
        let (body, _, _) = BodyRelayTests.body(blobBytes: 12 << 20, seed: 52)
        let growth = try await Self.peakGrowth(head: BodyRelayTests.head(body.count), body: body)
        // Without back-pressure the client's read buffers queue up for the runner besides the gathered body.
        #expect(growth <= body.count * 3 / 2, "peak RSS grew by \(growth >> 20) MiB for a \(body.count >> 20) MiB body")
    }
}
