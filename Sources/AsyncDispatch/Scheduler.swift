package import FoundationEssentials
package import GatewayConfig
package import Logging
import Observability
package import OperationStore
import ServiceLifecycle
import Synchronization
package import TriggerModel

/// Fires the configured schedules (`schedules:`): each tick of a schedule's cron expression becomes one async
/// operation, through the same store and dispatcher as `trigger-async`.
///
/// Exactly once across instances: every instance sharing the store runs a scheduler, and each submits a due
/// tick under the tick's `ScheduleRunKey`, so the store's idempotency key makes the first submission the
/// operation and every other one a read of it. The schedule's state row (`ScheduleStateStore`) records the
/// newest tick handled, so a restart catches up what was due while every instance was down (within
/// `catchup_window`; by default only the latest missed tick) and never fires a handled tick again.
///
/// Time comes from an injected `SchedulerClock`; `runPass(now:)` is one scheduling step at a given time, which
/// tests call directly.
package final class Scheduler: Service {
    /// What the API shows of one schedule.
    package struct Status: Sendable {
        package var configuration: ScheduleConfiguration
        package var state: ScheduleState
        /// The configuration's `paused`, or the API's pause/resume when one was made.
        package var paused: Bool
        package var nextFireTimes: [Date]
        /// The newest run's operation (nil when none, or it was purged after its retention).
        package var lastRun: Operation?
    }

    /// How a tick (or a manual trigger) ended, for `/metrics`.
    package enum Outcome: String, Sendable, CaseIterable {
        /// This instance created the operation.
        case fired
        /// Another instance had created it already (the idempotency key answered).
        case firedElsewhere = "fired_elsewhere"
        /// `overlap: skip` and the previous run was still queued or running.
        case skippedOverlap = "skipped_overlap"
        /// The schedule was paused.
        case skippedPaused = "skipped_paused"
        /// Due but never fired: outside the catch-up window (by default every due tick but the latest) when the
        /// schedule could not run at its time (every instance down, or the store unreachable), one per tick.
        case missed
        /// Started by `POST /v1beta/schedules/{name}:trigger`.
        case manual
        /// A pass that could not reach the store, one per retry (every `retryInterval`): its tick is tried again
        /// while it is the latest due; older ones are `missed` (or fired, within the catch-up window) once it can.
        case failed
    }

    /// How soon a pass that could not reach the store is retried.
    package static let retryInterval = Duration.seconds(2)
    /// How many next fire times `GET /v1beta/schedules` shows.
    package static let shownFireTimes = 5

    private let operations: AsyncOperations
    private let stateStore: any ScheduleStateStore
    private let clock: any SchedulerClock
    private let logger: Logger
    private let schedules: Mutex<[ScheduleConfiguration]>
    private let counts = Mutex<[String: [Outcome: Int]]>([:])
    /// When a reload changed a schedule's expression or time zone, by name: the ticks the new definition had before
    /// it are not counted `missed` (a daily schedule made minutely is not a day of missed minutes).
    private let redefinedAt = Mutex<[String: Date]>([:])
    private let wake = WakeSignal()
    private let stopping = Atomic<Bool>(false)
    private let startGate = Mutex<(@Sendable () async throws -> Void)?>(nil)

    package init(
        operations: AsyncOperations,
        stateStore: any ScheduleStateStore,
        schedules: [ScheduleConfiguration],
        logger: Logger,
        clock: any SchedulerClock = SystemSchedulerClock()
    ) {
        self.operations = operations
        self.stateStore = stateStore
        self.schedules = Mutex(schedules)
        self.logger = logger
        self.clock = clock
        registerMetrics(schedules)
    }

    /// Every configured schedule's `trigger_gateway_schedule_ticks_total` series exist from the start, at 0.
    private func registerMetrics(_ schedules: [ScheduleConfiguration]) {
        guard let metrics = operations.metrics?.schedules else { return }
        for schedule in schedules {
            for outcome in Outcome.allCases { metrics.register(schedule: schedule.name, outcome: outcome.rawValue) }
        }
    }

    /// What must be true before the first tick fires (the listener is bound), as for the async dispatcher.
    package func setStartGate(_ gate: @escaping @Sendable () async throws -> Void) {
        startGate.withLock { $0 = gate }
    }

    /// A config reload: the next pass uses `newSchedules` (ticks already handled stay handled).
    package func use(_ newSchedules: [ScheduleConfiguration]) {
        let now = clock.now
        let previous = schedules.withLock { old in
            defer { old = newSchedules }
            return Dictionary(old.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        }
        redefinedAt.withLock { redefined in
            for schedule in newSchedules {
                guard let old = previous[schedule.name] else { continue }
                if old.cron != schedule.cron || old.timeZone != schedule.timeZone { redefined[schedule.name] = now }
            }
        }
        operations.metrics?.schedules.keepOnly(schedules: Set(newSchedules.map(\.name)))
        registerMetrics(newSchedules)
        wake.signal()
    }

    package var configured: [ScheduleConfiguration] { schedules.withLock { $0 } }

    // MARK: The loop

    package func run() async throws {
        if let gate = startGate.withLock({ $0 }) {
            do {
                try await gate()
            } catch {
                logger.info("scheduler not started: the gateway did not start", metadata: ["error": "\(error)"])
                return
            }
        }
        logger.info("scheduler started", metadata: ["schedules": .stringConvertible(configured.count)])
        await withGracefulShutdownHandler {
            while !self.stopping.load(ordering: .sequentiallyConsistent), !Task.isCancelled {
                let now = self.clock.now
                let next = await self.runPass(now: now) ?? now.addingTimeInterval(3600)
                await self.clock.wait(until: next, wake: self.wake)
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .sequentiallyConsistent)
            self.wake.signal()
        }
        logger.info("scheduler stopped")
    }

    /// Handles every schedule's due ticks at `now`; returns when the next pass is needed (the earliest next
    /// fire time, or a retry soon when the store could not be reached).
    @discardableResult
    package func runPass(now: Date) async -> Date? {
        var next: Date?
        for schedule in configured {
            let scheduleNext: Date?
            do {
                scheduleNext = try await pass(schedule, now: now)
            } catch {
                count(schedule.name, .failed)
                logger.log(
                    level: (error as? GatewayError)?.code == .unavailable ? .debug : .warning,
                    "schedule pass failed; retrying",
                    metadata: ["schedule": "\(schedule.name)", "error": "\(error)"]
                )
                scheduleNext = now.addingTimeInterval(seconds(Self.retryInterval))
            }
            if let scheduleNext, next == nil || scheduleNext < next! { next = scheduleNext }
        }
        return next
    }

    private func pass(_ schedule: ScheduleConfiguration, now: Date) async throws -> Date? {
        var state = try await stateStore.scheduleState(name: schedule.name, firstTick: now)
        let due = schedule.cron.dueTicks(
            after: state.lastTick,
            through: now,
            in: schedule.timeZone,
            catchupWindow: schedule.catchupWindow
        )
        if let latest = due.latest {
            if state.pausedOverride ?? schedule.paused {
                count(schedule.name, .skippedPaused)
                state = try await stateStore.recordScheduleTick(name: schedule.name, tick: latest, operationID: nil)
            } else {
                // Every due tick is handled, fired or not: those passed over were missed (cluster review 59, M2: the
                // ticks of a store outage with every instance up went uncounted, and no line said so). Counted as
                // the handled tick after them is stored, by the instance that stored it, so a pass that fails
                // counts nothing twice and another instance's pass nothing again; not before a reload that changed
                // the expression.
                let countFrom = max(state.lastTick, redefinedAt.withLock { $0[schedule.name] } ?? .distantPast)
                var previous = state.lastTick
                var missed = 0
                defer { if missed > 0 { logMissed(schedule, missed, through: latest) } }
                func passedOver(upTo tick: Date, including: Bool) -> Int {
                    let ticks = schedule.cron.tickCount(
                        after: max(previous, countFrom), through: tick, in: schedule.timeZone)
                    return including ? ticks : max(0, ticks - 1)
                }
                for tick in due.fire {
                    let handled = try await fire(schedule, tick: tick, state: state)
                    state = handled.state
                    if handled.here { missed += record(schedule, missed: passedOver(upTo: tick, including: false)) }
                    previous = tick
                }
                if due.fire.last != latest {
                    // The latest itself outside the catch-up window: handled, not fired.
                    state = try await stateStore.recordScheduleTick(name: schedule.name, tick: latest, operationID: nil)
                    missed += record(schedule, missed: passedOver(upTo: latest, including: true))
                }
            }
        }
        return schedule.cron.nextFire(after: max(state.lastTick, now), in: schedule.timeZone)
    }

    /// Counts `missed` ticks of `schedule` (its metric at once); returns them, for the pass's line.
    private func record(_ schedule: ScheduleConfiguration, missed: Int) -> Int {
        if missed > 0 { count(schedule.name, .missed, by: missed) }
        return missed
    }

    private func logMissed(_ schedule: ScheduleConfiguration, _ missed: Int, through latest: Date) {
        logger.warning(
            """
            missed ticks not fired: due while the schedule could not run (every instance down, or the store \
            unreachable), outside its catchup_window
            """,
            metadata: [
                "schedule": "\(schedule.name)", "schedule.ticks_missed": "\(missed)",
                "schedule.tick": "\(ScheduleRunKey.format(latest))",
            ]
        )
    }

    /// One tick: the overlap policy, then the operation (created here or found), then the state; `here`: this
    /// instance decided the tick (fired it or skipped it for the overlap), not another that fired it first.
    private func fire(_ schedule: ScheduleConfiguration, tick: Date, state: ScheduleState) async throws
        -> (state: ScheduleState, here: Bool)
    {
        let key = ScheduleRunKey(schedule: schedule.name, tick: tick)
        if try await !overlapAllows(schedule, key: key.key, lastOperationID: state.lastOperationID) {
            count(schedule.name, .skippedOverlap)
            logger.info(
                "tick skipped: the previous run is still queued or running (overlap: skip)",
                metadata: ["schedule": "\(schedule.name)", "schedule.tick": "\(ScheduleRunKey.format(tick))"]
            )
            return (try await stateStore.recordScheduleTick(name: schedule.name, tick: tick, operationID: nil), true)
        }
        let (operation, created) = try await operations.submitScheduled(Self.request(schedule, key: key))
        count(schedule.name, created ? .fired : .firedElsewhere)
        if created {
            logger.info(
                "schedule fired",
                metadata: [
                    "schedule": "\(schedule.name)", "schedule.tick": "\(ScheduleRunKey.format(tick))",
                    "operation.id": "\(operation.id)",
                ]
            )
        }
        return (
            try await stateStore.recordScheduleTick(name: schedule.name, tick: tick, operationID: operation.id), created
        )
    }

    /// Whether a new run may start now: always for `allow`; for `skip` unless the previous run is queued or
    /// running; for `cancel_previous` after cancelling that run. The run of this very key (another instance
    /// fired the same tick a moment ago) is never skipped on or cancelled.
    private func overlapAllows(_ schedule: ScheduleConfiguration, key: String, lastOperationID: String?) async throws
        -> Bool
    {
        guard schedule.overlap != .allow, let lastOperationID,
            let previous = try await operations.store.get(id: lastOperationID),
            !previous.state.isFinished, previous.idempotencyKey != key
        else { return true }
        switch schedule.overlap {
        case .allow:
            return true
        case .skip:
            return false
        case .cancelPrevious:
            do {
                _ = try await operations.cancel(id: lastOperationID)
                logger.info(
                    "previous run cancelled (overlap: cancel_previous)",
                    metadata: ["schedule": "\(schedule.name)", "operation.id": "\(lastOperationID)"]
                )
            } catch let error as GatewayError where error.code == .failedPrecondition {
                // It finished meanwhile.
            }
            return true
        }
    }

    static func request(_ schedule: ScheduleConfiguration, key: ScheduleRunKey) -> TriggerRequest {
        let seconds = Int64(key.tick.timeIntervalSince1970)
        var request = TriggerRequest(
            ref: schedule.ref,
            mode: .async,
            inputs: schedule.inputs,
            principal: nil,
            requestID: "schedule-\(schedule.name)-\(seconds)\(key.manualID.map { "-\($0)" } ?? "")",
            idempotencyKey: key.key
        )
        // A periodic Craft AI deployment's labels make each run an execution of that deployment.
        request.labels.merge(schedule.labels) { _, configured in configured }
        return request
    }

    // MARK: The API (GET /v1beta/schedules, :pause, :resume, :trigger)

    package func statuses() async throws -> [Status] {
        var result: [Status] = []
        for schedule in configured { result.append(try await status(schedule)) }
        return result
    }

    /// Whether the schedule `name` is paused now (its configured `paused`, or the API's pause/resume when one was
    /// made): one read of its stored state, without its fire times or last run (`status(name:)`). The configured
    /// `paused` when the store cannot be read. Throws `.notFound` for a name no schedule has.
    package func isPaused(name: String) async throws -> Bool {
        let schedule = try configuration(name)
        do {
            return try await stateStore.scheduleState(name: name, firstTick: clock.now).pausedOverride
                ?? schedule.paused
        } catch {
            return schedule.paused
        }
    }

    /// Throws `.notFound` for a name no schedule has.
    package func status(name: String) async throws -> Status {
        try await status(try configuration(name))
    }

    package func pause(name: String) async throws -> Status {
        let schedule = try configuration(name)
        _ = try await stateStore.scheduleState(name: name, firstTick: clock.now)
        try await stateStore.setSchedulePaused(name: name, paused: true)
        logger.info("schedule paused", metadata: ["schedule": "\(name)"])
        return try await status(schedule)
    }

    /// Ticks due while the schedule was paused are not caught up: resuming starts from now.
    package func resume(name: String) async throws -> Status {
        let schedule = try configuration(name)
        let now = clock.now
        _ = try await stateStore.scheduleState(name: name, firstTick: now)
        try await stateStore.recordScheduleTick(name: name, tick: now, operationID: nil)
        try await stateStore.setSchedulePaused(name: name, paused: false)
        logger.info("schedule resumed", metadata: ["schedule": "\(name)"])
        wake.signal()
        return try await status(schedule)
    }

    /// Runs the schedule now, whether paused or not, under its overlap policy (`.failedPrecondition` when
    /// `skip` refuses). The operation's metadata names the schedule, with the trigger time as its tick.
    package func trigger(name: String) async throws -> Operation {
        let schedule = try configuration(name)
        let now = clock.now
        let state = try await stateStore.scheduleState(name: name, firstTick: now)
        let key = ScheduleRunKey(schedule: name, tick: now, manualID: String(Operation.makeID().prefix(10)))
        guard try await overlapAllows(schedule, key: key.key, lastOperationID: state.lastOperationID) else {
            throw GatewayError(
                .failedPrecondition,
                "schedule \(name) has a run still queued or running (operation \(state.lastOperationID ?? "")), "
                    + "and its overlap policy is skip"
            )
        }
        let (operation, _) = try await operations.submitScheduled(Self.request(schedule, key: key))
        try await stateStore.recordScheduleRun(name: name, operationID: operation.id)
        count(name, .manual)
        logger.info(
            "schedule triggered manually", metadata: ["schedule": "\(name)", "operation.id": "\(operation.id)"])
        return operation
    }

    /// Whether `principal` may `action` (`pause`, `resume`, `trigger`) the schedule `name`: its operators, or
    /// anyone with auth off (`ScheduleConfiguration.mayControl`). Throws `.notFound` for a name no schedule has
    /// (every caller may list the names), `.permissionDenied` naming the operators key.
    package func checkMayControl(name: String, action: String, principal: String?, authRequired: Bool)
        throws(GatewayError)
    {
        try configuration(name).checkMayControl(principal: principal, authRequired: authRequired, to: action)
    }

    private func configuration(_ name: String) throws(GatewayError) -> ScheduleConfiguration {
        guard let schedule = configured.first(where: { $0.name == name }) else {
            throw GatewayError(.notFound, "schedule \"\(name)\" not found")
        }
        return schedule
    }

    private func status(_ schedule: ScheduleConfiguration) async throws -> Status {
        let now = clock.now
        let state = try await stateStore.scheduleState(name: schedule.name, firstTick: now)
        var next: [Date] = []
        var cursor = max(now, state.lastTick)
        while next.count < Self.shownFireTimes,
            let time = schedule.cron.nextFire(after: cursor, in: schedule.timeZone)
        {
            next.append(time)
            cursor = time
        }
        let lastRun = try await state.lastOperationID.asyncFlatMap { try await self.operations.store.get(id: $0) }
        return Status(
            configuration: schedule,
            state: state,
            paused: state.pausedOverride ?? schedule.paused,
            nextFireTimes: next,
            lastRun: lastRun
        )
    }

    // MARK: Metrics

    private func count(_ name: String, _ outcome: Outcome, by ticks: Int = 1) {
        counts.withLock { $0[name, default: [:]][outcome, default: 0] += ticks }
        operations.metrics?.schedules.recordTick(schedule: name, outcome: outcome.rawValue, count: ticks)
    }

    /// How many ticks this instance handled, by schedule and outcome.
    package func count(of name: String, _ outcome: Outcome) -> Int {
        counts.withLock { $0[name]?[outcome] ?? 0 }
    }
}

extension Optional {
    fileprivate func asyncFlatMap<T>(_ transform: (Wrapped) async throws -> T?) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
