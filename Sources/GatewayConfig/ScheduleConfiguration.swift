package import Foundation
package import TriggerModel

/// One scheduled trigger (`schedules: [{name, cron, timezone, route, inputs, overlap, catchup_window, paused}]`):
/// each tick of `cron` becomes one async operation on `route` with `inputs`.
package struct ScheduleConfiguration: Sendable, Equatable {
    /// What a tick does while the schedule's previous run is still queued or running (Temporal's overlap
    /// policies, under the names Kubernetes CronJob users know: Allow, Forbid → skip, Replace → cancel_previous).
    package enum Overlap: String, Sendable, Equatable, CaseIterable {
        /// Start the new run beside the previous one.
        case allow
        /// No new run while the previous one is queued or running; the tick is recorded as skipped.
        case skip
        /// Cancel the previous run, then start the new one.
        case cancelPrevious = "cancel_previous"
    }

    /// Letters, digits, `.`, `_`, `-`: it is a path segment (`/v1beta/schedules/{name}:pause`) and part of
    /// each tick's idempotency key.
    package var name: String
    package var cron: CronExpression
    /// The zone `cron`'s fields are read in (IANA name; default UTC).
    package var timeZone: TimeZone
    /// The zone as configured (Foundation names UTC "GMT"; the API shows what the operator wrote).
    package var timeZoneName: String
    package var ref: PipelineRef
    /// The batch each run triggers with (one empty item by default).
    package var inputs: [TriggerInput]
    package var overlap: Overlap
    /// Ticks missed while no instance was running are fired on start when their nominal time is at most this
    /// long ago; nil: only the most recent missed tick fires.
    package var catchupWindow: Duration?
    /// A paused schedule fires nothing until resumed (`POST /v1beta/schedules/{name}:resume`).
    package var paused: Bool
    /// `TriggerRequest.labels` every run carries: a periodic Craft AI deployment's schedule sets those of an
    /// execution of the deployment (`craft.deployment`, its output mapping and I/O cap), so its runs read as
    /// that deployment's executions. Empty for `schedules:` entries.
    package var labels: [String: String]

    package init(
        name: String,
        cron: CronExpression,
        timeZone: TimeZone = TimeZone(identifier: "UTC")!,
        timeZoneName: String? = nil,
        ref: PipelineRef,
        inputs: [TriggerInput] = [TriggerInput()],
        overlap: Overlap = .skip,
        catchupWindow: Duration? = nil,
        paused: Bool = false,
        labels: [String: String] = [:]
    ) {
        self.name = name
        self.cron = cron
        self.timeZone = timeZone
        // Foundation reports UTC as "GMT"; the default zone is UTC by name.
        self.timeZoneName = timeZoneName ?? (timeZone.identifier == "GMT" ? "UTC" : timeZone.identifier)
        self.ref = ref
        self.inputs = inputs
        self.overlap = overlap
        self.catchupWindow = catchupWindow
        self.paused = paused
        self.labels = labels
    }

    /// The shortest `catchup_window`: shorter than the scheduler's own reaction time would drop ticks that
    /// were not missed at all.
    package static let minimumCatchupWindow = Duration.seconds(1)
}
