package import OperationStore
import TriggerModel

extension Operation {
    /// Whether `principal` may see this operation: its creator only, or everyone when auth is off (nil). Every
    /// surface answers an operation another principal made as if it did not exist (404), so ids reveal nothing.
    package func isVisible(to principal: String?) -> Bool {
        principal == nil || request.principal == principal
    }
}
