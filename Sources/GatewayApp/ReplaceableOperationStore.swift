package import FoundationEssentials
package import OperationStore
import Synchronization
package import TriggerModel

/// An operation store that may not be open yet, or may be swapped for a freshly connected one: what the
/// gateway runs async mode on when the store is a server (PostgreSQL) that can be down at start-up or go
/// away later.
///
/// Every call goes to the store installed now; with none installed it fails at once as `.unavailable`
/// (never an id that was not stored). `StoreHealthService` installs stores; the replaced one is handed
/// back to it to close. After `close()` nothing can be installed any more (a late open is closed).
package final class ReplaceableOperationStore: OperationStore {
    private struct State {
        var store: (any OperationStore)?
        var closed = false
    }

    private let state: Mutex<State>

    package init(_ store: (any OperationStore)? = nil) {
        state = Mutex(State(store: store))
    }

    package var isOpen: Bool { state.withLock { $0.store != nil } }

    /// Installs `store`; returns what the caller must close now: the store it replaced, or `store` itself
    /// when this one was already closed.
    package func install(_ store: any OperationStore) -> (any OperationStore)? {
        state.withLock { state in
            if state.closed { return store }
            defer { state.store = store }
            return state.store
        }
    }

    /// Takes the current store out (the caller closes it): from now on every call fails at once as
    /// `.unavailable` instead of waiting out the dead connection's timeout.
    package func uninstall() -> (any OperationStore)? {
        state.withLock { state in
            defer { state.store = nil }
            return state.store
        }
    }

    func current() throws(GatewayError) -> any OperationStore {
        guard let store = state.withLock({ $0.store }) else {
            throw GatewayError(.unavailable, OperationStoreErrors.unavailableMessage)
        }
        return store
    }

    package func enqueue(
        _ request: TriggerRequest,
        idempotencyKey: String?
    ) async throws -> (operation: Operation, created: Bool) {
        try await current().enqueue(request, idempotencyKey: idempotencyKey)
    }

    package func get(id: String) async throws -> Operation? {
        try await current().get(id: id)
    }

    package func list(
        filter: OperationFilter,
        pageSize: Int,
        pageToken: String?
    ) async throws -> (operations: [Operation], nextPageToken: String?) {
        try await current().list(filter: filter, pageSize: pageSize, pageToken: pageToken)
    }

    package func cancel(id: String, webhookOwner: String?) async throws -> Operation {
        try await current().cancel(id: id, webhookOwner: webhookOwner)
    }

    package func claim(
        owner: String,
        leaseDuration: Duration,
        limit: Int,
        now: Date,
        scope: ClaimScope,
        takeover: LeaseTakeover
    ) async throws -> [Operation] {
        try await current().claim(
            owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: scope, takeover: takeover)
    }

    package func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool {
        try await current().renewLease(id: id, owner: owner, leaseDuration: leaseDuration, now: now)
    }

    package func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws
        -> Bool
    {
        try await current().complete(id: id, owner: owner, result: result, now: now, webhook: webhook)
    }

    package func fail(
        id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool
    ) async throws -> Bool {
        try await current().fail(id: id, owner: owner, error: error, retryAt: retryAt, now: now, webhook: webhook)
    }

    package func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]
    {
        try await current().claimWebhooks(owner: owner, leaseDuration: leaseDuration, limit: limit, now: now)
    }

    package func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws
        -> Bool
    {
        try await current().recordWebhookAttempt(
            id: id, owner: owner, attempts: attempts, nextAttemptAt: nextAttemptAt)
    }

    package func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int {
        try await current().expireLeases(ownerPrefix: ownerPrefix, sparing: sparing, now: now)
    }

    package func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool {
        try await current().release(id: id, owner: owner, notBefore: notBefore, callMade: callMade, now: now)
    }

    package func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool {
        try await current().uncountAdoptedClaims(id: id, owner: owner, count: count, from: attempts)
    }

    package func queuedCount() async throws -> Int {
        try await current().queuedCount()
    }

    package func queuedByPipeline() async throws -> [PipelineQueue] {
        try await current().queuedByPipeline()
    }

    package func queuedCount(pipelineKey: String) async throws -> Int {
        try await current().queuedCount(pipelineKey: pipelineKey)
    }

    package func purge(finishedBefore: Date) async throws -> Int {
        try await current().purge(finishedBefore: finishedBefore)
    }

    package func delete(id: String) async throws -> Bool {
        try await current().delete(id: id)
    }

    package func probe(instance: String, now: Date) async throws {
        try await current().probe(instance: instance, now: now)
    }

    package func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool {
        try await current().instanceInUseElsewhere(instance: instance, probeInterval: probeInterval)
    }

    package func close() async throws {
        let store: (any OperationStore)? = state.withLock { state in
            state.closed = true
            defer { state.store = nil }
            return state.store
        }
        try await store?.close()
    }
}
