import FoundationEssentials
import GatewayConfig
import OperationStore

/// Decides what the async dispatcher claims, so that it never holds more runs for a backend pool than the
/// pool can take (issue 13, item 6).
///
/// Why: a claimed operation is leased to this instance. Claiming up to the worker count regardless of the
/// pools would park runs here, waiting for a slot under renewed leases, while another instance behind the
/// same PostgreSQL has capacity for them; and their start time would be the claim, not the run.
///
/// The store knows pipelines (`OperationFilter.pipelineKey`), not pools, and routes may use wildcards, so the
/// planner learns which pool each pipeline key is routed to from the operations it claims: keys it knows are
/// claimed per pool (`ClaimScope.only`) up to that pool's free slots; keys it does not know are claimed one
/// at a time (`ClaimScope.excluding` every known key), which teaches it their pool. So at most one claimed
/// run per round can find its pool full; it then waits for a slot as before (never failing, never spending
/// an attempt).
///
/// A pipeline no route matches here (a route a reload removed, or one this instance never had while another
/// instance sharing the store has it) is claimed by the discovery claim once, handed back (no attempt spent) and
/// then not claimed again until the next reload (`forgetRoutes`): its operations stay queued, for the reload that
/// brings the route back or for an instance that has it, as for a runner that is down (review 18, F8: a reload that
/// dropped a route failed every queued operation of it at once, NOT_FOUND, attempts 1). Claimed every round, they
/// would be claimed and handed back in a loop.
///
/// A pool's free slots for claiming: `min(maxConcurrency − own runs on it, maxConcurrency − slots in use)`,
/// i.e. neither more of this instance's runs than the pool has slots, nor any while sync and stream
/// traffic keeps every slot busy. Pipeline keys carry no release, so releases of one pipeline routed to
/// different pools share the budget of the pool last seen for that key.
///
/// A pool no runner can be reached on gets no claims (else, while a runner stays down, every queued operation of
/// it would be claimed, refused and handed back once per back-off: two store writes each, spending nothing but
/// the store's time). Two signs of that:
/// - the pool's balancer has no available endpoint (`Load.reachable` false: each is ejected or failing its active
///   health check). Claims resume once one is back; nothing signals that, so the dispatcher looks again at
///   least every poll interval;
/// - a run of the pool ended with a call that reached no runner (`notSent`, e.g. connection refused: the only
///   sign when the pool has one endpoint and no health check). The pool is then *unreached* for a back-off that
///   grows with the outage (`StoreConfiguration.notSentBackoff`, 1 s to 30 s, from the first such run); after
///   it, one operation is claimed as a probe, and claims resume in full when a run reaches a runner again.
struct ClaimPlanner {
    /// A pool's size and current use, as `TriggerDispatcher.load(ofPool:)` reports it.
    struct Load: Equatable {
        var maxConcurrency: Int
        var inUse: Int
        /// Whether any endpoint of the pool may be picked on its own merits (`BackendPool.hasAvailableEndpoint`).
        var reachable = true
    }

    /// A pool whose last run reached no runner: since when (the first such run of the outage) and until when
    /// nothing more is claimed for it.
    struct Outage: Equatable {
        var since: Date
        var until: Date
    }

    /// One claim to make: `limit` operations among `scope`, of the keys routed to one pool, or (discovery) of keys
    /// not seen yet.
    struct Claim: Equatable {
        var scope: ClaimScope
        var limit: Int

        /// The discovery claim: pipelines whose pool is not known yet (every other claim names its keys).
        var isDiscovery: Bool {
            if case .only = scope { return false }
            return true
        }
    }

    /// Pipeline key → the pool it is routed to (nil when no route matches it).
    private(set) var poolOfKey: [String: String?] = [:]
    /// Pool → this instance's runs on it, claimed and not finished.
    private(set) var outstanding: [String: Int] = [:]
    /// Pools whose last run here reached no runner (see the type's documentation).
    private(set) var outages: [String: Outage] = [:]

    /// Bound on the keys remembered: a wildcard route lets clients name any pipeline, so the key set is
    /// not bounded by the configuration. Past it the planner starts over (one discovery claim per key again).
    static let maxKnownKeys = 4096

