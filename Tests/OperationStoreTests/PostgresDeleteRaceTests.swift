import Foundation
import NIOCore
import OperationStore
import PostgresNIO
@testable import PostgresOperationStore
import Testing
import TriggerModel

/// The diff reviewer of session 55 (M1): PostgreSQL reads an operation's row and its blobs in two statements, and
/// a user's `delete_pipeline_execution` (or a purge) committing between them took the blob rows with the row: the
/// read failed with INTERNAL ("names blob …, which is missing") instead of not finding it.
@Suite("PostgreSQL: a read that meets a delete between its row and its blobs")
struct PostgresDeleteRaceTests {
    @Test("an operation deleted after its row was read is left out; one still there without its blobs is damage")
    func deletedBetweenTheReads() async throws {
        try await StoreHarness.with(.postgres, inlineBlobLimit: 1024) { _, base in
            let store = try #require(base as? PostgresOperationStore)
            var ids: [String] = []
            for text in ["deleted", "kept"] {
                ids.append(
                    try await store.enqueue(Fixtures.request(text: text, blobs: [5000]), idempotencyKey: nil)
                        .operation.id)
            }
            // Both rows as the first read saw them.
            let rows = try await store.client.query(
                "SELECT \(unescaped: PostgresOperationStore.selectRecord) FROM \(unescaped: store.operations) WHERE id = ANY(\(ids))",
                logger: store.logger
            ).collect()
            let decoded = try rows.map(PostgresOperationStore.operationRow).sorted { $0.row.sequence < $1.row.sequence }
            #expect(decoded.map(\.row.id) == ids && decoded.allSatisfy(\.hasBlobs))

            // The first is deleted before the blobs are read: left out, the other read whole.
            _ = try await store.cancel(id: ids[0])
            #expect(try await store.delete(id: ids[0]))
            let read = try await store.makeOperations(decoded: decoded)
            #expect(read.map(\.id) == [ids[1]])
            #expect(read.first?.request.inputs[0].variables["file0"]?.blobValue?.bytes == Fixtures.bytes(5000))

            // A row still there whose blob rows are gone is damage, not a deletion.
            try await store.client.query(
                "DELETE FROM \(unescaped: store.blobTable) WHERE operation_id = \(ids[1])", logger: store.logger)
            await #expect(throws: GatewayError.self) { _ = try await store.makeOperations(decoded: [decoded[1]]) }
        }
    }
}
