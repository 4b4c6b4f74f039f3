package import NIOCore
import NIOPosix
package import Observability
import Synchronization
package import TriggerModel

/// One named pool of backend endpoints behind a concurrency limit: what a route points at.
///
/// The pool owns its transport (in-process runner, HTTP/1.1 client, or gRPC client) and applies what is
/// common to all of them: the concurrency limit with its bounded queue, and the effective deadline (the
/// earlier of the client's deadline and the pool's request timeout).
package final class BackendPool: TriggerRunner {
    package let configuration: BackendPoolConfiguration
    let transport: any TriggerRunner
    /// `transport` when its calls can report to a closure (http, grpc): the event-loop path then makes no
    /// promise of its own besides the pool's (issue 11). Cast once here, not per call.
    private let loopTransport: (any LoopCallingTransport)?
    private let limiter: ConcurrencyLimiter
    /// The pool's instruments on /metrics; nil records nothing (unit tests). The transport records per endpoint
    /// on the same object (it was given it when built).
    package let metrics: PoolMetrics?
    /// The loops the `async` path's calls (``run(_:)``) run on, each with its deadline's timer on that loop's
    /// clock like a frontend's call (issue 11: no task group and no sleeping task per call). Nil: the
    /// transport's own group for http and grpc, NIO's shared group for a transport without one (the in-process
    /// runner: GatewayApp passes its group). Tests pass a `NIOAsyncTestingEventLoop` to move the deadline by hand.
    private let eventLoopGroup: (any EventLoopGroup)?
    /// Looked up when an `async` call comes: a pool that only serves frontends starts no shared group's threads.
    private var asyncLoops: any EventLoopGroup {
        eventLoopGroup ?? loopTransport?.group ?? MultiThreadedEventLoopGroup.singleton
    }
    /// The sync calls' deadlines, one queue per loop of ``eventLoopGroup`` (the transport's group without one): the
    /// deadlines this pool's calls arm on a loop are the arrival plus one timeout (`request_timeout`), in about
    /// arrival order, so each loop's are a FIFO behind one NIO timer (``LoopDeadlineQueue``). By the loop's
    /// identity, fixed here: reading it needs no lock, and each queue is only touched on its own loop.
    private let deadlineQueues: LoopTable<LoopDeadlineQueue>

    package init(
        configuration: BackendPoolConfiguration,
        transport: any TriggerRunner,
        metrics: PoolMetrics? = nil,
        eventLoopGroup: (any EventLoopGroup)? = nil
    ) {
        self.configuration = configuration
        self.transport = transport
        self.loopTransport = transport as? any LoopCallingTransport
        self.metrics = metrics
        self.eventLoopGroup = eventLoopGroup
        if let group = eventLoopGroup ?? (transport as? any LoopCallingTransport)?.group {
            deadlineQueues = LoopTable(group: group) { LoopDeadlineQueue(eventLoop: $0) }
        } else {
            deadlineQueues = LoopTable()
        }
        self.limiter = ConcurrencyLimiter(
            name: configuration.name,
            maxConcurrency: configuration.maxConcurrency,
            maxQueue: configuration.maxQueue,
            metrics: metrics
        )
    }

    package var name: String { configuration.name }

    /// Slots of `max_concurrency` held now by calls and streams.
    package var slotsInUse: Int { limiter.running }

    /// Calls and background runs waiting for a slot now.
    package var callsQueued: Int { limiter.queued }

    /// Whether a call may reach a runner now, as far as the pool knows: false while every endpoint of a network
    /// pool is ejected or failing its active health check (``EndpointBalancer/hasAvailableEndpoint(now:)``);
    /// always true for an in-process runner. The async dispatcher claims nothing for a pool while it is false.
    package var hasAvailableEndpoint: Bool {
        (transport as? any BalancedTransport)?.balancer.hasAvailableEndpoint() ?? true
    }

    /// A reload removed or replaced this pool: calls already in flight finish, then its connections close.
    /// New calls never reach it (the route table that named it is gone), except the few that picked it just
    /// before the swap; they run normally and their connections close after them.
    package func retire() {
        (transport as? any RetirableTransport)?.retire()
    }

    /// The `async` form (the async dispatcher's runs, control work): the loop path of
    /// ``run(_:on:cancellation:completion:)`` on one of the pool's loops (``asyncLoops``), awaited; cancelling
    /// the awaiting task cancels the call (out of the queue, or the transport's call).
    ///
    /// Background work (``TriggerRequest/waitsForCapacity``) is never refused by the gateway's own limit and its
    /// request timeout starts with the slot (an earlier deadline of the caller's own, if it brought one, wins).
    /// Other callers' deadline counts from now, as a frontend's does from the request's arrival.
    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        try await run(request, cancellation: TriggerCancellation())
    }

    /// ``run(_:)`` under the caller's `cancellation`, which keeps what the tries told (its ``TriggerCancellation/
    /// endpoint`` and ``TriggerCancellation/upstream``) for the caller to read once the call ended: the async
    /// dispatcher's `operation run` line.
    package func run(_ request: TriggerRequest, cancellation: TriggerCancellation) async throws -> TriggerResult {
        let loop = asyncLoops.next()
        let request = request.waitsForCapacity ? request : withEffectiveDeadline(request, now: loop.now)
        return try await TriggerCancellation.awaiting(using: cancellation) { cancellation in
            let promise = loop.makePromise(of: TriggerResult.self)
            run(request, on: loop, pinned: false, cancellation: cancellation) { promise.completeWith($0) }
            return promise.futureResult
        }
    }

    /// The frontends' sync path: the slot, the effective deadline and the transport's call all on `eventLoop`
    /// (DESIGN.md "Threading model"); no task unless the transport is not loop-native (the in-process runner).
    /// The future form of ``run(_:on:cancellation:completion:)``.
    package func run(
        _ request: consuming TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        let promise = eventLoop.makePromise(of: TriggerResult.self)
        run(request, on: eventLoop, cancellation: cancellation) { promise.completeWith($0) }
        return promise.futureResult
    }

    /// The frontends' sync path, its outcome reported once to `completion` on `eventLoop` (issue 11: no promise
    /// and no future; the deadline's timer is a NIO scheduled callback, which makes no promise either).
    ///
    /// Over the limit with room in the queue, the call waits for a slot (cancelling it takes it out of the
    /// queue); with no room it fails `.overloaded` at once. The request's deadline is the one the frontend set
    /// (this pool's request timeout included); without one, the pool's request timeout starts with the slot, as
    /// in ``run(_:)``. At the deadline the caller gets `.deadlineExceeded` at once and the transport's call is
    /// cancelled; the slot is given back when that call has ended.
    ///
    /// `request` is consumed, and moved down to the transport's call (issue 11: its copy there retained the
    /// request's dozen strings, and destroying the caller's released them, ~1 100 instructions per call).
    package func run(
        _ request: consuming TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation,
        completion: @escaping (Result<TriggerResult, any Error>) -> Void
    ) {
        run(request, on: eventLoop, pinned: true, cancellation: cancellation, completion: completion)
    }

    /// `pinned`: the call is on a frontend's loop and goes out on that loop's own backend connections, with
    /// this pool's timer as its only deadline; otherwise (the `async` form, on one of ``asyncLoops``) on the
    /// transport's shared connections, which bound the stream by the deadline too, as they do for any caller
    /// on no loop of theirs.
    private func run(
        _ request: consuming TriggerRequest,
        on eventLoop: any EventLoop,
        pinned: Bool,
        cancellation: TriggerCancellation,
        completion: @escaping (Result<TriggerResult, any Error>) -> Void
    ) {
        let call = PoolCall(
            pool: configuration.name, timeout: configuration.requestTimeout, limiter: limiter,
            cancellation: cancellation, eventLoop: eventLoop, pinned: pinned,
            background: request.waitsForCapacity, clientDeadline: request.deadlineIsClients,
            requestTimeoutDeadline: request.requestTimeoutDeadline, metrics: metrics, completion: completion)
        if !call.background, limiter.tryAcquire() {
            // The common case: a slot is free, so no waiter closure is made, and on the loop no closure at all.
            if eventLoop.inEventLoop {
                startCall(request, on: eventLoop, call)
            } else {
                // Captured by value (a capture list): a `consuming` parameter captured by reference would be boxed
                // on entry, on the common path too.
                eventLoop.execute { [request] in self.startCall(request, on: eventLoop, call) }
            }
            return
        }
        let start: @Sendable () -> Void = { [self, request] in startCall(request, on: eventLoop, call) }
        // The wait for the slot, for the record's `queue_duration_us`: measured here, where the slot is handed over
        // (a call that queues without a deadline of its own, background work, arms no queue timer).
        let queuedAt = NIODeadline.now()
        do {
            // Background work waits in its own queue, behind callers, and is never refused.
            let onSlot: @Sendable () -> Void = {
                cancellation.waitedForSlot(nanoseconds: (NIODeadline.now() - queuedAt).nanoseconds)
                eventLoop.execute(start)
            }
            // Set before the call can be queued, not after: a slot released on another thread as the call queues
            // starts it at once, and its transport sets the cancellation's handler; set after that, this one
            // replaced the transport's, so the deadline no longer stopped the run and its slot stayed taken until
            // the run ended by itself (a CI failure, PoolDeadlineTests). Weak: while queued the limiter's waiter
            // holds the call, and a call answered before its transport set a handler (refused, its deadline gone)
            // must not be kept alive by its cancellation, nor keep it.
            cancellation.whenCancelled { [weak call] in call?.withdrawFromQueue() }
            switch try limiter.acquire(background: call.background, onSlot: onSlot) {
            case .granted:
                if eventLoop.inEventLoop { start() } else { eventLoop.execute(start) }
            case .queued(let id):
                call.queueID.store(id, ordering: .sequentiallyConsistent)
                // Cancelled before the id was known: its handler found nothing to withdraw.
                if cancellation.isCancelled { call.withdrawFromQueue() }
                if !call.background, let deadline = request.deadline {
                    let pool = configuration.name
                    let armQueueTimer: @Sendable () -> Void = {
                        call.armQueueTimer(deadline: deadline, id: id, pool: pool)
                    }
                    if eventLoop.inEventLoop { armQueueTimer() } else { eventLoop.execute(armQueueTimer) }
                }
            }
        } catch {
            call.reportOnLoop(.failure(error))
        }
    }

    /// A sync call that holds a slot, on `eventLoop`: the deadline's timer, then the transport's call, whose
    /// outcome gives the slot back and is reported unless the deadline was first.
    private func startCall(_ request: consuming TriggerRequest, on eventLoop: any EventLoop, _ call: PoolCall) {
        eventLoop.assertInEventLoop()
        call.slotGranted()
        guard !call.cancellation.isCancelled else {
            limiter.release()
            call.report(.failure(CancellationError()))
            return
        }
        // The frontends decide the deadline once, with this pool's request timeout folded in, from the
        // request's arrival (GatewayServer's RequestContext); the pool enforces it, it does not re-derive it.
        // A caller without one gets the pool's own, from the slot. All on the loop's clock (the real one
        // in production, virtual on NIO's test loops).
        // Background work's request timeout also starts with the slot, whatever deadline it brought.
        guard let deadline = request.deadline, !call.background else {
            call.background = false
            startCall(withEffectiveDeadline(request, now: eventLoop.now), on: eventLoop, call)
            return
        }
        // A call that waited for its slot with less left of its deadline than is worth sending: answered as the
        // queue's deadline, not sent (review 21, M2: runners were given 1 ms and reported as not answering).
        if call.waitedInQueue != nil,
            deadline - eventLoop.now < Self.minimumTimeToSend(timeout: configuration.requestTimeout)
        {
            limiter.release()
            call.queueDeadlinePassed()
            return
        }
        // The request's own deadline (the client's `grpc-timeout`, or `timeouts.request`, both from the head's
        // arrival) passed before the call could start, while the client was still sending its body. Nothing goes
        // to the runner, and no endpoint is blamed (review 18, F1).
        if deadline <= eventLoop.now {
            limiter.release()
            call.report(.failure(BackendErrors.deadlineBeforeCall(pool: configuration.name)))
            return
        }
        do {
            try call.armTimer(deadline: deadline, queue: deadlineQueues[eventLoop])
        } catch {
            // The loop is shutting down: nothing can run on it any more.
            limiter.release()
            call.report(.failure(error))
            return
        }
        if let loopTransport {
            loopTransport.call(request, on: eventLoop, pinned: call.pinned, cancellation: call.cancellation) {
                call.transportEnded($0)
            }
        } else {
            transport.run(request, on: eventLoop, cancellation: call.cancellation).hop(to: eventLoop)
                .whenComplete { call.transportEnded($0) }
        }
    }

    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        do {
            return try openStream(request)
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }

    /// A stream that holds one of the pool's slots for its whole life (issue 13 item 5): over the limit and the
    /// queue it throws `.overloaded` at once, so the frontend answers 503 + Retry-After / UNAVAILABLE
    /// before the first byte; with room in the queue it waits for its slot when first pulled. The slot is given
    /// back when the stream ends, fails, or is dropped.
    ///
    /// Streams are bounded by the idle timeout of the frontend, not by the request timeout: a long stream that
    /// keeps producing is not cut (issue "stream mode" item 4). Only the client's own deadline applies.
    package func openStream(_ request: TriggerRequest) throws -> AsyncThrowingStream<TriggerEvent, any Error> {
        let slot = StreamSlot(limiter: limiter, granted: try limiter.admit() == .granted)
        let relay = StreamRelay(transport: transport, request: request)
        return AsyncThrowingStream(unfolding: {
            do {
                if !slot.held {
                    try await slot.acquire()
                }
                let event = try await relay.next()
                if event == nil { slot.release() }
                return event
            } catch {
                slot.release()
                throw error
            }
        })
    }

    /// ``openStream(_:)`` for a frontend's event loop: the same slot rules (refused at once over the limit and
    /// the queue, waiting in the queue before the first event otherwise, the slot held until the stream ends,
    /// fails, is cancelled or dropped), the events pulled from the transport on `eventLoop`.
    package func admitStream(_ request: TriggerRequest, on eventLoop: any EventLoop) throws -> any TriggerEventSource {
        let granted = try limiter.admit() == .granted
        return PoolStreamSource(
            limiter: limiter,
            granted: granted,
            open: { [transport] in transport.openStream(request, on: eventLoop) },
            eventLoop: eventLoop
        )
    }

    /// ``admitStream(_:on:)`` with a refusal reported by the first pull.
    package func openStream(_ request: TriggerRequest, on eventLoop: any EventLoop) -> any TriggerEventSource {
        do {
            return try admitStream(request, on: eventLoop)
        } catch {
            return FailedEventSource(error, on: eventLoop)
        }
    }

    /// Scrape time: sets the pool's gauges on /metrics from its state (slots in use, queued callers, and per
    /// endpoint whether it is available, ``EndpointBalancer/isShownAvailable(_:now:)``, and its calls in flight).
    /// The counters are recorded as they happen.
    package func collectMetrics() {
        guard let metrics else { return }
        metrics.setLevels(inFlight: limiter.running, queued: limiter.queued)
        (transport as? any BalancedTransport)?.balancer.collectMetrics()
    }

    /// What a caller is told when this pool's call or stream did not answer within `amount`: the one wording of
    /// the pool's deadline (`.deadlineExceeded`: 504 / DEADLINE_EXCEEDED), for the sync call's timer and a
    /// stream's wait for its first event alike.
    package func deadlineExceeded(after amount: TimeAmount) -> GatewayError {
        BackendErrors.deadline(pool: configuration.name, after: describe(amount))
    }

    /// The least of its deadline a call that waited for a slot must have left to be sent: 10 ms, or 1 % of the pool's
    /// request timeout when that is longer (review 21, M2). Below it the runner could not answer in time whatever it
    /// did, so the call is answered as the queue's deadline (``BackendErrors/queueDeadline(pool:waited:clientDeadline:)``)
    /// instead of taking a runner's slot and being counted against it.
    static func minimumTimeToSend(timeout: TimeAmount) -> TimeAmount {
        max(.milliseconds(10), .nanoseconds(timeout.nanoseconds / 100))
    }

    /// `request` with the earlier of its own deadline and `now` plus the pool's request timeout.
    private func withEffectiveDeadline(_ request: TriggerRequest, now: NIODeadline) -> TriggerRequest {
        var request = request
        let poolDeadline = now + configuration.requestTimeout
        if let clientDeadline = request.deadline {
            request.deadline = min(clientDeadline, poolDeadline)
        } else {
            request.deadline = poolDeadline
        }
        return request
    }
}

