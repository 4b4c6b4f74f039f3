import Foundation
import GatewayTestSupport
import Logging
import NIOCore
import OperationStore
@testable import SQLiteOperationStore
import Synchronization
import Testing
import TriggerModel

/// Review 9, finding 7: a full disk under an SQLite data dir. SQLite's `max_page_count` makes a write past the
/// file's size fail with SQLITE_FULL, exactly as a full disk does, without filling one.
@Suite("SQLite store on a full disk")
struct SQLiteDiskFullTests {
    @Test(
        "SQLITE_FULL: clients read unavailable, the disk full; one warning naming the full disk and the call; no ROLLBACK failure"
    )
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
        // The cause in the client's words (review 21, M3), still no path or driver text.
        #expect(error?.message == OperationStoreErrors.diskFullMessage, "\(String(describing: error))")
        #expect(error.map(OperationStoreErrors.isDiskFull) == true)
        let warnings = log.lines.filter { $0.level == .warning }
        #expect(warnings.count == 1, "\(warnings)")
        let warning = try #require(warnings.first)
        #expect(warning.metadata["store.operation"] == "enqueue", "\(warning)")
        #expect(warning.metadata["error"] == "the disk holding \(dir.path) is full (SQLITE_FULL)", "\(warning)")
        #expect(!log.lines.contains { "\($0)".contains("rollback") }, "\(log.lines)")
        try await store.close()
    }

    /// `/dev/full` answers every write with ENOSPC, as a full disk does: a blob file linked to it is refused
    /// the way a blob file on a full data disk is (review 21, M3), with no mount.
    @Test("ENOSPC writing a blob file is a full disk: the client reads so, one warning")
    func blobFileOnFullDisk() async throws {
        try #require(FileManager.default.isWritableFile(atPath: "/dev/full"), "needs /dev/full")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-full-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = BlobDirectory(root: dir.appendingPathComponent("blobs").path)
        try FileManager.default.createDirectory(atPath: blobs.directory(for: "op1"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: "\(blobs.directory(for: "op1"))/b0", withDestinationPath: "/dev/full")
        var bytes = ByteBuffer()
        bytes.writeRepeatingByte(7, count: 4096)
        #expect(throws: BlobDirectory.SpaceExhausted.self) {
            try blobs.write(operationID: "op1", blobs: [SpilledBlob(name: "b0", bytes: bytes)])
        }
        let log = RecordedLog()
        let error = OperationStoreErrors.unavailable(
            "blob files", BlobDirectory.SpaceExhausted(description: "write x: No space left on device"),
            described: "the disk holding d is full", diskFull: true, logger: Logger(label: "t") { _ in log })
        #expect(OperationStoreErrors.isDiskFull(error) && error.code == .unavailable)
        let warnings = { log.lines.filter { $0.level == .warning } }
        #expect(warnings().map(\.message) == ["operation store call failed"])
        // Passed through again (a layer above the store): not logged twice, still the disk-full answer.
        #expect(OperationStoreErrors.unavailable("enqueue", error, logger: Logger(label: "t") { _ in log }) == error)
        #expect(warnings().count == 1)
    }
}
