import Foundation
import GatewayApp
import GatewayTestSupport
import Logging
import Observability
import OperationStore
@testable import SQLiteOperationStore
import Testing

/// Operator review 58, F2: a failed store call's `operation store call failed` line names the call as
/// `trigger_gateway_store_errors_total{operation}` does, so one name finds both. A SQLite statement's failure said
/// `store.operation=sqlite` (of `fail`, `renew_lease`, …) and a probe's group commit `heartbeat`.
@Suite("A failed SQLite store call is logged under its metric label")
struct StoreCallNameTests {
    @Test(
        "renew_lease (a statement of its own) and probe (a group commit): the warning's store.operation is the label the metric counts"
    )
    func labels() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-call-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = RecordedLog()
        let sqlite = try await SQLiteOperationStore.open(
            .init(dataDirectory: dir.path), logger: Logger(label: "test.store") { _ in log })
        let metrics = GatewayMetrics()
        let store = MeasuredOperationStore.measuring(sqlite, metrics: metrics.store)
        // Every statement on these tables fails from here on.
        try await sqlite.query("DROP TABLE operations")
        try await sqlite.query("DROP TABLE heartbeats")
        _ = try? await store.renewLease(id: "a", owner: "o", leaseDuration: .seconds(30), now: Date())
        _ = try? await store.probe(instance: "i", now: Date())
        let named = log.lines.filter { $0.message == "operation store call failed" }.map {
            $0.metadata["store.operation"] ?? "none"
        }
        #expect(named == ["renew_lease", "probe"], "\(log.lines)")
        let text = String(decoding: metrics.scrape(), as: UTF8.self)
        for label in named {
            #expect(text.contains(#"trigger_gateway_store_errors_total{operation="\#(label)"} 1"#), "\(text)")
        }
        try await sqlite.close()
    }
}