/// `1.5s`, `250ms`: how durations appear in error messages.
package func describe(_ amount: TimeAmount) -> String {
    let ms = amount.nanoseconds / 1_000_000
    if ms >= 1000, ms % 1000 == 0 { return "\(ms / 1000)s" }
    if ms >= 1000 { return "\(Double(ms) / 1000)s" }
    return "\(max(ms, 0))ms"
}

/// One sync call of a pool (``BackendPool/run(_:on:cancellation:completion:)``), from its slot to its one
/// outcome: the deadline's timer or the transport's answer, whichever comes first, is reported; the slot is
/// given back when the transport's call has ended.
///
/// Its deadline is an entry of its loop's ``LoopDeadlineQueue`` for this pool (O(1) to arm and cancel), or, when
/// it cannot go into that queue (a deadline earlier than those of more than ``LoopDeadlineQueue/maxStepsBack`` calls
/// before it: a caller's shorter one, a call that waited for a slot) or the loop has none (not a loop of the pool's
/// group), a NIO scheduled callback of its own.
///
/// `@unchecked Sendable`: touched only on `eventLoop` (``reportOnLoop(_:)`` hops there); it travels to the loop at
/// most once, and the deadline queue's timer and the scheduled callback run there.
private final class PoolCall: LoopDeadlineEntry, NIOScheduledCallbackHandler, @unchecked Sendable {
    let pool: String
    let timeout: TimeAmount
    let limiter: ConcurrencyLimiter
    let cancellation: TriggerCancellation
    let eventLoop: any EventLoop
    /// On the caller's own loop's backend connections (the frontends), or the transport's shared ones.
    let pinned: Bool
    /// Background work (``TriggerRequest/waitsForCapacity``): queued behind callers, never refused, its
    /// request timeout counted from the slot; cleared once that deadline is set.
    var background: Bool
    /// The request's deadline is the client's own (`TriggerRequest.deadlineIsClients`).
    let clientDeadline: Bool
    /// The configured `timeouts.request` when it set the request's deadline (`TriggerRequest.requestTimeoutDeadline`).
    let requestTimeoutDeadline: TimeAmount?
    /// Counts the deadline (`UT`) against the endpoint the call went to.
    let metrics: PoolMetrics?
    private let completion: (Result<TriggerResult, any Error>) -> Void
    private var timer: NIOScheduledCallback?
    /// While the call waits in the pool's queue: its deadline's timer (``armQueueTimer(deadline:id:pool:)``).
    private var queueTimer: Scheduled<Void>?
    /// The call has its slot (``slotGranted()``): a queue timer armed after that is not needed.
    private var granted = false
    /// When the call went into the pool's queue (``armQueueTimer(deadline:id:pool:)``), until its slot came.
    private var queuedAt: NIODeadline?
    /// How long the call waited in the pool's queue for its slot; nil for a call that found one free (or has no
    /// deadline of its own, whose deadline then counts from the slot).
    private(set) var waitedInQueue: TimeAmount?
    /// From the slot to the deadline, for the error message.
    private var remaining = TimeAmount.zero
    /// The call's deadline, once its timer is armed.
    private var deadline: NIODeadline?
    private var reported = false
    /// The call's place in the limiter's queue once it is queued (0 before: the limiter's ids start at 1).
    let queueID = Atomic<UInt64>(0)

