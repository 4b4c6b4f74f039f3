@testable import AsyncDispatch
import FoundationEssentials
import GatewayConfig
import GatewayTestSupport
import NIOCore
import Observability
import OperationStore
import Synchronization
import Testing
import TriggerModel

/// The dispatcher's time-driven behaviour on an injected clock (issue 19, item 5): leases, renewals, retry
/// back-offs, polls and attempt timeouts of an hour, stepped through in virtual time. Each test has a
/// one-minute limit, so a dispatcher that slept on the wall clock could not pass.
@Suite("AsyncDispatcher on an injected clock: hour-long leases, back-offs and polls in virtual time")
struct DispatcherTimeTests {
    static let hour = Duration.seconds(3600)
    static let poll = Duration.seconds(300)

    /// One-hour leases (renewed every 20 minutes) and back-offs, a poll every 5 minutes.
    static func settings(pollInterval: Duration = poll, maxAttempts: Int = 3) -> StoreConfiguration {
        StoreConfiguration(
            lease: hour, maxAttempts: maxAttempts, retryBackoff: hour, maxRetryBackoff: hour, workers: 4,
            pollInterval: pollInterval)
    }

    /// What sleeps on the clock: an idle dispatcher's claim loop (the poll), purge loop and lease keeper (one
    /// for all its runs); a running attempt adds nothing (its pool's attempt timer is on the clock's loop, not
    /// a sleeping task). The tests wait for exactly these to be asleep again after each step, so each step's
    /// outcome does not depend on the machine's load.
    static let idle = 3
    static let perRun = 0

    /// Steps `time` by `step` until `condition` holds, at most `steps` times; true when it held. After each
    /// step it waits until `condition` holds or the `sleepers` are all asleep again.
    ///
    /// `quiet`: also wait until none of its store calls is under way. A PostgreSQL call takes real time and sleeps
    /// on no clock, so without it a step could count as settled while a write it started was still on its way,
    /// and the next steps run out before it lands (seen on the PostgreSQL adoption tests).
    static func step(
        _ time: VirtualTime,
        by step: Duration,
        settlingOn sleepers: Int,
        atMost steps: Int,
        quiet store: RecordingStore? = nil,
        until condition: () async throws -> Bool
    ) async rethrows -> Bool {
        for _ in 0..<steps {
            if try await condition() { return true }
            await time.advance(by: step)
            let settled = try await eventually(within: .seconds(20), interval: .milliseconds(2)) {
                if try await condition() { return true }
                return await time.isSettled(sleepers: sleepers) && (store?.callsInFlight ?? 0) == 0
            }
            if !settled {
                Issue.record("a step did not settle at \(time.elapsed): \(time.sleepsDescription)")
                return false
            }
        }
        return try await condition()
    }

    /// `count` one-second steps, each waiting until the `sleepers` are asleep again; a step that does not settle
    /// is recorded as an issue, with what sleeps.
    static func stepSeconds(_ count: Int, of time: VirtualTime, settlingOn sleepers: Int) async {
        for _ in 0..<count {
            let settled = await time.advance(by: .seconds(1), settlingOn: sleepers)
            #expect(settled, "a step did not settle at \(time.elapsed): \(time.sleepsDescription)")
        }
    }

    /// The test clock itself (the CI run of 4f306fd): a sleep that checked its deadline before an advance reached it
    /// but was suspended by `TestClock` after, with its deadline exactly now, slept until the next advance, so the
    /// step never settled. Asking whether time settled wakes it.
    @Test(
        "a sleep that begins as an advance reaches its deadline is woken when the test next asks whether time settled",
        .timeLimit(.minutes(1)))
    func sleepRacingAnAdvance() async throws {
        let time = VirtualTime()
        let (advanced, advancedDone) = AsyncStream.makeStream(of: Void.self)
        time.beforeSuspending.withLock { $0 = { for await _ in advanced { break } } }
        let sleeper = Task { try await time.sleep(for: .seconds(1)) }
        #expect(await time.settle(sleepers: 1), "the sleep did not start")
        await time.advance(by: .seconds(1))
        advancedDone.yield()
        let settled = await time.settle(sleepers: 0)
        #expect(settled, "left asleep: \(time.sleepsDescription)")
        if !settled { sleeper.cancel() }
        await #expect(throws: Never.self) { try await sleeper.value }
    }

