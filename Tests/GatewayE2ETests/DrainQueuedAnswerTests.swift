import Foundation
import GatewayTestSupport
import Logging
import NIOCore
import Testing

/// A stop (SIGTERM) while an answer handed to the connection is still leaving for a client that reads it later or
/// slowly (operator review 58, F1): the answer is not a request in flight any more (its record went out with it),
/// but the connection is not idle either. Before, HTTP/1.1's drain closed such a kept-alive connection 1.5 s into
/// the stop whatever `shutdown_grace` was, and HTTP/2's close after its last stream came at once: the client got
/// part of its answer, or none, logged as sent whole. Now the close waits for the answer's last byte, within the
/// grace; the grace's end cuts what is left, counted in `requests.cut` and said in the log.
@Suite("A stop lets answers already handed to the connection leave", .serialized)
struct DrainQueuedAnswerTests {
    /// About 12 MB of answer: more than loopback's socket buffers hold, so most of it waits in the channel.
    static let size = 12_000_000
    static let trigger = "/v1beta/namespaces/demo/pipelines/echo/trigger"
    static func body() -> String { #"{"data":[{"variable":{"p":""# + String(repeating: "x", count: size) + #""}}]}"# }

    static func request(_ body: String) -> String {
        "POST \(trigger) HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// A client with a 4 KiB receive window that sent the 12 MB echo and has read the answer's head, then stops.
    static func answerBegun(on gateway: TestGateway) async throws -> (SlowSocket, SlowSocket.Outcome) {
        let socket = try await SlowSocket.connect(port: gateway.port, receiveBuffer: 4096)
        #expect(socket.send(request(body())))
        return (socket, try await socket.waitForClose(timeout: .seconds(20), stopAfter: "HTTP/1.1 200"))
    }

    @Test(
        "HTTP/1.1: a kept-alive answer the client has not read when the stop begins reaches it whole, past the drain's idle grace, then an orderly end"
    )
    func http1KeptAliveAnswerLeaves() async throws {
        let log = RecordedLog()
        try await withTestGateway(yaml: "timeouts: {shutdown_grace: 20s}", log: log, logLevel: .info) { gateway in
            // The answer has begun: the gateway handed it over and the client stops reading.
            let (socket, head) = try await Self.answerBegun(on: gateway)
            #expect(head.text.hasPrefix("HTTP/1.1 200"), "\(head.text.prefix(200))")
            await gateway.beginShutdown()
            await gateway.drainNoticeSent()
            // Past the drain's idle grace and lingering bound (1 s + 0.5 s), where the old close cut the answer.
            try await Task.sleep(for: .seconds(2.5))
            let rest = try await socket.waitForClose(timeout: .seconds(20))
            let received = head.received + rest.received
            let xs = received.reduce(0) { $0 + ($1 == UInt8(ascii: "x") ? 1 : 0) }
            #expect(xs == Self.size, "received \(received.count) bytes, \(xs) of the answer's \(Self.size)")
            #expect(received.last == UInt8(ascii: "}"), "the answer's JSON ends")
            #expect(rest.closedByServer && !rest.reset, "\(rest.closedByServer) \(rest.reset)")
        }
        let stopped = try #require(log.lines.first { $0.message == "listener stopped" }, "\(log.lines.suffix(5))")
        #expect(stopped.metadata["requests.cut"] == "0", "\(stopped)")
    }

    @Test(
        "HTTP/1.1: an answer the client never reads is cut at shutdown_grace: counted in requests.cut and said in the log"
    )
    func http1UnreadAnswerCutAtGrace() async throws {
        let log = RecordedLog()
        try await withTestGateway(yaml: "timeouts: {shutdown_grace: 2s}", log: log, logLevel: .info) { gateway in
            let (socket, head) = try await Self.answerBegun(on: gateway)
            await gateway.beginShutdown()
            // The client reads nothing more until well past the grace (2 s): the stop cuts the answer.
            try await Task.sleep(for: .seconds(3.5))
            let rest = try await socket.waitForClose(timeout: .seconds(20))
            let xs = (head.received + rest.received).reduce(0) { $0 + ($1 == UInt8(ascii: "x") ? 1 : 0) }
            #expect(xs < Self.size, "the whole answer arrived: \(xs)")
            #expect(rest.closedByServer || rest.reset)
        }
        let stopped = try #require(log.lines.first { $0.message == "listener stopped" }, "\(log.lines.suffix(5))")
        #expect(stopped.metadata["requests.cut"] == "1", "\(stopped)")
        let cut = log.lines.first { $0.message.hasPrefix("HTTP/1.1 connection closed: timeouts.shutdown_grace ended") }
        #expect(cut?.metadata["bytes.unsent"].flatMap(Int.init).map { $0 > 0 } == true, "\(log.lines.suffix(8))")
    }

    @Test(
        "HTTP/2 (curl, h2c): an answer still leaving when its stream closes after the stop's GOAWAY reaches the client whole"
    )
    func http2AnswerLeavesAfterLastStream() async throws {
        let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
        let log = RecordedLog()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("drain-\(UUID().uuidString).json")
        try Data(Self.body().utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        try await withTestGateway(yaml: "timeouts: {shutdown_grace: 20s}", log: log, logLevel: .info) { gateway in
            // 3 MB/s each way: the 12 MB request and its answer take about 4 s each.
            let call = Task {
                try await TestProcess.run(
                    curl,
                    [
                        "-sS", "--max-time", "30", "--http2-prior-knowledge", "--limit-rate", "3M", "-o", "-",
                        "-w", "\nstatus=%{http_code} size=%{size_download}", "-H", "content-type: application/json",
                        "--data-binary", "@\(file.path)", "http://127.0.0.1:\(gateway.port)\(Self.trigger)",
                    ])
            }
            // The stop begins while curl uploads (4 s at 3 MB/s): the stream, open, is served after the GOAWAY, and
            // it closes as soon as libnghttp2 has framed the whole answer (curl's window takes it all), most of
            // which still waits in the channel then.
            #expect(await eventually(within: .seconds(20)) { gateway.openConnections() == 1 })
            try await Task.sleep(for: .seconds(1))
            await gateway.beginShutdown()
            let output = try await call.value
            #expect(output.status == 0, "curl: \(output.status) \(output.stderr)")
            let text = output.stdoutString
            #expect(text.contains("}\nstatus=200 size="), "\(text.suffix(80))")
            #expect(text.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "x") ? 1 : 0) } == Self.size)
        }
        let stopped = try #require(log.lines.first { $0.message == "listener stopped" }, "\(log.lines.suffix(5))")
        #expect(stopped.metadata["requests.cut"] == "0", "\(stopped)")
    }
    @Test(
        "HTTP/2 (curl, h2c): an answer a slow client has not taken by shutdown_grace is cut then: counted in requests.cut and said in the log"
    )
    func http2SlowAnswerCutAtGrace() async throws {
        let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
        let log = RecordedLog()
        try await withTestGateway(yaml: "timeouts: {shutdown_grace: 2s}", log: log, logLevel: .info) { gateway in
            // A stored run whose answer is the 12 MB input, read back by a client that takes 100 KB/s.
            let setup = try await AsyncClient.connect(port: gateway.port)
            let accepted = try await setup.trigger("echo", ["p": String(repeating: "x", count: Self.size)])
            let name = try #require(accepted.json.operationName, "\(accepted.json)")
            #expect(try await setup.waitDone(name)["done"] as? Bool == true)
            await setup.client.close()
            // The setup's connection gone first, so that the one open next is curl's.
            #expect(await eventually(within: .seconds(10)) { gateway.openConnections() == 0 })
            let call = Task {
                try await TestProcess.run(
                    curl,
                    [
                        "-sS", "--max-time", "8", "--http2-prior-knowledge", "--limit-rate", "100K", "-o", "/dev/null",
                        "-w", "status=%{http_code} size=%{size_download}", "-H", "request-id: slow-reader",
                        "http://127.0.0.1:\(gateway.port)/v1beta/\(name)",
                    ])
            }
            #expect(
                await eventually(within: .seconds(20)) {
                    gateway.openConnections() == 1
                })
            try await Task.sleep(for: .seconds(0.5))
            await gateway.beginShutdown()
            let output = try await call.value
            // The kernel still sends what it holds after the close (a few MB at 100 KB/s): curl gives up at its
            // --max-time (28) or sees the end (18), never the whole answer.
            #expect(output.status != 0, "the whole answer arrived: \(output.stdoutString)")
        }
        let stopped = try #require(log.lines.first { $0.message == "listener stopped" }, "\(log.lines.suffix(5))")
        #expect(stopped.metadata["requests.cut"] == "1", "\(stopped)")
        let cut = try #require(
            log.lines.first { $0.message.hasPrefix("HTTP/2 answers cut: timeouts.shutdown_grace ended") },
            "\(log.lines.suffix(8))")
        #expect(cut.metadata["streams.open"] == "1" || cut.metadata["bytes.unsent"] != "0", "\(cut)")
    }
}
