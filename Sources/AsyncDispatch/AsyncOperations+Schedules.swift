package import OperationStore
import Observability
package import TriggerModel

extension AsyncOperations {
    /// Stores the operation of a schedule's run under its `ScheduleRunKey` (the request's `idempotencyKey`):
    /// the first instance to submit a tick creates it (`created`), every other gets the same operation. Like
    /// `submit`, but for the one caller allowed to use the reserved key prefix.
    package func submitScheduled(_ request: TriggerRequest) async throws -> (operation: Operation, created: Bool) {
        var stored = request
        stored.mode = .async
        stored.deadline = nil
        let (operation, created) = try await store.enqueue(stored, idempotencyKey: request.idempotencyKey)
        if created {
            // Counted as a client's async trigger is: `async_finished_total` counts the run too (operator review
            // 58, F3: with schedules, accepted minus finished went negative).
            metrics?.async.recordAccepted()
            queued(operation)
        }
        return (operation, created)
    }

    /// Clients' `Idempotency-Key`s may not use the prefix of schedule runs, so that prefix proves an operation
    /// was made by a schedule (its metadata and visibility rely on it).
    static func checkClientIdempotencyKey(_ key: String?) throws(GatewayError) {
        guard let key, key.hasPrefix(ScheduleRunKey.prefix) else { return }
        throw GatewayError(
            .invalidArgument,
            "Idempotency-Key must not start with \"\(ScheduleRunKey.prefix)\" (reserved for scheduled runs)"
        )
    }
}
