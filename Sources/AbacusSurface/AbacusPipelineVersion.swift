import AsyncDispatch
import FoundationEssentials
package import OperationStore
package import TriggerModel

/// An async operation as the Abacus client sees it: a `PipelineVersion` (`pipelineVersion` is the operation
/// id), with one `PipelineStepVersion` for the run, and the `Pipeline` it belongs to (CLIENTS.md §4.3).
///
/// Field names and the shape of each object follow the client's classes (`abacusai/pipeline_version.py`,
/// `pipeline_step_version.py`, `pipeline.py` in 1.4.119), which take camelCase keys and drop unknown ones.
/// Times are RFC 3339 UTC with milliseconds (`RFC3339.format(milliseconds:)`, the same as `/v1beta/operations`); the
/// client keeps them as strings. Outputs are readable on the step as `outputVariableMappings`, a list of
/// `{"name", "variableType", "value"}` (binaries as data URIs), which the client hands over unchanged.
package enum AbacusPipelineVersion {
    /// `PENDING` (queued, also between retries), `RUNNING`, then `COMPLETE`, `FAILED` or `CANCELLED`. The
    /// client's `wait_for_pipeline` polls while the status is PENDING or RUNNING and stops on any other.
    package static func status(_ state: OperationState) -> String {
        switch state {
        case .queued: "PENDING"
        case .running: "RUNNING"
        case .succeeded: "COMPLETE"
        case .failed: "FAILED"
        case .cancelled: "CANCELLED"
        }
    }

    /// `{"pipelineName","pipelineId","pipelineVersion","createdAt","updatedAt","completedAt","status","error",
    /// "stepVersions":[step, …],"pipelineVariableMappings":[...]}`: one step per input (``steps(_:)``);
    /// `pipelineVariableMappings` are the first input's (a run the Abacus client starts has only that one).
    package static func render(_ operation: Operation) -> ValueObject {
        let times = timestamps(operation)
        var version = ValueObject()
        version["pipelineName"] = .string(operation.ref.pipeline)
        version["pipelineId"] = .string(operation.ref.pipeline)
        version["pipelineVersion"] = .string(operation.id)
        version["createdAt"] = times.created
        version["updatedAt"] = times.updated
        version["completedAt"] = times.completed
        version["status"] = .string(status(operation.state))
        version["error"] = errorMessage(operation)
        version["stepVersions"] = .list(steps(operation).map(Value.object))
        version["pipelineVariableMappings"] = AbacusVariableMappings.render(
            operation.request.shownInputs.first ?? ValueObject()
        )
        return version
    }

    /// How many steps `operation` shows: one per input (an Instill batch trigger has several), at least one.
    package static func stepCount(_ operation: Operation) -> Int {
        max(1, operation.request.inputs.count)
    }

    /// The steps of `operation`, one per input in order (``step(_:item:)``): a batch started through the Instill
    /// surface shows every input's outputs, not the first one's alone (review 17).
    package static func steps(_ operation: Operation) -> [ValueObject] {
        (0..<stepCount(operation)).map { step(operation, item: $0) }
    }

    /// The run of input `item` as a step. A run of one input (every run the Abacus client starts) is one step
    /// named after the pipeline whose `pipelineStepVersion` is the operation id (`describePipelineStepVersion`
    /// takes it). In an operation of several inputs, step `item` is `<pipeline>[<item>]`, its
    /// `pipelineStepVersion` `<operation id>.<item>` (``stepReference(_:)``). Status, error and times are the
    /// version's (the runner runs the inputs as one call). `functionVariableMappings` holds the input's
    /// variables and `outputVariableMappings` its outputs once the run is complete (null before), both as
    /// `[{"name","variableType","value"}]`.
    package static func step(_ operation: Operation, item: Int = 0) -> ValueObject {
        let times = timestamps(operation)
        let batch = stepCount(operation) > 1
        var step = ValueObject()
        step["stepName"] = .string(batch ? "\(operation.ref.pipeline)[\(item)]" : operation.ref.pipeline)
        step["pipelineStepVersion"] = .string(batch ? "\(operation.id).\(item)" : operation.id)
        step["pipelineStepId"] = .string(operation.ref.pipeline)
        step["pipelineId"] = .string(operation.ref.pipeline)
        step["pipelineVersion"] = .string(operation.id)
        step["createdAt"] = times.created
        step["updatedAt"] = times.updated
        step["status"] = .string(status(operation.state))
        step["error"] = errorMessage(operation)
        let inputs = operation.request.shownInputs
        step["functionVariableMappings"] = AbacusVariableMappings.render(
            item < inputs.count ? inputs[item] : ValueObject())
        if operation.state == .succeeded, let result = operation.result {
            step["outputVariableMappings"] = AbacusVariableMappings.render(
                item < result.outputs.count ? result.outputs[item] : ValueObject())
        } else {
            step["outputVariableMappings"] = .null
        }
        return step
    }

    /// `{"stepLogs": [{"stepName","pipelineStepId","pipelineStepVersion","logs"}, …]}` (abacusai's
    /// `PipelineVersionLogs` of `PipelineStepVersionLogs`): one entry per step (``steps(_:)``, same names and
    /// ids), each `logs` the run's events (``OperationView/events(_:)``, what Craft AI's
    /// `get_pipeline_execution_logs` serves) as text, one `<RFC 3339 time> <message>` line each, oldest first.
    /// The steps of a batch share the run's events: the runner runs the inputs as one call. The runner protocol
    /// carries no stdout or stderr, so these are the gateway's record of the run, not the pipeline's output.
    package static func logs(_ operation: Operation) -> ValueObject {
        let text = logText(operation)
        return [
            "stepLogs": .list((0..<stepCount(operation)).map { .object(stepLogs(operation, item: $0, text: text)) })
        ]
    }

    /// One step's entry of ``logs(_:)``: `{"stepName","pipelineStepId","pipelineStepVersion","logs"}` (abacusai's
    /// `PipelineStepVersionLogs`, what `get_step_version_logs` answers). `text`: the run's log text when the
    /// caller has it already.
    package static func stepLogs(_ operation: Operation, item: Int, text: String? = nil) -> ValueObject {
        let step = step(operation, item: item)
        return [
            "stepName": step["stepName"] ?? .null,
            "pipelineStepId": step["pipelineStepId"] ?? .null,
            "pipelineStepVersion": step["pipelineStepVersion"] ?? .null,
            "logs": .string(text ?? logText(operation)),
        ]
    }

    /// The run's events as text: one `<RFC 3339 time> <message>` line each, oldest first.
    private static func logText(_ operation: Operation) -> String {
        OperationView.events(operation).map { "\(RFC3339.format(milliseconds: $0.milliseconds)) \($0.message)\n" }
            .joined()
    }

    /// The operation id and input of a `pipelineStepVersion`: `<id>` is the first (or only) input's step,
    /// `<id>.<item>` a step of a batch (ids have no `.`). nil when `<item>` is not a decimal number; whether the
    /// operation has that many inputs is for the caller to check.
    package static func stepReference(_ text: String) -> (id: String, item: Int)? {
        guard let dot = text.lastIndex(of: ".") else { return (text, 0) }
        let digits = text[text.index(after: dot)...]
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy(\.isASCII), let item = Int(digits), item >= 0
        else { return nil }
        return (String(text[..<dot]), item)
    }

    /// `{"pipelineName","pipelineId","steps":[...],"pipelineVariableMappings":[],"latestPipelineVersion"}`:
    /// a pipeline is a route's pipeline, so it has no creation time or declared variables of its own; its
    /// latest version is the newest operation the caller may see (null when there is none).
    package static func pipeline(id: String, latest: Operation?) -> ValueObject {
        var pipeline = ValueObject()
        pipeline["pipelineName"] = .string(id)
        pipeline["pipelineId"] = .string(id)
        pipeline["steps"] = .list([
            .object([
                "pipelineStepId": .string(id), "pipelineId": .string(id), "stepName": .string(id),
                "pipelineName": .string(id),
            ])
        ])
        pipeline["pipelineVariableMappings"] = .list([])
        pipeline["latestPipelineVersion"] = latest.map { .object(render($0)) } ?? .null
        return pipeline
    }

    /// The error text of a failed or cancelled run (null otherwise): the pipeline's own message, unchanged.
    static func errorMessage(_ operation: Operation) -> Value {
        OperationView.error(operation).map { .string($0.message) } ?? .null
    }

    /// Created, last updated (the latest of created, started and finished) and completed (null until then).
    private static func timestamps(_ operation: Operation) -> (created: Value, updated: Value, completed: Value) {
        func format(_ date: Date) -> Value { .string(RFC3339.format(milliseconds: date.storeMilliseconds)) }
        let updated = [operation.createdAt, operation.startedAt, operation.finishedAt].compactMap { $0 }.max()!
        return (
            format(operation.createdAt),
            format(updated),
            operation.state.isFinished ? operation.finishedAt.map(format) ?? .null : .null
        )
    }
}
