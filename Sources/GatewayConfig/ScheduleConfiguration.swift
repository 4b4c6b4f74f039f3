package import Foundation
package import TriggerModel

/// One scheduled trigger (`schedules: [{name, cron, timezone, route, inputs, overlap, catchup_window, paused,
/// operators}]`): each tick of `cron` becomes one async operation on `route` with `inputs`.
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
    /// The token names (principals) that may control the schedule when tokens are required: `:pause`, `:resume`,
    /// `:trigger`, and cancel its runs (security review 60, M2). Nil: the key is absent, and then no caller may
    /// (`check-config` warns); with auth off every caller may, whatever it says (`ScheduleConfiguration.mayControl`).
    package var operators: [String]?

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
        labels: [String: String] = [:],
        operators: [String]? = nil
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
        self.operators = operators
    }

    /// The shortest `catchup_window`: shorter than the scheduler's own reaction time would drop ticks that
    /// were not missed at all.
    package static let minimumCatchupWindow = Duration.seconds(1)

    /// Whether `principal` may control this schedule: pause, resume and trigger it, and cancel its runs. With auth
    /// off (`authRequired` false: no tokens, or `auth: none`) every caller may, as every caller may do anything
    /// then; with tokens, only a principal `operators` names, none when the key is absent (security review 60, M2:
    /// any token holder could stop every nightly job, run one with its configured inputs, or cancel its run).
    package func mayControl(principal: String?, authRequired: Bool) -> Bool {
        guard authRequired else { return true }
        guard let principal, let operators else { return false }
        return operators.contains(principal)
    }

    /// `mayControl(principal:authRequired:)`, or `.permissionDenied` saying what the caller may not do (`action`:
    /// "this token may not <action> schedule "<name>"") and naming the key that lists who may (README "Schedules").
    package func checkMayControl(principal: String?, authRequired: Bool, to action: String) throws(GatewayError) {
        guard !mayControl(principal: principal, authRequired: authRequired) else { return }
        let listed = operators.map { $0.isEmpty ? "lists none" : "does not list it" } ?? "is not set"
        throw GatewayError(
            .permissionDenied,
            "this token may not \(action) schedule \"\(name)\": only its operators may, and its \(operatorsKey) "
                + "\(listed)")
    }

    /// The key that names the operators, for messages: `craft.deployments[].operators` for a periodic Craft AI
    /// deployment's schedule (its runs carry the deployment's label), else `schedules[].operators`.
    package var operatorsKey: String {
        labels[TriggerRequest.deploymentLabel] != nil ? "craft.deployments[].operators" : "schedules[].operators"
    }
}
