import Foundation
import Logging
import NIOCore
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// The PostgreSQL store's procedures and functions across versions and roles (review 16): a schema that is current
/// runs no DDL at a start, at the longest prefix too; a function that lost its planner settings gets them back; a
/// role that cannot execute a routine is told which GRANT it needs at start; and a name's body never changes once
/// released, since an instance replaces any other body of that name at its start (a rolling upgrade's instances
/// would replace each other's, and a DML-only role could not start at all).
@Suite("PostgreSQL routines: names, bodies, settings and privileges across versions")
struct PostgresRoutineTests {
    /// A store on its own tables: `prefix` (made unique here) at the given length, opened as `role` (nil: the
    /// URL's user). Nil when no PostgreSQL is configured (the test then records why, as `StoreHarness` does).
    static func configuration(prefixLength: Int = 14, role: String? = nil) throws -> PostgresOperationStore
        .Configuration?
    {
        let environment = ProcessInfo.processInfo.environment
        guard var url = environment["TG_POSTGRES_URL"], !url.isEmpty else {
            if environment["TG_ALLOW_NO_POSTGRES"] != "1" {
                Issue.record(Comment(rawValue: StoreHarness.postgresMissing))
            }
            return nil
        }
        if let role, let at = url.firstIndex(of: "@"), let scheme = url.range(of: "://") {
            url.replaceSubrange(scheme.upperBound..<at, with: role)
        }
        var configuration = try PostgresOperationStore.Configuration(url: url)
        let unique = "t" + Operation.makeID().lowercased().filter { $0.isLetter || $0.isNumber }
        configuration.tablePrefix = String((unique + String(repeating: "x", count: 64)).prefix(prefixLength - 1)) + "_"
        configuration.maximumConnections = 2
        configuration.operationTimeout = .seconds(60)
        return configuration
    }

    static func open(_ configuration: PostgresOperationStore.Configuration) async throws -> PostgresOperationStore {
        var logger = Logger(label: "test.store.postgres")
        logger.logLevel = .warning
        return try await PostgresOperationStore.open(configuration, logger: logger)
    }

    static func run(_ store: PostgresOperationStore, _ sql: String) async throws -> [PostgresRow] {
        try await store.client.query(PostgresQuery(unsafeSQL: sql), logger: store.logger).collect()
    }

    @Test("a current schema needs no DDL at the next start, with a prefix of 14 bytes and of the longest, 40")
    func currentSchemaRunsNoDDL() async throws {
        for length in [14, 40] {
            guard let configuration = try Self.configuration(prefixLength: length) else { return }
            #expect(configuration.tablePrefix.utf8.count == length)
            let store = try await Self.open(configuration)
            // At 40 bytes, `_failed_or_cancelled` (an index), `_by_deployment` and `_complete_rows` pass 63 bytes:
            // PostgreSQL stores them cut, and a lookup by the whole name found nothing and ran their DDL again.
            #expect(try await store.pendingSchemaStatements() == [], "prefix of \(length)")
            try await store.close()
            let restarted = try await Self.open(configuration)
            #expect(try await restarted.pendingSchemaStatements() == [], "prefix of \(length), restarted")
            // The store works under the cut names (a claim and a completion call the functions).
            _ = try await restarted.enqueue(Fixtures.request(), idempotencyKey: nil)
            let claimed = try await restarted.claim(owner: "w", leaseDuration: .seconds(60), limit: 1, now: Date())
            let id = try #require(claimed.first?.id)
            #expect(try await restarted.complete(id: id, owner: "w", result: Fixtures.result(), now: Date()))
            try await restarted.close()
        }
    }

