import AsyncDispatch
import FoundationEssentials
import GatewayConfig
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

    static func schedule(_ name: String, operators: [String]?) throws -> ScheduleConfiguration {
        ScheduleConfiguration(
            name: name, cron: try CronExpression(parsing: "@daily"),
            ref: PipelineRef(namespace: "demo", pipeline: "echo"),
            operators: operators)
    }

    static func code(_ body: () throws(GatewayError) -> Void) -> GatewayError.Code? {
        do throws(GatewayError) {
            try body()
            return nil
        } catch {
            return error.code
        }
    }

    /// Security review 60, M2: seeing a schedule's runs is every caller's, stopping one only its operators'.
    /// Before the split, the visibility rule was the cancel rule: every token holder cancelled every run.
    @Test("cancel: a schedule's run only by its operators with tokens required (403 else), by anyone with auth off")
    func cancelScheduleRun() throws {
        let key = ScheduleRunKey(schedule: "nightly", tick: Date(timeIntervalSince1970: 1_700_000_000)).key
        let run = Self.operation(principal: nil, idempotencyKey: key)
        let schedules = [try Self.schedule("nightly", operators: ["ops"])]
        func check(_ principal: String?, authRequired: Bool = true, _ configured: [ScheduleConfiguration]? = nil)
            -> GatewayError.Code?
        {
            Self.code { () throws(GatewayError) in
                try run.checkMayCancel(
                    principal: principal, authRequired: authRequired, schedules: configured ?? schedules)
            }
        }
        #expect(check("ops") == nil)
        #expect(check("bob") == .permissionDenied)
        #expect(check(nil) == .permissionDenied)
        // Still visible to bob: reading stays open.
        #expect(run.isVisible(to: "bob"))
        // Without the key no caller may; with an empty list neither.
        #expect(check("ops", [try Self.schedule("nightly", operators: nil)]) == .permissionDenied)
        #expect(check("ops", [try Self.schedule("nightly", operators: [])]) == .permissionDenied)
        // A run of a schedule no longer configured: no operators to ask.
        #expect(check("ops", []) == .permissionDenied)
        // Auth off: every caller, as before.
        #expect(check(nil, authRequired: false) == nil)
        #expect(check("CN=bob", authRequired: false) == nil)
        #expect(check(nil, authRequired: false, []) == nil)
        // The 403 names the key to set.
        do throws(GatewayError) {
            try run.checkMayCancel(principal: "bob", authRequired: true, schedules: schedules)
            Issue.record("bob cancelled the run")
        } catch {
            #expect(
                error.message
                    == "this token may not cancel a run of schedule \"nightly\": only its operators may, and its "
                    + "schedules[].operators does not list it")
        }
    }

    @Test("cancel: any other operation its own principal only; another's is 404 (as a read), not 403")
    func cancelOwn() throws {
        let alice = Self.operation(principal: "alice")
        func check(_ principal: String?, authRequired: Bool = true) -> GatewayError.Code? {
            Self.code { () throws(GatewayError) in
                try alice.checkMayCancel(principal: principal, authRequired: authRequired, schedules: [])
            }
        }
        #expect(check("alice") == nil)
        #expect(check("bob") == .notFound)
        #expect(check(nil) == .notFound)
        #expect(check("bob", authRequired: false) == .notFound)
    }
}
