import NIOCore
import Testing
import TriggerModel
import WireCodecs

/// Goldens of the operation JSON clients and webhooks read (API.md, `google.longrunning.Operation`), one per state.
@Suite("RESTOperationBody")
struct RESTOperationBodyTests {
    /// 2024-05-01T12:34:56.789Z, then 0.211 s and 3.461 s later.
    static let created: Int64 = 1_714_566_896_789
    static let started: Int64 = 1_714_566_897_000
    static let finished: Int64 = 1_714_566_900_250

    static func body(
        state: String, done: Bool, startTime: Int64? = nil, finishTime: Int64? = nil, attempts: Int = 0,
        lastError: String? = nil, error: GatewayError? = nil, result: TriggerResult? = nil
    ) -> RESTOperationBody {
        RESTOperationBody(
            name: "operations/abc", state: state, done: done, pipeline: "ns/echo", createTime: created,
            startTime: startTime, finishTime: finishTime, attempts: attempts, lastError: lastError, error: error,
            result: result)
    }

    static func json(_ body: RESTOperationBody) -> String {
        var out = ByteBuffer()
        body.write(into: &out)
        return out.text
    }

    @Test("Queued: not done, created only, no response or error")
    func queued() {
        #expect(
            Self.json(Self.body(state: "queued", done: false))
                == #"{"name":"operations/abc","done":false,"metadata":{"state":"queued","pipeline":"ns/echo","#
                + #""createTime":"2024-05-01T12:34:56.789Z","attempts":0}}"#)
    }

    @Test("Running: start time and attempt count")
    func running() {
        #expect(
            Self.json(Self.body(state: "running", done: false, startTime: Self.started, attempts: 1))
                == #"{"name":"operations/abc","done":false,"metadata":{"state":"running","pipeline":"ns/echo","#
                + #""createTime":"2024-05-01T12:34:56.789Z","startTime":"2024-05-01T12:34:57.000Z","attempts":1}}"#)
    }

    @Test("Queued for a retry: the last attempt's error in metadata, no error member")
    func retrying() {
        #expect(
            Self.json(
                Self.body(state: "queued", done: false, startTime: Self.started, attempts: 1, lastError: "backend down")
            )
                == #"{"name":"operations/abc","done":false,"metadata":{"state":"queued","pipeline":"ns/echo","#
                + #""createTime":"2024-05-01T12:34:56.789Z","startTime":"2024-05-01T12:34:57.000Z","attempts":1,"#
                + #""lastError":"backend down"}}"#)
    }

    @Test("Succeeded: the sync response's shape under response")
    func succeeded() {
        let result = TriggerResult(outputs: [["text": .string("HI")], ["n": .number(2)]])
        #expect(
            Self.json(
                Self.body(
                    state: "succeeded", done: true, startTime: Self.started, finishTime: Self.finished, attempts: 1,
                    result: result))
                == #"{"name":"operations/abc","done":true,"metadata":{"state":"succeeded","pipeline":"ns/echo","#
                + #""createTime":"2024-05-01T12:34:56.789Z","startTime":"2024-05-01T12:34:57.000Z","#
                + #""finishTime":"2024-05-01T12:35:00.250Z","attempts":1},"#
                + #""response":{"outputs":[{"text":"HI"},{"n":2}],"metadata":{}}}"#)
    }

    @Test("Failed: the google.rpc status under error")
    func failed() {
        let error = GatewayError(.invalidArgument, "missing \"prompt\"")
        #expect(
            Self.json(
                Self.body(
                    state: "failed", done: true, startTime: Self.started, finishTime: Self.finished, attempts: 2,
                    error: error))
                == #"{"name":"operations/abc","done":true,"metadata":{"state":"failed","pipeline":"ns/echo","#
                + #""createTime":"2024-05-01T12:34:56.789Z","startTime":"2024-05-01T12:34:57.000Z","#
                + #""finishTime":"2024-05-01T12:35:00.250Z","attempts":2},"#
                + #""error":{"code":3,"message":"missing \"prompt\"","details":[]}}"#)
    }

    @Test("Cancelled before it ran: code 1, no start time; error wins over a result")
    func cancelled() {
        let error = GatewayError(.cancelled, "operation abc was cancelled")
        #expect(
            Self.json(
                Self.body(
                    state: "cancelled", done: true, finishTime: Self.finished, error: error,
                    result: TriggerResult(outputs: [])))
                == #"{"name":"operations/abc","done":true,"metadata":{"state":"cancelled","pipeline":"ns/echo","#
                + #""createTime":"2024-05-01T12:34:56.789Z","finishTime":"2024-05-01T12:35:00.250Z","attempts":0},"#
                + #""error":{"code":1,"message":"operation abc was cancelled","details":[]}}"#)
    }

    @Test("A release and a manual schedule run; the envelope wraps the operation")
    func scheduleRunEnvelope() {
        var body = Self.body(state: "queued", done: false)
        body.release = "v2"
        body.scheduleRun = .init(schedule: "nightly", scheduledTime: "2024-05-01T00:00:00Z", manualTrigger: true)
        var out = ByteBuffer()
        body.writeEnvelope(into: &out)
        #expect(
            out.text
                == #"{"operation":{"name":"operations/abc","done":false,"metadata":{"state":"queued","#
                + #""pipeline":"ns/echo","release":"v2","createTime":"2024-05-01T12:34:56.789Z","attempts":0,"#
                + #""schedule":"nightly","scheduledTime":"2024-05-01T00:00:00Z","manualTrigger":true}}}"#)
        body.scheduleRun?.manualTrigger = false
        #expect(body.metadata["manualTrigger"] == nil)
        #expect(body.metadata["scheduledTime"] == .string("2024-05-01T00:00:00Z"))
    }
}