    @Test(
        "an idle dispatcher polls: work stored without a wake signal is claimed at the next poll, not before",
        .timeLimit(.minutes(1)))
    func pollWithoutWake() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: Self.hour), runner: ScriptedRunner(),
                clock: time, now: time.wallClock)
            #expect(await time.settle(sleepers: Self.idle))
            let idleSince = try #require(store.claims.last).now
            // Straight into the store, as another instance's frontend would: nothing wakes this dispatcher.
            let (operation, _) = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil)

            #expect(await time.advance(by: Self.hour - .seconds(1), settlingOn: Self.idle))
            #expect(store.claims(of: operation.id).isEmpty, "claimed before the poll interval passed")
            #expect(try await store.get(id: operation.id)?.state == .queued)

            await time.advance(by: .seconds(1))
            #expect(
                try await eventually(within: .seconds(20)) {
                    try await store.get(id: operation.id)?.state == .succeeded
                })
            let claim = try #require(store.claims(of: operation.id).first)
            #expect(claim.now.timeIntervalSince(idleSince) >= 3600)
            await instance.stop()
        }
    }

    /// A restart takes back its earlier process's leases (`expireLeases` on the instance's identity) beside its first
    /// claims, not before them. A lease one of those claims took a moment before was ended with the predecessor's:
    /// the next claim took the operation again, and its run here either adopted it (an attempt counted twice) or
    /// had not registered yet and the pipeline ran twice (session 61, `AsyncDurabilityTests.twoInstancesPostgres`
    /// in CI: attempts `[2, 2, 2, 2, 2, 1, 1, 1]`). Here the take-back is held until a claim's run is under way.
    @Test(
        "a restart's take-back of its earlier leases spares the leases its own first claims took",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func takeBackSparesOwnClaims(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let runner = ScriptedRunner()
            let (operation, _) = try await store.enqueue(asyncRequest("hang"), idempotencyKey: nil)
            store.onInstanceProbe { _ = await eventually(within: .seconds(20)) { runner.runs("hang") == 1 } }
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(), runner: runner, clock: time, now: time.wallClock,
                identity: "gw")
            #expect(await eventually(within: .seconds(20)) { !store.leaseExpirations.isEmpty })
            let expiration = try #require(store.leaseExpirations.first)
            #expect(expiration.ownerPrefix == "gw.")
            #expect(expiration.sparing == "\(instance.dispatcher.instanceID)/")
            #expect(expiration.ended == 0, "the run's own lease was ended under it")
            let claim = try #require(store.claims(of: operation.id).first)
            #expect(try await store.get(id: operation.id)?.leaseOwner == claim.owner)
            #expect(store.claims(of: operation.id).count == 1)
            #expect(runner.runs("hang") == 1)
            await instance.stop()
        }
    }

    /// The value of the series `name` (with its labels, as exposed) in a scrape of `metrics`; nil when absent.
    static func sample(_ metrics: GatewayMetrics, _ name: String) -> Double? {
        Exposition(String(decoding: metrics.scrape(), as: UTF8.self)).samples[name]
    }

    /// Review 18 F3: `trigger_gateway_async_queued` kept its last count while the store could not be reached, so
    /// a backlog alert flat-lined through the outage. Now the series goes while the count fails and comes back
    /// with the next count. Claims fail too meanwhile (the store is unreachable), so the two operations stay queued.
    @Test(
        "async_queued: the store's count; absent while the store cannot count it, back with the next count",
        .timeLimit(.minutes(1)))
    func queueLengthUnknownWhileStoreUnreachable() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let metrics = GatewayMetrics()
            let queued = { Self.sample(metrics, #"trigger_gateway_async_queued{pool="local"}"#) }
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: Self.hour), runner: ScriptedRunner(),
                clock: time, now: time.wallClock, metrics: metrics)
            // The idle dispatcher's sleepers and its queue count's (every poll interval, an hour here).
            let sleepers = Self.idle + 1
            #expect(await time.settle(sleepers: sleepers))
            #expect(queued() == 0)
            store.isUnreachable = true
            for _ in 0..<2 { _ = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil) }
            #expect(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { queued() == 2 })

            store.failsQueueCounts = true
            #expect(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { queued() == nil })
            let text = String(decoding: metrics.scrape(), as: UTF8.self)
            #expect(!text.contains("trigger_gateway_async_queued"), "\(text)")
            #expect(try promtoolFindings(text) == "", "\(text)")

            store.failsQueueCounts = false
            #expect(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { queued() == 2 })
            await instance.stop()
        }
    }

    /// Review 26 M5: the backlog per pool, and how long its oldest operation has waited (`async_dispatch_lag_seconds`
    /// is observed only at a claim, so it was silent while nothing could be claimed).
    @Test(
        "async_queued{pool} and async_oldest_queued_timestamp_seconds{pool}: the pool's queue and its oldest operation's acceptance; the count's time when none waits; a pipeline no route matches is no pool's",
        .timeLimit(.minutes(1)))
    func queuePerPoolAndItsAge() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let metrics = GatewayMetrics()
            let queued = { Self.sample(metrics, #"trigger_gateway_async_queued{pool="local"}"#) }
            let oldest = {
                Self.sample(metrics, #"trigger_gateway_async_oldest_queued_timestamp_seconds{pool="local"}"#)
            }
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: Self.hour), runner: ScriptedRunner(),
                clock: time, now: time.wallClock, metrics: metrics)
            let sleepers = Self.idle + 1
            #expect(await time.settle(sleepers: sleepers))
            #expect(queued() == 0)
            #expect(oldest() == time.wallClock().timeIntervalSince1970, "nothing waits: the count's time")
            // Claims fail (a runner or store problem: nothing is claimed), enqueues work.
            store.isUnreachable = true
            let accepted = time.wallClock().timeIntervalSince1970
            for _ in 0..<2 { _ = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil) }
            var unrouted = asyncRequest("echo")
            unrouted.ref = PipelineRef(namespace: "elsewhere", pipeline: "echo")
            _ = try await store.enqueue(unrouted, idempotencyKey: nil)
            #expect(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { queued() == 2 })
            #expect(abs(try #require(oldest()) - accepted) < 0.001, "stamped to the millisecond")
            // An hour later it has waited two: the age grows while nothing is claimed.
            #expect(await time.advance(by: Self.hour, settlingOn: sleepers))
            #expect(queued() == 2)
            #expect(time.wallClock().timeIntervalSince1970 - (try #require(oldest())) >= 7200 - 0.001)
            let scrape = String(decoding: metrics.scrape(), as: UTF8.self)
            #expect(!scrape.contains(#"pool="elsewhere"#), "\(scrape)")
            #expect(try promtoolFindings(scrape) == "", "\(scrape)")
            // Claimable again: they run, and the pool waits for nothing.
            store.isUnreachable = false
            #expect(
                await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 3) {
                    queued() == 0 && oldest() == time.wallClock().timeIntervalSince1970
                })
            await instance.stop()
        }
    }

    /// Review 18 F4: `trigger_gateway_async_unrouted_queued` kept its last count through a store outage. Now it goes
    /// with `async_queued` while the store cannot count, and comes back with the next count.
    @Test(
        "async_unrouted_queued: absent while the store cannot count, back with the next count",
        .timeLimit(.minutes(1)))
    func unroutedQueueUnknownWhileStoreUnreachable() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let metrics = GatewayMetrics()
            let unrouted = { Self.sample(metrics, "trigger_gateway_async_unrouted_queued") }
            // Queued by an instance with a route for it: none matches here.
            var request = asyncRequest("echo")
            request.ref = PipelineRef(namespace: "elsewhere", pipeline: "echo")
            _ = try await store.enqueue(request, idempotencyKey: nil)
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: Self.hour), runner: ScriptedRunner(),
                clock: time, now: time.wallClock, metrics: metrics)
            let sleepers = Self.idle + 1
            #expect(await time.settle(sleepers: sleepers))
            #expect(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { unrouted() == 1 })

            store.failsQueueCounts = true
            #expect(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { unrouted() == nil })
            // It stays absent through the outage: the claim rounds meanwhile do not bring back the last count.
            #expect(!(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { unrouted() != nil }))
            let text = String(decoding: metrics.scrape(), as: UTF8.self)
            #expect(!text.contains("trigger_gateway_async_unrouted_queued"), "\(text)")
            #expect(try promtoolFindings(text) == "", "\(text)")

            store.failsQueueCounts = false
            #expect(await Self.step(time, by: Self.hour, settlingOn: sleepers, atMost: 2) { unrouted() == 1 })
            await instance.stop()
        }
    }

    @Test(
        "a pipeline new here: queued here, claimed at once; queued by another instance, at the next poll, not before",
        .timeLimit(.minutes(1)))
    func newPipelineDiscovery() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: Self.hour), runner: ScriptedRunner(),
                clock: time, now: time.wallClock)
            #expect(await time.settle(sleepers: Self.idle))
            func succeeded(_ id: String) async throws -> Bool {
                try await eventually(within: .seconds(20)) { try await store.get(id: id)?.state == .succeeded }
            }
            // Queued here: the dispatcher learns test/a's pool from it, with no time passing.
            let first = try await instance.operations.submit(asyncRequest("a"))
            #expect(try await succeeded(first.id))
            #expect(await time.settle(sleepers: Self.idle))

            // test/b straight into the store, as another instance's frontend would, then more of the known test/a
            // here: the wake claims test/a's work only; looking for unknown pipelines waits for the poll.
            let (remote, _) = try await store.enqueue(asyncRequest("b"), idempotencyKey: nil)
            let known = try await instance.operations.submit(asyncRequest("a"))
            #expect(try await succeeded(known.id))
            #expect(await time.advance(by: Self.hour - .seconds(1), settlingOn: Self.idle))
            #expect(store.claims(of: remote.id).isEmpty, "a pipeline queued elsewhere looked for before the poll")
            await time.advance(by: .seconds(1))
            #expect(try await succeeded(remote.id))
            #expect(await time.settle(sleepers: Self.idle))

            // A pipeline new here, queued here: claimed at once, whatever the poll.
            let new = try await instance.operations.submit(asyncRequest("c"))
            #expect(try await succeeded(new.id))
            #expect(time.elapsed == Self.hour, "waited for the clock")
            await instance.stop()
        }
    }

    @Test(
        "a failed attempt is retried once its back-off has passed, at the first poll after it, not before",
        .timeLimit(.minutes(1)))
    func retryWaitsBackoff() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let runner = ScriptedRunner()
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(), runner: runner, clock: time, now: time.wallClock)
            let operation = try await instance.operations.submit(asyncRequest("flaky"))
            #expect(await eventually(within: .seconds(20)) { store.failures.count == 1 })
            #expect(await time.settle(sleepers: Self.idle))
            let failure = try #require(store.failures.first)
            let retryAt = try #require(failure.retryAt)
            #expect(abs(retryAt.timeIntervalSince(failure.now) - 3600) < 1, "the back-off is the configured hour")

            // 55 minutes of polls: none may take it.
            for _ in 1...11 { #expect(await time.advance(by: Self.poll, settlingOn: Self.idle)) }
            #expect(runner.runs("flaky") == 1, "retried before its back-off")
            #expect(try await store.get(id: operation.id)?.state == .queued)

            #expect(
                try await Self.step(time, by: Self.poll, settlingOn: Self.idle, atMost: 3) {
                    try await store.get(id: operation.id)?.state == .succeeded
                })
            let claims = store.claims(of: operation.id)
            #expect(claims.count == 2)
            if claims.count == 2 {
                #expect(claims[1].now >= retryAt)
                #expect(claims[1].now.timeIntervalSince(retryAt) <= Self.poll.seconds, "not retried at the next poll")
            }
            #expect(try await store.get(id: operation.id)?.attempts == 2)
            await instance.stop()
        }
    }

    @Test(
        "a run whose call reached no runner spends no attempt: queued again after 1 s, then waits growing to 30 s",
        .timeLimit(.minutes(1)))
    func notSentRunWaitsWithoutAnAttempt() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let runner = ScriptedRunner()
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: .seconds(1)), runner: runner, clock: time,
                now: time.wallClock)
            let operation = try await instance.operations.submit(asyncRequest("unreached"))
            // One-second steps, each waiting for the dispatcher to go back to sleep (milliseconds alone; 10 s
            // bounds a loaded machine): a step that moved on unsettled would make a claim look late below.
            var succeeded = false
            for _ in 0..<400 {
                succeeded = try await store.get(id: operation.id)?.state == .succeeded
                if succeeded { break }
                await time.advance(by: .seconds(1))
                let settled = await eventually(within: .seconds(10), interval: .milliseconds(2)) {
                    await time.isSettled(sleepers: Self.idle)
                }
                #expect(settled, "a step did not settle within 10 s at \(time.elapsed): \(time.sleepsDescription)")
            }
            #expect(succeeded)
            #expect(runner.runs("unreached") == 13)
            #expect(store.failures.isEmpty, "a refused call is not a failed attempt")
            #expect(try await store.get(id: operation.id)?.attempts == 1, "only the run that reached the runner")
            let releases = store.releases
            let claims = store.claims(of: operation.id)
            #expect(releases.count == 12)
            #expect(claims.count == 13)
            let waits = releases.map { $0.notBefore.timeIntervalSince($0.now) }
            #expect(abs(waits[0] - 1) < 0.01, "the first wait is 1 s")
            #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 <= $1 + 0.01 }, "the waits grow: \(waits)")
            #expect(waits.allSatisfy { $0 <= 30.01 }, "capped at 30 s: \(waits)")
            #expect(abs((waits.last ?? 0) - 30) < 0.01, "the cap is reached: \(waits)")
            for (release, claim) in zip(releases, claims.dropFirst()) {
                // The store keeps milliseconds: within one of the time is at the time.
                #expect(claim.now.timeIntervalSince(release.notBefore) > -0.001, "claimed again before its time")
                // At the next 1 s poll (the wall clock is virtual: no real time in it).
                #expect(claim.now.timeIntervalSince(release.notBefore) <= 1.001, "not claimed at the next poll")
            }
            await instance.stop()
        }
    }

    @Test(
        "a hand-back warns once per pool per minute (review 23 M1): held back 59 s after the last warning, written at 60 s with the count held back; the start is the run that reached the runner",
        .timeLimit(.minutes(1)))
    func unreachedHandBackWarningIsRateLimited() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let runner = ScriptedRunner()
            runner.isDown = true
            let log = RecordedLog()
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: .seconds(1)), runner: runner, clock: time,
                now: time.wallClock, log: log)
            let warnings = {
                log.lines.filter { $0.message == "runner unreachable; async operations wait in the queue" }
            }
            func second() async {
                await time.advance(by: .seconds(1))
                let settled = await eventually(within: .seconds(10), interval: .milliseconds(2)) {
                    await time.isSettled(sleepers: Self.idle)
                        && store.claims.reduce(0) { $0 + $1.ids.count }
                            == store.releases.count + store.completions.count
                }
                #expect(settled, "a step did not settle at \(time.elapsed): \(time.sleepsDescription)")
            }
            let start = time.wallClock()
            // At 0 s: the first hand-back warns at once.
            let first = try await instance.operations.submit(asyncRequest("gated")).id
            #expect(await eventually(within: .seconds(10), interval: .milliseconds(2)) { store.releases.count == 1 })
            #expect(warnings().count == 1)
            let line = try #require(warnings().first)
            #expect(line.metadata["backend.pool"] == "local")
            #expect(line.metadata["operation.id"] == first)
            #expect(line.metadata["error"] == "cannot connect to an endpoint: connection refused")
            #expect(line.metadata["next_try"] == RFC3339.format(milliseconds: (start + 1).storeMilliseconds))
            #expect(line.metadata["handbacks_held_back"] == nil)
            #expect(try await store.get(id: first)?.startedAt == nil, "handed back: not started")
            // Back at 1 s: the probe runs it; its start is that run's.
            runner.isDown = false
            await second()
            let ran = try #require(try await store.get(id: first))
            #expect(ran.state == .succeeded)
            #expect(ran.startedAt?.storeMilliseconds == (start + 1).storeMilliseconds)
            while time.wallClock() < start + 59 { await second() }
            // Down again at 59 s: a new outage's hand-back, 59 s after the warning: held back.
            runner.isDown = true
            let heldBackAt = time.wallClock()
            let second59 = try await instance.operations.submit(asyncRequest("gated")).id
            #expect(await eventually(within: .seconds(10), interval: .milliseconds(2)) { store.releases.count == 2 })
            #expect(warnings().count == 1, "held back within the minute: \(warnings())")
            // Its probe at 60 s: written, with the one held back.
            await second()
            #expect(store.releases.count == 3)
            #expect(warnings().count == 2)
            #expect(warnings().last?.metadata["handbacks_held_back"] == "1")
            #expect(
                warnings().last?.metadata["handbacks_held_back_since"]
                    == RFC3339.format(milliseconds: heldBackAt.storeMilliseconds))
            #expect(warnings().last?.metadata["operation.id"] == second59)
            #expect(try await store.get(id: second59)?.startedAt == nil)
            await instance.stop()
        }
    }

    @Test(
        "while a runner is down its queued operations wait in the store: one probe run per back-off, not a claim and a release of each; all run once it is back",
        .timeLimit(.minutes(1)))
    func runnerDownClaimsOnlyProbes() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let runner = ScriptedRunner()
            runner.isDown = true
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(pollInterval: .seconds(1)), runner: runner, clock: time,
                now: time.wallClock)
            var ids: [String] = []
            for _ in 0..<20 { ids.append(try await instance.operations.submit(asyncRequest("gated")).id) }
            /// One-second steps, each waiting (bounded) for the dispatcher to go back to sleep. The bound was 1 s,
            /// and on a loaded machine (the full suite in parallel) a step that had not settled let virtual time
            /// run ahead of the probes: 11 releases counted where 12 are due. Alone a step settles in milliseconds.
            /// While the runner is down every step settles (the probe counts below depend on it: a step that has
            /// not settled must fail here, not as a count); once it is back, runs in flight may keep a step from
            /// settling, and the wait is only a courtesy. A run does not sleep on the clock, so "settled" while it is
            /// down also needs every claimed run handed back (a probe in flight was once counted claimed, not yet
            /// released).
            func second(settling required: Bool) async {
                await time.advance(by: .seconds(1))
                let settled = await eventually(
                    within: required ? .seconds(10) : .seconds(1), interval: .milliseconds(2)
                ) {
                    await time.isSettled(sleepers: Self.idle)
                        && (!required || store.claims.reduce(0) { $0 + $1.ids.count } == store.releases.count)
                }
                if required {
                    #expect(settled, "a step did not settle within 10 s at \(time.elapsed): \(time.sleepsDescription)")
                }
            }
            // Two minutes down. The first round claims a worker's worth (4) before any run has failed; after that
            // only probes, one per back-off of the pool (1 s growing by half of the outage, to 30 s): about 12 in
            // two minutes. Claiming each operation once per its own back-off made about 11 releases of each.
            for _ in 0..<120 { await second(settling: true) }
            let releases = store.releases.count
            let claimed = store.claims.reduce(0) { $0 + $1.ids.count }
            #expect(releases >= 4 + 8, "probes stopped while the runner is down: \(releases)")
            #expect(releases <= 4 + 16, "claimed and released while the runner is down: \(releases)")
            #expect(claimed == releases, "every claimed run was refused and handed back")
            // Claim calls (most find nothing) come at the 1 s poll and the runs' ends, not in a loop: a probe due
            // while none can be claimed yet must not make the claim loop spin.
            #expect(store.claims.count <= 2 * 120 + 40, "claim calls while the runner is down: \(store.claims.count)")
            #expect(store.failures.isEmpty)

            // Back: the next probe reaches it, then every operation runs (each on its first attempt).
            runner.isDown = false
            var done = 0
            for _ in 0..<90 {
                done = 0
                for id in ids where try await store.get(id: id)?.state == .succeeded { done += 1 }
                if done == ids.count { break }
                await second(settling: false)
            }
            #expect(done == ids.count)
            for id in ids { #expect(try await store.get(id: id)?.attempts == 1) }
            await instance.stop()
        }
    }

    /// A store outage that outlasts the lease (review 12, finding 1: a PostgreSQL failover of 15 s with the
    /// default 10 s lease ran every run that had finished during it a second time).
    static let outageSettings = StoreConfiguration(
        lease: .seconds(30), maxAttempts: 3, retryBackoff: hour, maxRetryBackoff: hour, workers: 4,
        pollInterval: .seconds(5))

    /// An instance on `store` whose first run ends with its outcome unwritable (`takeAway` breaks the store as the
    /// run starts), and that run's operation, once a write of its outcome has failed.
    static func runIntoOutage(
        _ store: RecordingStore, time: VirtualTime, settings: StoreConfiguration = outageSettings,
        pipeline: String = "echo", outcomeRetryLimit: Duration = .seconds(600), metrics: GatewayMetrics? = nil,
        takeAway: @escaping @Sendable (RecordingStore) -> Void
    ) async throws -> (DispatcherInstance, ScriptedRunner, Operation) {
        let runner = ScriptedRunner()
        let first = Atomic<Bool>(true)
        runner.onRun { _ in
            if first.exchange(false, ordering: .relaxed) { takeAway(store) }
        }
        let instance = DispatcherInstance(
            store: store, settings: settings, runner: runner, clock: time, now: time.wallClock,
            outcomeRetryLimit: outcomeRetryLimit, metrics: metrics)
        let operation = try await instance.operations.submit(asyncRequest(pipeline))
        #expect(await eventually(within: .seconds(20)) { store.unreachableWrites > 0 })
        return (instance, runner, operation)
    }

    @Test(
        "a store outage longer than the lease: a run that finished during it has its outcome stored once the store is back, and is not run again",
        .timeLimit(.minutes(1)))
    func outcomeOutlivesALongStoreOutage() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            // The store goes away while the run is under way: its outcome cannot be written.
            let (instance, runner, operation) = try await Self.runIntoOutage(store, time: time) {
                $0.isUnreachable = true
            }
            // Two leases of outage, a second at a time: the dispatcher's loops, and the outcome's retries, sleep.
            let sleepers = Self.idle + 1
            await Self.stepSeconds(60, of: time, settlingOn: sleepers)
            #expect(try await store.get(id: operation.id)?.state == .running)
            let writesDuringOutage = store.unreachableWrites
            #expect(writesDuringOutage > 30, "the outcome was retried through the outage: \(writesDuringOutage)")

            store.isUnreachable = false
            #expect(
                try await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 5) {
                    try await store.get(id: operation.id)?.state == .succeeded
                })
            #expect(runner.runs("echo") == 1, "run again after the outage")
            #expect(store.claims(of: operation.id).count == 1)
            #expect(try await store.get(id: operation.id)?.attempts == 1)
            await instance.stop()
        }
    }

    /// The outcome retry limit at its edge: tries are one virtual second apart once the back-off reaches 1 s, and
    /// the last one starts while `elapsed + 1 s < limit`. With a 45 s limit that is at 43 s; the try at 44 s fails
    /// and gives up.
    @Test(
        "the outcome retry limit: an outage that ends just inside it has the outcome stored (one run); one just past it has the outcome given up and the operation run again after its lease",
        .timeLimit(.minutes(1)),
        arguments: [(outage: 43, runs: 1), (outage: 45, runs: 2)])
    func outcomeRetryLimitEdge(outage: Int, runs: Int) async throws {
        let time = VirtualTime()
        let limit = Duration.seconds(45)
        try await withRecordingStore(now: time.wallClock) { store in
            let (instance, runner, operation) = try await Self.runIntoOutage(
                store, time: time, outcomeRetryLimit: limit
            ) { $0.isUnreachable = true }
            // Asleep after each step: the dispatcher's loops and the outcome's retries until they give up (the try
            // at 44 s); after that, the claim loop's back-off from its failing claims may be.
            func step() async {
                await time.advance(by: .seconds(1))
                let settled = await eventually(within: .seconds(20), interval: .milliseconds(2)) {
                    if await time.isSettled(sleepers: Self.idle + 1) { return true }
                    guard time.elapsed >= .seconds(44) else { return false }
                    return await time.isSettled(sleepers: Self.idle)
                }
                #expect(settled, "a step did not settle at \(time.elapsed): \(time.sleepsDescription)")
            }
            for _ in 1...outage { await step() }
            #expect(runner.runs("echo") == 1)
            store.isUnreachable = false
            var succeeded = false
            for _ in 0..<20 where !succeeded {
                await step()
                succeeded = try await store.get(id: operation.id)?.state == .succeeded
            }
            #expect(succeeded, "not succeeded at \(time.elapsed)")
            #expect(runner.runs("echo") == runs, "runs of an operation whose store was away \(outage) s")
            // A claim here may take the operation back before the outcome's next try (the run adopts it then).
            #expect(store.claims(of: operation.id).count >= runs)
            await instance.stop()
        }
    }

    @Test(
        "an outcome write that keeps failing on a reachable store slows claiming but does not stop it (diff review 2)",
        .timeLimit(.minutes(1)))
    func failingOutcomeDoesNotStallClaims() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let (instance, runner, _) = try await Self.runIntoOutage(store, time: time) { $0.failsOutcomes = true }
            // Another operation, queued while the first one's outcome keeps failing: claimed and run within
            // seconds of virtual time, not after the outcome's retries end.
            let other = try await instance.operations.submit(asyncRequest("other"))
            // Asleep meanwhile: the dispatcher's loops and the first outcome's retries.
            let ran = await Self.step(time, by: .seconds(1), settlingOn: Self.idle + 1, atMost: 10) {
                runner.runs("other") > 0
            }
            #expect(ran && runner.runs("other") == 1, "claiming stalled behind a failing outcome write")
            #expect(store.claims(of: other.id).count == 1)
            await instance.stop()
        }
    }

    /// How an adoption after the outage goes on.
    enum AdoptionCase: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// The adopted claim's attempt taken back at once.
        case adopted
        /// The statement that takes the adopted claim's attempt back is committed and its reply lost once, so it is
        /// sent again (review 14 F1): without its fence on `attempts` the repeat took a second attempt back
        /// (attempts 0), and the operation got one run beyond `max_attempts`.
        case lostUncountReply
        /// `lostUncountReply`, then the adopted claim's lease expires too and a second claim here is adopted before
        /// the outcome is stored (review 16 F2): the repeat of the first uncount must tell the run it was applied.
        /// Before, it answered false, the run kept the first claim's count as still owed, and the second adoption's
        /// uncount took it back again (attempts 0).
        case lostUncountReplyThenAdoptedAgain

        var testDescription: String { rawValue }
    }

    @Test(
        "after a store outage longer than the lease, a claim here that takes back an operation whose outcome still waits to be stored is adopted by its run: the pipeline is not run again, and each adopted claim's attempt is taken back once",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases, AdoptionCase.allCases)
    func claimAfterOutageIsAdopted(kind: DispatchStoreKind, adoption: AdoptionCase) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            // With metrics: their queue count sleeps too (one more sleeper).
            let metrics = GatewayMetrics()
            let idle = Self.idle + 1
            let (instance, runner, operation) = try await Self.runIntoOutage(store, time: time, metrics: metrics) {
                $0.isUnreachable = true
            }
            // Just past the 30 s lease (the renewals at 10, 20 and 30 s failed): claimable again once the store is
            // back, and the next claim round (at most 7 s away) comes before the next renewal (40 s).
            await Self.stepSeconds(31, of: time, settlingOn: idle + 1)
            // Back for claims while the outcome's writes still fail: the claim round comes first.
            store.failsOutcomes = true
            let lostReply = adoption != .adopted
            if lostReply { store.losesNextUncountReply() }
            store.isUnreachable = false
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: idle + 1, atMost: 10, quiet: store) {
                    store.claims(of: operation.id).count == 2 && (!lostReply || store.uncounts >= 2)
                })
            if adoption == .lostUncountReplyThenAdoptedAgain {
                // Renewals fail meanwhile, so the claim round, not a renewal, comes first after the expiry.
                store.failsRenewals = true
                let adopted = try #require(store.claims(of: operation.id).last?.owner)
                #expect(try await store.expireLeases(ownerPrefix: adopted, sparing: nil, now: time.wallClock()) == 1)
                #expect(
                    await Self.step(time, by: .seconds(1), settlingOn: idle + 1, atMost: 10, quiet: store) {
                        store.claims(of: operation.id).count == 3
                    })
                store.failsRenewals = false
            }
            store.failsOutcomes = false
            #expect(
                try await Self.step(time, by: .seconds(1), settlingOn: idle, atMost: 5, quiet: store) {
                    try await store.get(id: operation.id)?.state == .succeeded
                })
            #expect(runner.runs("echo") == 1, "run again after the outage")
            let stored = try #require(try await store.get(id: operation.id))
            #expect(stored.leaseOwner == store.claims(of: operation.id).last?.owner, "stored under the last claim")
            #expect(stored.attempts == 1, "an adopted claim made no backend call: each one's attempt taken back, once")
            #expect(
                Self.sample(metrics, "trigger_gateway_async_lease_takeovers_total") == 0,
                "this instance's own run adopted its claims: no takeover")
            await instance.stop()
        }
    }

    /// Review 18 F4: an operation left running by an instance that died (its lease never renewed) is taken over
    /// once its lease has expired, not a millisecond before, and the takeover is counted; the one run here is the
    /// pipeline's second.
    @Test(
        "another instance's expired lease: taken over when it expires, not before, and counted in async_lease_takeovers_total",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func expiredLeaseOfAnotherInstanceIsCounted(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let metrics = GatewayMetrics()
            let takeovers = { Self.sample(metrics, "trigger_gateway_async_lease_takeovers_total") }
            let operation = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil).operation
            // The dead instance's claim: a 30 s lease from now, never renewed.
            let dead = try await store.claim(
                owner: "gw-dead.boot1/7", leaseDuration: .seconds(30), limit: 1, now: time.wallClock())
            #expect(dead.map(\.id) == [operation.id])
            let runner = ScriptedRunner()
            let settings = StoreConfiguration(
                lease: .seconds(30), maxAttempts: 3, retryBackoff: Self.hour, maxRetryBackoff: Self.hour, workers: 4,
                pollInterval: .milliseconds(1))
            let instance = DispatcherInstance(
                store: store, settings: settings, runner: runner, clock: time, now: time.wallClock, metrics: metrics)
            let sleepers = Self.idle + 1
            #expect(await time.settle(sleepers: sleepers))
            // 1 ms before the lease ends (polls every millisecond): not claimable.
            #expect(
                !(await Self.step(time, by: .milliseconds(29_999), settlingOn: sleepers, atMost: 1, quiet: store) {
                    runner.runs("echo") > 0
                }))
            #expect(takeovers() == 0)
            // At its end: taken over, counted once, run here.
            #expect(
                try await Self.step(time, by: .milliseconds(1), settlingOn: sleepers, atMost: 3, quiet: store) {
                    try await store.get(id: operation.id)?.state == .succeeded
                })
            #expect(runner.runs("echo") == 1)
            #expect(takeovers() == 1)
            #expect(try await store.get(id: operation.id)?.attempts == 2)
            #expect(try promtoolFindings(String(decoding: metrics.scrape(), as: UTF8.self)) == "")
            await instance.stop()
        }
    }

    /// A retry stored with no backoff, and a claim here that takes the operation back before the run has heard
    /// the write's answer (review 14 F2): the run, not ended yet, adopts that claim, and must hand it back once the
    /// answer comes. Dropped, the claim left the operation running with no run behind it until its lease expired
    /// (30 s), its attempt counted.
    @Test(
        "a retry stored with no backoff and claimed here before its write is answered runs again at once; nothing is left running",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func retryClaimedBeforeItsWriteIsAnswered(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            var settings = Self.outageSettings
            settings.retryBackoff = .zero
            settings.maxRetryBackoff = .zero
            let write = HeldStoreCall(firstStoredFailIn: store)
            let runner = ScriptedRunner()
            let instance = DispatcherInstance(
                store: store, settings: settings, runner: runner, clock: time, now: time.wallClock)
            let operation = try await instance.operations.submit(asyncRequest("flaky"))
            #expect(await eventually(within: .seconds(20)) { write.isHeld })
            // The claim loop's next round (the poll interval) takes the retry, queued at once, while the write's
            // answer is held.
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 10) {
                    store.claims(of: operation.id).count == 2
                })
            #expect(await time.settle(sleepers: Self.idle))
            write.release()
            #expect(
                try await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 10, quiet: store) {
                    try await store.get(id: operation.id)?.state == .succeeded
                }, "left running with no run behind it")
            #expect(runner.runs("flaky") == 2)
            #expect(try await store.get(id: operation.id)?.attempts == 2, "one attempt per run")
            await instance.stop()
        }
    }

    /// The attempt limit at its edge across an adoption (review 13 F3): the adopted claim made no backend call, so
    /// an operation whose every run fails retryably runs exactly `max_attempts` times, one of them before the outage,
    /// and not once more.
    @Test(
        "an adopted run that fails retryably stores its retry under the adopted claim, and the operation still gets all max_attempts runs, not one more",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases, [2, 3])
    func adoptedRetryKeepsTheAttemptLimit(kind: DispatchStoreKind, maxAttempts: Int) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            var settings = Self.outageSettings
            settings.maxAttempts = maxAttempts
            let (instance, runner, operation) = try await Self.runIntoOutage(
                store, time: time, settings: settings, pipeline: "down"
            ) { $0.isUnreachable = true }
            await Self.stepSeconds(31, of: time, settlingOn: Self.idle + 1)
            store.failsOutcomes = true
            store.isUnreachable = false
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle + 1, atMost: 10, quiet: store) {
                    store.claims(of: operation.id).count == 2
                })
            store.failsOutcomes = false
            let adopter = try #require(store.claims(of: operation.id).last).owner
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 5, quiet: store) {
                    store.failures.contains { $0.stored }
                })
            #expect(try await store.get(id: operation.id)?.state == .queued)
            #expect(runner.runs("down") == 1, "run again after the outage")
            let retry = try #require(store.failures.last)
            #expect(retry.stored && retry.owner == adopter && retry.retryAt != nil, "the retry under the adopted claim")
            #expect(try await store.get(id: operation.id)?.attempts == 1, "the adopted claim's attempt is taken back")

            // The retries, an hour apart: every one of max_attempts runs, then failed.
            #expect(
                try await Self.step(
                    time, by: .seconds(60), settlingOn: Self.idle, atMost: 60 * maxAttempts, quiet: store
                ) {
                    try await store.get(id: operation.id)?.state == .failed
                })
            #expect(runner.runs("down") == maxAttempts)
            let failed = try #require(try await store.get(id: operation.id))
            #expect(failed.attempts == maxAttempts)
            #expect(failed.error?.code == .unavailable)
            // And not once more.
            for _ in 0..<3 { #expect(await time.advance(by: Self.hour, settlingOn: Self.idle)) }
            #expect(runner.runs("down") == maxAttempts)
            await instance.stop()
        }
    }

    /// F2's race, made to happen (review 13 F2): the claim that takes back an operation whose outcome waits is
    /// committed, and the outcome's write under the old claim is refused and answered, before the claim returns.
    /// The run must wait for that claim and adopt it: ended at the refusal, it left the claim running the pipeline
    /// again (d7d28c5); before that, it left the operation running under the claim with no run behind it.
    @Test(
        "a refused outcome write answered while the claim that took its operation back is still under way: the run adopts the claim and stores its outcome; one run, nothing left running",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func refusedOutcomeWaitsForTheClaim(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let (instance, runner, operation) = try await Self.runIntoOutage(store, time: time) {
                $0.isUnreachable = true
            }
            await Self.stepSeconds(31, of: time, settlingOn: Self.idle + 1)
            // Committed: the outcome's next try reaches the store now, and is refused (another claim holds it).
            let claim = HeldStoreCall(claimOf: operation.id, in: store) { store.failsOutcomes = false }
            store.failsOutcomes = true
            store.isUnreachable = false
            // While the claim is held, its loop does not sleep on the clock.
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle + 1, atMost: 10, quiet: store) {
                    claim.isHeld
                })
            // The outcome's next try (at most a second away): refused, and decided on, before the claim returns.
            await time.advance(by: .seconds(1))
            let refused = await eventually(within: .seconds(20), interval: .milliseconds(2)) {
                await time.isSettled(sleepers: Self.idle - 1) && store.completions.contains { !$0.stored }
            }
            #expect(refused, "no refused write at \(time.elapsed): \(time.sleepsDescription)")
            claim.release()
            #expect(
                try await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 5, quiet: store) {
                    try await store.get(id: operation.id)?.state == .succeeded
                }, "left running with no run behind it")
            #expect(runner.runs("echo") == 1, "run again by the claim")
            let stored = try #require(try await store.get(id: operation.id))
            #expect(stored.leaseOwner == store.claims(of: operation.id).last?.owner, "stored under the adopted claim")
            #expect(stored.attempts == 1)
            await instance.stop()
        }
    }

    /// F4's race, made to happen (review 13 F4): a claim here takes back a running operation whose lease expired
    /// during an outage, and its answer is held while the run's next renewal, under the old claim, is refused. The
    /// renewal must not cut the run: the claim, once back, is adopted, and the pipeline is not run again.
    @Test(
        "a lease renewal refused while the claim that took the operation back is under way does not cut the run: the claim is adopted, the pipeline runs once",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func refusedRenewalWaitsForTheClaim(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let runner = ScriptedRunner()
            let instance = DispatcherInstance(
                store: store, settings: Self.outageSettings, runner: runner, clock: time, now: time.wallClock)
            let operation = try await instance.operations.submit(asyncRequest("hang"))
            #expect(await eventually(within: .seconds(20)) { runner.runs("hang") == 1 })
            #expect(await time.settle(sleepers: Self.idle + Self.perRun))
            // Renewals at 10, 20 and 30 s fail: the 30 s lease expires.
            store.isUnreachable = true
            await Self.stepSeconds(31, of: time, settlingOn: Self.idle)
            let claim = HeldStoreCall(claimOf: operation.id, in: store)
            store.isUnreachable = false
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 10, quiet: store) {
                    claim.isHeld
                })
            let first = try #require(store.claims(of: operation.id).first).owner
            // The renewal at 40 s, under the first claim: refused; the lease keeper decides and sleeps again.
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle - 1, atMost: 10) {
                    store.renewals.last.map { $0.owner == first && !$0.held } ?? false
                })
            #expect(await time.settle(sleepers: Self.idle - 1))
            claim.release()
            #expect(
                await eventually(within: .seconds(20), interval: .milliseconds(2)) {
                    await time.isSettled(sleepers: Self.idle) && store.callsInFlight == 0
                })
            #expect(runner.runs("hang") == 1, "the run was cut and the claim ran the pipeline again")
            // The next renewal (50 s) is under the adopted claim, and holds.
            let adopter = try #require(store.claims(of: operation.id).last).owner
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle, atMost: 10, quiet: store) {
                    store.renewals.last.map { $0.owner == adopter } ?? false
                })
            #expect(store.renewals.last?.held == true)
            #expect(runner.runs("hang") == 1)
            #expect(try await store.get(id: operation.id)?.leaseOwner == adopter)
            await instance.stop()
        }
    }

    /// A renewal refused while a claim of another operation is under way (review 14 F3): decided once that claim
    /// returns. Put off to the next renewal (a third of a lease), the run of an operation cancelled or taken over on
    /// another instance went on calling its backend meanwhile, and again at every round a claim was under way.
    @Test(
        "a lease renewal refused while an unrelated claim is under way cuts the run as soon as that claim returns, not a renewal later",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func refusedRenewalDecidedWhenTheClaimReturns(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let runner = ScriptedRunner()
            let instance = DispatcherInstance(
                store: store, settings: Self.outageSettings, runner: runner, clock: time, now: time.wallClock)
            let operation = try await instance.operations.submit(asyncRequest("hang"))
            #expect(await eventually(within: .seconds(20)) { runner.runs("hang") == 1 })
            #expect(await time.settle(sleepers: Self.idle + Self.perRun))
            // Cancelled by another instance sharing the store: this one's local stop is not told.
            _ = try await store.base.cancel(id: operation.id)
            // A claim of another operation, held while the renewal at 10 s is refused.
            let claim = HeldStoreCall(claimMatching: { $0.request.ref.pipeline == "echo" }, in: store)
            _ = try await instance.operations.submit(asyncRequest("echo"))
            #expect(await eventually(within: .seconds(20)) { claim.isHeld })
            #expect(
                await Self.step(time, by: .seconds(1), settlingOn: Self.idle - 1, atMost: 12) {
                    store.renewals.contains { !$0.held }
                })
            #expect(await time.settle(sleepers: Self.idle - 1))
            #expect(instance.operations.localRun(operation.id)?.leaseLost == false, "decided before the claim returned")
            claim.release()
            // No step of time: the claim's return decides.
            #expect(
                await eventually(within: .seconds(20), interval: .milliseconds(2)) {
                    instance.operations.localRun(operation.id) == nil
                }, "the run went on after the claim returned")
            #expect(runner.runs("echo") == 1)
            await instance.stop()
        }
    }

    /// An ended run removes only itself from the runs in progress (review 14 F5): a new run of the same operation
    /// that replaced it stays listed, so a local cancel still stops it and its lease is still renewed.
    @Test("an old run of an operation removes only itself from the runs in progress, not the new run that replaced it")
    func oldRunRemovesOnlyItself() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let instance = DispatcherInstance(
                store: store, settings: Self.outageSettings, runner: ScriptedRunner(), clock: time, now: time.wallClock)
            let old = LocalRun(id: "op", owner: "claim-1")
            let new = LocalRun(id: "op", owner: "claim-2")
            instance.operations.registerLocalRun(old)
            instance.operations.registerLocalRun(new)
            instance.operations.unregisterLocalRun(old)
            #expect(instance.operations.localRun("op") === new)
            #expect(instance.operations.localRunsInProgress.count == 1)
            instance.operations.unregisterLocalRun(new)
            #expect(instance.operations.localRun("op") == nil)
            await instance.stop()
        }
    }

    /// The claim round's pause at its edge: while an outcome waits for the store, each round first waits for it
    /// up to 2 s (unless woken), so an idle instance's rounds, at most a poll interval (5 s) apart otherwise, come
    /// at most 7 s apart: slowed by the pause, by no more than it.
    @Test(
        "while an outcome waits for the store, claim rounds pause for it up to 2 s each: an idle instance claims every poll interval plus 2 s, not more",
        .timeLimit(.minutes(1)))
    func claimPauseWhileAnOutcomeWaits() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let (instance, _, _) = try await Self.runIntoOutage(store, time: time) { $0.failsOutcomes = true }
            let start = time.wallClock()
            await Self.stepSeconds(30, of: time, settlingOn: Self.idle + 1)
            // One instant per claim round (a round may claim in several scopes).
            var rounds: [Date] = []
            for claim in store.claims where claim.now > start && rounds.last != claim.now { rounds.append(claim.now) }
            let gaps = zip(rounds, rounds.dropFirst()).map { $1.timeIntervalSince($0) }
            #expect(gaps.count >= 3, "rounds: \(rounds.count)")
            let poll = seconds(Self.outageSettings.pollInterval)
            // A round's wait can end early (a wake, the next look for unknown pipelines), so a gap may be shorter.
            // A wait's sleep starts in a child task, at an instant inside the step the test advanced through, so a
            // gap may be longer by a fraction of the step (up to 0.5 s seen): half a step is allowed for it; a
            // pause of 3 s makes the gap 8 s.
            let longest = gaps.max() ?? 0
            #expect(longest > poll && longest <= poll + 2.5, "seconds between claim rounds: \(gaps)")
            await instance.stop()
        }
    }

    @Test(
        "a stop while the store is unreachable does not wait out the outage: the wait between tries ends, the unstored outcome is given up",
        .timeLimit(.minutes(1)))
    func stopDuringAStoreOutage() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let (instance, _, operation) = try await Self.runIntoOutage(store, time: time) { $0.isUnreachable = true }
            let before = store.unreachableWrites
            // No time passes: a stop that waited for the outage (or a lease) to end would never return.
            await instance.stop()
            #expect(store.unreachableWrites == before, "no further try once the stop cut the wait")
            #expect(try await store.get(id: operation.id)?.state == .running, "left to its lease")
        }
    }

    /// Cluster review 59, L4: each outcome kept past the lease warned on its own (30 lines in a 73 s outage).
    @Test(
        "outcomes kept through an outage longer than the lease: one warning for them all, the rest held back",
        .timeLimit(.minutes(1)))
    func outageWarningOncePerInterval() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let runner = ScriptedRunner()
            let started = Atomic<Int>(0)
            // Both runs are under way when the store goes: the second to start takes it away.
            runner.onRun { _ in
                if started.add(1, ordering: .relaxed).newValue == 2 { store.isUnreachable = true }
            }
            let log = RecordedLog()
            let instance = DispatcherInstance(
                store: store, settings: Self.outageSettings, runner: runner, clock: time, now: time.wallClock,
                log: log)
            for _ in 0..<2 { _ = try await instance.operations.submit(asyncRequest("pair")) }
            #expect(await eventually(within: .seconds(20)) { store.unreachableWrites > 1 })
            await Self.stepSeconds(40, of: time, settlingOn: Self.idle + 2)
            let warned = log.lines.filter {
                $0.message.hasPrefix("the store has been unreachable for longer than the lease")
            }
            #expect(warned.count == 1, "\(warned)")
            store.isUnreachable = false
            await instance.stop()
        }
    }

    /// Cluster review 59, L1: a stop during a store outage logged "queued again" and counted `handed_back` for runs
    /// the store never took back (they ran again after their leases, an attempt spent).
    @Test(
        "a run the stop cuts is counted handed back only when the store took it back; during an outage, not handed back",
        .timeLimit(.minutes(1)), arguments: [false, true])
    func cutRunHandedBackOnlyWhenStored(storeDown: Bool) async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let runner = ScriptedRunner()
            runner.onRun { _ in if storeDown { store.isUnreachable = true } }
            let instance = DispatcherInstance(
                store: store, settings: Self.outageSettings, runner: runner, clock: time, now: time.wallClock)
            let operation = try await instance.operations.submit(asyncRequest("hang"))
            #expect(await eventually(within: .seconds(20)) { runner.runs("hang") == 1 })
            await instance.stop()
            #expect(instance.dispatcher.runsHandedBackAtStop == (storeDown ? 0 : 1))
            #expect(instance.dispatcher.runsNotHandedBackAtStop == (storeDown ? 1 : 0))
            store.isUnreachable = false
            // Handed back: queued again; not: still running under its lease, which another claim takes once expired.
            #expect(try await store.get(id: operation.id)?.state == (storeDown ? .running : .queued))
        }
    }

    @Test(
        "a lease that is not renewed expires, and another dispatcher claims the operation then, not before",
        .timeLimit(.minutes(1)))
    func expiredLeaseIsReclaimed() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            // The first instance stalls with the operation (a hung host, a lost network): its waits sleep on a
            // clock nobody moves, so it never renews. It shares the wall clock, as instances share the store.
            let stalled = VirtualTime()
            let first = DispatcherInstance(
                store: store, settings: Self.settings(), runner: ScriptedRunner(hangs: true), clock: stalled,
                now: time.wallClock)
            let operation = try await first.operations.submit(asyncRequest("work"))
            #expect(await eventually(within: .seconds(20)) { store.claims(of: operation.id).count == 1 })
            let expiry = try #require(try await store.get(id: operation.id)?.leaseExpiresAt)

            let runner = ScriptedRunner()
            let second = DispatcherInstance(
                store: store, settings: Self.settings(), runner: runner, clock: time, now: time.wallClock)
            #expect(await time.settle(sleepers: Self.idle))
            for _ in 1...11 { #expect(await time.advance(by: Self.poll, settlingOn: Self.idle)) }
            #expect(store.claims(of: operation.id).count == 1, "claimed again before the lease expired")

            #expect(
                try await Self.step(time, by: Self.poll, settlingOn: Self.idle, atMost: 3) {
                    try await store.get(id: operation.id)?.state == .succeeded
                })
            let claims = store.claims(of: operation.id)
            #expect(claims.count == 2)
            if claims.count == 2 {
                #expect(claims[1].owner.hasPrefix("\(second.dispatcher.instanceID)/"))
                // In the store's milliseconds (it rounds to the nearest): the poll that reclaims it is due at the
                // very instant the lease expires.
                #expect(claims[1].now.storeMilliseconds >= expiry.storeMilliseconds)
            }
            #expect(runner.runs("work") == 1)
            // The reclaim counts as the second attempt.
            #expect(try await store.get(id: operation.id)?.attempts == 2)
            await first.stop()
            await second.stop()
        }
    }

    @Test(
        "a running operation's lease is renewed every third of it, so no other dispatcher claims it for hours",
        .timeLimit(.minutes(1)))
    func renewalKeepsTheLease() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let running = DispatcherInstance(
                store: store, settings: Self.settings(), runner: ScriptedRunner(hangs: true), clock: time,
                now: time.wallClock)
            let operation = try await running.operations.submit(asyncRequest("work"))
            #expect(await eventually(within: .seconds(20)) { store.claims(of: operation.id).count == 1 })
            // A second instance polling the same store all along: the witness that the lease holds.
            let other = DispatcherInstance(
                store: store, settings: Self.settings(), runner: ScriptedRunner(), clock: time, now: time.wallClock)
            let sleepers = 2 * Self.idle + Self.perRun
            #expect(await time.settle(sleepers: sleepers))

            // Three hours: three lease durations.
            for _ in 1...36 { #expect(await time.advance(by: Self.poll, settlingOn: sleepers)) }
            let renewals = store.renewals
            #expect(renewals.count == 9, "not renewed every 20 minutes")
            #expect(renewals.allSatisfy { $0.held })
            #expect(store.claims(of: operation.id).count == 1, "another dispatcher took a renewed lease")
            let stored = try #require(try await store.get(id: operation.id))
            #expect(stored.state == .running)
            #expect(stored.attempts == 1)
            #expect(stored.leaseOwner == store.claims(of: operation.id).first?.owner)
            #expect(try #require(stored.leaseExpiresAt) > time.wallClock())
            await running.stop()
            await other.stop()
        }
    }

    @Test(
        "an attempt is cut at its pool's request timeout on the clock (not a second before), then retried after its back-off",
        .timeLimit(.minutes(1)))
    func attemptTimeout() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let runner = ScriptedRunner(hangs: true)
            let instance = DispatcherInstance(
                store: store, settings: Self.settings(maxAttempts: 2), runner: runner, clock: time,
                now: time.wallClock, requestTimeout: .minutes(30))
            let operation = try await instance.operations.submit(asyncRequest("work"))
            #expect(await eventually(within: .seconds(20)) { runner.runs("work") == 1 })
            let running = Self.idle + Self.perRun
            #expect(await time.settle(sleepers: running))

            for _ in 1...5 { #expect(await time.advance(by: Self.poll, settlingOn: running)) }
            #expect(await time.advance(by: Self.poll - .seconds(1), settlingOn: running))
            #expect(store.failures.isEmpty, "cut before the request timeout")

            await time.advance(by: .seconds(1))
            #expect(await eventually(within: .seconds(20)) { store.failures.count == 1 })
            let first = try #require(try await store.get(id: operation.id))
            #expect(first.state == .queued)
            #expect(first.error?.code == .deadlineExceeded)
            #expect(first.error?.message.contains("1800s") == true, "\(String(describing: first.error))")
            let retryAt = try #require(store.failures.first?.retryAt)

            // The second attempt comes after the hour's back-off; cut again, it is the last one.
            #expect(
                await Self.step(time, by: Self.poll, settlingOn: Self.idle, atMost: 15) { runner.runs("work") == 2 })
            #expect(try #require(store.claims(of: operation.id).last).now >= retryAt)
            #expect(
                try await Self.step(time, by: Self.poll, settlingOn: running, atMost: 8) {
                    try await store.get(id: operation.id)?.state == .failed
                })
            #expect(try await store.get(id: operation.id)?.error?.code == .deadlineExceeded)
            await instance.stop()
        }
    }
}

extension Duration {
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
