package import NIOCore
package import Observability
package import Synchronization
import TriggerModel

/// Passive outlier detection (Envoy's `outlier_detection`, nghttpx's connect blocker): an endpoint whose calls
/// fail as transport failures several times in a row is ejected from picking for a while.
package struct OutlierDetection: Sendable, Equatable {
    /// Transport failures in a row (connect refused or timed out, reset, lost connection, a 5xx that is not the
    /// pipeline's answer) that eject an endpoint; 0 turns detection off.
    package var consecutiveFailures: Int
    /// The first ejection's length; each further ejection without a success in between doubles it.
    package var baseEjection: TimeAmount
    package var maxEjection: TimeAmount
    /// At most this share of a pool's endpoints is ejected at once (at least one, as in Envoy), and never all of
    /// a pool of several: with every endpoint down, calls keep failing fast on their own rather than on a pool
    /// emptied by ejection. A pool's only endpoint is ejected like any other (review 18 F2: its gauge said
    /// "available" while its runner was down): ejection changes no pick there (`pick` has no other endpoint to
    /// choose, Envoy's panic mode), only what /metrics and the async claims (`hasAvailableEndpoint`) see.
    package var maxEjectedPercent: Int

    package init(consecutiveFailures: Int, baseEjection: TimeAmount, maxEjection: TimeAmount, maxEjectedPercent: Int) {
        self.consecutiveFailures = consecutiveFailures
        self.baseEjection = baseEjection
        self.maxEjection = maxEjection
        self.maxEjectedPercent = maxEjectedPercent
    }

    /// On by default, as in Envoy and nghttpx: 3 failures, 1 s doubling up to 5 s (a returned endpoint gets
    /// traffic again within 5 s with no health check configured), at most half of the pool.
    package static var defaults: OutlierDetection {
        OutlierDetection(
            consecutiveFailures: 3,
            baseEjection: .seconds(1),
            maxEjection: .seconds(5),
            maxEjectedPercent: 50
        )
    }

    /// How long the ejection after `previous` ejections in a row lasts.
    func ejection(after previous: Int) -> TimeAmount {
        var length = baseEjection
        for _ in 0..<min(previous, 32) where length < maxEjection { length = length + length }
        return min(length, maxEjection)
    }
}

/// Envoy's retry budget: retries in flight stay under a share of the requests in flight, with a floor so a
/// quiet pool can still retry. Retries then cannot multiply an outage.
package struct RetryBudget: Sendable, Equatable {
    package var percentOfActive: Int
    package var minConcurrent: Int

    package init(percentOfActive: Int, minConcurrent: Int) {
        self.percentOfActive = percentOfActive
        self.minConcurrent = minConcurrent
    }

    /// Envoy's defaults: 20 % of active requests, at least 3 concurrent retries.
    package static var defaults: RetryBudget { RetryBudget(percentOfActive: 20, minConcurrent: 3) }
}

/// Per endpoint: what picking reads on every call (outstanding calls, ejection) and what failures update.
package final class EndpointHealth: Sendable {
    /// Calls in flight here.
    package let outstanding = Atomic<Int>(0)
    let consecutiveFailures = Atomic<Int>(0)
    /// Uptime nanoseconds until which the endpoint is ejected; 0 when it never was.
    let ejectedUntil = Atomic<Int>(0)
    /// Ejections since the last success: the backoff exponent, and "on probation" when not 0 (the first failure
    /// after an ejection ends ejects again at once, as nghttpx's connect blocker does).
    let ejections = Atomic<Int>(0)
    /// The active health check's verdict (always true when the pool has none).
    let activelyHealthy = Atomic<Bool>(true)
    /// Uptime nanoseconds of the first ejection since the endpoint last answered (a call's answer or a passed
    /// health probe); 0 when it has answered since (or was never ejected). While not 0 the endpoint is out: ejected,
    /// or past its ejection and being probed by the calls picking sends it again, and
    /// `trigger_gateway_pool_endpoint_available` reads 0 (review 26 M6: it read 1 between ejections while a pool's
    /// only runner stayed down, so neither a `== 0` alert nor a 15 s scrape saw the outage).
    let outSince = Atomic<Int>(0)

    init() {}

    func isEjected(at now: NIODeadline) -> Bool {
        ejectedUntil.load(ordering: .relaxed) > Int(truncatingIfNeeded: now.uptimeNanoseconds)
    }

    /// Neither ejected nor failing its active health check.
    func isAvailable(at now: NIODeadline) -> Bool {
        activelyHealthy.load(ordering: .relaxed) && !isEjected(at: now)
    }

    /// Available, and answered since its last ejection (``outSince``).
    func isShownAvailable(at now: NIODeadline) -> Bool {
        isAvailable(at: now) && outSince.load(ordering: .relaxed) == 0
    }
}

