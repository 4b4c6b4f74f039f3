/// Something that runs pipelines: the in-process demo runner, or (behind `Backends`) a remote pool.
///
/// Kept in the model so an in-process runner and the transports share one seam without either importing
/// the other.
package protocol TriggerRunner: Sendable {
    /// Runs the trigger to completion and returns its outputs.
    func run(_ request: TriggerRequest) async throws -> TriggerResult

    /// Runs the trigger and yields its events as they happen; the last one is `.end` or `.error`.
    /// Cancelling the consuming task cancels the run.
    func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error>
}
