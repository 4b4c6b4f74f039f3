package import NIOCore
package import OperationStore
package import TriggerModel
import WireCodecs

/// How clients see an operation, the same on REST, gRPC and webhooks: its name, whether it is done, a
/// metadata object (state, pipeline, times, attempts) and, once finished, its response or error.
package enum OperationView {
    /// `{"state","pipeline","release"?,"createTime","startTime"?,"finishTime"?,"attempts","lastError"?}`, plus
    /// `"schedule","scheduledTime"` (the nominal tick, RFC 3339 UTC) and `"manualTrigger":true` (`:trigger`)
    /// for a schedule's run; other times are RFC 3339 UTC with milliseconds.
    package static func metadata(_ operation: Operation) -> ValueObject {
        var m = ValueObject()
        m["state"] = .string(operation.state.rawValue)
        m["pipeline"] = .string(OperationFilter.pipelineKey(operation.ref))
        if let release = operation.ref.release { m["release"] = .string(release) }
        m["createTime"] = .string(rfc3339(operation.createdAt.storeMilliseconds))
        if let started = operation.startedAt { m["startTime"] = .string(rfc3339(started.storeMilliseconds)) }
        if let finished = operation.finishedAt { m["finishTime"] = .string(rfc3339(finished.storeMilliseconds)) }
        m["attempts"] = .number(Double(operation.attempts))
        if !operation.state.isFinished, let error = operation.error {
            m["lastError"] = .string(error.message)  // a failed attempt that will be retried
        }
        if let run = ScheduleView.run(of: operation) {
            m["schedule"] = .string(run.schedule)
            m["scheduledTime"] = .string(ScheduleRunKey.format(run.tick))
            if run.manualID != nil { m["manualTrigger"] = .bool(true) }
        }
        return m
    }

    /// The error a finished-but-unsuccessful operation reports (google.rpc code + message).
    package static func error(_ operation: Operation) -> GatewayError? {
        switch operation.state {
        case .failed: operation.error ?? GatewayError(.internalError, "operation \(operation.id) failed")
        case .cancelled: GatewayError(.cancelled, "operation \(operation.id) was cancelled")
        default: nil
        }
    }

    /// `{"name","done","metadata",("response":{"outputs","metadata"} | "error":{"code","message","details"})?}`.
    package static func writeJSON(_ operation: Operation, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"name\":")
        JSONValueCodec.writeString(operation.name, into: &buffer)
        buffer.writeStaticString(operation.state.isFinished ? ",\"done\":true" : ",\"done\":false")
        buffer.writeStaticString(",\"metadata\":")
        JSONValueCodec.write(metadata(operation), into: &buffer)
        if let error = error(operation) {
            buffer.writeStaticString(",\"error\":")
            RESTResponseBody.encode(error: error, into: &buffer)
        } else if operation.state == .succeeded, let result = operation.result {
            buffer.writeStaticString(",\"response\":")
            RESTResponseBody.encode(result: result, into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// `2024-05-01T12:34:56.789Z` from milliseconds since 1970 (``RFC3339/format(milliseconds:)``).
    package static func rfc3339(_ milliseconds: Int64) -> String {
        RFC3339.format(milliseconds: milliseconds)
    }
}
