import FoundationEssentials
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
    /// Lease keepers of operations running here, so a cancel on this instance stops the run at once.
    private let localRuns = Mutex<[String: WakeSignal]>([:])
    /// Completion webhooks: the routes that name them, and who posts them.
    private let routes: Mutex<RouteTable?>
    package let webhooks: WebhookSender?
    /// /metrics: async mode's and the schedules' families; nil records nothing.
    package let metrics: GatewayMetrics?
    /// What a long-poll (``get(id:wait:)``) measures its wait and sleeps on: `ContinuousClock` in production,
    /// a test clock in tests (issue 19: long-poll logic takes an injectable clock).
    private let clock: any Clock<Duration>

    package init(
        store: any OperationStore,
        settings: StoreConfiguration,
        routes: RouteTable? = nil,
        webhooks: WebhookSender? = nil,
        metrics: GatewayMetrics? = nil,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.clock = clock
        self.store = store
        self.settings = settings
        self.routes = Mutex(routes)
        self.webhooks = webhooks
        self.metrics = metrics
    }

    /// Called once an operation reached a final state here (stored by the local dispatcher, or cancelled
    /// through this instance): wakes local long-polls and sends the route's webhook, if it has one.
    func finished(_ id: String) async {
        completions.notify(id)
        // No route names a webhook (the common case): nothing to send, so the operation is not read back (a
        // store read per finished operation was ~4 % of an accepted-and-run async operation's cost, issue 12).
        guard let routes = routes.withLock({ $0 }), let webhooks,
            routes.entries.contains(where: { $0.route.webhook != nil })
        else { return }
        guard let operation = try? await store.get(id: id), operation.state.isFinished,
            let webhook = routes.resolve(operation.ref)?.route.webhook
        else { return }
        var body = ByteBufferAllocator().buffer(capacity: 512)
        RESTOperationBody(operation).writeEnvelope(into: &body)
        webhooks.deliver(
            body,
            operationID: id,
            requestID: operation.request.requestID,
            traceParent: operation.request.traceParent,
            traceState: operation.request.traceState,
            to: webhook
        )
    }

    /// A config reload: webhooks of operations finishing from now on follow `routes`.
    package func use(routes newRoutes: RouteTable) {
        routes.withLock { $0 = newRoutes }
    }

    /// Stores a queued operation for `request` (its `idempotencyKey` is the client's `Idempotency-Key`), or
    /// returns the one already stored under the same key and body. Throws `.conflict` for the same key with
    /// another body, `.unavailable` when the store cannot commit, `.invalidArgument` for a key with the prefix
    /// reserved for scheduled runs; never returns an uncommitted operation.
    package func submit(_ request: TriggerRequest) async throws -> Operation {
        try Self.checkClientIdempotencyKey(request.idempotencyKey)
        var stored = request
        stored.mode = .async
        stored.deadline = nil
        let (operation, created) = try await store.enqueue(stored, idempotencyKey: request.idempotencyKey)
        if created {
            metrics?.async.recordAccepted()
            dispatcherWake.signal()
        }
        return operation
    }

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
            if operation.state.isFinished || remaining <= .zero || Task.isCancelled { return operation }
            await completions.wait(for: id, timeout: min(remaining, settings.pollInterval), on: clock)
        }
    }

    /// queued/running → cancelled; a run on this instance is stopped at once (elsewhere, at its next lease
    /// renewal). `.failedPrecondition` naming the state for a finished operation, `.notFound` for none.
    package func cancel(id: String) async throws -> Operation {
        let operation = try await store.cancel(id: id)
        // No attempt yet: it was cancelled while queued (one retried after a failure is not told apart).
        metrics?.async.recordFinished(.cancelled, wasQueued: operation.attempts == 0)
        localRuns.withLock { $0[id] }?.signal()
        await finished(id)
        return operation
    }

    package func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?) {
        try await store.list(filter: filter, pageSize: pageSize, pageToken: pageToken)
    }

    func registerLocalRun(_ id: String, _ keeper: WakeSignal) {
        localRuns.withLock { $0[id] = keeper }
    }

    func unregisterLocalRun(_ id: String) {
        _ = localRuns.withLock { $0.removeValue(forKey: id) }
    }
}
