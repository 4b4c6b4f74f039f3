import AsyncDispatch
import FoundationEssentials
import GatewayApp
import GatewayConfig
import GatewayTestSupport
import Logging
import OperationStore
import Synchronization
import Testing
import TriggerModel

/// A clock the test sets; the scheduler's own loop is not running in these tests (`runPass(now:)` is called
/// with explicit times), so `wait` only has to return.
final class ManualSchedulerClock: SchedulerClock {
    private let current: Mutex<Date>
    init(_ now: Date) { current = Mutex(now) }
    var now: Date { current.withLock { $0 } }
    func set(_ date: Date) { current.withLock { $0 = date } }
    func wait(until deadline: Date, wake: WakeSignal) async { await wake.wait(timeout: .milliseconds(10)) }
}

/// A clock that only moves when the test advances it; the scheduler's loop sleeps on it until its next tick.
final class SteppedSchedulerClock: SchedulerClock {
    private struct Sleeper {
        var id: Int
        var deadline: Date
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var now: Date
        var sleepers: [Sleeper] = []
        var nextID = 0
    }

    private let state: Mutex<State>

    init(_ now: Date) { state = Mutex(State(now: now)) }

    var now: Date { state.withLock { $0.now } }

    func wait(until deadline: Date, wake: WakeSignal) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await wake.wait(timeout: .seconds(3600)) }
            group.addTask { await self.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }

    private func sleep(until deadline: Date) async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.now >= deadline || Task.isCancelled { return true }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume()
        }
    }

    /// Moves time to `date` and wakes every sleeper whose deadline has come.
    func advance(to date: Date) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = date
            let due = state.sleepers.filter { $0.deadline <= date }
            state.sleepers.removeAll { $0.deadline <= date }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (bounded, polling) until someone sleeps until `deadline`: the scheduler finished its pass.
    func sleeper(until deadline: Date) async -> Bool {
        await eventually(within: .seconds(5), interval: .milliseconds(10)) {
            state.withLock { $0.sleepers.contains { $0.deadline == deadline } }
        }
    }
}

/// The scheduler against real stores, one pass at a time at chosen instants: ticks, catch-up after a restart,
/// exactly once across instances, overlap, pause and resume, manual runs. No sleeping: time is injected.
@Suite("Scheduler passes")
struct SchedulerTests {
    enum Kind: String, CaseIterable, Sendable { case sqlite, postgres }

    /// A store location shared by every handle a test opens (instances and restarts).
    struct Harness: Sendable {
        let configuration: GatewayConfiguration

        static func with(_ kind: Kind, _ body: (Harness) async throws -> Void) async throws {
            var configuration = GatewayConfiguration.defaults
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-sched-\(UUID().uuidString)")
                .path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            configuration.dataDir = dir
            if kind == .postgres {
                let environment = ProcessInfo.processInfo.environment
                guard let url = environment["TG_POSTGRES_URL"], !url.isEmpty else {
                    if environment["TG_ALLOW_NO_POSTGRES"] != "1" {
                        Issue.record(
                            "TG_POSTGRES_URL is not set: run under scripts/with-postgres.sh (or TG_ALLOW_NO_POSTGRES=1)"
                        )
                    }
                    return
                }
                configuration.store.kind = .postgres
                configuration.store.url = url
                configuration.store.tablePrefix = "sched\(Operation.makeID().prefix(8))_"
            }
            try await body(Harness(configuration: configuration))
        }

        /// One gateway instance's view: its own store handle, async operations and scheduler.
        func instance(_ schedules: [ScheduleConfiguration], clock: ManualSchedulerClock) async throws -> Instance {
            var logger = Logger(label: "test.scheduler")
            logger.logLevel = .warning
            let store = try await GatewayApp.openStore(configuration, logger: logger)
            let operations = AsyncOperations(store: store, settings: configuration.store)
            let scheduler = Scheduler(
                operations: operations,
                stateStore: try #require(store as? any ScheduleStateStore),
                schedules: schedules,
                logger: logger,
                clock: clock
            )
            return Instance(store: store, operations: operations, scheduler: scheduler)
        }
    }

    struct Instance: Sendable {
        let store: any OperationStore
        let operations: AsyncOperations
        let scheduler: Scheduler

        func runs(of pipeline: String = "demo/echo") async throws -> [Operation] {
            try await store.list(filter: OperationFilter(pipeline: pipeline), pageSize: 1000, pageToken: nil).operations
                .reversed()
        }

