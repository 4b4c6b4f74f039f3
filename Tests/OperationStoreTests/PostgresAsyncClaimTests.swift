import Foundation
import Logging
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// The PostgreSQL store commits claims durably (`_claim4`, cluster review 59 H1; `_claim3` committed them with
/// `synchronous_commit = off`, bench/README.md branch pgstore). A claim may still be lost in a failover to a standby
/// that had not received it; these tests check that the connection's setting stays on around a claim, and that a
/// lost claim is what an expired lease is: the run it started is fenced and the operation is claimed again.
@Suite("PostgreSQL claims: durable, and a lost one fenced")
struct PostgresAsyncClaimTests {
    @Test("the connection's synchronous_commit is on before, after and (PostgresClaimIndexTests) during a claim")
    func settingStaysInTheClaim() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            // One connection, so the claim and the statements after it share it.
            var configuration = try #require(harness.postgresConfiguration)
            configuration.maximumConnections = 1
            let single = try await PostgresOperationStore.open(configuration, logger: quietLogger())
            do {
                func setting() async throws -> String {
                    let rows = try await single.client.query("SHOW synchronous_commit", logger: single.logger)
                        .collect()
                    return try #require(rows.first).decode(String.self)
                }
                #expect(try await setting() == "on")
                let (operation, _) = try await single.enqueue(Fixtures.request(), idempotencyKey: nil)
                let claimed = try await single.claim(
                    owner: "w", leaseDuration: .seconds(60), limit: 8, now: Fixtures.now() + 1)
                #expect(claimed.map(\.id) == [operation.id])
                #expect(try await setting() == "on")
                // An empty claim (nothing due) sets it too, and it ends as well.
                #expect(try await single.claim(owner: "w", leaseDuration: .seconds(60), limit: 8, now: Date()).isEmpty)
                #expect(try await setting() == "on")
                try await single.close()
            } catch {
                try? await single.close()
                throw error
            }
        }
    }

    @Test("a claim lost in a server crash fences the run it started: its owner's writes fail, it is claimed again")
    func lostClaimIsAnExpiredLease() async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let postgres = try #require(store as? PostgresOperationStore)
            let table = "\(try #require(harness.postgresConfiguration?.tablePrefix))operations"
            let t0 = Fixtures.now() + 1
            let (operation, _) = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            let lost = try await store.claim(owner: "A", leaseDuration: .seconds(60), limit: 1, now: t0)
            #expect(lost.map(\.id) == [operation.id])

            // A failover to a standby that had not received the claim: the row is as the enqueue left it.
            try await postgres.client.query(
                """
                UPDATE \(unescaped: table) SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
                attempts = 0, started_at = NULL WHERE id = \(operation.id)
                """,
                logger: postgres.logger
            )

            // The run A started on the lost claim cannot finish the operation or keep it.
            #expect(try await !store.renewLease(id: operation.id, owner: "A", leaseDuration: .seconds(60), now: t0 + 1))
            #expect(try await !store.complete(id: operation.id, owner: "A", result: Fixtures.result(), now: t0 + 1))
            #expect(
                try await !store.fail(
                    id: operation.id, owner: "A", error: GatewayError(.internalError, "x"), retryAt: nil, now: t0 + 1))
            #expect(try await !store.release(id: operation.id, owner: "A", now: t0 + 1))
            #expect(try await store.get(id: operation.id)?.state == .queued)

            // It is claimed again, as after an expired lease, and finished once, by the new owner.
            let again = try await store.claim(owner: "B", leaseDuration: .seconds(60), limit: 1, now: t0 + 2)
            #expect(again.map(\.id) == [operation.id])
            #expect(again.first?.attempts == 1)
            #expect(try await !store.complete(id: operation.id, owner: "A", result: Fixtures.result(), now: t0 + 3))
            #expect(try await store.complete(id: operation.id, owner: "B", result: Fixtures.result(), now: t0 + 3))
            #expect(try await store.get(id: operation.id)?.state == .succeeded)
        }
    }
}

/// A logger for a second store opened beside the harness's (PostgresNIO logs pool teardown at info).
func quietLogger() -> Logger {
    var logger = Logger(label: "test.store.postgres")
    logger.logLevel = .warning
    return logger
}