    init(
        pool: String, timeout: TimeAmount, limiter: ConcurrencyLimiter, cancellation: TriggerCancellation,
        eventLoop: any EventLoop, pinned: Bool, background: Bool, clientDeadline: Bool,
        requestTimeoutDeadline: TimeAmount?, metrics: PoolMetrics?,
        completion: @escaping (Result<TriggerResult, any Error>) -> Void
    ) {
        self.clientDeadline = clientDeadline
        self.requestTimeoutDeadline = requestTimeoutDeadline
        self.metrics = metrics
        self.pinned = pinned
        self.background = background
        self.pool = pool
        self.timeout = timeout
        self.limiter = limiter
        self.cancellation = cancellation
        self.eventLoop = eventLoop
        self.completion = completion
        super.init()
    }

    /// Arms the deadline: in `queue` (this loop's queue of the pool) when it can go in, otherwise as a NIO scheduled
    /// callback. Throws when the loop is shutting down.
    func armTimer(deadline: NIODeadline, queue: LoopDeadlineQueue?) throws {
        remaining = deadline - eventLoop.now
        self.deadline = deadline
        if let queue, try queue.insert(self, deadline: deadline) { return }
        timer = try eventLoop.scheduleCallback(at: deadline, handler: self)
    }

    /// A call waiting in the pool's queue (`id`) is answered at its deadline if no slot came by then: withdrawn
    /// from the queue, `.deadlineExceeded` "the request's deadline passed before its call to backend pool P could
    /// start", nothing sent to a runner and no endpoint blamed (review 18, F1: it waited for a slot however long,
    /// past its deadline, and was answered only when one came; Envoy's route timeout likewise covers the wait
    /// for the connection pool). On the loop; rare (only a call that found the pool full is queued), so a
    /// scheduled task of its own.
    func armQueueTimer(deadline: NIODeadline, id: UInt64, pool: String) {
        eventLoop.assertInEventLoop()
        guard !granted, !reported else { return }
        queuedAt = eventLoop.now
        let limiter = self.limiter
        queueTimer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            queueTimer = nil
            // False when the slot was handed over meanwhile: its start, already on its way here, runs the call.
            guard limiter.withdraw(id) else { return }
            waitedInQueue = queuedAt.map { eventLoop.now - $0 }
            queueDeadlinePassed()
        }
    }

    /// The call has its slot: the queue's deadline timer, if any, is no longer needed.
    func slotGranted() {
        granted = true
        waitedInQueue = queuedAt.map { eventLoop.now - $0 }
        queueTimer?.cancel()
        queueTimer = nil
    }

    /// The call's deadline passed, or too little of it was left to send it, while it waited for a slot: answered
    /// as the pool's queue deadline, counted as a `UT` of the pool with no endpoint unless the deadline was the
    /// client's own (review 21, M1). The caller holds no slot.
    func queueDeadlinePassed() {
        if !reported, !clientDeadline { metrics?.recordFailure(endpoint: nil, reason: .requestTimeout) }
        report(
            .failure(
                BackendErrors.queueDeadline(
                    pool: pool, waited: describe(waitedInQueue ?? .zero), clientDeadline: clientDeadline)))
    }

    /// The deadline's timer is armed (queued, or a scheduled callback) and has not fired.
    private var armed: Bool { queue != nil || timer != nil }

    /// The deadline passed on the loop's clock (the queue's timer).
    override func deadlinePassed() {
        deadlineReached()
    }

    /// The deadline passed on the loop's clock (the call's own scheduled callback).
    func handleScheduledCallback(eventLoop: some EventLoop) {
        timer = nil
        deadlineReached()
    }

    /// The deadline: the caller gets `.deadlineExceeded` now, and the transport's call is cancelled.
    private func deadlineReached() {
        let error = deadlineError()
        // A caller's shorter deadline says nothing about the endpoint (as outlier detection already holds). A call
        // that waited for its slot first is counted under the endpoint it ran on, as its access line and warning
        // name it (review 26 I3; its message says how long it waited: review 21, M2); only a call that never got a
        // slot has no endpoint (`queueDeadlinePassed`). Timeouts never eject, so this blames no endpoint's health.
        if !reported, !error.callerDeadline {
            metrics?.recordFailure(endpointNamed: cancellation.endpoint, reason: .requestTimeout)
            cancellation.timedOut = true
        }
        report(.failure(error))
        cancellation.cancel()
    }

    /// The gateway's own words for its deadline: `backend pool "rpc" did not answer within 5s`; or, when the
    /// client's deadline was the shorter, `the client's deadline passed before backend pool "rpc" answered,
    /// 295ms after the call reached it` (the time the pool had, not the client's `grpc-timeout` itself, which
    /// also covered the frontend's work), marked ``GatewayError/callerDeadline``; or, when `timeouts.request` was
    /// the earlier, `backend pool "rpc" did not answer within 60s (timeouts.request, counted from the request's
    /// arrival)`, and after a slow upload `… within the 55s left of timeouts.request (60s, counted from the
    /// request's arrival)`.
    private func deadlineError() -> GatewayError {
        // The deadline counts from the request's arrival, so the frontend's moment before the slot leaves a little
        // less than `request_timeout` (`1s` was "within 999ms", review 9 #15): within 10 ms of it, name it.
        let budget = timeout - remaining < .milliseconds(10) ? timeout : min(remaining, timeout)
        if clientDeadline { return BackendErrors.clientDeadline(pool: pool, after: describe(budget)) }
        if let waited = waitedInQueue, waited >= Self.deadlineRaceSlack {
            return BackendErrors.deadlineAfterQueue(pool: pool, left: describe(budget), waited: describe(waited))
        }
        if let requestTimeout = requestTimeoutDeadline {
            // Within 10 ms of all of it (the frontend's moment before the slot), the timeout itself is named.
            let left = requestTimeout - remaining < .milliseconds(10) ? nil : describe(remaining)
            return BackendErrors.deadlineOfRequest(pool: pool, timeout: describe(requestTimeout), left: left)
        }
        return BackendErrors.deadline(pool: pool, after: describe(budget))
    }

    /// A runner's DEADLINE_EXCEEDED this close to the call's deadline is that deadline, which the runner learned
    /// from us (`grpc-timeout`): its answer and our timer race, and whichever this loop serves first
    /// must not change what the client reads (review 10, finding 6). 10 ms: timer slack, far below any timeout.
    static let deadlineRaceSlack = TimeAmount.milliseconds(10)

    /// The transport's call ended: the slot goes back, and its outcome is reported unless the deadline was. A
    /// DEADLINE_EXCEEDED at (or within ``deadlineRaceSlack`` of) the deadline is reported as the gateway's own.
    func transportEnded(_ result: Result<TriggerResult, any Error>) {
        let armed = self.armed
        queue?.remove(self)
        timer?.cancel()
        timer = nil
        limiter.release()
        if armed, case .failure(let error as GatewayError) = result, error.code == .deadlineExceeded,
            let deadline, eventLoop.now + Self.deadlineRaceSlack >= deadline
        {
            report(.failure(deadlineError()))
            return
        }
        report(result)
    }

    func report(_ result: Result<TriggerResult, any Error>) {
        guard !reported else { return }
        reported = true
        completion(result)
    }

    /// The call was cancelled: out of the queue, and answered as cancelled, if it is still waiting there (once:
    /// the limiter withdraws an id once; a call whose slot came first is left to its transport's handler).
    func withdrawFromQueue() {
        let id = queueID.load(ordering: .sequentiallyConsistent)
        if id != 0, limiter.withdraw(id) { reportOnLoop(.failure(CancellationError())) }
    }

    func reportOnLoop(_ result: Result<TriggerResult, any Error>) {
        if eventLoop.inEventLoop {
            report(result)
        } else {
            eventLoop.execute { self.report(result) }
        }
    }
}