/// Picks endpoints (power of two choices on outstanding calls among endpoints not ejected), ejects failing
/// ones, and keeps the retry budget: the pool-wide state both transports share.
///
/// Shared by every event loop's calls. Picking runs on every call, so it only loads atomics (relaxed: a slightly
/// stale count or ejection time only makes one pick a little worse, never wrong). Only ejecting takes a lock,
/// and only after the failure threshold is reached: the "never eject more than the share" check reads every
/// endpoint and must not race another ejection. Time comes in as an argument so tests drive it without sleeping.
package final class EndpointBalancer: Sendable {
    package let health: [EndpointHealth]
    package let outlierDetection: OutlierDetection
    package let retryBudget: RetryBudget
    private let random: Atomic<UInt64>
    private let ejecting = Mutex(())
    private let retriesInFlight = Atomic<Int>(0)
    /// For /metrics: ejections made and retries sent since the pool was built.
    private let ejectionsMade = Atomic<Int>(0)
    private let retriesSent = Atomic<Int>(0)
    /// For the ejection log line: the pool and each endpoint as configured (empty in unit tests).
    private let poolName: String
    private let endpointNames: [String]
    /// The pool's instruments on /metrics (ejections, retries, each try's latency, per endpoint); nil in unit
    /// tests that do not look.
    package let metrics: PoolMetrics?

    package init(
        endpointCount: Int,
        outlierDetection: OutlierDetection,
        retryBudget: RetryBudget,
        seed: UInt64 = 0,
        poolName: String = "",
        endpointNames: [String] = [],
        metrics: PoolMetrics? = nil
    ) {
        precondition(endpointCount > 0)
        self.poolName = poolName
        self.endpointNames = endpointNames
        self.metrics = metrics
        self.health = (0..<endpointCount).map { _ in EndpointHealth() }
        self.outlierDetection = outlierDetection
        self.retryBudget = retryBudget
        self.random = Atomic(seed == 0 ? UInt64.random(in: 1...UInt64.max) : seed)
    }

    /// The balancer of `pool`'s endpoints, with the pool's outlier detection and retry budget; what both
    /// network transports build.
    package convenience init(pool: BackendPoolConfiguration, metrics: PoolMetrics?) {
        self.init(
            endpointCount: pool.endpoints.count,
            outlierDetection: pool.outlierDetection,
            retryBudget: pool.retryBudget,
            poolName: pool.name,
            endpointNames: pool.endpoints.map(\.description),
            metrics: metrics
        )
    }

    package var count: Int { health.count }

    /// The endpoint at `index` as configured (e.g. "http://10.0.0.1:8080"); nil when the balancer was built
    /// without names (unit tests).
    package func endpointName(_ index: Int) -> String? {
        index < endpointNames.count ? endpointNames[index] : nil
    }

    // MARK: Picking

    /// The endpoint for the next call: of two distinct random endpoints that are available (not ejected, not
    /// failing an active health check, and not `avoiding`, the one a retry comes from), the one with fewer calls
    /// in flight. With no such endpoint, any but `avoiding` (Envoy's panic mode); with one endpoint, that one, ejected
    /// or not.
    package func pick(avoiding: Int? = nil, now: NIODeadline = .now()) -> Int {
        let n = health.count
        if n == 1 { return 0 }
        var eligible = 0
        for i in 0..<n where i != avoiding && health[i].isAvailable(at: now) { eligible += 1 }
        let useEjected = eligible == 0
        if useEjected { eligible = avoiding == nil ? n : n - 1 }
        if eligible == 0 { return avoiding ?? 0 }
        func nth(_ k: Int) -> Int {
            var k = k
            for i in 0..<n where i != avoiding && (useEjected || health[i].isAvailable(at: now)) {
                if k == 0 { return i }
                k -= 1
            }
            return 0  // unreachable: k < eligible
        }
        let r = nextRandom()
        let first = Int(r % UInt64(eligible))
        if eligible == 1 { return nth(first) }
        var second = Int((r >> 32) % UInt64(eligible - 1))
        if second >= first { second += 1 }
        let a = nth(first)
        let b = nth(second)
        return health[b].outstanding.load(ordering: .relaxed) < health[a].outstanding.load(ordering: .relaxed) ? b : a
    }

    /// SplitMix64 over an atomic counter: lock-free, and no system call per pick.
    private func nextRandom() -> UInt64 {
        var z = random.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    // MARK: Outcomes

    /// The endpoint answered (a result, or the pipeline's own error): it is healthy, and no longer out
    /// (``answered(_:now:)``). `now`: the clock for the `available again` line's duration (read only when the
    /// endpoint was out; tests pass theirs).
    package func recordSuccess(_ index: Int, now: NIODeadline? = nil) {
        let endpoint = health[index]
        // Loads first: a success on a healthy endpoint, the common case, writes nothing shared.
        if endpoint.consecutiveFailures.load(ordering: .relaxed) != 0 {
            endpoint.consecutiveFailures.store(0, ordering: .relaxed)
        }
        if endpoint.ejections.load(ordering: .relaxed) != 0 { endpoint.ejections.store(0, ordering: .relaxed) }
        if endpoint.outSince.load(ordering: .relaxed) != 0 { answered(index, now: now) }
    }

    /// An active health probe of the endpoint passed: it answers, so it is no longer out (``answered(_:now:)``).
    /// Its ejection, failure count and backoff are left as they are: only a call's answer says `/run` works.
    package func probePassed(_ index: Int, now: NIODeadline? = nil) {
        if health[index].outSince.load(ordering: .relaxed) != 0 { answered(index, now: now) }
    }

    /// The endpoint answered after an ejection: from now the gauge reads 1 again (once an ejection still under way
    /// ends: a call can reach an ejected endpoint when the pool has no other, Envoy's panic mode), and one info line
    /// closes the incident in the log, `backend endpoint available again` with how long it was out (Envoy's outlier
    /// event log's `uneject`; review 26 L4). Exactly one of concurrent answers writes it (the exchange).
    private func answered(_ index: Int, now: NIODeadline?) {
        let endpoint = health[index]
        let since = endpoint.outSince.load(ordering: .relaxed)
        guard since != 0,
            endpoint.outSince.compareExchange(expected: since, desired: 0, ordering: .relaxed).exchanged
        else { return }
        if index < endpointNames.count {
            let out = (now ?? .now()) - NIODeadline.uptimeNanoseconds(UInt64(since))
            BackendErrors.logAvailableAgain(pool: poolName, endpoint: endpointNames[index], after: out)
        }
    }

    /// A transport failure on the endpoint; ejects it when that makes the threshold (or it is on probation after an
    /// ejection) and the pool's ejected share allows. True when this call ejected it.
    @discardableResult
    package func recordFailure(_ index: Int, now: NIODeadline = .now()) -> Bool {
        let detection = outlierDetection
        guard detection.consecutiveFailures > 0 else { return false }
        let endpoint = health[index]
        let failures = endpoint.consecutiveFailures.add(1, ordering: .relaxed).newValue
        let onProbation = endpoint.ejections.load(ordering: .relaxed) > 0
        guard failures >= detection.consecutiveFailures || onProbation, !endpoint.isEjected(at: now) else {
            return false
        }
        let ejection: TimeAmount? = ejecting.withLock { _ in
            guard !endpoint.isEjected(at: now) else { return nil }
            let ejected = health.reduce(0) { $0 + ($1.isEjected(at: now) ? 1 : 0) }
            // At least one; never every endpoint of a pool of several. A single endpoint is ejected: calls still
            // go to it (`pick`, panic mode), but the pool shows it (`OutlierDetection.maxEjectedPercent`).
            let allowed =
                health.count == 1 ? 1 : min(max(health.count * detection.maxEjectedPercent / 100, 1), health.count - 1)
            guard ejected < allowed else { return nil }
            let previous = endpoint.ejections.load(ordering: .relaxed)
            let length = detection.ejection(after: previous)
            endpoint.ejectedUntil.store(Int(truncatingIfNeeded: (now + length).uptimeNanoseconds), ordering: .relaxed)
            endpoint.ejections.store(previous + 1, ordering: .relaxed)
            endpoint.consecutiveFailures.store(0, ordering: .relaxed)
            if endpoint.outSince.load(ordering: .relaxed) == 0 {
                endpoint.outSince.store(max(Int(truncatingIfNeeded: now.uptimeNanoseconds), 1), ordering: .relaxed)
            }
            ejectionsMade.add(1, ordering: .relaxed)
            return length
        }
        guard let ejection else { return false }
        metrics?.recordEjection(endpoint: index)
        if index < endpointNames.count {
            BackendErrors.logEjection(pool: poolName, endpoint: endpointNames[index], for: ejection)
        }
        return true
    }

    package func isEjected(_ index: Int, now: NIODeadline = .now()) -> Bool {
        health[index].isEjected(at: now)
    }

    /// Whether picking would choose the endpoint on its own merits (not ejected, passing its health check).
    package func isAvailable(_ index: Int, now: NIODeadline = .now()) -> Bool {
        health[index].isAvailable(at: now)
    }

    /// What `trigger_gateway_pool_endpoint_available` shows: ``isAvailable(_:now:)``, and answered since its last
    /// ejection. An endpoint whose ejection time ran out is picked again (calls probe it) but shows 0 until a call
    /// or a health probe to it succeeds (``recordSuccess(_:now:)``, ``probePassed(_:now:)``).
    package func isShownAvailable(_ index: Int, now: NIODeadline = .now()) -> Bool {
        health[index].isShownAvailable(at: now)
    }

    /// Scrape time: each endpoint's `trigger_gateway_pool_endpoint_available` (``isShownAvailable(_:now:)``) and
    /// calls in flight on the pool's ``metrics``.
    package func collectMetrics(now: NIODeadline = .now()) {
        guard let metrics else { return }
        for index in health.indices {
            metrics.setEndpoint(
                index, available: health[index].isShownAvailable(at: now),
                inFlight: health[index].outstanding.load(ordering: .relaxed))
        }
    }

    /// Whether any endpoint is available (``isAvailable(_:now:)``). False only while every endpoint is ejected or
    /// failing its active health check; passive ejection alone never ejects a whole pool of several endpoints
    /// (`OutlierDetection.maxEjectedPercent`), so there, without a health check, this stays true. A pool's only
    /// endpoint is ejected like any other: false during its ejection (calls still go to it, `pick`).
    package func hasAvailableEndpoint(now: NIODeadline = .now()) -> Bool {
        health.contains { $0.isAvailable(at: now) }
    }

    /// The active health check's verdict changed.
    package func setActivelyHealthy(_ index: Int, _ healthy: Bool) {
        health[index].activelyHealthy.store(healthy, ordering: .relaxed)
    }

    // MARK: Retry budget

    /// Takes one unit of the retry budget; false when retries in flight already fill it. A true answer must be
    /// matched by ``endRetry()``.
    package func beginRetry() -> Bool {
        let active = health.reduce(0) { $0 + $1.outstanding.load(ordering: .relaxed) }
        let allowed = max(retryBudget.minConcurrent, active * retryBudget.percentOfActive / 100)
        var current = retriesInFlight.load(ordering: .relaxed)
        while current < allowed {
            let (exchanged, original) = retriesInFlight.compareExchange(
                expected: current,
                desired: current + 1,
                ordering: .relaxed
            )
            if exchanged { return true }
            current = original
        }
        return false
    }

    package func endRetry() {
        retriesInFlight.subtract(1, ordering: .relaxed)
    }

    /// Retries in flight (for tests and metrics).
    package var retriesInFlightCount: Int { retriesInFlight.load(ordering: .relaxed) }

    /// One more try of a call that never reached a backend (on endpoint `index`) went out.
    func retried(from index: Int) {
        retriesSent.add(1, ordering: .relaxed)
        metrics?.recordRetry(from: index)
    }

    /// Times one try on endpoint `index` for `trigger_gateway_backend_request_duration_seconds{outcome}`, and
    /// counts it in `trigger_gateway_backend_failures_total` when it failed on the backend's side (`error` carries
    /// an ``UpstreamFailure``; a ``NotSent`` try's too). Every unary try of either transport ends here.
    ///
    /// `cancellation`: the call's, when the caller has it; a try it cut because the pool's deadline passed
    /// (``TriggerCancellation/timedOut``) is timed as `UT`, the flag the pool counted it under.
    func tryEnded(
        _ index: Int, startedAt start: NIODeadline, error: (any Error)? = nil,
        cancellation: TriggerCancellation? = nil
    ) {
        guard metrics != nil else { return }  // no clock read for nothing to record
        self.tryEnded(
            index, nanoseconds: (NIODeadline.now() - start).nanoseconds, error: error, cancellation: cancellation)
    }

    /// ``tryEnded(_:startedAt:error:cancellation:)`` for a caller that has the try's duration already (one clock
    /// read per try, not two: issue 11).
    func tryEnded(
        _ index: Int, nanoseconds elapsed: Int64, error: (any Error)? = nil, cancellation: TriggerCancellation? = nil
    ) {
        guard let metrics else { return }
        let nanoseconds = elapsed.magnitude
        guard let error else {
            metrics.recordTry(endpoint: index, outcome: .answered, nanoseconds: nanoseconds)
            return
        }
        if let reason = Self.upstreamFailure(of: error) {
            metrics.recordTry(endpoint: index, outcome: .failed(reason), nanoseconds: nanoseconds)
            metrics.recordFailure(endpoint: index, reason: reason)
        } else {
            var outcome = Self.outcome(unflagged: error)
            if outcome == .cancelled, cancellation?.timedOut == true { outcome = .failed(.requestTimeout) }
            metrics.recordTry(endpoint: index, outcome: outcome, nanoseconds: nanoseconds)
        }
    }

    /// A try's error with no response flag: the pipeline's own error (answered), or the call cut by its caller
    /// (the http transport's `CancellationError`, the grpc transport's `.cancelled`).
    private static func outcome(unflagged error: any Error) -> TryOutcome {
        switch error {
        case is CancellationError: .cancelled
        case let error as GatewayError where error.code == .cancelled: .cancelled
        default: .answered
        }
    }

    /// A stream's failure after its start (the start's tries end in ``tryEnded(_:startedAt:error:cancellation:)``):
    /// counted in `trigger_gateway_backend_failures_total` when `error` carries an ``UpstreamFailure``.
    func streamFailed(_ index: Int, _ error: any Error) {
        if let metrics, let reason = Self.upstreamFailure(of: error) {
            metrics.recordFailure(endpoint: index, reason: reason)
        }
    }

    /// The response flag a try's error carries, looking through ``NotSent``.
    static func upstreamFailure(of error: any Error) -> UpstreamFailure? {
        switch error {
        case let error as GatewayError: error.upstreamFailure
        case let notSent as NotSent: (notSent.error as? GatewayError)?.upstreamFailure
        default: nil
        }
    }

    package var ejectionsTotal: Int { ejectionsMade.load(ordering: .relaxed) }
    package var retriesTotal: Int { retriesSent.load(ordering: .relaxed) }
}

/// A transport whose endpoints an ``EndpointBalancer`` picks (http and grpc; not the in-process runner).
package protocol BalancedTransport: Sendable {
    var balancer: EndpointBalancer { get }
    /// `host:port` of each endpoint, in the balancer's order.
    var endpointNames: [String] { get }
}

/// A network transport whose unary calls all go through ``call(_:on:pinned:cancellation:completion:)``: both of
/// ``TriggerRunner``'s `run` forms are that call, on the caller's loop (`pinned`, the frontends' and the pool's
/// loop-native path) or on a loop of the group with the shared connections (`async` callers, on no loop).
///
/// Class-bound (both transports are classes): ``BackendPool`` keeps one as an optional existential, and an
/// unbound one was an opaque existential whose every call copied its container out of the optional through the
/// runtime's generic value witnesses, then destroyed it (~200 instructions per call; issue 11, fiftieth session).
/// A class existential is a reference and a witness table.
protocol LoopCallingTransport: AnyObject, TriggerRunner {
    var group: any EventLoopGroup { get }
    /// One unary call, its outcome reported to `completion` once, on `eventLoop` (no promise of its own: what
    /// ``BackendPool`` uses, so that its promise is the call's only one).
    ///
    /// `request` is consumed: the transport keeps it for the call's tries, moved rather than copied (issue 11: a
    /// copy retained its dozen strings, and destroying the caller's released them).
    func call(
        _ request: consuming TriggerRequest,
        on eventLoop: any EventLoop,
        pinned: Bool,
        cancellation: TriggerCancellation,
        completion: @escaping @Sendable (Result<TriggerResult, any Error>) -> Void
    )
}

extension LoopCallingTransport {
    /// ``call(_:on:pinned:cancellation:completion:)`` as a future on `eventLoop`.
    func call(
        _ request: consuming TriggerRequest,
        on eventLoop: any EventLoop,
        pinned: Bool,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        let promise = eventLoop.makePromise(of: TriggerResult.self)
        call(request, on: eventLoop, pinned: pinned, cancellation: cancellation) { promise.completeWith($0) }
        return promise.futureResult
    }

    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        try await TriggerCancellation.awaiting { call(request, on: group.next(), pinned: false, cancellation: $0) }
    }

    package func run(
        _ request: TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        call(request, on: eventLoop, pinned: true, cancellation: cancellation)
    }
}

