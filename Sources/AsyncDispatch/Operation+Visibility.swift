package import OperationStore
import TriggerModel

extension Operation {
    /// Whether `principal` may see, list and cancel this operation: the one rule every read, list, cancel and
    /// output path of the three surfaces (Instill REST and gRPC, Craft, Abacus) applies.
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
}