/// One stream's slot of a pool's ``ConcurrencyLimiter``: released once, by the end of the stream or, when it
/// is dropped unfinished, by `deinit`.
private final class StreamSlot: Sendable {
    private let limiter: ConcurrencyLimiter
    /// 0: not held, 1: held, 2: released for good.
    private let state: Atomic<Int>

    init(limiter: ConcurrencyLimiter, granted: Bool) {
        self.limiter = limiter
        self.state = Atomic(granted ? 1 : 0)
    }

    var held: Bool { state.load(ordering: .acquiring) == 1 }

    func acquire() async throws {
        try await limiter.acquire()
        if !state.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged {
            limiter.release()
        }
    }

    func release() {
        if state.exchange(2, ordering: .acquiringAndReleasing) == 1 { limiter.release() }
    }

    deinit {
        if state.load(ordering: .acquiring) == 1 { limiter.release() }
    }
}

/// The transport's stream, started on the first pull (after the slot is held).
///
/// `@unchecked Sendable` because the iterator is not: `AsyncThrowingStream(unfolding:)` calls its closure for one
/// element at a time, so `next()` never overlaps itself and the iterator is only ever touched by one task.
private final class StreamRelay: @unchecked Sendable {
    let transport: any TriggerRunner
    private let request: TriggerRequest
    private var iterator: AsyncThrowingStream<TriggerEvent, any Error>.AsyncIterator?

