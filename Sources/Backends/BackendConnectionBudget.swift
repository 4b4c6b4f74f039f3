#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import NIOCore
import NIOPosix
import Synchronization

/// The process-wide cap on open backend connections (HTTP/1.1 and HTTP/2 to runners, every pool, endpoint and
/// event loop, health checks included), so that the backend side can never take the process to its open-file
/// limit (EMFILE): Swift's libdispatch on Linux traps when it cannot open `/proc/<tid>/stat` at that limit (see
/// `GatewayServer.fitOpenFileLimit`), so running out is fatal, not a failed call.
///
/// Why one process-wide count and not a cap per pool (Envoy's per-cluster `max_connections` circuit breaker,
/// overflow `UO`): the resource is the process's descriptor table, which all pools share. A cap per pool would
/// have to be split by hand and would either waste descriptors (pools idle) or still add up past the limit
/// (pools × endpoints × loops × connections, the worst case nobody writes down). One atomic count checked at
/// connect is the smallest rule that makes EMFILE on the backend side impossible; the pools' own
/// `max_concurrency` still bounds their share in normal operation. nginx does the same with
/// `worker_connections`, which counts proxied connections with client ones.
///
/// Checked once per new connection (a connect), never per call: a call on an idle or multiplexed connection
/// does not touch it (it flips its connection's ``BackendConnectionUse`` with one compare-exchange, no lock).
/// An idle connection never causes a refusal (review 21 H1: a burst on one pool left the budget full of idle
/// keep-alive connections, and every other pool was refused until a restart): a connect over the budget closes
/// the least recently used idle connection of any pool and takes its place (nginx closes its least recently
/// used keep-alive connection past `keepalive N` the same way); that path alone takes the registry's lock and
/// scans it. Only when every counted connection carries a call does a connect fail at once, nothing sent, as
/// the gateway's own overload (``BackendErrors/connectionBudgetExhausted(pool:limit:outOfDescriptors:)``: 503 /
/// UNAVAILABLE, `UO`), not an endpoint's failure (no outlier ejection, no retry on another endpoint, which would
/// need a connection too). Idle connections also close at their pool's `idle_timeout`, on a timer of their own
/// loop (one per connection, rescheduled while it is used: nothing per call).
package final class BackendConnectionBudget: Sendable {
    /// The one the transports use; `GatewayApp` sets its limit at start from the open-file limit
    /// (`GatewayServer.backendConnectionBudget`). Unlimited until then (unit tests that build transports alone).
    package static let shared = BackendConnectionBudget(limit: .max)

    private let limitValue: Atomic<Int>
    private let openCount = Atomic<Int>(0)
    private let refusedCount = Atomic<Int>(0)
    private let evictedCount = Atomic<Int>(0)
    private let expiredCount = Atomic<Int>(0)
    /// Connections whose `idle_timeout` check is still scheduled (tests: a closed connection has none).
    private let idleChecksCount = Atomic<Int>(0)

    package init(limit: Int) {
        self.limitValue = Atomic(limit)
    }

    /// Backend connections that may be open (or connecting) at once.
    package var limit: Int {
        get { limitValue.load(ordering: .relaxed) }
        set { limitValue.store(max(newValue, 0), ordering: .relaxed) }
    }

    /// Backend connections open or connecting now.
    package var open: Int { openCount.load(ordering: .relaxed) }

    /// Connects refused since start, over the budget or at the open-file limit (EMFILE/ENFILE) all the same.
    package var refused: Int { refusedCount.load(ordering: .relaxed) }

    /// Takes one connection's place; false (counted in ``refused``) when ``limit`` are open. Evicts nothing (the
    /// connects of ``connect(_:on:host:port:pool:use:idleTimeout:)`` do).
    package func tryAcquire() -> Bool {
        guard tryTakeUnit() else {
            refusedCount.add(1, ordering: .relaxed)
            return false
        }
        return true
    }

    private func tryTakeUnit() -> Bool {
        let limit = self.limit
        let taken = openCount.add(1, ordering: .relaxed).newValue
        guard taken > limit else { return true }
        openCount.subtract(1, ordering: .relaxed)
        return false
    }

    /// Gives back a place taken by ``tryAcquire()`` (its connection closed, or its connect failed).
    package func release() {
        openCount.subtract(1, ordering: .relaxed)
    }

    /// Counted connections idle now (no call on them): what ``connect(_:on:host:port:pool:use:idleTimeout:)``
    /// may evict. Scans the registry (a scrape's cost, not a call's).
    package var idle: Int {
        registry.withLock { $0.values.reduce(0) { $0 + ($1.use.isIdle ? 1 : 0) } }
    }

    /// A registered connection: its channel (closed on eviction) and its ``BackendConnectionUse``.
    private struct Registered {
        let channel: any Channel
        let use: BackendConnectionUse
    }

    /// Every connection made by ``connect(_:on:host:port:pool:use:idleTimeout:)`` that is open, by its use's
    /// identity: added once connected, removed at close or eviction (never per call). Whoever removes an entry
    /// owns its unit: the close gives it back, an eviction hands it to the connect that evicted.
    private let registry = Mutex<[ObjectIdentifier: Registered]>([:])

    /// Takes the least recently used idle connection out of the registry and marks it evicted (its pool will
    /// never hand it out again), for a connect that found the budget spent; nil when every connection is busy.
    /// Its unit now belongs to the caller. The rare path (budget spent): the only one that scans.
    private func evictLeastRecentlyUsedIdle() -> Registered? {
        registry.withLock { registry in
            // A candidate whose pool took it between the scan and the compare-exchange is skipped; the next
            // scan sees it busy.
            while true {
                var oldest: (key: ObjectIdentifier, value: Registered, since: UInt64)?
                for (key, value) in registry {
                    guard let since = value.use.idleSince else { continue }
                    if let best = oldest, best.since <= since { continue }
                    oldest = (key, value, since)
                }
                guard let oldest else { return nil }
                if oldest.value.use.tryEvict() {
                    registry[oldest.key] = nil
                    return oldest.value
                }
            }
        }
    }

    /// Closes the connection of `use` when it has been idle `timeout` (the pool's `idle_timeout`), if it still
    /// is then: checked by a timer on the connection's own loop, one per connection (never one per call).
    ///
    /// The check is cancelled when the connection closes: it holds the channel, so a connection closed early (a
    /// call cut at its deadline, a runner closing after its answer) was kept with its whole pipeline until the
    /// check would have fired, `idle_timeout` later: RSS grew with connection churn (PerCallMemoryTests, 2 KiB a
    /// call on REST calls that all expire).
    private func expireWhenIdle(_ use: BackendConnectionUse, channel: any Channel, after timeout: TimeAmount) {
        let check = IdleCheck()
        idleChecksCount.add(1, ordering: .relaxed)
        check.scheduled = channel.eventLoop.scheduleTask(in: timeout) { [self] in
            expireWhenIdleFired(use, channel: channel, timeout: timeout, check: check)
        }
        channel.closeFuture.whenComplete { [self] _ in
            check.scheduled?.cancel()
            check.scheduled = nil
            idleChecksCount.subtract(1, ordering: .relaxed)
        }
    }

    private func expireWhenIdleFired(
        _ use: BackendConnectionUse, channel: any Channel, timeout: TimeAmount, check: IdleCheck
    ) {
        check.scheduled = nil
        guard channel.isActive else { return }  // its close ends the check
        switch use.expiry(now: NIODeadline.now(), idleTimeout: timeout) {
        case .recheck(let deadline):
            check.scheduled = channel.eventLoop.scheduleTask(deadline: deadline) { [self] in
                expireWhenIdleFired(use, channel: channel, timeout: timeout, check: check)
            }
        case .expired:
            evict(use, channel: channel)
        }
    }

    /// One connection's pending `idle_timeout` check (``expireWhenIdle(_:channel:after:)``). Touched only on the
    /// connection's loop (the timer and the close callback run there), hence `@unchecked Sendable`.
    private final class IdleCheck: @unchecked Sendable {
        var scheduled: Scheduled<Void>?
    }

    /// Closes an expired idle connection (its pool's compare-exchange loses from now on); its unit is given
    /// back by the close.
    private func evict(_ use: BackendConnectionUse, channel: any Channel) {
        guard use.tryEvict() else { return }
        expiredCount.add(1, ordering: .relaxed)
        channel.close(promise: nil)
    }

    /// A connect the kernel refused for lack of descriptors (EMFILE, ENFILE): counted in ``refused`` like a
    /// connect over the budget (the budget was too large for what else holds descriptors).
    func refusedByKernel() {
        refusedCount.add(1, ordering: .relaxed)
    }

    /// Whether `error` (a connect's) says the process or the system is out of file descriptors.
    static func isOutOfDescriptors(_ error: any Error) -> Bool {
        switch error {
        case let error as IOError:
            return error.errnoCode == EMFILE || error.errnoCode == ENFILE
        case let error as NIOConnectionError:
            return error.connectionErrors.contains { isOutOfDescriptors($0.error) }
        default:
            return false
        }
    }

    /// Connects `bootstrap` to `host:port` within the budget, for a connection whose pool tracks its calls in
    /// `use`. When the budget is spent, the least recently used idle connection (of any pool) is closed and its
    /// place goes to this connect once it has closed; refused at once only when every counted connection is
    /// busy. The place is given back when the connection closes or the connect fails. A connect that fails for
    /// lack of descriptors fails as ``BackendErrors/connectionBudgetExhausted(pool:limit:outOfDescriptors:)``
    /// too. `idleTimeout` (the pool's `idle_timeout`; nil: never): the connection is closed once idle that long.
    func connect(
        _ bootstrap: ClientBootstrap, on eventLoop: any EventLoop, host: String, port: Int, pool: String,
        use: BackendConnectionUse, idleTimeout: TimeAmount?
    ) -> EventLoopFuture<any Channel> {
        let handOver = BootstrapHandOver(bootstrap: bootstrap)
        let connect: @Sendable () -> EventLoopFuture<any Channel> = { [self] in
            connectHoldingUnit(
                handOver.bootstrap, host: host, port: port, pool: pool, use: use, idleTimeout: idleTimeout)
        }
        if tryTakeUnit() { return connect() }
        guard let victim = evictLeastRecentlyUsedIdle() else {
            refusedCount.add(1, ordering: .relaxed)
            return eventLoop.makeFailedFuture(BackendErrors.connectionBudgetExhausted(pool: pool, limit: limit))
        }
        evictedCount.add(1, ordering: .relaxed)
        // Closed on its own loop (`close` hops there); the new connect waits for it, so the descriptors open
        // never exceed the budget, not even for a moment.
        victim.channel.close(promise: nil)
        let promise = eventLoop.makePromise(of: (any Channel).self)
        victim.channel.closeFuture.whenComplete { _ in promise.completeWith(connect()) }
        return promise.futureResult
    }

    /// A bootstrap used once, either now or after an evicted connection closed: never by two threads at once.
    private struct BootstrapHandOver: @unchecked Sendable {
        let bootstrap: ClientBootstrap
    }

    /// Evictions of idle connections for connects over the budget (tests).
    var evicted: Int { evictedCount.load(ordering: .relaxed) }
    /// Idle connections closed at their pool's `idle_timeout` (tests).
    var expired: Int { expiredCount.load(ordering: .relaxed) }
    /// Connections whose `idle_timeout` check is scheduled (tests): only open ones.
    var idleChecksPending: Int { idleChecksCount.load(ordering: .relaxed) }

    /// ``connect(_:on:host:port:pool:use:idleTimeout:)`` once it holds a unit.
    private func connectHoldingUnit(
        _ bootstrap: ClientBootstrap, host: String, port: Int, pool: String,
        use: BackendConnectionUse, idleTimeout: TimeAmount?
    ) -> EventLoopFuture<any Channel> {
        bootstrap.connect(host: host, port: port).flatMapErrorThrowing { [self] error in
            release()
            guard Self.isOutOfDescriptors(error) else { throw error }
            refusedByKernel()
            throw BackendErrors.connectionBudgetExhausted(pool: pool, limit: limit, outOfDescriptors: true)
        }.map { [self] channel in
            let key = ObjectIdentifier(use)
            registry.withLock { $0[key] = Registered(channel: channel, use: use) }
            channel.closeFuture.whenComplete { _ in
                // Not in the registry any more: evicted, its unit handed to the connect that evicted it.
                if self.registry.withLock({ $0.removeValue(forKey: key) }) != nil { self.release() }
            }
            if let idleTimeout { expireWhenIdle(use, channel: channel, after: idleTimeout) }
            return channel
        }
    }
}

