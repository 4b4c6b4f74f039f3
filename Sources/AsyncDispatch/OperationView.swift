import FoundationEssentials
package import OperationStore
package import TriggerModel
package import WireCodecs

/// How clients see an operation, the same on REST, gRPC and webhooks: the model side (which error a finished
/// operation reports, which fields its wire form carries). The JSON itself is ``RESTOperationBody``'s.
package enum OperationView {
    /// The metadata object REST and webhooks show and gRPC sends as a `Struct` (``RESTOperationBody/metadata``).
    package static func metadata(_ operation: Operation) -> ValueObject {
        RESTOperationBody(operation).metadata
    }

    /// The error a finished-but-unsuccessful operation reports (google.rpc code + message).
    package static func error(_ operation: Operation) -> GatewayError? {
        switch operation.state {
        case .failed: operation.error ?? GatewayError(.internalError, "operation \(operation.id) failed")
        case .cancelled: GatewayError(.cancelled, "operation \(operation.id) was cancelled")
        default: nil
        }
    }
}

extension RESTOperationBody {
    /// The wire fields of a stored operation: times in stored milliseconds, `lastError` only while a failed
    /// attempt waits for its retry, the schedule run read from its reserved idempotency key, and the result
    /// only once it succeeded.
    package init(_ operation: Operation) {
        let run = ScheduleView.run(of: operation)
        self.init(
            name: operation.name,
            state: operation.state.rawValue,
            done: operation.state.isFinished,
            pipeline: OperationFilter.pipelineKey(operation.ref),
            release: operation.ref.release,
            createTime: operation.createdAt.storeMilliseconds,
            startTime: operation.startedAt?.storeMilliseconds,
            finishTime: operation.finishedAt?.storeMilliseconds,
            attempts: operation.attempts,
            lastError: operation.state.isFinished ? nil : operation.error?.message,
            scheduleRun: run.map {
                ScheduleRun(
                    schedule: $0.schedule, scheduledTime: ScheduleRunKey.format($0.tick),
                    manualTrigger: $0.manualID != nil)
            },
            error: OperationView.error(operation),
            result: operation.state == .succeeded ? operation.result : nil
        )
    }
}
