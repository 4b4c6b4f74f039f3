import Foundation
import GatewayTestSupport
import Testing

/// TLS to PostgreSQL with libpq's `sslmode` (review 9 #1: the URL's query was dropped, so `sslmode=require`
/// talked cleartext). Real gateway processes, a throwaway PostgreSQL with `ssl=on` and an openssl-made PKI;
/// `pg_stat_ssl` (the server's own view) says whether the gateway's connections are encrypted.
@Suite("TLS to PostgreSQL (sslmode, sslrootcert, URL parameters)", .serialized)
struct PostgresTLSTests {
    static var gatewayPath: String { TestProcess.productsDirectory.appendingPathComponent("trigger-gateway").path }

    static func randomPrefix() -> String { "t\(UUID().uuidString.prefix(8).lowercased())_" }

    static func writeConfig(url: String, prefix: String = randomPrefix(), storeExtra: String = "") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tg-pgtls-\(UUID().uuidString).yaml")
        try """
        store: {kind: postgres, url: "\(url)", table_prefix: \(prefix), health_interval: 200ms\(storeExtra)}
        """.write(to: path, atomically: true, encoding: .utf8)
        return path.path
    }

    static func checkConfig(url: String) async throws -> TestProcess.Output {
        let config = try writeConfig(url: url)
        defer { try? FileManager.default.removeItem(atPath: config) }
        return try await TestProcess.run(gatewayPath, ["check-config", config])
    }

    /// Runs a gateway on `url` until `body` returns.
    static func withGateway<T: Sendable>(
        url: String,
        prefix: String = randomPrefix(),
        storeExtra: String = "",
        _ body: (TestProcess.Server) async throws -> T
    ) async throws -> T {
        let config = try writeConfig(url: url, prefix: prefix, storeExtra: storeExtra)
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-pgtls-\(UUID().uuidString)")
            .path
        defer {
            try? FileManager.default.removeItem(atPath: config)
            try? FileManager.default.removeItem(atPath: dataDir)
        }
        let gateway = try await TestProcess.Server.start(
            gatewayPath, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--config", config])
        do {
            let value = try await body(gateway)
            _ = await gateway.stop()
            return value
        } catch {
            _ = await gateway.stop()
            throw error
        }
    }

    static func asyncReady(_ gateway: TestProcess.Server) async throws -> Bool {
        let client = try await TestHTTPClient.connect(port: gateway.port)
        defer { Task { await client.close() } }
        return try await eventually(within: .seconds(20), interval: .milliseconds(100)) {
            try await client.request("GET", "/readyz?component=async").status == 200
        }
    }

    /// `ssl` of every connection whose `application_name` is `name`, as the server sees them.
    static func sslOfConnections(_ postgres: ThrowawayPostgres, named name: String) async throws -> [String] {
        try await postgres.psql(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = '\(name)'"
        ).split(separator: "\n").map(String.init)
    }

    @Test("sslmode=require and verify-full encrypt every connection (pg_stat_ssl); disable does not")
    func encryptedConnections() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start(tls: certificates)
            let cases: [(query: String, name: String, ssl: String)] = [
                ("sslmode=require", "tg_require", "t"),
                ("sslmode=verify-full&sslrootcert=\(certificates.caFile)", "tg_verify_full", "t"),
                ("sslmode=verify-ca&sslrootcert=\(certificates.caFile)", "tg_verify_ca", "t"),
                // libpq's default is prefer: TLS when the server offers it.
                ("", "tg_default", "t"),
                ("sslmode=disable", "tg_disable", "f"),
            ]
            for (query, name, ssl) in cases {
                let url = "\(postgres.url())?\(query)\(query.isEmpty ? "" : "&")application_name=\(name)"
                #expect(try await Self.checkConfig(url: url).status == 0, "\(query)")
                try await Self.withGateway(url: url) { (gateway: TestProcess.Server) async throws in
                    #expect(try await Self.asyncReady(gateway), "\(query): \(gateway.logged)")
                    let seen = try await Self.sslOfConnections(postgres, named: name)
                    #expect(!seen.isEmpty && seen.allSatisfy { $0 == ssl }, "\(query): \(seen)")
                }
            }
        }
    }

    @Test("verify-full with the wrong CA, and require against a server without TLS, fail with a clear reason")
    func refusedConnections() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start(tls: certificates)
            let url = "\(postgres.url())?sslmode=verify-full&sslrootcert=\(certificates.otherCAFile)"
            try await Self.withGateway(url: url) { (gateway: TestProcess.Server) async throws in
                #expect(
                    await gateway.logOccurrences(of: "not signed by a CA in sslrootcert", timeout: .seconds(20)) >= 1,
                    "\(gateway.logged)")
                #expect(gateway.logged.contains("sslmode=verify-full"), "\(gateway.logged)")
            }
        }
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            try await Self.withGateway(url: "\(postgres.url())?sslmode=require") {
                (gateway: TestProcess.Server) async throws in
                #expect(
                    await gateway.logOccurrences(of: "does not accept TLS connections", timeout: .seconds(20)) >= 1,
                    "\(gateway.logged)")
            }
            // prefer (the default) goes on in cleartext with such a server.
            try await Self.withGateway(url: "\(postgres.url())?application_name=tg_plain") {
                (gateway: TestProcess.Server) async throws in
                #expect(try await Self.asyncReady(gateway), "\(gateway.logged)")
                #expect(try await Self.sslOfConnections(postgres, named: "tg_plain").allSatisfy { $0 == "f" })
            }
        }
    }

    @Test("an unknown role and a missing database are named as the login's and the URL's, not a statement's")
    func refusedLogins() async throws {
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            let url = postgres.url()
            // The log line quotes the server's message (logfmt escapes its quotes): matched up to them.
            for (bad, expected) in [
                (
                    url.replacingOccurrences(of: "//postgres@", with: "//nobody_here@"),
                    "PostgreSQL refused the login of store.url's user: role \\\"nobody_here\\\" does not exist"
                ),
                (
                    String(url.dropLast("postgres".count)) + "no_such_db",
                    "PostgreSQL has no database of store.url's name: database \\\"no_such_db\\\" does not exist"
                ),
            ] {
                try await Self.withGateway(url: bad) { (gateway: TestProcess.Server) async throws in
                    #expect(
                        await gateway.logOccurrences(of: expected, timeout: .seconds(20)) >= 1, "\(gateway.logged)")
                    #expect(!gateway.logged.contains("refused the statement"), "\(gateway.logged)")
                }
            }
        }
    }

    @Test("check-config refuses unknown URL parameters, sslmode=allow, and missing or unreadable TLS files")
    func refusedAtCheckConfig() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let base = "postgres://u@127.0.0.1:1/db"
        let refused: [(query: String, says: String)] = [
            ("sslmode=verify-full&sslrootcert=/nonexistent.pem", "/nonexistent.pem"),
            ("sslmode=verify-full", "needs sslrootcert"),
            ("sslmode=allow", "sslmode=allow is not supported"),
            ("sslmode=requre", "sslmode=requre is not one of"),
            ("target_session_attrs=read-write", "\"target_session_attrs\" is not supported"),
            ("connect_timeout=0", "connect_timeout=0"),
            ("sslmode=require&sslcert=\(certificates.clientCert)", "sslcert and sslkey go together"),
            ("sslmode=require&sslrootcert=\(certificates.clientKey)", "not PEM certificates"),
            ("sslmode=disable&sslrootcert=\(certificates.caFile)", "the files would not be used"),
        ]
        for (query, says) in refused {
            let output = try await Self.checkConfig(url: "\(base)?\(query)")
            #expect(output.status == 1, "\(query)")
            #expect(output.stderr.contains("store.url") && output.stderr.contains(says), "\(query): \(output.stderr)")
        }
        let accepted = [
            "sslmode=verify-full&sslrootcert=\(certificates.caFile)&sslcert=\(certificates.clientCert)"
                + "&sslkey=\(certificates.clientKey)",
            "sslmode=verify-ca&sslrootcert=system", "connect_timeout=3&application_name=gw", "sslmode=prefer",
        ]
        for query in accepted {
            let output = try await Self.checkConfig(url: "\(base)?\(query)")
            #expect(output.status == 0, "\(query): \(output.stderr)")
        }
    }
}
