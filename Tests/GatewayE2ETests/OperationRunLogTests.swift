import DemoRunner
import Foundation
import GatewayTestSupport
import Logging
import Testing

/// An async operation's life in the log (review 26 H2): its id on the accepting request's access line (and on
/// the reads and the cancel of it), one `operation run` line per run with the run's endpoint, attempt, outcome,
/// flags and error, over a real gateway on loopback with a real HTTP runner behind it.
@Suite("Access log: an async operation's id on its requests, and one line per run")
struct OperationRunLogTests {
    static let traceID = "0af7651916cd43dd8448eb211c80319c"

    /// A gateway at `info` in front of a demo runner over HTTP (pool `runner`, `request_timeout: 300ms`), with two
    /// attempts per operation and no back-off; its lines kept in `log`.
    static func withLoggedGateway(_ body: (TestGateway, Int, RecordedLog) async throws -> Void) async throws {
        let log = RecordedLog()
        try await withHTTPBackend(runner: DemoPipelines()) { port in
            let yaml = """
                pools: [{name: runner, transport: http, endpoints: ["127.0.0.1:\(port)"], request_timeout: 300ms}]
                routes: [{namespace: demo, pipeline: "*", pool: runner}]
                store: {max_attempts: 2, retry_backoff: 0s}
                """
            try await withTestGateway(yaml: yaml, log: log, logLevel: .info) { gateway in
                try await body(gateway, port, log)
            }
        }
    }

    /// The `operation run` lines of operation `id`, once `count` of them were written.
    static func runLines(_ log: RecordedLog, _ id: String, count: Int) async -> [RecordedLog.Line] {
        func lines() -> [RecordedLog.Line] {
            log.lines.filter { $0.message == "operation run" && $0.metadata["operation.id"] == id }
        }
        _ = await eventually(within: .seconds(10)) { lines().count >= count }
        return lines()
    }

    /// The access line (`msg=request`) of the request `requestID`.
    static func accessLine(_ log: RecordedLog, _ requestID: String) async throws -> RecordedLog.Line {
        func line() -> RecordedLog.Line? {
            log.lines.first { $0.message == "request" && $0.metadata["request_id"] == requestID }
        }
        _ = await eventually(within: .seconds(5)) { line() != nil }
        return try #require(line(), "no access line for \(requestID): \(log.lines)")
    }

