import Foundation
@testable import GatewayFuzzing
import Testing
import TestScheduling

/// The fuzz target's connection harness in the ordinary test run: the seeds captured from real clients and the
/// generated HTTP/2 sessions go through the gateway's real connection pipeline and meet every invariant, and
/// the invariants themselves catch what they are meant to catch. Every corpus file and every past crasher is
/// replayed here as `scripts/fuzz.sh regress` replays it (``replayed(_:)``), without libFuzzer's instrumentation
/// and AddressSanitizer, which `scripts/fuzz.sh regress` adds (a separate build of the whole graph).
@Suite("fuzz harness: the real frontends on a test channel", .cpuBound)
struct FuzzConnectionTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/fuzz/corpus")

    /// The whole-connection seeds: captures of curl, the two HTTP/1.1 SDKs and nghttp, and the generated
    /// HTTP/2 sessions (the bare-body seeds feed only the decoders).
    static let seeds: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []
        return names.filter { $0.hasPrefix("http1-") || $0.hasPrefix("nghttp-") || $0.hasPrefix("seed-h2-") }.sorted()
    }()

    @Test("the corpus has connection seeds of both protocols")
    func seedsPresent() {
        #expect(Self.seeds.contains { $0.hasPrefix("http1-") })
        #expect(Self.seeds.contains { $0.hasPrefix("nghttp-") })
    }

    static let failCases = corpus.deletingLastPathComponent().appendingPathComponent("FailCases")

    /// What `scripts/fuzz.sh regress` replays: every file of `corpus/` and `FailCases/` but the READMEs, as paths
    /// relative to scripts/fuzz.
    static let regressionInputs: [String] = {
        [corpus, failCases].flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
                .filter { !$0.hasPrefix("README") && !$0.hasPrefix(".") }
                .map { directory.lastPathComponent + "/" + $0 }
        }.sorted()
    }()

    @Test("the regression inputs include the past crashers and the whole corpus")
    func regressionInputsPresent() {
        #expect(Self.regressionInputs.contains { $0.hasPrefix("FailCases/") })
        #expect(Self.regressionInputs.filter { $0.hasPrefix("corpus/") }.count > Self.seeds.count)
    }

    /// The same input through the same entry as the fuzzer's (`fuzzGatewayInput`: the whole connection, then
    /// every decoder), so the test run catches a broken invariant on any corpus input or past crasher without
    /// the instrumented build. The decoders' invariants are preconditions (a failure stops the test binary
    /// with the message, as it stops the fuzzer); the connection's is reported per input.
    @Test("every corpus input and past crasher replays with every invariant held", arguments: regressionInputs)
    func replayed(_ path: String) async throws {
        let bytes = try [UInt8](Data(contentsOf: Self.corpus.deletingLastPathComponent().appendingPathComponent(path)))
        let served = await FuzzConnection.serve(bytes, settleLimit: FuzzConnection.replaySettleLimit)
        #expect(served.violation == nil, "\(path): \(served.violation ?? "")")
        // A whole-connection seed (a real client's capture, a generated session) gets an answer.
        if path.hasPrefix("corpus/"), Self.seeds.contains(String(path.dropFirst("corpus/".count))) {
            #expect(!served.output.isEmpty, "\(path): no answer at all")
        }
        bytes.withUnsafeBytes { fuzzGatewayDecoders($0) }
    }

    /// The seeds reach the demo runner through the real dispatcher, not only the frontends' error paths.
    @Test("curl's JSON trigger over HTTP/1.1 and nghttp's over h2c come back echoed by the demo runner")
    func echoed() async throws {
        let curl = try [UInt8](Data(contentsOf: Self.corpus.appendingPathComponent("http1-curl-json")))
        let text = String(decoding: await FuzzConnection.serve(curl).output, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(text.contains("\"prompt\":\"hello world\""), "\(text)")
        let nghttp = try [UInt8](Data(contentsOf: Self.corpus.appendingPathComponent("nghttp-rest-json")))
        let output = await FuzzConnection.serve(nghttp).output
        // The response's DATA carries the echoed variable (HPACK leaves the body as it is).
        #expect(String(decoding: output, as: UTF8.self).contains("\"prompt\":\"hello world\""))
    }

    @Test("two pipelined requests get two responses, in order, and the connection then idles out")
    func pipelined() async {
        let request = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
        let served = await FuzzConnection.serve(Array((request + request).utf8))
        #expect(served.violation == nil)
        let text = String(decoding: served.output, as: UTF8.self)
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(text)")
        let transcript = HTTP1Transcript(client: Array((request + request).utf8))
        #expect(transcript.heads.count == 2 && transcript.complete == 2)
    }

    /// The gateway's own timeouts run on the loop's clock, so the harness's virtual time reaches them: a head
    /// that stops short is answered 408 at the header timeout, and a silent half-preface is closed at the
    /// preface timeout. Were either on the wall clock, the harness would report the connection outliving every
    /// timeout (it never waits the 2 s in real time).
    @Test("an unfinished head is answered 408 and a stalled preface closed, in virtual time")
    func timeoutsOnTheLoopClock() async {
        let head = await FuzzConnection.serve(Array("GET /healthz HTTP/1.1\r\nhost: x\r\n".utf8))
        #expect(head.violation == nil)
        #expect(String(decoding: head.output, as: UTF8.self).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        let preface = await FuzzConnection.serve(Array("PRI * HTTP/2.0\r\n".utf8))
        #expect(preface.violation == nil)
        #expect(preface.output.isEmpty)
    }

    @Test("the HTTP/1.1 checks fail an answer that does not parse, one too many, or one missing")
    func http1Checks() {
        let transcript = HTTP1Transcript(client: Array("GET / HTTP/1.1\r\nhost: x\r\n\r\n".utf8))
        let ok = Array("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi".utf8)
        #expect(transcript.violation(ok, closed: false) == nil)
        #expect(transcript.violation(Array("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhi".utf8), closed: true) != nil)
        #expect(transcript.violation(Array("garbage\r\n\r\n".utf8), closed: true) != nil)
        #expect(transcript.violation(ok + ok + ok, closed: true) != nil)
        #expect(transcript.violation([], closed: false) != nil)
        #expect(transcript.violation([], closed: true) == nil)
    }

    @Test("the HTTP/2 checks fail frames on a stream the client never opened and an unanswered stream")
    func http2Checks() {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let settings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]
        // HEADERS on stream 1 with END_STREAM | END_HEADERS (an empty block: the checks read frames only).
        let headers1: [UInt8] = [0, 0, 0, 1, 5, 0, 0, 0, 1]
        let transcript = HTTP2Transcript(client: preface + settings + headers1)
        #expect(transcript.expecting == [1])
        let answer: [UInt8] = [0, 0, 0, 1, 5, 0, 0, 0, 1]
        #expect(transcript.violation(settings + answer, closed: false) == nil)
        #expect(transcript.violation(settings, closed: false) != nil)
        #expect(transcript.violation(settings, closed: true) == nil)
        let onStream3: [UInt8] = [0, 0, 0, 1, 5, 0, 0, 0, 3]
        #expect(transcript.violation(settings + answer + onStream3, closed: true) != nil)
        let afterEnd: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 1]
        #expect(transcript.violation(settings + answer + afterEnd, closed: true) != nil)
        #expect(transcript.violation(answer, closed: true) != nil)
        // GOAWAY(last stream 0, NO_ERROR): the gateway gave up on stream 1 before it started, which is an answer.
        let goAway: [UInt8] = [0, 0, 8, 7, 0, 0, 0, 0, 0] + [0, 0, 0, 0] + [0, 0, 0, 0]
        #expect(transcript.violation(settings + goAway, closed: false) == nil)
        // A HEADERS frame cut short by the end of the input has opened its stream (nghttp2 reads header blocks
        // as they arrive): the gateway resetting it at the header timeout is no frame on an unopened stream.
        let cutShort = HTTP2Transcript(client: preface + settings + [0, 0, 95, 1, 4, 0, 0, 0, 1, 0x83, 0x86])
        let reset: [UInt8] = [0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 8]
        #expect(cutShort.opened == [1] && cutShort.expecting.isEmpty)
        #expect(cutShort.violation(settings + reset, closed: true) == nil)
    }
}
