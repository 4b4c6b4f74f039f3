package import FoundationEssentials
package import GatewayConfig
import NIOCore
package import Observability
package import OperationStore
package import Routing
import Synchronization
package import TriggerModel
import WireCodecs

/// What the frontends do with async operations: accept a trigger (committed before its id is returned),
/// read one (optionally long-polling until it is done), cancel, list.
///
/// Shared by every connection; owns the in-process completion notices and the wake-up of the local
/// dispatcher, so an accepted trigger starts without waiting for the next poll.
package final class AsyncOperations: Sendable {
    package let store: any OperationStore
    package let settings: StoreConfiguration
    package let completions = CompletionBroadcaster()
    /// Wakes the local dispatcher's claim loop.
    package let dispatcherWake = WakeSignal()
    /// Pipelines of the operations queued here since the dispatcher last looked (see `takeQueuedPipelines`).
    private let queuedPipelines = Mutex(QueuedPipelines())
    /// The runs in progress here, by operation id (`registerLocalRun`): the dispatcher renews their leases and
    /// adopts its own claims of their operations; a cancel on this instance stops one at once. A run that ended
    /// here may still be listed when a claim starts its operation again: the new run replaces it, and each run
    /// removes only itself (review 14 F5: an old run removing the new one's entry left a local cancel unable to
    /// stop it).
    private let localRuns = Mutex<[String: LocalRun]>([:])
    /// Completion webhooks: the routes that name them, and who posts them.
    private let routes: Mutex<RouteTable?>
    package let webhooks: WebhookSender?
    /// `pools[].max_async_queued`: checked at each accept (``submit(_:)``), counted by the dispatcher.
    package let queueBounds = AsyncQueueBounds()
    /// /metrics: async mode's and the schedules' families; nil records nothing.
    package let metrics: GatewayMetrics?
    /// What a long-poll (``get(id:wait:)``) measures its wait and sleeps on: `ContinuousClock` in production,
    /// a test clock in tests (issue 19: long-poll logic takes an injectable clock).
    private let clock: any Clock<Duration>
    /// The wall-clock instant of webhook due times (`deliverWebhook`); tests move it with their clock.
    private let now: @Sendable () -> Date
    private let webhookOwners = Mutex((prefix: Operation.makeID(), count: 0))

    package init(
        store: any OperationStore,
        settings: StoreConfiguration,
        routes: RouteTable? = nil,
        webhooks: WebhookSender? = nil,
        metrics: GatewayMetrics? = nil,
        clock: any Clock<Duration> = ContinuousClock(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.clock = clock
        self.now = now
        self.store = store
        self.settings = settings
        self.routes = Mutex(routes)
        self.webhooks = webhooks
        self.metrics = metrics
    }

    /// Called once an operation of pipeline `ref` reached a final state here (stored by the local dispatcher,
    /// or cancelled through this instance): wakes local long-polls and, when its final state was stored with a
    /// pending webhook reserved for `webhookOwner`, sends it. The operation is read back from the store only for a
    /// webhook: most routes have none, and a read per finished operation was the most frequent statement of a
    /// PostgreSQL accept (bench/README.md, pgaccept). A read that fails leaves the delivery pending in the store:
    /// it is claimed again once its reservation lapses (``resumeWebhook(_:owner:)``).
    func finished(_ id: String, ref: PipelineRef, webhookOwner: String? = nil) async {
        completions.notify(id)
        guard let webhookOwner, webhooks != nil else { return }
        guard let operation = try? await store.get(id: id), operation.state.isFinished else { return }
        deliverWebhook(PendingWebhook(operation: operation, attempts: 0), owner: webhookOwner)
    }

    /// Whether operations of `ref` have a completion webhook (so their final state is stored with a pending
    /// delivery): the route's, under the current configuration.
    func hasWebhook(_ ref: PipelineRef) -> Bool {
        guard webhooks != nil, let routes = routes.withLock({ $0 }) else { return false }
        return routes.resolve(ref)?.route.webhook != nil
    }

    /// Whether any route of the current configuration has a webhook (a cancel then reads its operation's pipeline
    /// first, to know whether to store a delivery with it).
    var hasWebhookRoutes: Bool {
        guard webhooks != nil, let routes = routes.withLock({ $0 }) else { return false }
        return routes.entries.contains { $0.route.webhook != nil }
    }

    /// How long a claimed delivery stays reserved for its claimer (`OperationStore.claimWebhooks`): three
    /// times the longest webhook `timeout` of the current routes, and at least the operations' `lease`, so a
    /// POST ends well before another instance may take its delivery over.
    var webhookLease: Duration {
        let routes = routes.withLock { $0 }
        let longest = routes?.entries.compactMap(\.route.webhook?.timeout).max() ?? .zero
        return max(settings.lease, longest * 3)
    }

    /// Sends a pending delivery reserved for `owner` (claimed from the store, or just stored with its operation's
    /// final state), continuing its attempts, and records each attempt in the store under `owner`. One whose
    /// route has no webhook any more (a reload) is dropped: counted, logged, cleared.
    func deliverWebhook(_ pending: PendingWebhook, owner: String) {
        guard let webhooks else { return }
        let operation = pending.operation
        let id = operation.id
        let store = self.store
        let resolved = routes.withLock { $0 }?.resolve(operation.ref)
        guard let resolved, let webhook = resolved.route.webhook, pending.lostResult == nil else {
            webhooks.dropped(
                operationID: id, requestID: operation.request.requestID, route: resolved?.pattern ?? "none",
                reason: pending.lostResult.map { .resultLost($0) } ?? .noWebhook)
            Task {
                _ = try? await store.recordWebhookAttempt(
                    id: id, owner: owner, attempts: pending.attempts, nextAttemptAt: nil)
            }
            return
        }
        var body = ByteBufferAllocator().buffer(capacity: 512)
        RESTOperationBody(operation).writeEnvelope(into: &body)
        let now = self.now
        webhooks.deliver(
            body,
            operationID: id,
            requestID: operation.request.requestID,
            traceParent: operation.request.traceParent,
            traceState: operation.request.traceState,
            to: webhook,
            route: resolved.pattern,
            attemptsMade: pending.attempts
        ) { attempts, wait in
            let next = wait.map { now().addingTimeInterval(seconds($0)) }
            do {
                return try await store.recordWebhookAttempt(
                    id: id, owner: owner, attempts: attempts, nextAttemptAt: next)
            } catch {
                // Kept in memory: the next record (or, after a stop, the reservation's lapse) catches the store up.
                return true
            }
        }
    }

    /// The owner of a webhook delivery stored with a cancel here: `<dispatcher instance>/w<n>` once the local
    /// dispatcher said its instance (`useWebhookOwnerPrefix`), so a restart frees it (`expireLeases`).
    func nextWebhookOwner() -> String {
        webhookOwners.withLock { state in
            state.count += 1
            return "\(state.prefix)/w\(state.count)"
        }
    }

    /// See `nextWebhookOwner`.
    func useWebhookOwnerPrefix(_ prefix: String) {
        webhookOwners.withLock { $0.prefix = prefix }
    }

    /// A config reload: webhooks of operations finishing from now on follow `routes`.
    package func use(routes newRoutes: RouteTable) {
        routes.withLock { $0 = newRoutes }
    }

    /// Stores a queued operation for `request` (its `idempotencyKey` is the client's `Idempotency-Key`), or
    /// returns the one already stored under the same key and body. Throws `.conflict` for the same key with
    /// another body, `.overloaded` when the pool's `max_async_queued` is reached (``AsyncQueueBounds``),
    /// `.unavailable` when the store cannot commit, `.invalidArgument` for a key with the prefix
    /// reserved for scheduled runs; never returns an uncommitted operation.
    package func submit(_ request: TriggerRequest) async throws -> Operation {
        try Self.checkClientIdempotencyKey(request.idempotencyKey)
        if queueBounds.isActive, let pool = routes.withLock({ $0 })?.resolve(request.ref)?.route.pool {
            try queueBounds.admit(pool: pool)
        }
        var stored = request
        stored.mode = .async
        stored.deadline = nil
        let (operation, created) = try await store.enqueue(stored, idempotencyKey: request.idempotencyKey)
        if created {
            metrics?.async.recordAccepted()
            queued(operation)
        }
        return operation
    }

    /// A new operation was queued here: notes its pipeline for the dispatcher (see `takeQueuedPipelines`) and
    /// wakes it.
    func queued(_ operation: Operation) {
        let key = OperationFilter.pipelineKey(operation.ref)
        queuedPipelines.withLock { $0.insert(key) }
        dispatcherWake.signal()
    }

    /// The pipeline keys of the operations queued here since the last call, and whether there were more than
    /// `maxQueuedPipelines` of them (then they are not all listed). The dispatcher looks for pipelines it does not
    /// know yet (`ClaimPlanner`'s discovery claim, which reads every queued row of the known ones) only when one
    /// of these is new to it, or when its poll interval has passed (operations queued by other instances).
    func takeQueuedPipelines() -> QueuedPipelines {
        queuedPipelines.withLock { queued in
            defer { queued = QueuedPipelines() }
            return queued
        }
    }

    /// See `takeQueuedPipelines`.
    struct QueuedPipelines {
        private(set) var keys: Set<String> = []
        /// A key was left out of `keys` (it was full): any pipeline may be new.
        private(set) var overflowed = false

        /// Lists `key`, up to `maxQueuedPipelines` keys; past that, a key not listed sets `overflowed`.
        mutating func insert(_ key: String) {
            if keys.count < AsyncOperations.maxQueuedPipelines {
                keys.insert(key)
            } else if !keys.contains(key) {
                overflowed = true
            }
        }
    }

    /// Bound on the keys `queued` remembers between two claim rounds: clients of a wildcard route name any
    /// pipeline.
    static let maxQueuedPipelines = 1024

    /// The operation, after waiting up to `wait` (capped at `settings.maxWait`) for it to finish.
    /// Throws `.notFound` for an unknown id.
    /// The store is read again every `settings.pollInterval` (a result stored by another instance sends no
    /// local notice) and at once when this instance finishes the operation.
    package func get(id: String, wait: Duration = .zero) async throws -> Operation {
        try await longPoll(id: id, wait: min(wait, settings.maxWait), on: clock)
    }

    private func longPoll<C: Clock<Duration>>(id: String, wait: Duration, on clock: C) async throws -> Operation {
        let end = clock.now.advanced(by: wait)
        while true {
            guard let operation = try await store.get(id: id) else { throw OperationStoreErrors.notFound(id) }
            let remaining = clock.now.duration(to: end)
            if operation.state.isFinished || remaining <= .zero || Task.isCancelled || completions.isClosed {
                return operation
            }
            await completions.wait(for: id, timeout: min(remaining, settings.pollInterval), on: clock)
            // Cancelled while waiting (its client went away): nobody reads a fresher copy.
            if Task.isCancelled { return operation }
        }
    }

    /// Answers every long-poll now and every later one at once, with the operation as it is (`done: false`
    /// when it is not finished; Craft's outputs read then redirects to itself, which its SDK follows, to
    /// another instance behind the load balancer). Called when the gateway starts draining (SIGTERM).
    package func endLongPolls() {
        completions.close()
    }

    /// queued/running → cancelled; a run on this instance is stopped at once (elsewhere, at its next lease
    /// renewal). `.failedPrecondition` naming the state for a succeeded or failed operation, `.notFound` for
    /// none. Idempotent (google.longrunning's best-effort `CancelOperation`): an operation that is already
    /// cancelled is answered as it is, so a client that retries its cancel after a timeout does not read an
    /// error for the state it asked for (review 8).
    package func cancel(id: String) async throws -> Operation {
        // A route with a webhook: its delivery is stored with the cancel. The route is found from the operation's
        // pipeline, read first (only while some route has a webhook; a pipeline never changes).
        var webhookOwner: String?
        if hasWebhookRoutes, let stored = try await store.get(id: id), hasWebhook(stored.ref) {
            webhookOwner = nextWebhookOwner()
        }
        let operation: Operation
        do {
            operation = try await store.cancel(id: id, webhookOwner: webhookOwner)
        } catch let error as GatewayError where error.code == .failedPrecondition {
            if let current = try await store.get(id: id), current.state == .cancelled { return current }
            throw error
        }
        metrics?.async.recordFinished(.cancelled)
        localRun(id)?.loseLease()
        await finished(id, ref: operation.ref, webhookOwner: webhookOwner)
        return operation
    }

    /// Deletes a finished operation (succeeded, failed or cancelled) with its blobs, as retention would
    /// (``OperationStore/delete(id:)``): Craft AI's `delete_pipeline_execution` of a finished execution.
    /// - Throws: `.notFound` for an unknown id; `.failedPrecondition` for a queued or running operation (the caller
    ///   cancels it first, with `cancel(id:)`) and for one whose completion webhook is still to be delivered (it is
    ///   kept until then, as retention keeps it: the receiver is owed the delivery).
    package func delete(id: String) async throws {
        if try await store.delete(id: id) { return }
        guard let current = try await store.get(id: id) else { throw OperationStoreErrors.notFound(id) }
        guard current.state.isFinished else {
            throw GatewayError(
                .failedPrecondition, "operation \(id) is \(current.state.rawValue); only a finished one is deleted")
        }
        throw GatewayError(
            .failedPrecondition,
            "operation \(id) has finished but its completion webhook is not delivered yet; it can be deleted once "
                + "the delivery is done or given up")
    }

    package func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?) {
        try await store.list(filter: filter, pageSize: pageSize, pageToken: pageToken)
    }

    /// `run` is in progress here: `cancel` stops it (`LocalRun.loseLease`) once the store has cancelled its
    /// operation (its lease is gone, so the run's result would not be stored anyway).
    func registerLocalRun(_ run: LocalRun) {
        localRuns.withLock { $0[run.id] = run }
    }

    /// Removes `run`, not a later run of the same operation that replaced it.
    func unregisterLocalRun(_ run: LocalRun) {
        localRuns.withLock { runs in
            if runs[run.id] === run { runs[run.id] = nil }
        }
    }

    /// The run of operation `id` in progress here, if any.
    func localRun(_ id: String) -> LocalRun? { localRuns.withLock { $0[id] } }

    /// Every run in progress here.
    var localRunsInProgress: [LocalRun] { localRuns.withLock { Array($0.values) } }
}