    @Test(
        "a run that times out twice: two lines (retrying, then failed, UT, error.code 4); one that succeeds: one line with the runner's status"
    )
    func runsTimeOutThenSucceed() async throws {
        try await Self.withLoggedGateway { gateway, port, log in
            let client = try await AsyncClient.connect(port: gateway.port)
            let traceparent = ("traceparent", "00-\(Self.traceID)-00f067aa0ba902b7-01")
            // The runner sleeps 3 s; the pool gives it 300 ms: each run times out.
            let (status, slow) = try await client.trigger(
                "sleep", ["ms": 3000], headers: [("request-id", "oplog-slow"), traceparent])
            #expect(status == 200, "\(slow)")
            let slowName = try #require(slow.operationName)
            let slowID = String(slowName.dropFirst("operations/".count))
            let accepted = try await Self.accessLine(log, "oplog-slow")
            #expect(accepted.metadata["operation.id"] == slowID, "\(accepted)")
            #expect(accepted.metadata["operation"] == "triggerPipelineAsync" && accepted.metadata["mode"] == "async")

            let done = try await client.waitDone(slowName)
            #expect(done.metadataState == "failed", "\(done)")
            let runs = await Self.runLines(log, slowID, count: 2)
            #expect(runs.count == 2, "\(log.lines)")
            #expect(runs.map { $0.metadata["attempt"] } == ["1", "2"], "\(runs)")
            #expect(runs.map { $0.metadata["outcome"] } == ["retrying", "failed"], "\(runs)")
            for run in runs {
                #expect(run.level == .info)
                #expect(run.metadata["request_id"] == "oplog-slow", "\(run)")
                #expect(run.metadata["trace_id"] == Self.traceID, "\(run)")
                #expect(run.metadata["route"] == "demo/*" && run.metadata["pool"] == "runner", "\(run)")
                #expect(run.metadata["pipeline"] == "sleep" && run.metadata["namespace"] == "demo", "\(run)")
                #expect(run.metadata["endpoint"] == "127.0.0.1:\(port)", "\(run)")
                #expect(run.metadata["response_flags"] == "UT", "\(run)")
                #expect(run.metadata["error.code"] == "4", "\(run)")  // DEADLINE_EXCEEDED, as the operation shows
                #expect(run.metadata["error"]?.contains("300ms") == true, "\(run)")
                #expect(run.metadata["attempts"] == "1", "one try per run: \(run)")
                #expect(run.metadata["upstream_status"] == nil, "the runner never answered: \(run)")
                let duration = try #require(Int(run.metadata["duration_us"] ?? ""), "\(run)")
                #expect(duration >= 300_000 && duration < 3_000_000, "\(run)")
            }

            // A run that succeeds: one line, with the runner's HTTP status and the try's duration.
            let (_, quick) = try await client.trigger("upper", ["text": "ok"], headers: [("request-id", "oplog-ok")])
            let quickName = try #require(quick.operationName)
            let quickID = String(quickName.dropFirst("operations/".count))
            #expect((try await Self.accessLine(log, "oplog-ok")).metadata["operation.id"] == quickID)
            #expect(try await client.waitDone(quickName).metadataState == "succeeded")
            let ok = await Self.runLines(log, quickID, count: 1)
            #expect(ok.count == 1, "\(log.lines)")
            let run = try #require(ok.first)
            #expect(run.metadata["outcome"] == "succeeded" && run.metadata["attempt"] == "1", "\(run)")
            #expect(run.metadata["response_flags"] == "-" && run.metadata["error.code"] == nil, "\(run)")
            #expect(run.metadata["upstream_status"] == "200" && run.metadata["attempts"] == "1", "\(run)")
            #expect(run.metadata["upstream_duration_us"].flatMap { Int($0) } != nil, "\(run)")
            #expect(run.metadata["trace_id"]?.count == 32, "the gateway started one: \(run)")

            // The reads and the cancel of an operation name it, an unknown one's 404 too.
            _ = try await client.client.request(
                "GET", "/v1beta/\(quickName)", headers: [("request-id", "oplog-get")])
            _ = try await client.client.request(
                "POST", "/v1beta/\(slowName):cancel", headers: [("request-id", "oplog-cancel")])
            _ = try await client.client.request(
                "GET", "/v1beta/operations/nosuchoperation", headers: [("request-id", "oplog-404")])
            #expect((try await Self.accessLine(log, "oplog-get")).metadata["operation.id"] == quickID)
            let cancel = try await Self.accessLine(log, "oplog-cancel")
            #expect(cancel.metadata["operation.id"] == slowID && cancel.metadata["status"] == "409", "\(cancel)")
            let missing = try await Self.accessLine(log, "oplog-404")
            #expect(missing.metadata["operation.id"] == "nosuchoperation" && missing.metadata["status"] == "404")
        }
    }

    @Test("gRPC: TriggerAsync's and GetOperation's access lines carry the operation's id")
    func grpcAccessLines() async throws {
        try await Self.withLoggedGateway { gateway, _, log in
            let answer = try await AsyncGRPCTests.run("async", port: gateway.port, ["upper", #"[{"p":"x"}]"#])
            let name = try #require((answer["accepted"] as? [String: Any])?["name"] as? String, "\(answer)")
            let id = String(name.dropFirst("operations/".count))
            let lines = log.lines.filter { $0.message == "request" && $0.metadata["frontend"] == "grpc" }
            let accept = try #require(
                lines.first { $0.metadata["operation"]?.hasSuffix("/TriggerAsyncNamespacePipeline") == true },
                "\(lines)")
            #expect(accept.metadata["operation.id"] == id, "\(accept)")
            let reads = lines.filter { $0.metadata["operation"]?.hasSuffix("/GetOperation") == true }
            #expect(!reads.isEmpty && reads.allSatisfy { $0.metadata["operation.id"] == id }, "\(reads)")
            let runs = await Self.runLines(log, id, count: 1)
            #expect(runs.first?.metadata["outcome"] == "succeeded", "\(runs)")
        }
    }
}
