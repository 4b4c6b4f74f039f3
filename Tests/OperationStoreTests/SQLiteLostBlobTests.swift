import Foundation
import OperationStore
import SQLiteOperationStore
import Testing
import TriggerModel

/// Review 27, H1, at the store: a blob file a row names that is gone (ENOENT) is DATA_LOSS for that operation only.
/// A lost request file gives the operation with `lostInput` set (get, list, claim and cancel all answer), a lost
/// result file gives it with no result and `lostResult` set (a result without its binaries would be wrong data;
/// security review 60, L1: it threw, and failed every list); no call says "unavailable".
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

    @Test(
        "a lost result file: get and list answer it with lostResult (DATA_LOSS naming the file), the rest whole, and delete removes it"
    )
    func lostResultFile() async throws {
        try await StoreHarness.with(.sqlite) { harness, store in
            let (operation, _) = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            let (intact, _) = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            _ = try await store.claim(owner: "test", leaseDuration: .seconds(30), limit: 2, now: Fixtures.now())
            for id in [operation.id, intact.id] {
                #expect(
                    try await store.complete(
                        id: id, owner: "test", result: Fixtures.result(blobSize: 100_000), now: Fixtures.now()))
            }
            let directory = try Self.blobDirectory(harness, operation.id)
            let files = try FileManager.default.contentsOfDirectory(atPath: directory)
            #expect(files.count == 1, "\(files)")
            for file in files { try FileManager.default.removeItem(atPath: "\(directory)/\(file)") }

            let fetched = try #require(try await store.get(id: operation.id))
            #expect(fetched.state == .succeeded)
            #expect(fetched.result == nil)
            let error = try #require(fetched.lostResult)
            #expect(error.code == .dataLoss, "\(error)")
            #expect(error.message.contains(files[0]), "\(error)")
            // Named under the data directory: the message reaches clients (security review 60, I1).
            #expect(error.message.contains("blobs/\(operation.id)/\(files[0])"))
            #expect(!error.message.contains(directory), "\(error)")

            // Security review 60, L1: the list threw DATA_LOSS for it, for every principal and every page that met it.
            let listed = try await store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil).operations
            #expect(listed.map(\.id) == [intact.id, operation.id])
            #expect(listed[0].lostResult == nil)
            #expect(listed[0].result == Fixtures.result(blobSize: 100_000))
            #expect(listed[1].lostResult?.code == .dataLoss)
            #expect(listed[1].result == nil)

            // And it could not be deleted (a delete reads it first); now it goes, with its directory.
            #expect(try await store.delete(id: operation.id))
            #expect(try await store.get(id: operation.id) == nil)
            #expect(!FileManager.default.fileExists(atPath: directory))
            #expect(
                try await store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil).operations.map(\.id) == [
                    intact.id
                ])
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