/// A call that failed before anything reached the backend (connect refused or timed out, a stream refused by
/// GOAWAY or REFUSED_STREAM): safe to retry on another endpoint, even for a run that is not idempotent.
struct NotSent: Error {
    var error: any Error

    /// The error a chain of tries that ended on this one throws: ``error``, marked as never sent
    /// (``GatewayError/notSent``) so that whoever retries later knows the backend did not see the call.
    var final: any Error {
        guard var error = error as? GatewayError else { return error }
        error.notSent = true
        return error
    }
}

/// Runs `body` on an endpoint picked by `balancer`; a try that failed with ``NotSent`` goes again to another
/// endpoint while tries are left, the deadline has not passed and the retry budget allows (one budget unit is
/// held for the whole chain of retries). Any other failure is final: the backend may have processed the call.
func withSafeRetries<T: Sendable>(
    _ balancer: EndpointBalancer,
    maxTries: Int,
    deadline: NIODeadline?,
    _ body: (Int) async throws -> T
) async throws -> T {
    var avoiding: Int?
    var holdsBudget = false
    defer { if holdsBudget { balancer.endRetry() } }
    var tries = 0
    while true {
        let index = balancer.pick(avoiding: avoiding)
        tries += 1
        let start = NIODeadline.now()
        do {
            let value: T
            do {
                value = try await body(index)
            } catch {
                balancer.tryEnded(index, startedAt: start, error: error)
                throw error
            }
            balancer.tryEnded(index, startedAt: start)
            return value
        } catch let notSent as NotSent {
            let timeLeft = deadline.map { $0 > .now() } ?? true
            guard tries < maxTries, timeLeft, !Task.isCancelled, holdsBudget || balancer.beginRetry() else {
                throw notSent.final
            }
            holdsBudget = true
            balancer.retried(from: index)
            avoiding = balancer.count > 1 ? index : nil
        }
    }
}