    /// The claims for this round, in order: each known pool with free slots, then one discovery claim (its scope is `.all` or `.excluding`, the others' `.only`) when `discover` is true or
    /// no key is known yet. Each limit is bounded by the pool's free slots and by `batch`, not by the free
    /// workers: the caller makes them in order, each at most the workers still free after the claims before
    /// it returned (a claim may return fewer than it asked for, so that cannot be planned here). Keys no route
    /// matches (`unrouted`) get no claim, and the discovery claim excludes them.
    ///
    /// `discover`: whether an operation of a key not known here may be queued. The discovery claim reads every
    /// queued operation of the known keys before it can answer none (on PostgreSQL, a few ms per 10 000 queued),
    /// so the dispatcher skips it while nothing new can be there.
    ///
    /// A pool that is not `reachable`, or unreached until after `now`, gets no claim; one unreached until `now` or
    /// earlier gets one probe (limit 1) when none of its runs is in progress here.
    func plan(batch: Int, discover: Bool = true, now: Date = .distantFuture, load: (String) -> Load?) -> [Claim] {
        var keysOfPool: [String: Set<String>] = [:]
        for case (let key, let pool?) in poolOfKey {
            keysOfPool[pool, default: []].insert(key)
        }
        var claims: [Claim] = []
        for pool in keysOfPool.keys.sorted() {
            guard let load = load(pool) else { continue }
            guard load.reachable else { continue }
            let own = outstanding[pool, default: 0]
            var limit = min(load.maxConcurrency - own, load.maxConcurrency - load.inUse, batch)
            if let outage = outages[pool] {
                guard outage.until <= now, own == 0 else { continue }
                limit = min(limit, 1)
            }
            guard limit > 0 else { continue }
            claims.append(Claim(scope: .only(keysOfPool[pool]!), limit: limit))
        }
        if poolOfKey.isEmpty {
            claims.append(Claim(scope: .all, limit: 1))
        } else if discover {
            claims.append(Claim(scope: .excluding(Set(poolOfKey.keys)), limit: 1))
        }
        return claims
    }

    /// Whether `key`'s pool is known (an operation of it was claimed here since the last `forgetRoutes`).
    func knows(_ key: String) -> Bool {
        poolOfKey[key] != nil
    }

    /// The keys whose last claimed operation no route matched (nil pool), sorted: not claimed until the next
    /// `forgetRoutes`.
    var unrouted: [String] {
        poolOfKey.compactMap { $0.value == nil ? $0.key : nil }.sorted()
    }

    /// Records a claimed operation of `key`, routed to `pool` (nil: no route matches it; it is handed back, not
    /// run, and `key` is claimed no more until `forgetRoutes`).
    mutating func claimed(key: String, pool: String?) {
        if poolOfKey[key] == nil, poolOfKey.count >= Self.maxKnownKeys { poolOfKey = [:] }
        poolOfKey[key] = .some(pool)
        if let pool { outstanding[pool, default: 0] += 1 }
    }

    /// Records the end of a run claimed for `pool`.
    mutating func finished(pool: String?) {
        guard let pool, let count = outstanding[pool] else { return }
        outstanding[pool] = count > 1 ? count - 1 : nil
    }

    /// A run of `pool` ended with a call that reached no runner, at `now`: the pool gets no claims until the
    /// returned instant (`now` plus `StoreConfiguration.notSentBackoff` of the outage so far), then one probe.
    @discardableResult
    mutating func unreached(pool: String?, now: Date) -> Date? {
        guard let pool else { return nil }
        let since = outages[pool]?.since ?? now
        let down = Duration.milliseconds(Int64(max(now.timeIntervalSince(since), 0) * 1000))
        let until = now.addingTimeInterval(seconds(StoreConfiguration.notSentBackoff(waited: down)))
        let outage = Outage(since: since, until: max(until, outages[pool]?.until ?? until))
        outages[pool] = outage
        return outage.until
    }

    /// A run of `pool` reached a runner (whatever its result): the outage, if any, is over.
    mutating func reached(pool: String?) {
        guard let pool else { return }
        if outages[pool] != nil { outages[pool] = nil }
    }

    /// The earliest instant after `now` at which an unreached pool may be probed (nil when there is none): the
    /// claim loop wakes then at the latest. An outage whose wait is over is not one: its probe is claimed, or
    /// waits for its run in progress or for an operation to become due, on the loop's usual wake-ups (a run's
    /// end, the poll interval); an instant already passed would make the loop wait for nothing and spin.
    func nextProbe(after now: Date) -> Date? {
        outages.values.lazy.map(\.until).filter { $0 > now }.min()
    }

    /// A config reload: routes and pools changed, so every key's pool is learnt again, and pools unreached so far
    /// are tried at once (the reload may have fixed their endpoints). Runs in progress keep counting against the
    /// pool name they started on until they finish.
    mutating func forgetRoutes() {
        poolOfKey = [:]
        outages = [:]
    }
}