        func close() async { try? await store.close() }
    }

    /// A whole-minute start, so `@every` ticks fall on known offsets from it.
    static let t0 = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60)

    static func schedule(
        _ cron: String,
        name: String = "tick",
        overlap: ScheduleConfiguration.Overlap = .skip,
        catchupWindow: Duration? = nil,
        paused: Bool = false
    ) throws -> ScheduleConfiguration {
        ScheduleConfiguration(
            name: name,
            cron: try CronExpression(parsing: cron),
            ref: PipelineRef(namespace: "demo", pipeline: "echo"),
            inputs: [TriggerInput(variables: ["from": .string(name)])],
            overlap: overlap,
            catchupWindow: catchupWindow,
            paused: paused
        )
    }

    static func at(_ offset: Double) -> Date { t0.addingTimeInterval(offset) }

    static func ticks(_ operations: [Operation]) -> [String] {
        operations.compactMap { ScheduleView.run(of: $0).map { ScheduleRunKey.format($0.tick) } }
    }

    @Test(
        "each due tick becomes one queued operation whose metadata names the schedule and its tick",
        arguments: Kind.allCases)
    func ticksBecomeOperations(kind: Kind) async throws {
        try await Harness.with(kind) { harness in
            let clock = ManualSchedulerClock(Self.t0)
            // `allow`: no dispatcher runs here, so every run stays queued.
            let a = try await harness.instance([try Self.schedule("@every 10s", overlap: .allow)], clock: clock)
            defer { Task { await a.close() } }
            // First sight of the schedule: nothing before now was missed. The next pass is due at the next tick.
            #expect(await a.scheduler.runPass(now: Self.at(0)) == Self.at(10))
            #expect(try await a.runs().isEmpty)
            #expect(await a.scheduler.runPass(now: Self.at(9.999)) == Self.at(10))
            #expect(try await a.runs().isEmpty)
            #expect(await a.scheduler.runPass(now: Self.at(10)) == Self.at(20))
            #expect(await a.scheduler.runPass(now: Self.at(10.5)) == Self.at(20))
            #expect(await a.scheduler.runPass(now: Self.at(25)) == Self.at(30))
            let operations = try await a.runs()
            #expect(Self.ticks(operations) == [ScheduleRunKey.format(Self.at(10)), ScheduleRunKey.format(Self.at(20))])
            let first = try #require(operations.first)
            #expect(first.state == .queued)
            #expect(first.request.inputs == [TriggerInput(variables: ["from": .string("tick")])])
            let metadata = OperationView.metadata(first)
            #expect(metadata["schedule"] == .string("tick"))
            #expect(metadata["scheduledTime"] == .string(ScheduleRunKey.format(Self.at(10))))
            #expect(metadata["pipeline"] == .string("demo/echo"))
            #expect(a.scheduler.count(of: "tick", .fired) == 2)
        }
    }

    /// A second instance of `schedules`, started after a first one passed at 0 s and 10 s and closed: the
    /// gateway restarted, with the ticks since 10 s missed.
    static func restarted(_ harness: Harness, _ schedules: [ScheduleConfiguration]) async throws -> Instance {
        let clock = ManualSchedulerClock(Self.t0)
        let a = try await harness.instance(schedules, clock: clock)
        await a.scheduler.runPass(now: Self.at(0))
        await a.scheduler.runPass(now: Self.at(10))
        await a.close()
        return try await harness.instance(schedules, clock: clock)
    }

    @Test("a restart after missed ticks fires only the latest one by default, once", arguments: Kind.allCases)
    func restartFiresLatestMissed(kind: Kind) async throws {
        try await Harness.with(kind) { harness in
            // Down from 11 s to 55 s: ticks 20…50 were missed; the restarted instance fires 50 only.
            let b = try await Self.restarted(harness, [try Self.schedule("@every 10s", overlap: .allow)])
            defer { Task { await b.close() } }
            await b.scheduler.runPass(now: Self.at(55))
            await b.scheduler.runPass(now: Self.at(56))
            #expect(Self.ticks(try await b.runs()) == [10, 50].map { ScheduleRunKey.format(Self.at($0)) })
            #expect(b.scheduler.count(of: "tick", .fired) == 1)
            // 20, 30 and 40 were handled unfired: counted once each (review 59, M2: they were not counted).
            #expect(b.scheduler.count(of: "tick", .missed) == 3)
        }
    }

    @Test("a restart inside the catch-up window fires every missed tick in it, each once", arguments: Kind.allCases)
    func restartCatchesUpWindow(kind: Kind) async throws {
        try await Harness.with(kind) { harness in
            // Missed 20…50; the window (30 s before 55 s) holds 30, 40 and 50.
            let b = try await Self.restarted(
                harness, [try Self.schedule("@every 10s", overlap: .allow, catchupWindow: .seconds(30))])
            defer { Task { await b.close() } }
            await b.scheduler.runPass(now: Self.at(55))
            await b.scheduler.runPass(now: Self.at(55))
            #expect(Self.ticks(try await b.runs()) == [10, 30, 40, 50].map { ScheduleRunKey.format(Self.at($0)) })
            // 20, older than the window, was missed (review 59, M2: it was not counted).
            #expect(b.scheduler.count(of: "tick", .missed) == 1)
        }
    }

    @Test("two instances passing at the same instants make one operation per tick", arguments: Kind.allCases)
    func twoInstancesExactlyOnce(kind: Kind) async throws {
        try await Harness.with(kind) { harness in
            let clock = ManualSchedulerClock(Self.t0)
            let schedules = [try Self.schedule("@every 1s", overlap: .allow)]
            let a = try await harness.instance(schedules, clock: clock)
            let b = try await harness.instance(schedules, clock: clock)
            defer {
                Task {
                    await a.close(); await b.close()
                }
            }
            for second in 0...20 {
                async let passA = a.scheduler.runPass(now: Self.at(Double(second)))
                async let passB = b.scheduler.runPass(now: Self.at(Double(second) + 0.001))
                _ = await (passA, passB)
            }
            let ticks = Self.ticks(try await a.runs())
            #expect(ticks == (1...20).map { ScheduleRunKey.format(Self.at(Double($0))) })
            let created = a.scheduler.count(of: "tick", .fired) + b.scheduler.count(of: "tick", .fired)
            #expect(created == 20)
            // Both pass after a gap (21…29 passed over): the ticks missed are counted once, by the instance that
            // fired 30 (review 59's diff review: each instance counted them).
            async let passA = a.scheduler.runPass(now: Self.at(30))
            async let passB = b.scheduler.runPass(now: Self.at(30.001))
            _ = await (passA, passB)
            #expect(a.scheduler.count(of: "tick", .missed) + b.scheduler.count(of: "tick", .missed) == 9)
        }
    }

    /// A daily schedule made minutely is not a day of missed minutes (review 59's diff review).
    @Test("a reload that changes the expression counts missed ticks of the new one only from the reload on")
    func redefinedScheduleMissedFromReload() async throws {
        try await Harness.with(.sqlite) { harness in
            let clock = ManualSchedulerClock(Self.t0)
            let instance = try await harness.instance(
                [try Self.schedule("@every 10s", overlap: .allow)], clock: clock)
            defer { Task { await instance.close() } }
            await instance.scheduler.runPass(now: Self.at(0))
            await instance.scheduler.runPass(now: Self.at(10))
            clock.set(Self.at(20))
            instance.scheduler.use([try Self.schedule("@every 1s", overlap: .allow)])
            // 21…24 of the new expression were passed over; 11…19 were never its to miss.
            await instance.scheduler.runPass(now: Self.at(25))
            #expect(Self.ticks(try await instance.runs()) == [10, 25].map { ScheduleRunKey.format(Self.at($0)) })
            #expect(instance.scheduler.count(of: "tick", .missed) == 4)
        }
    }

    @Test("overlap skip: no new run while the previous one is queued; the next tick after it ends fires")
    func overlapSkip() async throws {
        try await Harness.with(.sqlite) { harness in
            let clock = ManualSchedulerClock(Self.t0)
            let a = try await harness.instance([try Self.schedule("@every 10s")], clock: clock)
            defer { Task { await a.close() } }
            await a.scheduler.runPass(now: Self.at(0))
            await a.scheduler.runPass(now: Self.at(10))
            await a.scheduler.runPass(now: Self.at(20))
            var operations = try await a.runs()
            #expect(operations.count == 1)
            #expect(a.scheduler.count(of: "tick", .skippedOverlap) == 1)
            // The skipped tick is handled: it does not fire later either.
            _ = try await a.operations.cancel(id: operations[0].id)
            await a.scheduler.runPass(now: Self.at(25))
            #expect(try await a.runs().count == 1)
            await a.scheduler.runPass(now: Self.at(30))
            operations = try await a.runs()
            #expect(Self.ticks(operations) == [10, 30].map { ScheduleRunKey.format(Self.at($0)) })
        }
    }

    @Test("overlap allow starts runs side by side; cancel_previous cancels the one still queued")
    func overlapAllowAndCancel() async throws {
        try await Harness.with(.sqlite) { harness in
            let clock = ManualSchedulerClock(Self.t0)
            let a = try await harness.instance(
                [
                    try Self.schedule("@every 10s", name: "side-by-side", overlap: .allow),
                    try Self.schedule("@every 10s", name: "replace", overlap: .cancelPrevious),
                ],
                clock: clock
            )
            defer { Task { await a.close() } }
            for second: Double in [0, 10, 20] { await a.scheduler.runPass(now: Self.at(second)) }
            let all = try await a.runs()
            let allowRuns = all.filter { ScheduleView.run(of: $0)?.schedule == "side-by-side" }
            #expect(allowRuns.map(\.state) == [.queued, .queued])
            let replaceRuns = all.filter { ScheduleView.run(of: $0)?.schedule == "replace" }
            #expect(replaceRuns.map(\.state) == [.cancelled, .queued])
        }
    }

    @Test("pause stops ticks on every instance; resume starts from now without catching up the paused ones")
    func pauseAndResume() async throws {
        try await Harness.with(.sqlite) { harness in
            let clock = ManualSchedulerClock(Self.t0)
            let schedules = [try Self.schedule("@every 10s", catchupWindow: .seconds(3600))]
            let a = try await harness.instance(schedules, clock: clock)
            let b = try await harness.instance(schedules, clock: clock)
            defer {
                Task {
                    await a.close(); await b.close()
                }
            }
            await a.scheduler.runPass(now: Self.at(0))
            let paused = try await a.scheduler.pause(name: "tick")
            #expect(paused.paused)
            await a.scheduler.runPass(now: Self.at(10))
            await b.scheduler.runPass(now: Self.at(10))
            #expect(try await a.runs().isEmpty)
            #expect(a.scheduler.count(of: "tick", .skippedPaused) + b.scheduler.count(of: "tick", .skippedPaused) == 1)
            // No pass sees 20 and 30 (both instances down, say): resuming must not catch them up.
            clock.set(Self.at(35))
            let resumed = try await b.scheduler.resume(name: "tick")
            #expect(!resumed.paused)
            #expect(resumed.nextFireTimes.first == Self.at(40))
            await a.scheduler.runPass(now: Self.at(40))
            #expect(Self.ticks(try await a.runs()) == [ScheduleRunKey.format(Self.at(40))])
        }
    }

    @Test("paused in the configuration: nothing fires; a manual trigger still runs and is marked manual")
    func configPausedAndManualTrigger() async throws {
        try await Harness.with(.sqlite) { harness in
            let clock = ManualSchedulerClock(Self.at(0))
            let a = try await harness.instance([try Self.schedule("@every 10s", paused: true)], clock: clock)
            defer { Task { await a.close() } }
            await a.scheduler.runPass(now: Self.at(0))
            await a.scheduler.runPass(now: Self.at(10))
            #expect(try await a.runs().isEmpty)
            clock.set(Self.at(12))
            let manual = try await a.scheduler.trigger(name: "tick")
            let metadata = OperationView.metadata(manual)
            #expect(metadata["schedule"] == .string("tick"))
            #expect(metadata["manualTrigger"] == .bool(true))
            #expect(metadata["scheduledTime"] == .string(ScheduleRunKey.format(Self.at(12))))
            // overlap skip: a second manual run while the first is queued is refused.
            let error = await #expect(throws: GatewayError.self) { _ = try await a.scheduler.trigger(name: "tick") }
            #expect(error?.code == .failedPrecondition)
            let status = try await a.scheduler.status(name: "tick")
            #expect(status.lastRun?.id == manual.id)
            #expect(status.paused)
            let unknown = await #expect(throws: GatewayError.self) { _ = try await a.scheduler.trigger(name: "nope") }
            #expect(unknown?.code == .notFound)
        }
    }

    @Test("the scheduler's loop sleeps until each next tick of the injected clock: three minutes of ticks, no sleeping")
    func loopFollowsTheClock() async throws {
        try await Harness.with(.sqlite) { harness in
            let clock = SteppedSchedulerClock(Self.at(0))
            var logger = Logger(label: "test.scheduler")
            logger.logLevel = .warning
            let store = try await GatewayApp.openStore(harness.configuration, logger: logger)
            defer { Task { try? await store.close() } }
            let scheduler = Scheduler(
                operations: AsyncOperations(store: store, settings: harness.configuration.store),
                stateStore: try #require(store as? any ScheduleStateStore),
                schedules: [try Self.schedule("@every 1m", overlap: .allow)],
                logger: logger,
                clock: clock
            )
            let loop = Task { try await scheduler.run() }
            defer { loop.cancel() }
            for minute in 1...3 {
                let tick = Self.at(Double(minute) * 60)
                #expect(await clock.sleeper(until: tick), "the loop sleeps until \(tick)")
                clock.advance(to: tick.addingTimeInterval(0.25))
            }
            #expect(await clock.sleeper(until: Self.at(240)))
            let runs = try await store.list(
                filter: OperationFilter(pipeline: "demo/echo"), pageSize: 10, pageToken: nil)
            #expect(
                Self.ticks(runs.operations.reversed()) == [60, 120, 180].map { ScheduleRunKey.format(Self.at($0)) })
            // A reload wakes the loop at once: the new schedule's first tick is what it sleeps until next.
            let other = try Self.schedule("@every 7s", name: "other", overlap: .allow)
            scheduler.use([other])
            let next = try #require(other.cron.nextFire(after: clock.now, in: other.timeZone))
            #expect(await clock.sleeper(until: next))
        }
    }

    @Test("a store that cannot be reached: the pass is retried after retryInterval and nothing is lost")
    func unreachableStoreRetries() async throws {
        try await Harness.with(.sqlite) { harness in
            let clock = ManualSchedulerClock(Self.t0)
            let schedules = [try Self.schedule("@every 10s", overlap: .allow)]
            let real = try await harness.instance(schedules, clock: clock)
            defer { Task { await real.close() } }
            await real.scheduler.runPass(now: Self.at(0))
            // The same instance with its store gone (a PostgreSQL outage): the pass fails and asks to be retried.
            let gone = ReplaceableOperationStore()
            let operations = AsyncOperations(store: gone, settings: harness.configuration.store)
            var logger = Logger(label: "test.scheduler")
            logger.logLevel = .critical
            let down = Scheduler(
                operations: operations, stateStore: gone, schedules: schedules, logger: logger, clock: clock)
            let retry = await down.runPass(now: Self.at(10))
            #expect(retry == Self.at(10).addingTimeInterval(2))
            #expect(down.count(of: "tick", .failed) == 1)
            // Back (the store reinstalled): the tick that was due during the outage fires, once.
            _ = gone.install(real.store)
            await down.runPass(now: Self.at(12))
            await down.runPass(now: Self.at(12))
            #expect(Self.ticks(try await real.runs()) == [ScheduleRunKey.format(Self.at(10))])
            #expect(down.count(of: "tick", .missed) == 0)

            // A longer outage, every instance up (cluster review 59, M2): 40, 50 and 60 fall due in it; the pass
            // after it fires the latest, and the two before it are counted missed, not dropped silently.
            await down.runPass(now: Self.at(20))
            await down.runPass(now: Self.at(30))
            _ = gone.uninstall()
            #expect(await down.runPass(now: Self.at(41)) == Self.at(41).addingTimeInterval(2))
            _ = gone.install(real.store)
            await down.runPass(now: Self.at(66))
            #expect(Self.ticks(try await real.runs()) == [10, 20, 30, 60].map { ScheduleRunKey.format(Self.at($0)) })
            #expect(down.count(of: "tick", .missed) == 2)
            _ = gone.uninstall()
        }
    }

    @Test("clients cannot use the schedule key prefix, so it proves an operation is a schedule's")
    func reservedPrefix() async throws {
        try await Harness.with(.sqlite) { harness in
            let a = try await harness.instance([], clock: ManualSchedulerClock(Self.t0))
            defer { Task { await a.close() } }
            var request = TriggerRequest(
                ref: PipelineRef(namespace: "demo", pipeline: "echo"), inputs: [TriggerInput()])
            request.idempotencyKey = ScheduleRunKey(schedule: "tick", tick: Self.t0).key
            let error = await #expect(throws: GatewayError.self) { _ = try await a.operations.submit(request) }
            #expect(error?.code == .invalidArgument)
            request.idempotencyKey = "schedule-like-but-fine"
            _ = try await a.operations.submit(request)
        }
    }
}