/// ``withSafeRetries(_:maxTries:deadline:_:)`` for the event-loop path: `body` returns a future, every step
/// runs on `eventLoop`, and a cancelled call (``TriggerCancellation``) is not tried again.
func withSafeRetries<T: Sendable>(
    _ balancer: EndpointBalancer,
    maxTries: Int,
    deadline: NIODeadline?,
    on eventLoop: any EventLoop,
    cancellation: TriggerCancellation,
    _ body: @escaping (Int) -> EventLoopFuture<T>
) -> EventLoopFuture<T> {
    withSafeRetries(balancer, maxTries: maxTries, deadline: deadline, on: eventLoop, cancellation: cancellation) {
        index, done in
        body(index).hop(to: eventLoop).whenComplete(done)
    }
}

/// The same with a callback-style `body`: it is called on `eventLoop` with the endpoint's index and calls
/// `done` exactly once, on `eventLoop`, with the try's outcome. The sync hot path uses this form so that a
/// try allocates no future of its own: the returned future's promise is the only one of the whole chain.
func withSafeRetries<T: Sendable>(
    _ balancer: EndpointBalancer,
    maxTries: Int,
    deadline: NIODeadline?,
    on eventLoop: any EventLoop,
    cancellation: TriggerCancellation,
    _ body: @escaping (_ index: Int, _ done: @escaping @Sendable (Result<T, any Error>) -> Void) -> Void
) -> EventLoopFuture<T> {
    let promise = eventLoop.makePromise(of: T.self)
    withSafeRetries(
        balancer, maxTries: maxTries, deadline: deadline, on: eventLoop, cancellation: cancellation,
        completion: { promise.completeWith($0) }, body
    )
    return promise.futureResult
}

