import Foundation
import Logging
import Observability
import Testing
import TriggerModel

/// The access log's direct line (``AccessLog/fields(of:into:)``, no metadata dictionary) against the general
/// path (its metadata through `LineLogHandler.line`): the same bytes for the same records, in both formats.
@Suite("Access log: the direct line equals the metadata line")
struct AccessLogLineTests {
    static let timestamp = (seconds: 1_796_006_369, milliseconds: 7)

    /// A record with only the fields every request has.
    static var bare: RequestRecord {
        RequestRecord(
            requestID: "r-1", frontend: .rest, httpVersion: "HTTP/1.1", method: "POST",
            path: "/v1beta/namespaces/demo/pipelines/echo/trigger", operation: "triggerPipeline", status: 200,
            durationNanoseconds: 1_234_567)
    }

    /// Every optional field set, values that need quoting and escaping, negative and large numbers.
    static var full: RequestRecord {
        var record = bare
        record.frontend = .grpc
        record.httpVersion = "HTTP/2"
        record.requestID = "id with space"
        record.path = "/a\"b\\c=d\te"
        record.operation = ""
        record.route = "demo/*"
        record.principal = "user\u{1}\u{7F}é"
        record.namespace = "demo"
        record.pipeline = "echo"
        record.pool = "bench"
        record.endpoint = "127.0.0.1:8080"
        record.mode = "sync"
        record.status = 499
        record.grpcStatus = -3
        record.downstreamDisconnected = true
        record.upstreamFailure = .connectionTermination
        record.peerAddress = "[::1]:5000"
        record.bytesIn = Int.max
        record.bytesOut = 0
        record.durationNanoseconds = -2_000
        record.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        record.operationID = "a790masm2b7z61ngrq55grx0e2"
        record.upstream.attempts = 2
        record.upstream.status = 503
        record.upstream.lastTryNanoseconds = 1_999_999
        record.upstream.queueNanoseconds = 3_080_000_123
        record.userAgent = "grpc-python/1.76.0 grpc-c/51.0.0 (linux; chttp2) \"q\"\u{1B}[31m"
        record.cutAtShutdown = true
        return record
    }

    static func general(_ record: RequestRecord, _ format: LineFormat) -> [UInt8] {
        LineLogHandler.line(
            format: format, timestamp: timestamp, level: .info, label: "trigger-gateway", message: "request",
            metadata: AccessLog.metadata(of: record))
    }

    static func direct(_ record: RequestRecord, _ format: LineFormat) -> [UInt8] {
        AccessLog.line(of: record, format: format, label: "trigger-gateway", timestamp: timestamp)
    }

    @Test("same bytes, logfmt and JSON, bare and full records", arguments: [LineFormat.logfmt, .json])
    func sameBytes(format: LineFormat) {
        for record in [Self.bare, Self.full] {
            let general = String(decoding: Self.general(record, format), as: UTF8.self)
            let direct = String(decoding: Self.direct(record, format), as: UTF8.self)
            #expect(direct == general)
        }
    }

    @Test("the upstream, operation, user agent and cut fields: keys, units (microseconds) and escapes")
    func newFields() {
        let line = String(decoding: Self.direct(Self.full, .logfmt), as: UTF8.self)
        for field in [
            " attempts=2 ", " upstream_status=503 ", " upstream_duration_us=1999 ", " queue_duration_us=3080000 ",
            " operation.id=a790masm2b7z61ngrq55grx0e2 ", " cut_by=shutdown ",
            #" user_agent="grpc-python/1.76.0 grpc-c/51.0.0 (linux; chttp2) \"q\"\u001b[31m""#,
        ] {
            #expect(line.contains(field), "\(field) in \(line)")
        }
        // Absent when unknown: no try, no answer, no wait, no agent, not cut.
        let bare = String(decoding: Self.direct(Self.bare, .logfmt), as: UTF8.self)
        for key in [
            "attempts", "upstream_status", "upstream_duration_us", "queue_duration_us", "user_agent", "cut_by",
            "operation.id",
        ] {
            #expect(!bare.contains(" \(key)="), "\(key) in \(bare)")
        }
    }

    @Test("user_agent: kept whole up to 256 bytes, cut at a character boundary past it")
    func userAgentLimit() {
        let exact = String(repeating: "a", count: RequestRecord.userAgentLimit)
        #expect(RequestRecord.userAgent(exact) == exact)
        #expect(RequestRecord.userAgent(exact + "b") == exact)
        // A two-byte character straddling the limit is left out whole, not split.
        let straddling = String(repeating: "a", count: RequestRecord.userAgentLimit - 1) + "é"
        #expect(RequestRecord.userAgent(straddling) == String(repeating: "a", count: RequestRecord.userAgentLimit - 1))
        #expect(RequestRecord.userAgent("curl/8.5.0") == "curl/8.5.0")
    }

    @Test(
        "a trace id viewing its traceparent (as the frontends set it) is written as its own 32 digits only",
        arguments: [LineFormat.logfmt, .json])
    func traceIDView(format: LineFormat) {
        var record = Self.bare
        let traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        record.traceID = traceParent.dropFirst(3).prefix(32)
        let direct = String(decoding: Self.direct(record, format), as: UTF8.self)
        #expect(direct == String(decoding: Self.general(record, format), as: UTF8.self))
        let field =
            format == .json
            ? #""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""# : " trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n"
        #expect(direct.contains(field), "\(direct)")
        #expect(!direct.contains("00-4bf9") && !direct.contains("00f067aa0ba902b7"), "\(direct)")
        // A view that needs quoting: escaped as the same text in a string of its own would be.
        var quoted = Self.bare
        let text = "x\"a b\\c\u{1}y"
        quoted.traceID = text.dropFirst().dropLast()
        var own = Self.bare
        own.traceID = Substring(String(text.dropFirst().dropLast()))
        #expect(Self.direct(quoted, format) == Self.direct(own, format))
        #expect(Self.direct(quoted, format) == Self.general(quoted, format))
    }

