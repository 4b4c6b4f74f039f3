import FoundationEssentials
package import OperationStore
import TriggerModel

/// One line of an operation's event log (``OperationView/events(_:)``).
package struct OperationEvent: Sendable, Equatable {
    /// When it happened, milliseconds since the epoch (the store's precision).
    package var milliseconds: Int64
    package var message: String
}

extension OperationView {
    /// What the gateway recorded of an operation, oldest first: the log that Craft AI's
    /// `get_pipeline_execution_logs` and Abacus.AI's `listPipelineVersionLogs` serve. The runner protocol carries
    /// no log output, so these are the operation's events: created (queued), started on the runner, a retry
    /// pending after a failed attempt, and how it ended (with the error's code and message, and the attempts
    /// made, naming those a gateway stop cut and queued again).
    package static func events(_ operation: Operation) -> [OperationEvent] {
        var events: [OperationEvent] = []
        func add(_ date: Date, _ message: String) {
            events.append(OperationEvent(milliseconds: date.storeMilliseconds, message: message))
        }
        let deployment = operation.request.labels[TriggerRequest.deploymentLabel].map { ", deployment \($0)" } ?? ""
        add(operation.createdAt, "execution \(operation.id) created: pipeline \(operation.ref)\(deployment); queued")
        if let started = operation.startedAt { add(started, "started on the pipeline's runner") }
        var attempts = operation.attempts == 1 ? "1 attempt" : "\(operation.attempts) attempts"
        // Review 59, F12: after a shutdown hand-back the end line said "after 2 attempts" and nothing said why.
        // The store keeps how many runs a stop cut (`cutRuns`), not when, so no line of its own can be dated: the
        // end line says it (a dated line would need a column per hand-back).
        if operation.cutRuns > 0 {
            attempts +=
                " (\(operation.cutRuns) of them cut by a gateway stop and queued again, not held against the retry limit)"
        }
        switch operation.state {
        case .queued:
            if let error = operation.error {
                add(
                    operation.notBefore,
                    "attempt \(operation.attempts) failed: [\(error.code.rpcCodeName)] \(error.message); the next attempt is not made before this time"
                )
            }
        case .running:
            break
        case .succeeded:
            add(operation.finishedAt ?? operation.createdAt, "succeeded after \(attempts)")
        case .failed:
            let error = OperationView.error(operation) ?? GatewayError(.internalError, "failed")
            add(
                operation.finishedAt ?? operation.createdAt,
                "failed after \(attempts): [\(error.code.rpcCodeName)] \(error.message)")
        case .cancelled:
            add(operation.finishedAt ?? operation.createdAt, "cancelled after \(attempts)")
        }
        return events
    }
}
