import FoundationEssentials
import GatewayTestSupport
import NIOCore
import Testing

/// The PostgreSQL role the gateway runs as (review 9 #3): a missing privilege is named with its GRANT, never
/// called "unreachable"; a schema already current runs no DDL, so a role with DML + EXECUTE only (a DBA's usual
/// split: another role owns the objects) runs the gateway. Real gateway processes and a throwaway PostgreSQL
/// (`scripts/postgres-versions.sh` runs them on 11 to 16).
@Suite("PostgreSQL roles: privilege errors and a DML-only role", .serialized)
struct PostgresRoleTests {
    static func url(_ postgres: ThrowawayPostgres, role: String) -> String {
        "postgres://\(role)@127.0.0.1:\(postgres.port)/postgres"
    }

    static func accept(_ gateway: TestProcess.Server) async throws -> TestHTTPClient.Response {
        let client = try await TestHTTPClient.connect(port: gateway.port)
        defer { Task { await client.close() } }
        return try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger-async",
            headers: jsonHeaders, body: try jsonBody(["data": [["variable": ["p": "role"]]]]))
    }

    @Test("a role without CREATE on the schema: the log names the GRANT, clients read \"not ready\"")
    func missingCreateNamesTheGrant() async throws {
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            // PostgreSQL 11 to 14 grant CREATE on `public` to every role (PUBLIC); 15 no longer does. Revoked
            // here so that the role lacks it on every version README promises (a no-op on 15+).
            _ = try await postgres.psql("CREATE ROLE tgmin LOGIN; REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            try await PostgresTLSTests.withGateway(url: Self.url(postgres, role: "tgmin")) {
                (gateway: TestProcess.Server) async throws in
                #expect(
                    await gateway.logOccurrences(
                        of: "GRANT USAGE, CREATE ON SCHEMA public TO tgmin", timeout: .seconds(20)) >= 1,
                    "\(gateway.logged)")
                #expect(gateway.logged.contains("the PostgreSQL role tgmin lacks a privilege"), "\(gateway.logged)")
                #expect(!gateway.logged.contains("unreachable"), "\(gateway.logged)")
                #expect(!gateway.logged.contains("cannot reach"), "\(gateway.logged)")
                let refused = try await Self.accept(gateway)
                #expect(refused.status == 503)
                #expect(refused.bodyString.contains("the operation store is not ready"), "\(refused.bodyString)")
                #expect(!refused.bodyString.contains("reached"), "\(refused.bodyString)")
            }
        }
    }

    @Test("a schema made by its owner: a DML + EXECUTE role starts without DDL and runs async triggers")
    func dmlOnlyRoleRuns() async throws {
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            let prefix = PostgresTLSTests.randomPrefix()
            // The owner's first start makes the schema.
            try await PostgresTLSTests.withGateway(url: postgres.url(), prefix: prefix) {
                (gateway: TestProcess.Server) async throws in
                #expect(try await PostgresTLSTests.asyncReady(gateway), "\(gateway.logged)")
            }
            _ = try await postgres.psql(
                """
                CREATE ROLE tgdml LOGIN;
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tgdml;
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tgdml;
                GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA public TO tgdml;
                """)
            let before = try await postgres.psql("SELECT count(*) FROM pg_proc WHERE proname LIKE '\(prefix)%'")
            try await PostgresTLSTests.withGateway(url: Self.url(postgres, role: "tgdml"), prefix: prefix) {
                (gateway: TestProcess.Server) async throws in
                #expect(try await PostgresTLSTests.asyncReady(gateway), "\(gateway.logged)")
                #expect(!gateway.logged.contains("lacks a privilege"), "\(gateway.logged)")
                let async = try await AsyncClient.connect(port: gateway.port)
                let accepted = try await async.trigger("upper", ["p": "dml"])
                #expect(accepted.status == 200, "\(accepted.json)")
                let name = try #require(accepted.json.operationName)
                #expect(try await async.waitDone(name).metadataState == "succeeded")
                await async.client.close()
            }
            let owners = try await postgres.psql(
                "SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc WHERE proname LIKE '\(prefix)%'")
            #expect(owners == "postgres", "the procedures were not replaced by tgdml: \(owners)")
            #expect(try await postgres.psql("SELECT count(*) FROM pg_proc WHERE proname LIKE '\(prefix)%'") == before)
        }
    }

    /// Review 27 M1: a role's CONNECTION LIMIT under the pool's size failed async triggers with "waiting for a
    /// PostgreSQL connection was cancelled", and SQLSTATE 53300 was logged nowhere.
    @Test(
        """
        a role's CONNECTION LIMIT under store.max_connections: one warning with the server's words (53300) and what \
        to change; the gateway goes on with the connections it has
        """,
        .timeLimit(.minutes(2)))
    func connectionLimitNamed() async throws {
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            _ = try await postgres.psql(
                "CREATE ROLE tglim LOGIN CONNECTION LIMIT 3; GRANT ALL ON SCHEMA public TO tglim")
            try await PostgresTLSTests.withGateway(
                url: Self.url(postgres, role: "tglim"), storeExtra: ", max_connections: 8, workers: 16"
            ) { (gateway: TestProcess.Server) async throws in
                #expect(try await PostgresTLSTests.asyncReady(gateway), "\(gateway.logged)")
                // Concurrent triggers need more connections than the role may open.
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<12 { group.addTask { try await Self.accept(gateway).status } }
                    for try await _ in group {}
                }
                let warning = "PostgreSQL refuses the gateway's new connections"
                #expect(
                    await gateway.logOccurrences(of: warning, timeout: .seconds(30)) >= 1, "\(gateway.logged)")
                let line = try #require(gateway.logged.split(separator: "\n").first { $0.contains(warning) })
                #expect(line.contains("SQLSTATE 53300"), "\(line)")
                #expect(line.contains("too many connections for role"), "\(line)")
                #expect(line.contains("store.max_connections=8"), "\(line)")
                // With the connections it has, async triggers are accepted.
                #expect(
                    try await eventually(within: .seconds(30)) { try await Self.accept(gateway).status == 200 },
                    "\(gateway.logged)")
            }
        }
    }
}
