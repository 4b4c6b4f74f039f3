import Foundation
import OperationStore
import SQLiteOperationStore
import Testing
import TriggerModel

/// Review 27, H1, at the store: a blob file a row names that is gone (ENOENT) is DATA_LOSS for that operation only.
/// A lost request file gives the operation with `lostInput` set (get, list, claim and cancel all answer), a lost
/// result file throws DATA_LOSS (a result without its binaries would be wrong data); no call says "unavailable".
@Suite("SQLite store: a missing blob file is DATA_LOSS for its operation only")
struct SQLiteLostBlobTests {
    static func blobDirectory(_ harness: StoreHarness, _ id: String) throws -> String {
        "\(try #require(harness.sqliteConfiguration).dataDirectory)/blobs/\(id)"
    }

    @Test("a lost request file: get, list, claim and cancel answer, the operation marked lostInput")
    func lostRequestFile() async throws {
        try await StoreHarness.with(.sqlite) { harness, store in
            let (broken, _) = try await store.enqueue(Fixtures.request(blobs: [100_000]), idempotencyKey: nil)
            let (intact, _) = try await store.enqueue(Fixtures.request(blobs: [100_000]), idempotencyKey: nil)
            try FileManager.default.removeItem(atPath: try Self.blobDirectory(harness, broken.id))

            let fetched = try #require(try await store.get(id: broken.id))
            #expect(fetched.state == .queued)
            #expect(fetched.lostInput?.code == .dataLoss)
            #expect(
                fetched.lostInput?.message.contains("is missing") == true, "\(String(describing: fetched.lostInput))")
            #expect(try await store.get(id: intact.id)?.lostInput == nil)
            let listed = try await store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil).operations
            #expect(Set(listed.map(\.id)) == [broken.id, intact.id])
            #expect(listed.first { $0.id == broken.id }?.lostInput?.code == .dataLoss)

            // One claim returns both: the broken one marked, the intact one whole (before, the claim threw).
            let claimed = try await store.claim(
                owner: "test", leaseDuration: .seconds(30), limit: 10, now: Fixtures.now())
            #expect(claimed.map(\.id) == [broken.id, intact.id])
            #expect(claimed[0].lostInput?.code == .dataLoss)
            #expect(claimed[1].lostInput == nil)
            #expect(claimed[1].request.inputs == intact.request.inputs)

            let cancelled = try await store.cancel(id: broken.id, webhookOwner: nil)
            #expect(cancelled.state == .cancelled)
        }
    }

    @Test("a lost result file: get is DATA_LOSS naming the file, never unavailable")
    func lostResultFile() async throws {
        try await StoreHarness.with(.sqlite) { harness, store in
            let (operation, _) = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            _ = try await store.claim(owner: "test", leaseDuration: .seconds(30), limit: 1, now: Fixtures.now())
            #expect(
                try await store.complete(
                    id: operation.id, owner: "test", result: Fixtures.result(blobSize: 100_000), now: Fixtures.now()))
            let directory = try Self.blobDirectory(harness, operation.id)
            let files = try FileManager.default.contentsOfDirectory(atPath: directory)
            #expect(files.count == 1, "\(files)")
            for file in files { try FileManager.default.removeItem(atPath: "\(directory)/\(file)") }
            let error = await gatewayError { _ = try await store.get(id: operation.id) }
            #expect(error?.code == .dataLoss, "\(String(describing: error))")
            #expect(error?.message.contains(files[0]) == true, "\(String(describing: error))")
            // Named under the data directory: the message reaches clients (security review 60, I1).
            #expect(error?.message.contains("blobs/\(operation.id)/\(files[0])") == true)
            #expect(error?.message.contains(directory) == false, "\(String(describing: error))")
        }
    }

    @Test(
        "a lost result file of a pending webhook: the claim returns it with lostResult and no result, and the rest of its batch whole"
    )
    func lostResultFileOfPendingWebhook() async throws {
        try await StoreHarness.with(.sqlite) { harness, store in
            let t0 = Fixtures.now() + 60
            let broken = try await WebhookDeliveryStoreTests.completed(
                store, owner: "A", now: t0, webhook: true, blobSize: 100_000)
            let intact = try await WebhookDeliveryStoreTests.completed(
                store, owner: "A", now: t0, webhook: true, blobSize: 100_000)
            let directory = try Self.blobDirectory(harness, broken)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory) {
                try FileManager.default.removeItem(atPath: "\(directory)/\(file)")
            }
            // Before, the claim threw DATA_LOSS for the whole batch, every round: no delivery of it went out.
            let claimed = try await store.claimWebhooks(
                owner: "W", leaseDuration: .seconds(30), limit: 5, now: t0 + 30)
            #expect(claimed.map(\.operation.id) == [broken, intact])
            #expect(claimed[0].lostResult?.code == .dataLoss)
            #expect(claimed[0].operation.result == nil)
            #expect(claimed[0].operation.state == .succeeded)
            #expect(claimed[1].lostResult == nil)
            #expect(claimed[1].operation.result == Fixtures.result(text: "done", blobSize: 100_000))
            // The dispatcher drops it with a final record, which clears it like any other.
            #expect(try await store.recordWebhookAttempt(id: broken, owner: "W", attempts: 0, nextAttemptAt: nil))
            let next = try await store.claimWebhooks(owner: "X", leaseDuration: .seconds(1), limit: 5, now: t0 + 10_000)
            #expect(next.map(\.operation.id) == [intact])
        }
    }
}
