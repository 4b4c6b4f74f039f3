package import OperationStore
import TriggerModel

extension Operation {
    /// Whether `principal` may see this operation: its creator only, or everyone when auth is off (nil). Every
    /// surface answers an operation another principal made as if it did not exist (404), so ids reveal nothing.
    /// A schedule's runs belong to no principal: every authenticated caller sees them, as it sees the schedules.
    package func isVisible(to principal: String?) -> Bool {
        principal == nil || request.principal == principal || ScheduleView.run(of: self) != nil
    }
}
