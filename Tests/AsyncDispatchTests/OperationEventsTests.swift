import AsyncDispatch
import FoundationEssentials
import OperationStore
import Testing
import TriggerModel

/// `OperationView.events(_:)`: the record `get_pipeline_execution_logs` and Abacus.AI's logs serve.
@Suite("operation events: the execution log built from the stored operation")
struct OperationEventsTests {
    static func operation(state: OperationState, attempts: Int, cutRuns: Int) -> Operation {
        let ref = PipelineRef(namespace: "demo", pipeline: "sleep")
        let created = Date(timeIntervalSince1970: 1_700_000_000)
        return Operation(
            id: "op1", ref: ref, state: state,
            request: TriggerRequest(ref: ref, mode: .async, inputs: [], principal: nil),
            createdAt: created, startedAt: created.addingTimeInterval(1), finishedAt: created.addingTimeInterval(40),
            attempts: attempts, cutRuns: cutRuns, notBefore: created, requestDigest: "")
    }

    /// Review 59, F12: after a shutdown hand-back the log read `succeeded after 2 attempts` with nothing saying
    /// why there was a second. The store keeps how many runs a stop cut (`cutRuns`), not when: the end line says it.
    @Test("a run cut by a gateway stop and queued again is named in the end line; without one the line is as before")
    func handedBackRun() {
        let cut = OperationView.events(Self.operation(state: .succeeded, attempts: 2, cutRuns: 1))
        #expect(
            cut.last?.message
                == "succeeded after 2 attempts (1 of them cut by a gateway stop and queued again, not held against the retry limit)",
            "\(cut)")
        let cancelled = OperationView.events(Self.operation(state: .cancelled, attempts: 3, cutRuns: 2))
        #expect(
            cancelled.last?.message
                == "cancelled after 3 attempts (2 of them cut by a gateway stop and queued again, not held against the retry limit)"
        )
        let plain = OperationView.events(Self.operation(state: .succeeded, attempts: 2, cutRuns: 0))
        #expect(plain.last?.message == "succeeded after 2 attempts")
    }
}
