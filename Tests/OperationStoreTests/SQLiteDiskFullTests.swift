import Foundation
import GatewayTestSupport
import Logging
import OperationStore
@testable import SQLiteOperationStore
import Synchronization
import Testing
import TriggerModel

/// Review 9, finding 7: a full disk under an SQLite data dir. SQLite's `max_page_count` makes a write past the
/// file's size fail with SQLITE_FULL, exactly as a full disk does, without filling one.
@Suite("SQLite store on a full disk")
struct SQLiteDiskFullTests {
    @Test("SQLITE_FULL: clients read unavailable; one warning naming the full disk and the call; no ROLLBACK failure")
    func diskFull() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-full-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = RecordedLog()
        let store = try await SQLiteOperationStore.open(
            .init(dataDirectory: dir.path), logger: Logger(label: "test.store") { _ in log })
        // Capped at the file's current size (SQLite never lowers it below that).
        try await store.query("PRAGMA max_page_count = 1")
        let error = await gatewayError {
            _ = try await store.enqueue(
                Fixtures.request(text: String(repeating: "x", count: 200_000)), idempotencyKey: nil)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message == OperationStoreErrors.unavailableMessage, "no path or driver text for a client")
        let warnings = log.lines.filter { $0.level == .warning }
        #expect(warnings.count == 1, "\(warnings)")
        let warning = try #require(warnings.first)
        #expect(warning.metadata["store.call"] == "enqueue", "\(warning)")
        #expect(warning.metadata["error"] == "the disk holding \(dir.path) is full (SQLITE_FULL)", "\(warning)")
        #expect(!log.lines.contains { "\($0)".contains("rollback") }, "\(log.lines)")
        try await store.close()
    }
}