/// The same reporting the chain's outcome to `completion`, once, on `eventLoop`: no promise at all.
func withSafeRetries<T: Sendable>(
    _ balancer: EndpointBalancer,
    maxTries: Int,
    deadline: NIODeadline?,
    on eventLoop: any EventLoop,
    cancellation: TriggerCancellation,
    completion: @escaping @Sendable (Result<T, any Error>) -> Void,
    _ body: @escaping (_ index: Int, _ done: @escaping @Sendable (Result<T, any Error>) -> Void) -> Void
) {
    SafeRetries(
        balancer: balancer, maxTries: maxTries, deadline: deadline, eventLoop: eventLoop,
        call: ClosureRetriedCall(body: body, completion: completion)
    ).start(cancellation: cancellation)
}

/// A call tried under ``SafeRetries``: the retries start each try on it, it reports the try's end to them
/// (``SafeRetries/tryEnded(_:)``), and they report the chain's outcome to it. Methods, not closures, between the
/// two (issue 11): a closure typed with the generic result, called or stored by the generic retries, was wrapped
/// in a reabstraction thunk for the concrete caller (a context allocated per call, and the result copied, a
/// retain and a release of its storage, at each crossing). The unary transports' runs are such calls themselves;
/// ``ClosureRetriedCall`` adapts the closure forms.
protocol SafeRetriedCall: AnyObject, Sendable {
    associatedtype Value: Sendable
    /// Starts a try on the endpoint at `index`, on the retries' event loop. The try's end is reported once, on
    /// that loop, to `retries.tryEnded(_:)`; the call holds `retries` until then (which is what keeps them).
    func startTry(endpoint index: Int, retries: SafeRetries<Self>)
    /// The chain's outcome, once, on the retries' event loop.
    func retriesEnded(_ result: Result<Value, any Error>)
}

