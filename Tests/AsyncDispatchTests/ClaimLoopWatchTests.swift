@testable import AsyncDispatch
import FoundationEssentials
import GatewayConfig
import GatewayTestSupport
import Observability
import OperationStore
import Synchronization
import Testing

/// Review 26 H1: a dispatcher whose claim loop stopped inside a store call that never returned looked healthy to
/// everything an operator has (ready, accepting). The claim loop's steps now move
/// `trigger_gateway_async_dispatcher_last_claim_timestamp_seconds`, and a watch declares the loop stalled when it has
/// gone `bound` without one (async readiness follows, `HealthRegistry.dispatcherStalled`), on the dispatcher's clock.
@Suite("The async dispatcher's claim-loop watch: the last-claim gauge and the stall, in virtual time")
struct ClaimLoopWatchTests {
    static let poll = Duration.seconds(5)
    static let bound = Duration.seconds(30)
    static let gaugeName = "trigger_gateway_async_dispatcher_last_claim_timestamp_seconds"

    /// The idle dispatcher's sleepers (`DispatcherTimeTests.idle`), its queue count's and the watch's.
    static let sleepers = DispatcherTimeTests.idle + 2

    @Test(
        "a claim that never returns stops the last-claim gauge; the stall is declared at the bound exactly, not 1 ms before; the claim's return ends it",
        .timeLimit(.minutes(1)), arguments: DispatchStoreKind.allCases)
    func hungClaim(kind: DispatchStoreKind) async throws {
        let time = VirtualTime()
        try await withRecordingStore(kind, now: time.wallClock) { store in
            let metrics = GatewayMetrics()
            let gauge = { DispatcherTimeTests.sample(metrics, Self.gaugeName) }
            #expect(gauge() == nil, "the gauge is there before any dispatcher started")
            let reports = Mutex<[Duration?]>([])
            let hang = HangingClaims()
            store.onClaim { _ in await hang.holdIfArmed() }
            let instance = DispatcherInstance(
                store: store,
                settings: StoreConfiguration(lease: .seconds(3600), workers: 4, pollInterval: Self.poll),
                runner: ScriptedRunner(), clock: time, now: time.wallClock, metrics: metrics,
                claimWatch: ClaimLoopWatch(bound: Self.bound) { stalledFor in
                    reports.withLock { $0.append(stalledFor) }
                })
            #expect(await time.settle(sleepers: Self.sleepers))
            // An idle loop steps every poll interval (its look for pipelines queued elsewhere): the gauge moves.
            for _ in 0..<3 {
                #expect(await time.advance(by: Self.poll, settlingOn: Self.sleepers))
                #expect(gauge() == time.wallClock().timeIntervalSince1970)
            }
            let lastStep = try #require(gauge())

            // The next poll's claim never returns: the claim loop no longer sleeps, the rest does.
            hang.arm()
            #expect(await time.advance(by: Self.poll, settlingOn: Self.sleepers - 1))
            #expect(await eventually(within: .seconds(20)) { hang.held == 1 })
            #expect(
                await time.advance(by: Self.bound - Self.poll - .milliseconds(1), settlingOn: Self.sleepers - 1))
            #expect(reports.withLock { $0 }.isEmpty, "declared stalled before the bound")
            #expect(gauge() == lastStep)
            #expect(await time.advance(by: .milliseconds(1), settlingOn: Self.sleepers - 1))
            #expect(reports.withLock { $0 } == [Self.bound])
            #expect(gauge() == lastStep, "the gauge moved while the claim hung")
            // Still stalled a bound later: reported once.
            #expect(await time.advance(by: Self.bound, settlingOn: Self.sleepers - 1))
            #expect(reports.withLock { $0 } == [Self.bound])

            // The claim returns: its step ends the stall at once, and the gauge moves again.
            hang.release()
            #expect(await time.settle(sleepers: Self.sleepers))
            #expect(reports.withLock { $0 } == [Self.bound, nil])
            #expect(gauge() == time.wallClock().timeIntervalSince1970)
            // Timed from that step again: a loop that steps every poll interval is never declared stalled.
            for _ in 0..<8 { #expect(await time.advance(by: Self.poll, settlingOn: Self.sleepers)) }
            #expect(reports.withLock { $0 } == [Self.bound, nil])
            await instance.stop()
        }
    }

    @Test("the stall bound: a poll interval, the wait for outcomes (at most 2 s), one store call's limit")
    func stallBound() {
        #expect(
            AsyncDispatcher.stallBound(pollInterval: .milliseconds(500), storeCallLimit: .seconds(20))
                == .seconds(21))
        #expect(AsyncDispatcher.stallBound(pollInterval: .seconds(5), storeCallLimit: .seconds(10)) == .seconds(17))
    }
}

/// Holds every claim made while armed, committed and before it is answered, until ``release()``: a store call
/// that never returns, as PostgresNIO's did (review 26 H1). Holds on no clock.
final class HangingClaims: Sendable {
    private let state = Mutex<(armed: Bool, held: Int, waiters: [CheckedContinuation<Void, Never>])>((false, 0, []))

    func arm() { state.withLock { $0.armed = true } }

    /// Claims held so far.
    var held: Int { state.withLock { $0.held } }

    func holdIfArmed() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let hold = state.withLock { state in
                guard state.armed else { return false }
                state.held += 1
                state.waiters.append(waiter)
                return true
            }
            if !hold { waiter.resume() }
        }
    }

    /// Disarms, and lets the held claims return.
    func release() {
        let waiters = state.withLock { state in
            state.armed = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