    @Test("JSON: the full record's escaped values read back as they were, numbers as numbers")
    func jsonRoundTrip() throws {
        let record = Self.full
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(Self.direct(record, .json))) as? [String: Any])
        #expect(object["path"] as? String == record.path)
        #expect(object["principal"] as? String == record.principal)
        #expect(object["request_id"] as? String == record.requestID)
        #expect(object["operation"] as? String == "")
        #expect(object["grpc_status"] as? Int == -3)
        #expect(object["bytes_in"] as? Int == Int.max)
        #expect(object["duration_us"] as? Int == -2)
        #expect(object["response_flags"] as? String == "UC,DC")
        #expect(object["peer.address"] as? String == "[::1]:5000")
    }

    @Test("response_flags: `-` for none, the upstream flag, the termination's, or both joined by `,` (Envoy)")
    func responseFlags() {
        var record = Self.bare
        #expect(record.responseFlags == "-")
        for failure in UpstreamFailure.allCases {
            record.upstreamFailure = failure
            record.termination = nil
            #expect(record.responseFlags == failure.rawValue)
            record.termination = .streamIdleTimeout
            #expect(record.responseFlags == failure.rawValue + ",SI")
        }
        record.upstreamFailure = nil
        #expect(record.responseFlags == "SI")
        #expect(UpstreamFailure.allCases.map(\.rawValue) == ["UF", "UT", "UC", "UO", "UPE"])
    }

    @Test("logfmt: values with a space, quote, backslash, `=` or control are quoted and escaped; others bare")
    func logfmtQuoting() {
        let line = String(decoding: Self.direct(Self.full, .logfmt), as: UTF8.self)
        #expect(line.contains(#" path="/a\"b\\c=d\te" "#), "\(line)")
        // Other controls and DEL as \u00XX, never raw (a terminal reading the log would act on them).
        #expect(line.contains(#" principal="user\u0001\u007fé" "#), "\(line)")
        #expect(line.contains(#" request_id="id with space" "#), "\(line)")
        #expect(line.contains(#" operation="" "#), "\(line)")
        #expect(line.contains(" pool=bench "), "\(line)")
    }

    @Test("the bare record's logfmt line, byte for byte")
    func pinned() {
        #expect(
            String(decoding: Self.direct(Self.bare, .logfmt), as: UTF8.self)
                == "ts=2026-11-30T02:39:29.007Z level=info logger=trigger-gateway msg=request bytes_in=0 bytes_out=0 "
                + "duration_us=1234 frontend=rest method=POST operation=triggerPipeline "
                + "path=/v1beta/namespaces/demo/pipelines/echo/trigger protocol=HTTP/1.1 request_id=r-1 response_flags=- "
                + "status=200\n")
    }

    /// Through the gateway's handler on a pipe: the direct path (the handler adds no metadata), line after line
    /// in the reused buffer, a long line after a short one and a short one after it; and the metadata path for
    /// a handler with metadata of its own, which the line must carry too.
    @Test("the observer writes each record as one line, through the direct path and the metadata path")
    func writes() throws {
        let pipe = Pipe()
        let handler = LineLogHandler(
            label: "t", format: .logfmt, level: .info, fileDescriptor: pipe.fileHandleForWriting.fileDescriptor)
        let direct = AccessLog(logger: Logger(label: "t") { _ in handler })
        var long = Self.bare
        long.path = "/" + String(repeating: "x", count: 3000)
        direct.requestFinished(Self.bare)
        direct.requestFinished(long)
        direct.requestFinished(Self.full)
        var tagged = Logger(label: "t") { _ in handler }
        tagged[metadataKey: "instance"] = "a"
        AccessLog(logger: tagged).requestFinished(Self.bare)
        var quiet = Logger(label: "t") { _ in handler }
        quiet.logLevel = .warning
        AccessLog(logger: quiet).requestFinished(Self.bare)
        try pipe.fileHandleForWriting.close()
        let lines = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).map { $0.drop { $0 != "l" } }
        // Without `ts` (the wall clock's): from `level=` on.
        func expected(_ record: RequestRecord, _ extra: Logger.Metadata = [:]) -> Substring {
            var metadata = AccessLog.metadata(of: record)
            metadata.merge(extra) { _, new in new }
            let line = LineLogHandler.line(
                format: .logfmt, timestamp: Self.timestamp, level: .info, label: "t", message: "request",
                metadata: metadata)
            return String(decoding: line.dropLast(), as: UTF8.self).drop { $0 != "l" }
        }
        #expect(lines.count == 5, "\(lines)")  // four lines and the empty rest after the last newline
        guard lines.count == 5 else { return }
        #expect(lines[0] == expected(Self.bare))
        #expect(lines[1] == expected(long))
        #expect(lines[2] == expected(Self.full))
        #expect(lines[3] == expected(Self.bare, ["instance": "a"]))
        #expect(lines[4] == "")
    }
}
