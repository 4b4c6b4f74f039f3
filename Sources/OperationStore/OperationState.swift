/// Where an operation is in its life: `queued` → `running` → one of the three finished states.
///
/// A running operation whose lease expires goes back to being claimable (it stays `running` until another
/// dispatcher claims it); a failed attempt that will be retried goes back to `queued` with a `notBefore`.
package enum OperationState: String, Sendable, CaseIterable {
    case queued
    case running
    case succeeded
    case failed
    case cancelled

    /// True for the three states an operation never leaves.
    package var isFinished: Bool {
        switch self {
        case .queued, .running: false
        case .succeeded, .failed, .cancelled: true
        }
    }
}