/// ``SafeRetriedCall`` for the closure forms of ``withSafeRetries``.
private final class ClosureRetriedCall<T: Sendable>: SafeRetriedCall, @unchecked Sendable {
    let body: (Int, @escaping @Sendable (Result<T, any Error>) -> Void) -> Void
    let completion: @Sendable (Result<T, any Error>) -> Void

    init(
        body: @escaping (Int, @escaping @Sendable (Result<T, any Error>) -> Void) -> Void,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        self.body = body
        self.completion = completion
    }

    func startTry(endpoint index: Int, retries: SafeRetries<ClosureRetriedCall<T>>) {
        body(index) { result in retries.tryEnded(result) }
    }

    func retriesEnded(_ result: Result<T, any Error>) { completion(result) }
}

/// The state of one call's chain of tries on the event-loop path: picks each try's endpoint, decides whether a
/// failed try goes again (``withSafeRetries(_:maxTries:deadline:_:)``'s rules) and reports the outcome once.
///
/// `@unchecked Sendable`: it is created off the loop at most to be handed to it once, and from then on only
/// touched on `eventLoop` (each try reports there).
final class SafeRetries<Call: SafeRetriedCall>: @unchecked Sendable {
    let balancer: EndpointBalancer
    let maxTries: Int
    let deadline: NIODeadline?
    let eventLoop: any EventLoop
    let call: Call
    var avoiding: Int?
    var holdsBudget = false
    var tries = 0

