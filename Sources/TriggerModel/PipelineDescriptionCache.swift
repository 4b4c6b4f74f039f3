import Synchronization

/// Pipeline descriptions as runners last gave them, each kept for `ttl`: every surface asks before it acts
/// (Craft AI's `run_pipeline` reads the pipeline first, Abacus.AI's calls check `pipelineId`, Instill's
/// `GetNamespacePipeline` shows it), and a burst of calls should cost the runner one `Describe`, not one each.
///
/// Only answers are kept: a failure (an unknown pipeline, a runner that is down) is asked again next time, so
/// a pipeline that appears, or a runner that comes back, is seen at once. A runner that cannot be asked (down,
/// slow, broken: any error but `.notFound`, which is its answer) gets the description it last gave in this
/// generation, however old, as a cache serves a stale response on error (RFC 5861 §4, `stale-if-error`): a runner
/// that is down has not changed its pipelines, and clients act on what a description says (craft-ai-sdk's
/// `run_pipeline` uploads the inputs it says are files: during an outage an empty description made it send a
/// file's path as a string, and the run "succeeded" without the file). With no description kept, the error
/// stands.
///
/// One cache per configuration generation (the `TriggerDispatcher` holds it), so a reload starts empty: a route
/// that now goes to another pool is never described by the old one.
///
/// Concurrent asks for one pipeline are merged (single-flight, as a cache collapses concurrent misses): a caller
/// that finds an ask of the runner in flight waits for its answer rather than asking again, so a burst of first
/// calls (every SDK's `run_pipeline`, a queue of async accepts) costs the runner one `Describe`. The ask runs on
/// its own (bounded by the transport: the http and grpc pools' `request_timeout`; an in-process runner answers at
/// once), whoever waits: a caller may stop waiting sooner (`waitingAtMost`, a client gone) and the answer is still
/// kept for the next. At most ``maximumAsks`` pipelines are asked about at once.
///
/// Time is `now` (monotonic; a test passes a clock it moves), and a bounded wait ends through `sleep` (a test
/// passes one it ends). An entry read `ttl` or more after it was stored is stale and asked for again.
package final class PipelineDescriptionCache: Sendable {
    /// The default lifetime of an entry: short enough that a runner's changed description shows within
    /// seconds, long enough to fold an SDK's burst of calls (each `run_pipeline` asks first) into one.
    package static let defaultTTL = Duration.seconds(5)
    /// At most this many pipelines are kept; reaching it empties the cache (an id space a client can grow,
    /// behind a `*` route, must not grow memory).
    package static let capacity = 1024

    package let ttl: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let sleep: @Sendable (Duration) async throws -> Void
    private let entries = Mutex<[PipelineRef: (description: PipelineDescription, storedAt: ContinuousClock.Instant)]>(
        [:])
    /// When each pipeline's runner last failed to answer `describe` (at the failure's end, or when a bounded wait
    /// for it ended) with anything but an answer (`.notFound`, `.unimplemented`): the runner is down, slow or
    /// broken. Cleared by its next answer. A caller's own cancellation only ends its wait.
    private let unanswered = Mutex<[PipelineRef: ContinuousClock.Instant]>([:])
    /// The ask in flight for each pipeline: at most one each, at most ``maximumAsks`` in all.
    private let asks = Mutex<[PipelineRef: SharedAsk]>([:])

    /// `sleep` ends a bounded wait: it must return (or throw) at once when its task is cancelled, as
    /// `Task.sleep` does.
    package init(
        ttl: Duration = PipelineDescriptionCache.defaultTTL,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.ttl = ttl
        self.now = now
        self.sleep = sleep
    }

    /// The description of `ref`: the kept one while it is younger than `ttl`, else `describe`'s answer, which
    /// is kept (`.unimplemented`, a runner without `Describe`, answers the empty description, which takes any
    /// inputs, unless a non-empty one is kept); when `describe` fails with anything but `.notFound`, the kept one
    /// however old (a `CancellationError` from the transport is such a failure, `.unavailable`). `describe` is
    /// called by at most one caller at a time per `ref`; the others wait for its outcome.
    ///
    /// `waitingAtMost`: how long this caller waits for an ask (nil: until it ends). Past it the runner counts as
    /// unanswered (``recentlyUnanswered(_:)``) and the caller gets the kept description however old, or
    /// `.deadlineExceeded`; the ask goes on and its answer is kept.
    ///
    /// - Throws: what `describe` throws when nothing is kept, and its `.notFound` always (the kept entry is
    ///   dropped then: the runner said the pipeline is gone); `CancellationError` when the caller is cancelled
    ///   (the ask goes on).
    ///
    /// Past ``maximumAsks`` pipelines asked about at once, a bounded caller does not wait: it gets the kept
    /// description however old, or `.deadlineExceeded`, and the runner is not marked; an unbounded one asks on
    /// its own, unshared, as before asks were shared (its cancellation is its own then).
    package func description(
        of ref: PipelineRef,
        waitingAtMost bound: Duration? = nil,
        describe: @escaping @Sendable () async throws -> PipelineDescription
    ) async throws -> PipelineDescription {
        let arrived = now()
        if let kept = fresh(ref, at: arrived) { return kept }
        enum Joined {
            case kept(PipelineDescription)
            case ask(SharedAsk, isNew: Bool)
            case full
        }
        let joined = asks.withLock { asks -> Joined in
            if let pending = asks[ref] { return .ask(pending, isNew: false) }
            // Read again under the lock: an ask that ended since the first read kept its answer before it left
            // the map, so a caller never asks twice for one answer.
            if let kept = fresh(ref, at: arrived) { return .kept(kept) }
            guard asks.count < Self.maximumAsks else { return .full }
            let ask = SharedAsk()
            asks[ref] = ask
            return .ask(ask, isNew: true)
        }
        switch joined {
        case .kept(let description):
            return description
        case .full:
            // As many pipelines are being asked about as are allowed at once (a `*` route's id space in front
            // of a runner that hangs): a bounded caller (an async accept) does not wait for one more ask.
            if bound != nil { return try keptOrFailure(ref, "too many pipelines are being described at once") }
            let outcome = await outcome(of: ref, describe: describe)
            // This caller's own ask: its cancellation is the caller's, and says nothing about the runner.
            if Task.isCancelled { throw CancellationError() }
            apply(outcome, to: ref)
            return try outcome.result.get()
        case .ask(let ask, let isNew):
            if isNew {
                // Detached: the ask is every waiter's, not the first caller's (no task-local values, no
                // cancellation of its).
                Task.detached {
                    let outcome = await self.outcome(of: ref, describe: describe)
                    // Out of the map, its entry kept and its mark applied in one step (the map's lock), before
                    // the waiters learn the outcome: a caller after this finds what the ask kept, or starts a new
                    // ask; a waiter whose bound ended marks the runner only while the ask is still in the map.
                    self.asks.withLock { asks in
                        asks.removeValue(forKey: ref)
                        self.apply(outcome, to: ref)
                    }
                    ask.finish(outcome.result)
                }
            }
            do {
                return try await ask.outcome(waitingAtMost: bound, sleep: sleep).get()
            } catch is SharedAsk.WaitEnded {
                asks.withLock { asks in
                    if asks[ref] === ask { record(ref, unansweredAt: now()) }
                }
                return try keptOrFailure(
                    ref, "the runner did not describe it within \(bound.map { "\($0)" } ?? "the bound")")
            }
        }
    }

    /// At most this many pipelines are asked about at once (one ask each, however many wait for it): each may
    /// hold a connection to the runner for up to `request_timeout`.
    package static let maximumAsks = 64

    /// The kept description of `ref` while it is younger than `ttl` at `instant`.
    private func fresh(_ ref: PipelineRef, at instant: ContinuousClock.Instant) -> PipelineDescription? {
        guard let kept = entries.withLock({ $0[ref] }), kept.storedAt.duration(to: instant) < ttl else { return nil }
        return kept.description
    }

    /// What a caller that stopped waiting (or did not wait) gets: the kept description however old, or
    /// `.deadlineExceeded` saying `why`.
    private func keptOrFailure(_ ref: PipelineRef, _ why: String) throws -> PipelineDescription {
        if let kept = entries.withLock({ $0[ref] }) { return kept.description }
        throw GatewayError(.deadlineExceeded, "describing \(ref): \(why)")
    }

    /// Marks `ref`'s runner unanswered at `unansweredAt`, or clears the mark (nil: it answered).
    private func record(_ ref: PipelineRef, unansweredAt: ContinuousClock.Instant?) {
        unanswered.withLock { unanswered in
            guard let unansweredAt else {
                unanswered.removeValue(forKey: ref)
                return
            }
            if unanswered.count >= Self.capacity { unanswered.removeAll() }
            unanswered[ref] = unansweredAt
        }
    }

    /// What one ask of the runner gives its callers and leaves in the cache.
    private struct Outcome {
        var result: Result<PipelineDescription, any Error>
        /// The entry to keep (and when it was asked for), or nil to leave the entries as they are.
        var keep: (description: PipelineDescription, askedAt: ContinuousClock.Instant)?
        /// The runner said the pipeline is gone: its entry is dropped.
        var drop = false
        /// When the runner failed to answer; nil: it answered (the mark is cleared).
        var unansweredAt: ContinuousClock.Instant?
    }

    /// Keeps or drops `ref`'s entry and sets or clears its mark, as `outcome` says.
    private func apply(_ outcome: Outcome, to ref: PipelineRef) {
        if let keep = outcome.keep {
            entries.withLock { entries in
                if entries.count >= Self.capacity { entries.removeAll() }
                entries[ref] = (keep.description, keep.askedAt)
            }
        } else if outcome.drop {
            _ = entries.withLock { $0.removeValue(forKey: ref) }
        }
        record(ref, unansweredAt: outcome.unansweredAt)
    }

    /// One ask of the runner: what its callers get and what it leaves in the cache (``apply(_:to:)``). A
    /// `CancellationError` is a failure like any other, `.unavailable`: a shared ask is no caller's, so one can
    /// only come from the transport, and a waiter must not take it for its own.
    private func outcome(of ref: PipelineRef, describe: () async throws -> PipelineDescription) async -> Outcome {
        let asked = now()
        let description: PipelineDescription
        do {
            description = try await describe()
        } catch let error as GatewayError where error.code == .notFound {
            return Outcome(result: .failure(error), drop: true)
        } catch let error as GatewayError where error.code == .unimplemented {
            // A runner without `Describe` (or a 404/405/501 that names no pipeline): it takes any inputs, an
            // answer kept as one. But not over a description it gave: a proxy in front of a runner that is down
            // answers so too, and the kept description is what the clients need then.
            if let kept = entries.withLock({ $0[ref] }), kept.description != PipelineDescription() {
                return Outcome(result: .success(kept.description))
            }
            description = PipelineDescription()
        } catch {
            let failedAt = now()
            let error =
                error is CancellationError
                ? GatewayError(.unavailable, "the runner's Describe of \(ref) was cut short") : error
            guard let kept = entries.withLock({ $0[ref] }) else {
                return Outcome(result: .failure(error), unansweredAt: failedAt)
            }
            return Outcome(result: .success(kept.description), unansweredAt: failedAt)
        }
        return Outcome(result: .success(description), keep: (description, asked))
    }

    /// Whether the runner failed to answer a `describe` of `ref` (down, slow, broken), or a bounded wait for its
    /// answer ended first, less than `ttl` before now, counted from that failure, with no answer since. An async
    /// accept, which only asks to refuse a pipeline the runner lacks, does not wait for the runner again then:
    /// it would wait out its bound each time. Other callers ask (or wait) each time, so a runner that comes back
    /// is seen at once.
    package func recentlyUnanswered(_ ref: PipelineRef) -> Bool {
        guard let failedAt = unanswered.withLock({ $0[ref] }) else { return false }
        return failedAt.duration(to: now()) < ttl
    }
}

