import Foundation
import OperationStore
import Testing
import TriggerModel

/// Schedule state and scheduled runs in both stores: each tick's idempotency key makes one operation however
/// many instances submit it, and the state row only moves forward.
@Suite("Schedule state store")
struct ScheduleStateStoreTests {
    static func scheduleStore(_ store: any OperationStore) throws -> any ScheduleStateStore {
        try #require(store as? any ScheduleStateStore)
    }

    static func tickRequest(_ key: ScheduleRunKey) -> TriggerRequest {
        TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "echo"),
            mode: .async,
            inputs: [TriggerInput(variables: ["n": .number(1)])],
            principal: nil,
            requestID: "schedule-\(key.schedule)",
            idempotencyKey: key.key
        )
    }

    @Test("the first read creates the state at the first tick; later reads keep it", arguments: StoreKind.allCases)
    func firstRead(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let states = try Self.scheduleStore(store)
            let t0 = Fixtures.now()
            let created = try await states.scheduleState(name: "nightly", firstTick: t0)
            #expect(created == ScheduleState(name: "nightly", lastTick: t0))
            let again = try await states.scheduleState(name: "nightly", firstTick: t0.addingTimeInterval(60))
            #expect(again == created)
        }
    }

    @Test(
        "recorded ticks only move forward; an older tick changes neither the tick nor the last run",
        arguments: StoreKind.allCases)
    func monotonic(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let states = try Self.scheduleStore(store)
            let t0 = Fixtures.now()
            _ = try await states.scheduleState(name: "s", firstTick: t0)
            var state = try await states.recordScheduleTick(
                name: "s", tick: t0.addingTimeInterval(10), operationID: "op10")
            #expect(state.lastTick == t0.addingTimeInterval(10) && state.lastOperationID == "op10")
            state = try await states.recordScheduleTick(name: "s", tick: t0.addingTimeInterval(5), operationID: "op5")
            #expect(state.lastTick == t0.addingTimeInterval(10) && state.lastOperationID == "op10")
            // A skipped tick (no operation) moves the tick and keeps the last run.
            state = try await states.recordScheduleTick(name: "s", tick: t0.addingTimeInterval(20), operationID: nil)
            #expect(state.lastTick == t0.addingTimeInterval(20) && state.lastOperationID == "op10")
            try await states.recordScheduleRun(name: "s", operationID: "manual")
            #expect(try await states.scheduleState(name: "s", firstTick: t0).lastOperationID == "manual")
        }
    }

    @Test("pause and resume overrides are stored and cleared", arguments: StoreKind.allCases)
    func pauseOverride(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let states = try Self.scheduleStore(store)
            let t0 = Fixtures.now()
            _ = try await states.scheduleState(name: "s", firstTick: t0)
            try await states.setSchedulePaused(name: "s", paused: true)
            // Another instance sees it.
            let seenByPeer = try await harness.withPeer { peer in
                try await Self.scheduleStore(peer).scheduleState(name: "s", firstTick: t0).pausedOverride
            }
            #expect(seenByPeer == true)
            try await states.setSchedulePaused(name: "s", paused: false)
            #expect(try await states.scheduleState(name: "s", firstTick: t0).pausedOverride == false)
            try await states.setSchedulePaused(name: "s", paused: nil)
            #expect(try await states.scheduleState(name: "s", firstTick: t0).pausedOverride == nil)
        }
    }

    @Test(
        "two instances submitting the same ticks concurrently: one operation per tick, created exactly once",
        arguments: StoreKind.allCases)
    func exactlyOncePerTick(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            try await harness.withPeer { peer in
                let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970).rounded(.down))
                let ticks = (0..<20).map {
                    ScheduleRunKey(schedule: "every-second", tick: base.addingTimeInterval(Double($0)))
                }
                // Each instance submits every tick twice (a retry after a lost answer), all at once.
                let results = try await withThrowingTaskGroup(of: (String, String, Bool).self) { group in
                    for key in ticks {
                        for instance in [store, peer, store, peer] {
                            group.addTask {
                                let (operation, created) = try await instance.enqueue(
                                    Self.tickRequest(key),
                                    idempotencyKey: key.key
                                )
                                return (key.key, operation.id, created)
                            }
                        }
                    }
                    var all: [(String, String, Bool)] = []
                    for try await result in group { all.append(result) }
                    return all
                }
                for key in ticks {
                    let mine = results.filter { $0.0 == key.key }
                    #expect(mine.count == 4)
                    #expect(Set(mine.map(\.1)).count == 1, "one operation for \(key.key)")
                    #expect(mine.filter(\.2).count == 1, "created once for \(key.key)")
                }
                let page = try await store.list(
                    filter: OperationFilter(pipeline: "demo/echo"), pageSize: 100, pageToken: nil)
                #expect(page.operations.count == ticks.count)
                #expect(Set(page.operations.compactMap { $0.idempotencyKey }) == Set(ticks.map(\.key)))
            }
        }
    }

    @Test("run keys: one spelling per tick, manual runs apart, other keys are not run keys")
    func runKeys() throws {
        let tick = Date(timeIntervalSince1970: 1_772_953_200)  // 2026-03-08T07:00:00Z
        let key = ScheduleRunKey(schedule: "nightly.report-1", tick: tick.addingTimeInterval(0.75))
        #expect(key.key == "schedule:nightly.report-1@2026-03-08T07:00:00Z")
        #expect(ScheduleRunKey(parsing: key.key) == key)
        let manual = ScheduleRunKey(schedule: "n", tick: tick, manualID: "abc123")
        #expect(manual.key == "schedule:n@2026-03-08T07:00:00Z+manual.abc123")
        #expect(ScheduleRunKey(parsing: manual.key) == manual)
        for other in [
            "my-key", "schedule:", "schedule:@2026-03-08T07:00:00Z", "schedule:n@2026-03-08T07:00:00.000Z",
            "schedule:n@2026-03-08", "schedule:n@2026-03-08T07:00:00Z+auto", "Schedule:n@2026-03-08T07:00:00Z",
        ] {
            #expect(ScheduleRunKey(parsing: other) == nil, "\(other)")
        }
    }
}
