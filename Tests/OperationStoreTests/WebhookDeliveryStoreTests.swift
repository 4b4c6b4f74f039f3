import Foundation
import OperationStore
import Testing
import TriggerModel

/// The stores' pending webhook deliveries (`OperationStore.claimWebhooks`, `recordWebhookAttempt`, and the
/// `webhook` of `complete`, `fail` and `cancel`), against both stores.
@Suite("OperationStore contract: pending webhook deliveries")
struct WebhookDeliveryStoreTests {
    /// A finished operation of `store` completed by `owner` at `now`, its route's webhook pending when `webhook`.
    static func completed(
        _ store: any OperationStore, owner: String, now: Date, webhook: Bool, blobSize: Int = 0
    ) async throws -> String {
        let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
        #expect(try await store.claim(owner: owner, leaseDuration: .seconds(10), limit: 1, now: now).map(\.id) == [id])
        #expect(
            try await store.complete(
                id: id, owner: owner, result: Fixtures.result(text: "done", blobSize: blobSize), now: now,
                webhook: webhook))
        return id
    }

    @Test(
        """
        a result stored with a webhook is a pending delivery: reserved for the completing owner until its lease, \
        then claimable; each record renews it from the next due time; a final record clears it
        """,
        arguments: StoreKind.allCases)
    func pendingDeliveryLifecycle(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let t0 = Fixtures.now() + 60
            let plain = try await Self.completed(store, owner: "A", now: t0, webhook: false)
            let id = try await Self.completed(store, owner: "A", now: t0, webhook: true, blobSize: 200_000)
            // Reserved for A (who sends it at once) until t0 + lease.
            #expect(try await store.claimWebhooks(owner: "W", leaseDuration: .seconds(30), limit: 5, now: t0).isEmpty)
            #expect(
                try await store.claimWebhooks(owner: "W", leaseDuration: .seconds(30), limit: 5, now: t0 + 29.999)
                    .isEmpty)
            let claimed = try await store.claimWebhooks(
                owner: "W", leaseDuration: .seconds(30), limit: 5, now: t0 + 30)
            #expect(claimed.map(\.operation.id) == [id], "the operation without a webhook is never pending")
            #expect(claimed.first?.attempts == 0)
            #expect(claimed.first?.operation.state == .succeeded)
            #expect(claimed.first?.operation.result == Fixtures.result(text: "done", blobSize: 200_000))
            // A's reservation is gone: its record is refused and changes nothing.
            #expect(!(try await store.recordWebhookAttempt(id: id, owner: "A", attempts: 1, nextAttemptAt: nil)))
            #expect(!(try await store.recordWebhookAttempt(id: plain, owner: "A", attempts: 1, nextAttemptAt: nil)))
            // W's first attempt failed; the next is due at t0 + 40, W's until t0 + 40 + 30.
            #expect(try await store.recordWebhookAttempt(id: id, owner: "W", attempts: 1, nextAttemptAt: t0 + 40))
            #expect(
                try await store.claimWebhooks(owner: "X", leaseDuration: .seconds(30), limit: 5, now: t0 + 69.999)
                    .isEmpty)
            let taken = try await store.claimWebhooks(owner: "X", leaseDuration: .seconds(30), limit: 5, now: t0 + 70)
            #expect(taken.map(\.operation.id) == [id])
            #expect(taken.first?.attempts == 1, "the attempts continue")
            #expect(!(try await store.recordWebhookAttempt(id: id, owner: "W", attempts: 2, nextAttemptAt: nil)))
            #expect(try await store.recordWebhookAttempt(id: id, owner: "X", attempts: 2, nextAttemptAt: nil))
            #expect(
                try await store.claimWebhooks(owner: "Y", leaseDuration: .seconds(1), limit: 5, now: t0 + 10_000)
                    .isEmpty, "cleared")
            #expect(!(try await store.recordWebhookAttempt(id: id, owner: "X", attempts: 3, nextAttemptAt: t0 + 1)))
        }
    }

    @Test(
        """
        a final failure and a cancel stored with a webhook are pending deliveries; a failure queued for a retry is \
        not; claims take the earliest due first, up to the limit
        """,
        arguments: StoreKind.allCases)
    func failAndCancelRecordTheDelivery(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let t0 = Fixtures.now() + 60
            let failed = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let retried = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let cancelled = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 2, now: t0).count == 2)
            let error = GatewayError(.backendFailed, "x")
            #expect(
                try await store.fail(id: retried, owner: "A", error: error, retryAt: t0 + 500, now: t0, webhook: true))
            #expect(try await store.fail(id: failed, owner: "A", error: error, retryAt: nil, now: t0, webhook: true))
            // The cancel is stamped with the store's clock (the real time, before t0 + 1).
            #expect(try await store.cancel(id: cancelled, webhookOwner: "C").state == .cancelled)
            let first = try await store.claimWebhooks(owner: "W", leaseDuration: .seconds(30), limit: 1, now: t0 + 30)
            #expect(first.map(\.operation.id) == [cancelled], "earliest due first")
            let second = try await store.claimWebhooks(
                owner: "W", leaseDuration: .seconds(30), limit: 5, now: t0 + 30)
            #expect(second.map(\.operation.id) == [failed])
            #expect(second.first?.operation.error == error)
            for id in [cancelled, failed] {
                #expect(try await store.recordWebhookAttempt(id: id, owner: "W", attempts: 1, nextAttemptAt: nil))
            }
            #expect(
                try await store.claimWebhooks(owner: "W", leaseDuration: .seconds(30), limit: 5, now: t0 + 400).isEmpty,
                "the retried operation has none pending")
        }
    }

    @Test(
        "purge keeps a finished operation whose webhook is pending until its delivery is cleared",
        arguments: StoreKind.allCases)
    func purgeKeepsPendingDeliveries(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let t0 = Fixtures.now() + 60
            let plain = try await Self.completed(store, owner: "A", now: t0, webhook: false)
            let pending = try await Self.completed(store, owner: "A", now: t0, webhook: true)
            #expect(try await store.purge(finishedBefore: t0 + 100) == 1)
            #expect(try await store.get(id: plain) == nil)
            #expect(try await store.get(id: pending)?.state == .succeeded)
            #expect(try await store.recordWebhookAttempt(id: pending, owner: "A", attempts: 5, nextAttemptAt: nil))
            #expect(try await store.purge(finishedBefore: t0 + 100) == 1)
            #expect(try await store.get(id: pending) == nil)
        }
    }

    @Test(
        "delete keeps a finished operation whose webhook is pending until its delivery is cleared",
        arguments: StoreKind.allCases)
    func deleteKeepsPendingDeliveries(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let t0 = Fixtures.now() + 60
            let pending = try await Self.completed(store, owner: "A", now: t0, webhook: true)
            #expect(try await store.delete(id: pending) == false)
            #expect(try await store.get(id: pending)?.state == .succeeded)
            #expect(try await store.recordWebhookAttempt(id: pending, owner: "A", attempts: 1, nextAttemptAt: nil))
            #expect(try await store.delete(id: pending))
            #expect(try await store.get(id: pending) == nil)
        }
    }

    @Test(
        "a restarted instance frees the deliveries its earlier run held (expireLeases): claimable when due; those of the new process stay its own",
        arguments: StoreKind.allCases)
    func restartFreesOwnDeliveries(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let t0 = Fixtures.now() + 60
            let mine = try await Self.completed(store, owner: "gw1.boot1/3", now: t0, webhook: true)
            let theirs = try await Self.completed(store, owner: "gw10.boot1/1", now: t0, webhook: true)
            let later = try await Self.completed(store, owner: "gw1.boot1/4", now: t0, webhook: true)
            // Finished by the new process (boot2) before its take-back ran: its delivery is being sent.
            let current = try await Self.completed(store, owner: "gw1.boot2/9", now: t0, webhook: true)
            #expect(
                try await store.recordWebhookAttempt(
                    id: later, owner: "gw1.boot1/4", attempts: 2, nextAttemptAt: t0 + 60))
            #expect(
                try await store.expireLeases(ownerPrefix: "gw1.", sparing: "gw1.boot2/", now: t0 + 1) == 0,
                "no operation lease ended")
            let claimed = try await store.claimWebhooks(
                owner: "gw1.boot2/w1", leaseDuration: .seconds(30), limit: 5, now: t0 + 1)
            #expect(
                claimed.map(\.operation.id) == [mine], "the other instance's stays reserved; a retry waits its time")
            #expect(
                try await store.recordWebhookAttempt(id: mine, owner: "gw1.boot2/w1", attempts: 1, nextAttemptAt: nil))
            #expect(
                try await store.claimWebhooks(
                    owner: "gw1.boot2/w2", leaseDuration: .seconds(30), limit: 5, now: t0 + 29
                )
                .isEmpty)
            #expect(
                try await store.claimWebhooks(
                    owner: "gw1.boot2/w3", leaseDuration: .seconds(30), limit: 5, now: t0 + 30
                )
                .map(\.operation.id).sorted() == [theirs, current].sorted(), "their holders' reservations lapsed")
            for id in [theirs, current] {
                #expect(
                    try await store.recordWebhookAttempt(id: id, owner: "gw1.boot2/w3", attempts: 1, nextAttemptAt: nil)
                )
            }
            let due = try await store.claimWebhooks(
                owner: "gw1.boot2/w4", leaseDuration: .seconds(30), limit: 5, now: t0 + 60)
            #expect(due.map(\.operation.id) == [later])
            #expect(due.first?.attempts == 2)
        }
    }

    @Test("two instances claiming pending deliveries at once never get the same one", arguments: StoreKind.allCases)
    func concurrentWebhookClaimsAreDisjoint(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let t0 = Fixtures.now() + 60
            var pending: Set<String> = []
            for _ in 0..<24 { pending.insert(try await Self.completed(store, owner: "A", now: t0, webhook: true)) }
            let claims = try await harness.withPeer { peer in
                try await withThrowingTaskGroup(of: [String].self) { group in
                    for worker in 0..<6 {
                        let target = worker.isMultiple(of: 2) ? store : peer
                        group.addTask {
                            var mine: [String] = []
                            while true {
                                let batch = try await target.claimWebhooks(
                                    owner: "gw-\(worker)/w", leaseDuration: .seconds(60), limit: 2, now: t0 + 60)
                                if batch.isEmpty { return mine }
                                mine += batch.map(\.operation.id)
                            }
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            let all = claims.flatMap { $0 }
            #expect(all.count == pending.count, "every delivery claimed exactly once")
            #expect(Set(all) == pending)
        }
    }
}