    init(transport: any TriggerRunner, request: TriggerRequest) {
        self.transport = transport
        self.request = request
    }

    func next() async throws -> TriggerEvent? {
        if iterator == nil { iterator = transport.runStreaming(request).makeAsyncIterator() }
        return try await iterator!.next()
    }
}

/// One stream's slot and transport source, on the frontend's loop (see ``BackendPool/admitStream(_:on:)``).
///
/// `@unchecked Sendable`: touched only on `eventLoop` (the slot's hand-over hops there), except `deinit`.
private final class PoolStreamSource: TriggerEventSource, TriggerEventReceiver, @unchecked Sendable {
    private enum Slot {
        case none
        case queued(UInt64)
        case held
        case released
    }

    private let limiter: ConcurrencyLimiter
    private let open: () -> any TriggerEventSource
    private let eventLoop: any EventLoop
    private var slot: Slot
    private var inner: (any TriggerEventSource)?
    private var cancelled = false
    /// Whom the inner source's pending `next(to:)` answer goes to (held only while it is pending).
    private var receiver: (any TriggerEventReceiver)?

    init(
        limiter: ConcurrencyLimiter, granted: Bool, open: @escaping () -> any TriggerEventSource,
        eventLoop: any EventLoop
    ) {
        self.limiter = limiter
        self.slot = granted ? .held : .none
        self.open = open
        self.eventLoop = eventLoop
    }

