package import GatewayConfig
package import OperationStore
package import TriggerModel

extension Operation {
    /// Whether `principal` may see and list this operation: the one rule every read, list and output path of the
    /// three surfaces (Instill REST and gRPC, Craft, Abacus) applies. Cancelling and deleting also need
    /// ``checkMayCancel(principal:authRequired:schedules:)``.
    ///
    /// An operation is visible only to the principal that made it. A caller without one (nil: auth off, or a
    /// client without a certificate on a port where certificates name principals) is a principal of its own,
    /// "anonymous": it sees only operations made without a principal, never those of a named one (finding H3
    /// of the twenty-fourth review: having no credential must not see more than having one). With auth off
    /// and no client certificates every operation is anonymous, so every caller sees all of them.
    /// Every surface answers an operation it may not see as if it did not exist (404), so ids reveal nothing.
    /// A schedule's runs belong to no principal: every caller sees them, as it sees the schedules.
    package func isVisible(to principal: String?) -> Bool {
        request.principal == principal || ScheduleView.run(of: self) != nil
    }

    /// Whether `principal` may cancel (or delete) this operation: the rule every cancel and delete path applies
    /// (Instill's `POST /v1beta/operations/{id}:cancel`, on HTTP/1.1 and HTTP/2; Craft's `DELETE
    /// /api/v1/executions/{id}`), before it changes anything. An operation it may see (``isVisible(to:)``) that
    /// is its own; a schedule's run only when it may control the schedule (`ScheduleConfiguration.mayControl`:
    /// one of its `operators`, or anyone with auth off). Seeing a schedule's runs is every caller's; stopping one
    /// is not (security review 60, M2: any token holder cancelled the operator's run).
    ///
    /// - Parameter schedules: the schedules configured now (`Scheduler.configured`): a run of a schedule no
    ///   longer configured has no operators, so with auth required no caller may cancel it.
    /// - Throws: `.notFound` when it may not see it; `.permissionDenied` naming the operators key otherwise.
    package func checkMayCancel(
        principal: String?,
        authRequired: Bool,
        schedules: [ScheduleConfiguration]
    ) throws(GatewayError) {
        guard isVisible(to: principal) else { throw OperationStoreErrors.notFound(id) }
        guard let run = ScheduleView.run(of: self), authRequired else { return }
        guard let schedule = schedules.first(where: { $0.name == run.schedule }) else {
            throw GatewayError(
                .permissionDenied,
                "operation \(id) is a run of schedule \"\(run.schedule)\", which is no longer configured: "
                    + "with tokens required, no caller may cancel it")
        }
        try schedule.checkMayControl(principal: principal, authRequired: authRequired, to: "cancel a run of")
    }
}
