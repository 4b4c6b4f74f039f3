import AsyncDispatch
import FoundationEssentials
import OperationStore
import Testing
import TriggerModel

/// `Operation.isVisible(to:)`, the one rule every read, list, cancel and output path of the three surfaces
/// applies (finding H3 of the twenty-fourth review: a caller with no principal saw every principal's operations).
@Suite("operation visibility: a principal sees its own; no principal sees only anonymous operations")
struct OperationVisibilityTests {
    static func operation(principal: String?, idempotencyKey: String? = nil) -> Operation {
        let ref = PipelineRef(namespace: "demo", pipeline: "echo")
        let created = Date(timeIntervalSince1970: 1_700_000_000)
        return Operation(
            id: "op1", ref: ref, state: .succeeded,
            request: TriggerRequest(ref: ref, mode: .async, inputs: [], principal: principal),
            createdAt: created, notBefore: created, idempotencyKey: idempotencyKey, requestDigest: "")
    }

    @Test("a named principal's operation: visible to it only, not to another nor to a caller without one")
    func named() {
        let alice = Self.operation(principal: "alice")
        #expect(alice.isVisible(to: "alice"))
        #expect(!alice.isVisible(to: "bob"))
        #expect(!alice.isVisible(to: nil))
        // The principal is compared exactly: no case folding, no prefix match.
        #expect(!alice.isVisible(to: "Alice"))
        #expect(!alice.isVisible(to: "alice "))
    }

    @Test("an anonymous operation: visible to callers without a principal only (all of them with auth off)")
    func anonymous() {
        let anonymous = Self.operation(principal: nil)
        #expect(anonymous.isVisible(to: nil))
        #expect(!anonymous.isVisible(to: "alice"))
        // An idempotency key that is no schedule run's key does not make it a schedule run.
        #expect(!Self.operation(principal: nil, idempotencyKey: "client-key").isVisible(to: "alice"))
    }

    @Test("a schedule's run belongs to no principal: every caller sees it, as it sees the schedules")
    func scheduleRun() {
        let key = ScheduleRunKey(schedule: "nightly", tick: Date(timeIntervalSince1970: 1_700_000_000)).key
        let run = Self.operation(principal: nil, idempotencyKey: key)
        #expect(run.isVisible(to: nil))
        #expect(run.isVisible(to: "alice"))
        #expect(run.isVisible(to: "bob"))
    }
}
