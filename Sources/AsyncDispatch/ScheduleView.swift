import FoundationEssentials
import GatewayConfig
package import NIOCore
package import OperationStore
package import TriggerModel
import WireCodecs

/// How clients see schedules (`GET /v1beta/schedules`) and which operations are schedule runs.
package enum ScheduleView {
    /// The run key of an operation a schedule made; nil for any other operation. Only the scheduler submits
    /// keys with the reserved prefix, always without a principal, so both must hold.
    package static func run(of operation: Operation) -> ScheduleRunKey? {
        guard operation.request.principal == nil, let key = operation.idempotencyKey else { return nil }
        return ScheduleRunKey(parsing: key)
    }

    /// `{"name","cron","timezone","pipeline","release"?,"overlap","catchupWindowSeconds"?,"state":"active"|"paused",
    /// "nextFireTimes":[…],"lastTick","lastRun":{"name","done","metadata"}?}`; times RFC 3339 UTC.
    package static func object(_ status: Scheduler.Status) -> ValueObject {
        let schedule = status.configuration
        var o = ValueObject()
        o["name"] = .string(schedule.name)
        o["cron"] = .string(schedule.cron.text)
        o["timezone"] = .string(schedule.timeZoneName)
        o["pipeline"] = .string(OperationFilter.pipelineKey(schedule.ref))
        if let release = schedule.ref.release { o["release"] = .string(release) }
        o["overlap"] = .string(schedule.overlap.rawValue)
        if let window = schedule.catchupWindow { o["catchupWindowSeconds"] = .number(seconds(window)) }
        o["state"] = .string(status.paused ? "paused" : "active")
        o["nextFireTimes"] = .list(status.nextFireTimes.map { .string(ScheduleRunKey.format($0)) })
        o["lastTick"] = .string(ScheduleRunKey.format(status.state.lastTick))
        if let run = status.lastRun {
            var last = ValueObject()
            last["name"] = .string(run.name)
            last["done"] = .bool(run.state.isFinished)
            last["metadata"] = .object(OperationView.metadata(run))
            o["lastRun"] = .object(last)
        }
        return o
    }

    /// `{"schedules":[…]}`.
    package static func writeList(_ statuses: [Scheduler.Status], into buffer: inout ByteBuffer) {
        JSONValueCodec.write(["schedules": .list(statuses.map { .object(object($0)) })], into: &buffer)
    }

    /// `{"schedule":{…}}`.
    package static func write(_ status: Scheduler.Status, into buffer: inout ByteBuffer) {
        JSONValueCodec.write(["schedule": .object(object(status))], into: &buffer)
    }
}
