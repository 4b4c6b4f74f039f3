package import NIOCore
package import TriggerModel

/// The JSON of an async operation as REST clients and webhooks get it (API.md, `google.longrunning.Operation`
/// in proto3 JSON form):
/// `{"name","done","metadata",("error":{"code","message","details"} | "response":{"outputs","metadata"})?}`.
///
/// Built from plain values so the codec knows nothing of stores or dispatchers: the caller maps its
/// operation onto these fields (AsyncDispatch's `RESTOperationBody.init(_ operation:)`). gRPC carries the same
/// ``metadata`` object as a `google.protobuf.Struct`.
package struct RESTOperationBody: Sendable, Equatable {
    /// A schedule's run: the schedule's name, the nominal tick and whether `:trigger` started it.
    package struct ScheduleRun: Sendable, Equatable {
        package var schedule: String
        /// RFC 3339 UTC with whole seconds (`2026-03-08T07:00:00Z`), as the run's key carries it.
        package var scheduledTime: String
        package var manualTrigger: Bool

        package init(schedule: String, scheduledTime: String, manualTrigger: Bool) {
            self.schedule = schedule
            self.scheduledTime = scheduledTime
            self.manualTrigger = manualTrigger
        }
    }

    /// `operations/<id>`.
    package var name: String
    /// The state's name (`queued`, `running`, `succeeded`, `failed`, `cancelled`).
    package var state: String
    /// True once the operation reached a final state.
    package var done: Bool
    /// `namespace/pipeline` (the `pipeline` filter key).
    package var pipeline: String
    package var release: String?
    /// Milliseconds since 1970, written as RFC 3339 UTC with milliseconds (``RFC3339/format(milliseconds:)``).
    package var createTime: Int64
    package var startTime: Int64?
    package var finishTime: Int64?
    /// How many times the operation was claimed.
    package var attempts: Int
    /// The message of a failed attempt that will be retried (only on an unfinished operation).
    package var lastError: String?
    package var scheduleRun: ScheduleRun?
    /// The failure of a finished operation; wins over `result`.
    package var error: GatewayError?
    /// The outputs of a succeeded operation.
    package var result: TriggerResult?

    package init(
        name: String,
        state: String,
        done: Bool,
        pipeline: String,
        release: String? = nil,
        createTime: Int64,
        startTime: Int64? = nil,
        finishTime: Int64? = nil,
        attempts: Int,
        lastError: String? = nil,
        scheduleRun: ScheduleRun? = nil,
        error: GatewayError? = nil,
        result: TriggerResult? = nil
    ) {
        self.name = name
        self.state = state
        self.done = done
        self.pipeline = pipeline
        self.release = release
        self.createTime = createTime
        self.startTime = startTime
        self.finishTime = finishTime
        self.attempts = attempts
        self.lastError = lastError
        self.scheduleRun = scheduleRun
        self.error = error
        self.result = result
    }

    /// `{"state","pipeline","release"?,"createTime","startTime"?,"finishTime"?,"attempts","lastError"?}`, plus
    /// `"schedule","scheduledTime"` and `"manualTrigger":true` for a schedule's run (members in this order).
    package var metadata: ValueObject {
        var m = ValueObject()
        m["state"] = .string(state)
        m["pipeline"] = .string(pipeline)
        if let release { m["release"] = .string(release) }
        m["createTime"] = .string(RFC3339.format(milliseconds: createTime))
        if let startTime { m["startTime"] = .string(RFC3339.format(milliseconds: startTime)) }
        if let finishTime { m["finishTime"] = .string(RFC3339.format(milliseconds: finishTime)) }
        m["attempts"] = .number(Double(attempts))
        if let lastError { m["lastError"] = .string(lastError) }
        if let scheduleRun {
            m["schedule"] = .string(scheduleRun.schedule)
            m["scheduledTime"] = .string(scheduleRun.scheduledTime)
            if scheduleRun.manualTrigger { m["manualTrigger"] = .bool(true) }
        }
        return m
    }

    /// Appends the operation object; `error` as ``RESTResponseBody/encode(error:into:)``, `result` as
    /// ``RESTResponseBody/encode(result:into:)``, neither while the operation runs.
    package func write(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"name\":")
        JSONValueCodec.writeString(name, into: &buffer)
        buffer.writeStaticString(done ? ",\"done\":true" : ",\"done\":false")
        buffer.writeStaticString(",\"metadata\":")
        JSONValueCodec.write(metadata, into: &buffer)
        if let error {
            buffer.writeStaticString(",\"error\":")
            RESTResponseBody.encode(error: error, into: &buffer)
        } else if let result {
            buffer.writeStaticString(",\"response\":")
            RESTResponseBody.encode(result: result, into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// Appends `{"operation": <operation>}`, the answer of the async trigger, GetOperation and cancel, and the
    /// body of a webhook.
    package func writeEnvelope(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"operation\":")
        write(into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}