/// One ask of a runner in flight and the callers waiting for it; each waiter may stop waiting on its own (its
/// bound, its cancellation) without ending the ask.
private final class SharedAsk: Sendable {
    /// A waiter's bound ended before the ask did.
    struct WaitEnded: Error {}

    private typealias Outcome = Result<PipelineDescription, any Error>

    private struct State {
        var outcome: Outcome?
        var waiters: [Int: CheckedContinuation<Outcome, Never>] = [:]
        /// Waiters that stopped (cancelled, bound ended) before they were registered: each is answered with its
        /// error as it registers, so a cancellation that comes first is not lost.
        var stoppedEarly: [Int: any Error] = [:]
        /// The waiters whose wait has not returned: a stop for any other (a timer that fires late) is dropped.
        var active: Set<Int> = []
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    /// The ask's outcome, once: every waiter gets it.
    func finish(_ outcome: Result<PipelineDescription, any Error>) {
        let waiters = state.withLock { state in
            state.outcome = outcome
            state.stoppedEarly = [:]
            state.active = []
            defer { state.waiters = [:] }
            return state.waiters
        }
        for waiter in waiters.values { waiter.resume(returning: outcome) }
    }

    /// The outcome, or `WaitEnded` after `bound` (through `sleep`), or `CancellationError` when the caller is
    /// cancelled first.
    func outcome(
        waitingAtMost bound: Duration?, sleep: @escaping @Sendable (Duration) async throws -> Void
    ) async -> Result<PipelineDescription, any Error> {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            state.active.insert(state.nextWaiter)
            return state.nextWaiter
        }
        let timer = bound.map { bound in
            Task {
                try await sleep(bound)
                self.stop(id, with: WaitEnded())
            }
        }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Outcome, Never>) in
                let ready: Outcome? = state.withLock { state in
                    if let outcome = state.outcome { return outcome }
                    if let error = state.stoppedEarly.removeValue(forKey: id) { return .failure(error) }
                    state.waiters[id] = waiter
                    return nil
                }
                if let ready { waiter.resume(returning: ready) }
            }
        } onCancel: {
            stop(id, with: CancellationError())
        }
        // Gone from the waiters: a stop that comes later (a timer that fired meanwhile) leaves nothing behind.
        state.withLock { state in
            state.active.remove(id)
            state.stoppedEarly.removeValue(forKey: id)
        }
        timer?.cancel()
        return outcome
    }

    /// Ends waiter `id`'s wait with `error`, unless the outcome came first.
    private func stop(_ id: Int, with error: any Error) {
        let waiter = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
            if state.outcome == nil, state.active.contains(id) { state.stoppedEarly[id] = error }
            return nil
        }
        waiter?.resume(returning: .failure(error))
    }
}