/// How many calls use one counted backend connection (an HTTP/1.1 connection: 0 or 1; an HTTP/2 one: its
/// streams), and whether ``BackendConnectionBudget`` evicted it, in one atomic word that the connection's pool
/// and the budget flip with compare-exchange: a pool takes a connection only while it is not evicted, the
/// budget evicts one only while no call uses it. So the per-call path takes no lock, and a connection evicted
/// from another loop is never handed to a call. Also when it last became idle (least recently used first, and
/// the pool's `idle_timeout`).
package final class BackendConnectionUse: Sendable {
    /// `users` once evicted: no take succeeds any more (half of `Int.min`: far from overflow either way).
    private static let evictedMark = Int.min / 2
    private let users: Atomic<Int>
    /// `NIODeadline.uptimeNanoseconds` when the last call gave it back.
    private let idleSinceNanoseconds: Atomic<UInt64>

    /// `users`: calls on it from the start (an HTTP/1.1 connection is made for a call: 1; an HTTP/2 one reserves
    /// its first stream itself: 0). `now`: its idle time until a call gives it back (tests set it).
    init(users: Int, now: NIODeadline = .now()) {
        self.users = Atomic(users)
        self.idleSinceNanoseconds = Atomic(now.uptimeNanoseconds)
    }

    /// Takes it for one more call; false once evicted (it is closing: the pool drops it).
    func tryTake() -> Bool {
        var current = users.load(ordering: .relaxed)
        while current >= 0 {
            let (exchanged, original) = users.compareExchange(
                expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// A call is done with it; returns the calls left on it. The last one to leave makes it idle as of now.
    /// (An evictor or idle timer reading the idle time between the count's store and the time's sees the
    /// previous time: it may close this idle connection a little early, never a busy one.)
    @discardableResult
    func put() -> Int {
        let left = users.subtract(1, ordering: .sequentiallyConsistent).newValue
        // The clock is read only when it becomes idle, not for every stream of an HTTP/2 connection.
        if left == 0 { idleSinceNanoseconds.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed) }
        return left
    }

    /// Calls on it now (negative once evicted).
    var count: Int { users.load(ordering: .sequentiallyConsistent) }

    var isIdle: Bool { count == 0 }

    /// When it became idle (`NIODeadline.uptimeNanoseconds`), nil while a call uses it or once evicted.
    var idleSince: UInt64? {
        guard isIdle else { return nil }
        return idleSinceNanoseconds.load(ordering: .relaxed)
    }

    /// Marks it evicted if no call uses it; true when it did (the caller then closes it).
    func tryEvict() -> Bool {
        users.compareExchange(expected: 0, desired: Self.evictedMark, ordering: .acquiringAndReleasing).exchanged
    }

    /// What the idle timer does at `now`.
    enum Expiry: Equatable {
        /// Not idle `idleTimeout` yet (or busy): look again then.
        case recheck(at: NIODeadline)
        /// Idle `idleTimeout` or longer (or evicted already): close it.
        case expired
    }

    /// Whether it has been idle `idleTimeout` at `now` (at exactly `idleTimeout`, it has: nginx's
    /// `keepalive_timeout` and Envoy's `idle_timeout` close at the limit).
    func expiry(now: NIODeadline, idleTimeout: TimeAmount) -> Expiry {
        let users = count
        if users < 0 { return .expired }
        if users > 0 { return .recheck(at: now + idleTimeout) }
        let end = NIODeadline.uptimeNanoseconds(idleSinceNanoseconds.load(ordering: .relaxed)) + idleTimeout
        return now >= end ? .expired : .recheck(at: end)
    }
}
