import Backends
import GatewayConfig
import GatewayTestSupport
import NIOCore
import NIOPosix
import Routing
import Synchronization
import Testing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The one description cache every surface reads through (`TriggerDispatcher.pipelineDescription`): its TTL on
/// a clock the test moves, failures not kept, a new generation (reload) starting empty.
@Suite("Pipeline description cache")
struct PipelineDescriptionCacheTests {
    /// A clock the test moves by hand.
    final class ManualClock: Sendable {
        private let base = ContinuousClock.now
        private let offset = Mutex(Duration.zero)
        private let readCount = Atomic<Int>(0)
        func advance(by amount: Duration) { offset.withLock { $0 += amount } }
        var now: ContinuousClock.Instant {
            readCount.add(1, ordering: .sequentiallyConsistent)
            return base.advanced(by: offset.withLock { $0 })
        }
        /// How often `now` was read: each call of the cache reads it first, so a test can wait until its callers
        /// have all arrived.
        var reads: Int { readCount.load(ordering: .sequentiallyConsistent) }
        func waitForReads(_ count: Int) async {
            while reads < count { await Task.yield() }
        }
    }

    /// Describes every pipeline (one input, `prompt`) once `gate` opens, counting every Describe.
    final class GatedDescriber: TriggerRunner, PipelineDescribing {
        let describes = Atomic<Int>(0)
        let gate = TestGate()
        func run(_ request: TriggerRequest) async throws -> TriggerResult { TriggerResult(outputs: []) }
        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish() }
        }
        func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
            describes.add(1, ordering: .sequentiallyConsistent)
            await gate.pass()
            return PipelineDescription(inputs: [.init(name: "prompt", dataType: "string")])
        }
        var count: Int { describes.load(ordering: .sequentiallyConsistent) }
        /// Waits until the ask has reached the runner (the cache reads its clock just before).
        func waitForDescribes(_ count: Int) async {
            while self.count < count { await Task.yield() }
        }
    }

    /// Describes `known` (one input, `prompt`), counting every Describe; anything else is `.notFound`.
    final class CountingRunner: TriggerRunner, PipelineDescribing {
        let describes = Atomic<Int>(0)
        let known: Set<String>

        init(known: Set<String>) { self.known = known }

        func run(_ request: TriggerRequest) async throws -> TriggerResult { TriggerResult(outputs: []) }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish() }
        }

        func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
            describes.add(1, ordering: .sequentiallyConsistent)
            guard known.contains(ref.pipeline) else { throw GatewayError(.notFound, "no \(ref.pipeline)") }
            return PipelineDescription(inputs: [.init(name: "prompt", dataType: "string")])
        }

        var count: Int { describes.load(ordering: .sequentiallyConsistent) }
    }

    static func dispatcher(_ runner: CountingRunner, clock: ManualClock) -> TriggerDispatcher {
        let pool = BackendPool(
            configuration: BackendPoolConfiguration(name: "p", transport: .inProcess), transport: runner)
        return TriggerDispatcher(
            routes: RouteTable(routes: [RouteConfiguration(namespace: "demo", pool: "p")]),
            pools: ["p": pool],
            descriptions: PipelineDescriptionCache(ttl: .seconds(5), now: { clock.now })
        )
    }

    @Test("a description is asked once within the TTL: kept at 5 s − 1 ns, asked again at 5 s")
    func ttlEdge() async throws {
        let clock = ManualClock()
        let runner = CountingRunner(known: ["echo"])
        let dispatcher = Self.dispatcher(runner, clock: clock)
        let ref = PipelineRef(namespace: "demo", pipeline: "echo")
        let first = try await dispatcher.pipelineDescription(ref)
        #expect(first.inputs.map(\.name) == ["prompt"])
        _ = try await dispatcher.pipelineDescription(ref)
        #expect(runner.count == 1)
        clock.advance(by: .seconds(5) - .nanoseconds(1))
        _ = try await dispatcher.pipelineDescription(ref)
        #expect(runner.count == 1, "still fresh just inside the TTL")
        clock.advance(by: .nanoseconds(1))
        _ = try await dispatcher.pipelineDescription(ref)
        #expect(runner.count == 2, "stale at the TTL: asked again")
        _ = try await dispatcher.pipelineDescription(ref)
        #expect(runner.count == 2, "the new answer is kept from when it was asked")
        // Another pipeline is its own entry.
        _ = try await dispatcher.pipelineDescription(PipelineRef(namespace: "demo", pipeline: "echo", release: "v1"))
        #expect(runner.count == 3)
    }

    @Test("failures are not kept: an unknown pipeline is asked each time")
    func failuresNotKept() async throws {
        let clock = ManualClock()
        let runner = CountingRunner(known: [])
        let dispatcher = Self.dispatcher(runner, clock: clock)
        let ref = PipelineRef(namespace: "demo", pipeline: "nope")
        for expected in 1...2 {
            await #expect(throws: GatewayError.self) { try await dispatcher.pipelineDescription(ref) }
            #expect(runner.count == expected)
        }
    }

    /// RFC 5861 §4's stale-if-error: a runner that cannot be asked gets the description it last gave (however old),
    /// so a client acting on it (craft-ai-sdk uploads the inputs it says are files) is not told "no inputs" during
    /// an outage; its `.notFound` answer is never masked, and drops the kept one. With nothing kept, the error stands.
    @Test("a runner that cannot be asked: the last description, however old; its NOT_FOUND stands and drops it")
    func staleIfError() async throws {
        let clock = ManualClock()
        let cache = PipelineDescriptionCache(ttl: .seconds(5), now: { clock.now })
        let ref = PipelineRef(namespace: "n", pipeline: "p")
        let described = PipelineDescription(inputs: [.init(name: "file", dataType: "file")])
        let down = GatewayError(.unavailable, "runner down")
        await #expect(throws: GatewayError.self) { try await cache.description(of: ref) { throw down } }
        #expect(try await cache.description(of: ref) { described }.inputs.map(\.dataType) == ["file"])
        clock.advance(by: .seconds(3600))
        let stale = try await cache.description(of: ref) { throw down }
        #expect(stale.inputs.map(\.name) == ["file"], "a stale description on a transport error")
        #expect(try await cache.description(of: ref) { throw CancellationError() } == stale, "cut short: as down")
        let gone = await #expect(throws: GatewayError.self) {
            try await cache.description(of: ref) { throw GatewayError(.notFound, "no p") }
        }
        #expect(gone?.code == .notFound)
        let after = await #expect(throws: GatewayError.self) { try await cache.description(of: ref) { throw down } }
        #expect(after?.code == .unavailable, "the NOT_FOUND dropped the kept description")
    }

    /// SDK review 56, M3: an async accept waited for a silent runner's Describe for the pool's request_timeout,
    /// every accept. The cache says which pipelines' runner did not answer lately, so an accept does not ask again.
    @Test(
        "a runner that did not answer is recentlyUnanswered for the TTL (not at 5 s), stale description or not; any answer clears it"
    )
    func recentlyUnanswered() async throws {
        let clock = ManualClock()
        let cache = PipelineDescriptionCache(ttl: .seconds(5), now: { clock.now })
        let ref = PipelineRef(namespace: "n", pipeline: "p")
        let down = GatewayError(.deadlineExceeded, "runner silent")
        #expect(!cache.recentlyUnanswered(ref))
        await #expect(throws: GatewayError.self) { try await cache.description(of: ref) { throw down } }
        #expect(cache.recentlyUnanswered(ref))
        #expect(!cache.recentlyUnanswered(PipelineRef(namespace: "n", pipeline: "other")))
        clock.advance(by: .seconds(5) - .nanoseconds(1))
        #expect(cache.recentlyUnanswered(ref))
        clock.advance(by: .nanoseconds(1))
        #expect(!cache.recentlyUnanswered(ref), "asked again from the TTL on")

        let described = PipelineDescription(inputs: [.init(name: "x", dataType: "string")])
        await #expect(throws: GatewayError.self) { try await cache.description(of: ref) { throw down } }
        _ = try await cache.description(of: ref) { described }
        #expect(!cache.recentlyUnanswered(ref), "an answer clears it")
        clock.advance(by: .seconds(5))
        #expect(try await cache.description(of: ref) { throw down } == described)
        #expect(cache.recentlyUnanswered(ref), "a stale description served on error: still unanswered")
        await #expect(throws: GatewayError.self) {
            try await cache.description(of: ref) { throw GatewayError(.notFound, "no p") }
        }
        #expect(!cache.recentlyUnanswered(ref), "NOT_FOUND is an answer")
        // An ask is no caller's: a CancellationError can only come from its transport, and is a failure like
        // another (a caller's own cancellation: `cancelledCallerLeavesTheAsk`).
        let cut = await #expect(throws: GatewayError.self) {
            try await cache.description(of: ref) { throw CancellationError() }
        }
        #expect(cut?.code == .unavailable)
        #expect(cache.recentlyUnanswered(ref))

        // Counted from when the failure came, not from when the ask began (second diff review 56, M1: a bound as
        // long as the TTL left no window at all).
        let slow = PipelineRef(namespace: "n", pipeline: "slow")
        await #expect(throws: GatewayError.self) {
            try await cache.description(of: slow) {
                clock.advance(by: .seconds(6))
                throw down
            }
        }
        #expect(cache.recentlyUnanswered(slow))
    }

    /// The accept's bound over a real socket: a runner that takes the connection and never answers.
    @Test(
        "an async accept's Describe waits the pool's connect_timeout, not its request_timeout",
        .timeLimit(.minutes(1)))
    func asyncAcceptBoundedBySilentRunner() async throws {
        let silent = try SilentListener()
        let configuration = BackendPoolConfiguration(
            name: "silent", transport: .http, endpoints: [.init(host: "127.0.0.1", port: silent.port)],
            connectTimeout: .milliseconds(200), requestTimeout: .seconds(60))
        let transport = HTTPBackendTransport(
            configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, codecLimits: .defaults)
        let pool = BackendPool(configuration: configuration, transport: transport)
        let dispatcher = TriggerDispatcher(
            routes: RouteTable(routes: [RouteConfiguration(namespace: "demo", pool: "silent")]),
            pools: ["silent": pool])
        let ref = PipelineRef(namespace: "demo", pipeline: "anything")
        let start = ContinuousClock.now
        try await dispatcher.checkAsyncTarget(ref)
        let waited = ContinuousClock.now - start
        // Not before the connect_timeout (the bound), and far from the 60 s request_timeout the accept waited before.
        #expect(waited >= .milliseconds(190) && waited < .seconds(10), "\(waited)")
        withExtendedLifetime(silent) {}
    }

    /// Describes nothing: every Describe fails as a runner that is down does, counted.
    final class DownRunner: TriggerRunner, PipelineDescribing {
        let describes = Atomic<Int>(0)
        func run(_ request: TriggerRequest) async throws -> TriggerResult { TriggerResult(outputs: []) }
        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish() }
        }
        func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
            describes.add(1, ordering: .sequentiallyConsistent)
            throw GatewayError(.deadlineExceeded, "no answer")
        }
    }

    @Test("after a runner did not answer, async accepts do not ask it again until the TTL; other reads do")
    func asyncAcceptDoesNotAskAgain() async throws {
        let clock = ManualClock()
        let runner = DownRunner()
        let pool = BackendPool(
            configuration: BackendPoolConfiguration(name: "p", transport: .inProcess), transport: runner)
        let dispatcher = TriggerDispatcher(
            routes: RouteTable(routes: [RouteConfiguration(namespace: "demo", pool: "p")]),
            pools: ["p": pool],
            descriptions: PipelineDescriptionCache(ttl: .seconds(5), now: { clock.now }))
        func asked() -> Int { runner.describes.load(ordering: .sequentiallyConsistent) }
        let ref = PipelineRef(namespace: "demo", pipeline: "p")
        try await dispatcher.checkAsyncTarget(ref)
        try await dispatcher.checkAsyncTarget(ref)
        #expect(asked() == 1, "stored without asking again")
        await #expect(throws: GatewayError.self) { try await dispatcher.pipelineDescription(ref) }
        #expect(asked() == 2, "a surface's read asks")
        clock.advance(by: .seconds(5))
        try await dispatcher.checkAsyncTarget(ref)
        #expect(asked() == 3, "asked again from the TTL on")
    }

    /// Single-flight: five first calls at once cost the runner one Describe (before, each asked).
    @Test(
        "callers that arrive while an ask is in flight wait for it: five callers, one Describe", .timeLimit(.minutes(1))
    )
    func concurrentCallersShareOneAsk() async throws {
        let clock = ManualClock()
        let cache = PipelineDescriptionCache(ttl: .seconds(5), now: { clock.now })
        let runner = GatedDescriber()
        let ref = PipelineRef(namespace: "n", pipeline: "p")
        try await withThrowingTaskGroup(of: PipelineDescription.self) { group in
            for _ in 0..<5 {
                group.addTask { try await cache.description(of: ref) { try await runner.describePipeline(ref) } }
            }
            // Each caller reads the clock once on arrival, the ask once as it starts: all five are waiting.
            await clock.waitForReads(6)
            await runner.waitForDescribes(1)
            #expect(runner.count == 1)
            runner.gate.open()
            for try await description in group { #expect(description.inputs.map(\.name) == ["prompt"]) }
        }
        #expect(runner.count == 1)
        _ = try await cache.description(of: ref) { try await runner.describePipeline(ref) }
        #expect(runner.count == 1, "kept")
    }

    /// A bounded wait (an async accept's) ends at its bound; the ask it joined goes on, and its answer is kept.
    @Test(
        "a bounded wait ends at its bound as deadlineExceeded and marks the runner unanswered; the ask's later answer is kept and clears it",
        .timeLimit(.minutes(1)))
    func boundedWaitLeavesTheAsk() async throws {
        let clock = ManualClock()
        let bound = TestGate()
        let asked = Mutex<[Duration]>([])
        let cache = PipelineDescriptionCache(
            ttl: .seconds(5), now: { clock.now },
            sleep: { duration in
                asked.withLock { $0.append(duration) }
                await bound.pass()
            })
        let runner = GatedDescriber()
        let ref = PipelineRef(namespace: "n", pipeline: "p")
        let waiting = Task {
            try await cache.description(of: ref, waitingAtMost: .seconds(2)) { try await runner.describePipeline(ref) }
        }
        await clock.waitForReads(2)
        #expect(!cache.recentlyUnanswered(ref))
        bound.open()
        let ended = await #expect(throws: GatewayError.self) { try await waiting.value }
        #expect(ended?.code == .deadlineExceeded)
        #expect(asked.withLock { $0 } == [.seconds(2)])
        #expect(cache.recentlyUnanswered(ref))
        runner.gate.open()
        // Unbounded: joins the ask still in flight, or reads what it kept.
        #expect(try await cache.description(of: ref) { try await runner.describePipeline(ref) }.inputs.count == 1)
        #expect(runner.count == 1)
        #expect(!cache.recentlyUnanswered(ref), "the answer cleared it")
    }

    @Test("a cancelled caller stops waiting at once; the ask goes on for the others", .timeLimit(.minutes(1)))
    func cancelledCallerLeavesTheAsk() async throws {
        let clock = ManualClock()
        let cache = PipelineDescriptionCache(ttl: .seconds(5), now: { clock.now })
        let runner = GatedDescriber()
        let ref = PipelineRef(namespace: "n", pipeline: "p")
        let first = Task { try await cache.description(of: ref) { try await runner.describePipeline(ref) } }
        let second = Task { try await cache.description(of: ref) { try await runner.describePipeline(ref) } }
        await clock.waitForReads(3)
        first.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }
        #expect(!cache.recentlyUnanswered(ref), "a caller's cancellation says nothing about the runner")
        runner.gate.open()
        #expect(try await second.value.inputs.count == 1)
        #expect(runner.count == 1)
    }

    /// A `*` route's id space in front of a runner that hangs: the asks in flight are capped, each able to hold a
    /// connection for `request_timeout` (diff review 57, M1).
    @Test(
        "past maximumAsks pipelines asked about at once, a bounded caller does not wait and does not ask; an unbounded one asks on its own",
        .timeLimit(.minutes(1)))
    func asksCapped() async throws {
        let clock = ManualClock()
        let cache = PipelineDescriptionCache(
            ttl: .seconds(5), now: { clock.now }, sleep: { _ in await TestGate().pass() })
        let runner = GatedDescriber()
        let cap = PipelineDescriptionCache.maximumAsks
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<cap {
                let ref = PipelineRef(namespace: "n", pipeline: "p\(i)")
                group.addTask { _ = try await cache.description(of: ref) { try await runner.describePipeline(ref) } }
            }
            await runner.waitForDescribes(cap)
            let extra = PipelineRef(namespace: "n", pipeline: "extra")
            // Would wait forever on its bound (the sleep never ends): it returns at once instead, unasked.
            let bounded = await #expect(throws: GatewayError.self) {
                try await cache.description(of: extra, waitingAtMost: .seconds(2)) {
                    try await runner.describePipeline(extra)
                }
            }
            #expect(bounded?.code == .deadlineExceeded)
            #expect(runner.count == cap)
            #expect(!cache.recentlyUnanswered(extra), "not asked: says nothing about the runner")
            let unbounded = Task { try await cache.description(of: extra) { try await runner.describePipeline(extra) } }
            await runner.waitForDescribes(cap + 1)
            runner.gate.open()
            #expect(try await unbounded.value.inputs.count == 1)
            try await group.waitForAll()
        }
        #expect(runner.count == cap + 1)
        // Below the cap again: shared asks as before.
        let again = PipelineRef(namespace: "n", pipeline: "again")
        _ = try await cache.description(of: again) { try await runner.describePipeline(again) }
        #expect(runner.count == cap + 2)
    }

    /// The accepts' side: a burst of accepts of a `*` route waits for one Describe, each for at most its bound.
    @Test(
        "concurrent async accepts share one Describe and each waits at most the bound; later accepts read its answer",
        .timeLimit(.minutes(1)))
    func acceptsShareOneAsk() async throws {
        let clock = ManualClock()
        let bound = TestGate()
        let runner = GatedDescriber()
        let pool = BackendPool(
            configuration: BackendPoolConfiguration(
                name: "p", transport: .inProcess, connectTimeout: .milliseconds(1500)),
            transport: runner)
        let bounds = Mutex<[Duration]>([])
        let dispatcher = TriggerDispatcher(
            routes: RouteTable(routes: [RouteConfiguration(namespace: "demo", pool: "p")]),
            pools: ["p": pool],
            descriptions: PipelineDescriptionCache(
                ttl: .seconds(5), now: { clock.now },
                sleep: { duration in
                    bounds.withLock { $0.append(duration) }
                    await bound.pass()
                }))
        let ref = PipelineRef(namespace: "demo", pipeline: "echo")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { try await dispatcher.checkAsyncTarget(ref) } }
            await clock.waitForReads(4)
            await runner.waitForDescribes(1)
            #expect(runner.count == 1)
            bound.open()
            try await group.waitForAll()
        }
        #expect(bounds.withLock { $0 } == Array(repeating: .milliseconds(1500), count: 3), "the pool's connect_timeout")
        // Unanswered within the bound: the next accept neither asks nor waits.
        try await dispatcher.checkAsyncTarget(ref)
        #expect(bounds.withLock { $0.count } == 3)
        runner.gate.open()
        #expect(try await dispatcher.pipelineDescription(ref).inputs.count == 1)
        #expect(runner.count == 1, "the accepts' one ask answered, and was kept")
    }

    /// UNIMPLEMENTED (a runner without `Describe`, or a 404/405/501 that names no pipeline) is the empty
    /// description, kept as an answer; but a proxy in front of a runner that is down answers so too, so it never
    /// replaces a description the runner gave (review of the fifty-fourth session's diff).
    @Test("UNIMPLEMENTED: the empty description, kept; never over a description the runner gave")
    func unimplementedKeepsAGivenDescription() async throws {
        let clock = ManualClock()
        let cache = PipelineDescriptionCache(ttl: .seconds(5), now: { clock.now })
        let asked = Atomic<Int>(0)
        let old = PipelineRef(namespace: "n", pipeline: "old")
        let unimplemented = GatewayError(.unimplemented, "no Describe")
        for _ in 0..<2 {
            let empty = try await cache.description(of: old) {
                asked.add(1, ordering: .relaxed)
                throw unimplemented
            }
            #expect(empty == PipelineDescription())
        }
        #expect(asked.load(ordering: .relaxed) == 1, "the empty answer is kept for the TTL")
        let ref = PipelineRef(namespace: "n", pipeline: "p")
        let described = PipelineDescription(inputs: [.init(name: "file", dataType: "file")])
        _ = try await cache.description(of: ref) { described }
        clock.advance(by: .seconds(5))
        #expect(try await cache.description(of: ref) { throw unimplemented } == described)
    }

    @Test("a new generation (a reload builds a new dispatcher) starts empty")
    func reloadStartsEmpty() async throws {
        let clock = ManualClock()
        let runner = CountingRunner(known: ["echo"])
        let ref = PipelineRef(namespace: "demo", pipeline: "echo")
        _ = try await Self.dispatcher(runner, clock: clock).pipelineDescription(ref)
        _ = try await Self.dispatcher(runner, clock: clock).pipelineDescription(ref)
        #expect(runner.count == 2)
    }

    @Test("reaching the capacity empties the cache instead of growing")
    func capacity() async throws {
        let cache = PipelineDescriptionCache()
        let asked = Atomic<Int>(0)
        for i in 0...PipelineDescriptionCache.capacity {
            _ = try await cache.description(of: PipelineRef(namespace: "n", pipeline: "p\(i)")) {
                asked.add(1, ordering: .relaxed)
                return PipelineDescription()
            }
        }
        // p0 was dropped when the 1025th entry came in; p1024 is kept.
        _ = try await cache.description(of: PipelineRef(namespace: "n", pipeline: "p0")) {
            asked.add(1, ordering: .relaxed)
            return PipelineDescription()
        }
        _ = try await cache.description(of: PipelineRef(namespace: "n", pipeline: "p1024")) {
            asked.add(1, ordering: .relaxed)
            return PipelineDescription()
        }
        #expect(asked.load(ordering: .relaxed) == PipelineDescriptionCache.capacity + 2)
    }
}