    init(balancer: EndpointBalancer, maxTries: Int, deadline: NIODeadline?, eventLoop: any EventLoop, call: Call) {
        self.balancer = balancer
        self.maxTries = maxTries
        self.deadline = deadline
        self.eventLoop = eventLoop
        self.call = call
    }

    /// Starts the first try, on `eventLoop` (at once when called there).
    func start(cancellation: TriggerCancellation) {
        if eventLoop.inEventLoop {
            attempt(cancellation: cancellation)
        } else {
            eventLoop.execute { self.attempt(cancellation: cancellation) }
        }
    }

    private func attempt(cancellation: TriggerCancellation) {
        let index = balancer.pick(avoiding: avoiding)
        tries += 1
        // The name is the configuration's string, shared: no copy per call. Counted as a try (`attempts`).
        cancellation.tryStarted(endpoint: balancer.endpointName(index))
        current = (index, NIODeadline.now(), cancellation)
        call.startTry(endpoint: index, retries: self)
    }

    /// The current try: its endpoint, when it started, and the call's cancellation.
    private var current: (index: Int, start: NIODeadline, cancellation: TriggerCancellation)?

    /// The current try ended with `result` (the call reports it once, on `eventLoop`; a second report is ignored).
    func tryEnded(_ result: Result<Call.Value, any Error>) {
        eventLoop.assertInEventLoop()
        guard let (index, start, cancellation) = current.take() else { return }
        let elapsed = (NIODeadline.now() - start).nanoseconds
        if case .failure(let error) = result {
            balancer.tryEnded(index, nanoseconds: elapsed, error: error, cancellation: cancellation)
            // The gateway's own refusal (`UO`: the connection budget spent) came before anything reached the
            // endpoint: the request's record and `trigger failed` warning name none, as its metric counts it under
            // `endpoint=""` (README, Metrics; review 21 L1). A retry's pick names its endpoint again.
            cancellation.tryEnded(
                nanoseconds: elapsed,
                forgettingEndpoint: BackendErrors.isConnectionRefusedLocally((error as? NotSent)?.error ?? error))
        } else {
            balancer.tryEnded(index, nanoseconds: elapsed)
            cancellation.tryEnded(nanoseconds: elapsed)
        }
        switch result {
        case .success:
            finish(result)  // as it is: rebuilt from its value, the result was copied (a retain of its storage)
        case .failure(let notSent as NotSent):
            let timeLeft = deadline.map { $0 > .now() } ?? true
            guard tries < maxTries, timeLeft, !cancellation.isCancelled, holdsBudget || balancer.beginRetry() else {
                finish(.failure(notSent.final))
                return
            }
            holdsBudget = true
            balancer.retried(from: index)
            avoiding = balancer.count > 1 ? index : nil
            attempt(cancellation: cancellation)
        case .failure(let error):
            finish(.failure(error))
        }
    }

    private func finish(_ result: Result<Call.Value, any Error>) {
        if holdsBudget {
            holdsBudget = false
            balancer.endRetry()
        }
        call.retriesEnded(result)
    }
}