    @Test("the texts a claim and a batch write send call this version's routines, and are made once per store")
    func sentTexts() async throws {
        guard let configuration = try Self.configuration() else { return }
        let store = try await Self.open(configuration)
        let operations = "\(configuration.tablePrefix)operations"
        let texts = store.sentTexts
        // Kept, not made again per call (bench/README.md, branch asynccost5).
        #expect(store.sentTexts === texts)
        #expect(
            texts.claim == """
                SELECT ROW(\(PostgresOperationStore.selectColumns), previous_lease_owner) FROM (SELECT \
                (c.claimed_operation).*, c.previous_lease_owner FROM \(operations)_claim4($1, $2, $3, $4, $5, $6, $7, $8, \
                $9) AS c) AS c
                """)
        #expect(
            texts.enqueue.call
                == "CALL \(operations)_enqueue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)")
        #expect(texts.enqueue.inTransaction == "\(store.enqueueInsert.sql) RETURNING id")
        #expect(texts.completion.call == "CALL \(operations)_complete2($1, $2, $3, $4, $5, $6, NULL)")
        #expect(
            texts.completion.inTransaction == "SELECT unnest(\(operations)_complete_rows($1, $2, $3, $4, $5, $6))")
        try await store.close()
    }

    @Test("a function whose planner settings were reset gets them back at the next start")
    func settingsRestored() async throws {
        guard let configuration = try Self.configuration() else { return }
        let store = try await Self.open(configuration)
        let claim = store.claimFunction.name
        let function = try #require(store.completionUpdate.function(returning: "r.n")).name
        func settings(_ name: String, in store: PostgresOperationStore) async throws -> String? {
            try await Self.run(store, "SELECT array_to_string(proconfig, ',') FROM pg_proc WHERE proname = '\(name)'")
                .first?.decode(String?.self)
        }
        for name in [claim, function] {
            _ = try await Self.run(store, "ALTER FUNCTION \(name) RESET ALL")
            #expect(try await settings(name, in: store) == nil)
        }
        // Only the two functions are due; their bodies are unchanged.
        let pending = try await store.pendingSchemaStatements()
        #expect(pending.count == 2, "\(pending)")
        #expect(pending.allSatisfy { $0.hasPrefix("CREATE OR REPLACE FUNCTION") }, "\(pending)")
        try await store.close()
        let restarted = try await Self.open(configuration)
        for name in [claim, function] {
            #expect(try await settings(name, in: restarted) == "enable_bitmapscan=off,enable_seqscan=off", "\(name)")
        }
        #expect(try await restarted.pendingSchemaStatements() == [])
        try await restarted.close()
    }

    @Test("a role that may not execute a function is refused at start with the GRANT that fixes it")
    func unexecutableFunctionNamedAtStart() async throws {
        guard let owner = try Self.configuration() else { return }
        let store = try await Self.open(owner)
        let role = "tgnoexec" + Operation.makeID().lowercased().filter { $0.isLetter || $0.isNumber }.prefix(8)
        let claim = store.claimFunction.name
        // The grants name this store's own objects: `ON ALL TABLES IN SCHEMA public` also took the tables, sequences
        // and procedures that other tests create and drop at the same time, and failed now and then when one went
        // (the unit suite runs in parallel on one cluster).
        let prefix = owner.tablePrefix
        let objects = try await Self.run(
            store,
            """
            SELECT CASE c.relkind WHEN 'S' THEN 'USAGE, SELECT ON SEQUENCE ' ELSE 'SELECT, INSERT, UPDATE, DELETE ON TABLE ' END
                || quote_ident(c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') AND left(c.relname, \(prefix.utf8.count)) = '\(prefix)'
            UNION ALL
            SELECT 'EXECUTE ON PROCEDURE ' || p.oid::regprocedure::text
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' AND p.prokind = 'p' AND left(p.proname, \(prefix.utf8.count)) = '\(prefix)'
            """
        ).map { try $0.decode(String.self) }
        #expect(objects.contains { $0.hasPrefix("EXECUTE ON PROCEDURE") }, "\(objects)")
        _ = try await Self.run(store, "CREATE ROLE \(role) LOGIN")
        for object in objects {
            _ = try await Self.run(store, "GRANT \(object) TO \(role)")
        }
        // A hardened database: functions are not executable by every role.
        _ = try await Self.run(store, "REVOKE EXECUTE ON FUNCTION \(claim) FROM PUBLIC")
        var asRole = try #require(try Self.configuration(role: role))
        asRole.tablePrefix = owner.tablePrefix
        let refused = await #expect(throws: GatewayError.self) { try await Self.open(asRole) }
        #expect(refused?.code == .unavailable)
        #expect(
            refused?.message.contains("permission denied for function \(claim)") == true, "\(refused?.message ?? "")")
        #expect(
            refused?.message.contains("GRANT EXECUTE ON FUNCTION \(claim) TO \(role)") == true,
            "\(refused?.message ?? "")")
        // With the grant, the role starts.
        _ = try await Self.run(store, "GRANT EXECUTE ON FUNCTION \(claim) TO \(role)")
        let started = try await Self.open(asRole)
        #expect(try await started.pendingSchemaStatements() == [])
        try await started.close()
        try await store.close()
    }

    /// FNV-1a (64 bits) of `text`'s UTF-8: a short, stable fingerprint of a routine's body for the table below.
    static func fingerprint(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
    }

    /// Every routine a version created, by name (prefix `tg_`), with the fingerprint of the body and settings it
    /// was made with. A name keeps its body for ever: an instance of any version replaces another body of that name
    /// at its start. If this test fails for a listed name, the change made its body or settings differ: give the
    /// routine a new name instead (as `_complete2` did); a new name is added here. `tg_operations_complete` is not
    /// listed: e030be6 and 4509262 made it with two bodies, and no later version makes it.
    static let released: [String: UInt64] = [
        // e030be6 and earlier.
        "tg_operations_enqueue": 0x468c_4fe6_065e_f987,
        // 4509262.
        "tg_operations_complete_rows": 0x56f9_c47d_9f3b_5ab0,
        "tg_operations_claim": 0xb261_7ab5_daee_a31e,
        // The sixteenth session's.
        "tg_operations_complete2": 0x0791_a5e3_e473_a0f2,
        // The twenty-first session's: `_claim2` answers each claim's previous lease owner (lease takeovers).
        "tg_operations_claim2": 0xc257_e2ea_8331_83c5,
        // The twenty-sixth session's: `_claim3` compares leases on the server's clock and holds other owners'
        // expired leases back as the caller and the server's uptime say (review 25 H1, M1).
        "tg_operations_claim3": 0x5484_3a11_8f6e_0bdf,
        // The fifty-ninth session's: `_claim4` is `_claim3` committed durably (cluster review 59, H1).
        "tg_operations_claim4": 0x2c83_511e_16e3_5c53,
    ]

    @Test(
        "every routine keeps the body and settings its name was released with; `_complete`, `_claim`, `_claim2` and `_claim3` are no longer made"
    )
    func releasedBodiesUnchanged() async throws {
        guard let configuration = try Self.configuration() else { return }
        let store = try await Self.open(configuration)
        // The texts with this test's unique prefix written as `tg_`.
        func named(_ text: String) -> String {
            text.replacingOccurrences(of: configuration.tablePrefix, with: "tg_")
        }
        var current: [String: UInt64] = [:]
        for routine in store.routines {
            current[named(routine.name)] = Self.fingerprint(named(routine.body) + "|" + (routine.settings ?? ""))
        }
        try await store.close()
        for (name, fingerprint) in current.sorted(by: { $0.key < $1.key }) {
            #expect(Self.released[name] == fingerprint, "\(name): 0x\(String(fingerprint, radix: 16))")
        }
        #expect(current["tg_operations_complete"] == nil)
        #expect(current["tg_operations_claim"] == nil, "replaced by _claim2; earlier instances make their own")
        #expect(current["tg_operations_claim2"] == nil, "replaced by _claim3; earlier instances make their own")
        #expect(current["tg_operations_claim3"] == nil, "replaced by _claim4; earlier instances make their own")
    }
}
