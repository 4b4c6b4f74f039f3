import Foundation
import GatewayTestSupport
import Testing

/// A copied `instance-id` (a cloned data dir) on two live gateways sharing PostgreSQL (review 9 #2): the
/// heartbeat's per-process nonce shows the second writer, and both log an error while it lasts; a crash restart
/// of one instance (the dead run's heartbeat still fresh) does not.
@Suite("PostgreSQL: one instance id on two live gateways", .serialized)
struct PostgresInstanceIDTests {
    static let warning = "is in use by another live gateway too"

    static func dataDir(id: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-clone-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        try "\(id)\n".write(toFile: "\(dir)/instance-id", atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: "\(dir)/instance-id")
        return dir
    }

    static func start(config: String, dataDir: String) async throws -> TestProcess.Server {
        try await TestProcess.Server.start(
            PostgresTLSTests.gatewayPath,
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--config", config])
    }

    @Test(
        "two live gateways with one instance id both log it; a crash restart of one does not", .timeLimit(.minutes(2)))
    func copiedInstanceIDIsReported() async throws {
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            let config = try PostgresTLSTests.writeConfig(url: postgres.url())
            let first = try Self.dataDir(id: "clonedid1"), copy = try Self.dataDir(id: "clonedid1")
            defer {
                for path in [config, first, copy] { try? FileManager.default.removeItem(atPath: path) }
            }
            // A crash restart: the dead run's heartbeat is fresh, its nonce is not the new run's.
            let crashed = try await Self.start(config: config, dataDir: first)
            #expect(try await PostgresTLSTests.asyncReady(crashed), "\(crashed.logged)")
            _ = await crashed.stop(signal: SIGKILL)
            let a = try await Self.start(config: config, dataDir: first)
            #expect(try await PostgresTLSTests.asyncReady(a), "\(a.logged)")
            // Ten beats (health_interval 200ms) with no second writer: no error.
            try await Task.sleep(for: .seconds(2))
            #expect(!a.logged.contains(Self.warning), "\(a.logged)")

            let b = try await Self.start(config: config, dataDir: copy)
            #expect(await b.logOccurrences(of: Self.warning, timeout: .seconds(10)) >= 1, "\(b.logged)")
            #expect(await a.logOccurrences(of: Self.warning, timeout: .seconds(10)) >= 1, "\(a.logged)")
            #expect(a.logged.contains("instance id clonedid1"), "\(a.logged)")
            #expect(a.logged.contains("delete <data_dir>/instance-id"), "\(a.logged)")
            _ = await b.stop()
            _ = await a.stop()
        }
    }
}