    deinit {
        if case .held = slot { limiter.release() }
        // Still queued: leave the queue. Already handed over: the hand-over finds nobody and gives it back.
        if case .queued(let id) = slot { _ = limiter.withdraw(id) }
    }

    func next() -> EventLoopFuture<TriggerEvent?> {
        switch slot {
        case .released:
            return eventLoop.makeSucceededFuture(nil)
        case .held:
            return pull()
        case .queued:
            preconditionFailure("one next() at a time")
        case .none:
            let promise = eventLoop.makePromise(of: TriggerEvent?.self)
            let eventLoop = self.eventLoop
            let limiter = self.limiter
            do {
                let ticket = try limiter.acquire(onSlot: { [weak self] in
                    let source = self  // a constant for the @Sendable closure below (a weak var may not be captured)
                    eventLoop.execute {
                        guard let self = source else {
                            limiter.release()
                            return
                        }
                        guard case .queued = self.slot, !self.cancelled else {
                            limiter.release()
                            self.slot = .released
                            promise.succeed(nil)
                            return
                        }
                        self.slot = .held
                        promise.completeWith(self.pull())
                    }
                })
                switch ticket {
                case .granted:
                    slot = .held
                    return pull()
                case .queued(let id):
                    slot = .queued(id)
                }
            } catch {
                slot = .released
                return eventLoop.makeFailedFuture(error)
            }
            return promise.futureResult
        }
    }

    var endpoint: String? { inner?.endpoint }
    var lastProgress: NIODeadline? { inner?.lastProgress }

    /// With the slot held, the inner source's next event with no future and no closure of ours (issue 11);
    /// otherwise through `next()`. The inner source calls back on its loop, which is this one (opened on it).
    func next(to receiver: any TriggerEventReceiver) {
        guard case .held = slot else {
            return next().assumeIsolatedUnsafeUnchecked().whenComplete { receiver.receive($0) }
        }
        if inner == nil { inner = open() }
        self.receiver = receiver
        inner!.next(to: self)
    }

    /// The inner source's answer: the slot is released at the end, before the consumer sees it.
    func receive(_ result: Result<TriggerEvent?, any Error>) {
        assert(eventLoop.inEventLoop, "an event source called back off its loop")
        switch result {
        case .success(nil), .failure: release()
        case .success: break
        }
        guard let receiver = receiver.take() else { return }
        receiver.receive(result)
    }

    private func pull() -> EventLoopFuture<TriggerEvent?> {
        if inner == nil { inner = open() }
        // The inner future itself, not `always`'s copy: a future per relayed event less (issue 11). Callbacks
        // run in the order they were added, so the slot is released before the consumer sees the end.
        let event = inner!.next().hop(to: eventLoop)
        event.whenComplete { [self] result in
            switch result {
            case .success(nil), .failure: release()
            case .success: break
            }
        }
        return event
    }

    func cancel() {
        cancelled = true
        if case .queued(let id) = slot, limiter.withdraw(id) { slot = .released }
        inner?.cancel()
        release()
    }

    private func release() {
        if case .held = slot { limiter.release() }
        if case .queued = slot { return }  // the hand-over sees `cancelled` and gives the slot back
        slot = .released
    }
}

/// A stream that failed before it began (routing, overload): its first pull fails.
package final class FailedEventSource: TriggerEventSource, @unchecked Sendable {
    private var error: (any Error)?
    private let eventLoop: any EventLoop

    package init(_ error: any Error, on eventLoop: any EventLoop) {
        self.error = error
        self.eventLoop = eventLoop
    }

    package func next() -> EventLoopFuture<TriggerEvent?> {
        defer { error = nil }
        guard let error else { return eventLoop.makeSucceededFuture(nil) }
        return eventLoop.makeFailedFuture(error)
    }

    package func cancel() { error = nil }
}
