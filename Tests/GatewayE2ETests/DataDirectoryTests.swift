import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// The data directory as operators meet it with the real executable: one gateway per directory (the lock), and
/// what a restart on it leaves in `/metrics`.
@Suite("data directory: one gateway per directory, restarts")
struct DataDirectoryTests {
    static var gatewayPath: String { ProcessTests.gatewayPath }

    static func temporaryPath(_ prefix: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    }

    /// A `sleep` run of 30 s on the embedded demo pipelines; the operation's name.
    static func acceptSleep(_ client: TestHTTPClient) async throws -> String {
        let accepted = try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/sleep/trigger-async", headers: jsonHeaders,
            body: ByteBuffer(string: #"{"data":[{"variable":{"ms":30000}}]}"#)
        )
        #expect(accepted.status == 200, "\(accepted.bodyString)")
        return try #require((try json(accepted.body)["operation"] as? [String: Any])?["name"] as? String)
    }

    static func state(_ client: TestHTTPClient, _ name: String) async throws -> String? {
        let response = try await client.request("GET", "/v1beta/\(name)")
        return ((try json(response.body)["operation"] as? [String: Any])?["metadata"] as? [String: Any])?["state"]
            as? String
    }

    @Test(
        "a second serve on a data dir in use exits 1 naming the lock file and the holder's pid; the first serves on; after kill -9 a restart starts",
        .timeLimit(.minutes(2))
    )
    func secondServeRefused() async throws {
        let dataDir = Self.temporaryPath("tg-lock")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir]
        let first = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        let client = try await TestHTTPClient.connect(port: first.port)
        let name = try await Self.acceptSleep(client)
        #expect(try await eventually(within: .seconds(10)) { try await Self.state(client, name) == "running" })

        // Twice: a refused start leaves the lock (and its pid) as they were.
        for _ in 0..<2 {
            let second = try await TestProcess.run(
                Self.gatewayPath, arguments, environment: ["SWIFT_BACKTRACE": "enable=no"])
            #expect(second.status == 1, "\(second.stderr)")
            let last = second.stderr.split(separator: "\n").last.map(String.init) ?? ""
            #expect(
                last
                    == "trigger-gateway: the data directory is in use by another trigger-gateway (pid \(first.pid)): "
                    + "\(dataDir)/trigger-gateway.lock is locked; each instance needs its own data_dir (--data-dir)",
                "\(second.stderr)")
            #expect(!second.stdoutString.contains("listening on"), "\(second.stdoutString)")
        }
        // The first never saw the second: its run was not taken back, and it still answers.
        #expect(!first.logged.contains("took back the leases"), "\(first.logged)")
        #expect(try await Self.state(client, name) == "running")
        let health = try await client.request("GET", "/healthz")
        #expect(health.status == 200)
        await client.close()

        // kill -9: the kernel drops the lock; the restart takes the run back at once.
        #expect(await first.stop(signal: SIGKILL) == SIGKILL)
        let restarted = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        defer { Task { await restarted.stop() } }
        #expect(await restarted.logOccurrences(of: "took back the leases", timeout: .seconds(10)) == 1)
        let again = try await TestHTTPClient.connect(port: restarted.port)
        #expect(try await Self.state(again, name) == "running")
        await again.close()
        let pid = try String(contentsOfFile: "\(dataDir)/trigger-gateway.lock", encoding: .utf8)
        #expect(pid == "\(restarted.pid)\n")
    }

    /// The permission bits of `path`.
    static func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? Int
    }

    static func setMode(_ path: String, _ mode: Int) throws {
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    @Test(
        "a data dir serve creates is 0700 and the store's files (database, -wal, -shm) 0600, whatever the umask allows; no warning",
        .timeLimit(.minutes(1))
    )
    func storeFilesArePrivate() async throws {
        let parent = Self.temporaryPath("tg-modes")
        let dataDir = parent + "/data"
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let server = try await TestProcess.Server.start(
            Self.gatewayPath, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir])
        let client = try await TestHTTPClient.connect(port: server.port)
        _ = try await Self.acceptSleep(client)
        await client.close()
        #expect(Self.mode(dataDir) == 0o700)
        #expect(Self.mode(parent) == 0o755, "a created parent is an ordinary directory")
        for file in ["operations.sqlite", "operations.sqlite-wal", "operations.sqlite-shm", "instance-id"] {
            #expect(Self.mode("\(dataDir)/\(file)") == 0o600, "\(file)")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(dataDir)/instance-id.tmp"))
        #expect(!server.logged.contains("open to other users"), "\(server.logged)")
        await server.stop()
    }

    @Test(
        "an existing instance-id file open to other users: serve warns once naming it and its mode, and keeps its id; a 0600 one: no warning",
        .timeLimit(.minutes(1))
    )
    func exposedInstanceIDWarns() async throws {
        let dataDir = Self.temporaryPath("tg-exposed-id")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: false)
        try Self.setMode(dataDir, 0o700)
        let path = "\(dataDir)/instance-id"
        try "abc123\n".write(toFile: path, atomically: false, encoding: .utf8)
        try Self.setMode(path, 0o644)
        let arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir]
        let exposed = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        #expect(await exposed.logOccurrences(of: "is open to other users (mode 0644)", timeout: .seconds(5)) == 1)
        #expect(exposed.logged.contains("the instance-id file \(path) is open"), "\(exposed.logged)")
        await exposed.stop()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "abc123\n", "the id is kept, not remade")
        #expect(Self.mode(path) == 0o644, "an operator's file keeps its mode")

        try Self.setMode(path, 0o600)
        let private_ = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        let health = try await TestHTTPClient.connect(port: private_.port)
        #expect(try await health.request("GET", "/healthz").status == 200)
        await health.close()
        #expect(!private_.logged.contains("open to other users"), "\(private_.logged)")
        await private_.stop()
    }

    @Test(
        "secret keys open to other users (generated Craft key, craft.jwt_secret_file, tls.key_file): one warning each naming the file and its mode; 0600 ones: none",
        .timeLimit(.minutes(1))
    )
    func exposedKeyFilesWarn() async throws {
        let dataDir = Self.temporaryPath("tg-exposed-keys")
        let pki = try await TestCertificates.make()
        defer {
            try? FileManager.default.removeItem(atPath: dataDir)
            pki.remove()
        }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: false)
        try Self.setMode(dataDir, 0o700)
        let generated = "\(dataDir)/craft-jwt.key"
        try (String(repeating: "ab", count: 32) + "\n").write(toFile: generated, atomically: false, encoding: .utf8)
        let secret = "\(dataDir)/shared-jwt.key"
        try (String(repeating: "cd", count: 32) + "\n").write(toFile: secret, atomically: false, encoding: .utf8)
        let config = "\(dataDir)/gateway.yaml"
        try Self.setMode(generated, 0o644)
        try Self.setMode(secret, 0o640)
        try Self.setMode(pki.serverKey, 0o604)
        let tls = "tls: {cert_file: \(pki.serverCert), key_file: \(pki.serverKey), allow_plaintext: true}\n"
        // The generated key first (no jwt_secret_file), then the configured one.
        for (yaml, craftKey) in [(tls, generated), (tls + "craft: {jwt_secret_file: \(secret)}\n", secret)] {
            try yaml.write(toFile: config, atomically: false, encoding: .utf8)
            let server = try await TestProcess.Server.start(
                Self.gatewayPath, ["serve", "--config", config, "--listen", "127.0.0.1:0", "--data-dir", dataDir])
            #expect(await server.logOccurrences(of: "is open to other users", atLeast: 2, timeout: .seconds(5)) == 2)
            let what = craftKey == secret ? "craft.jwt_secret_file" : "the Craft AI signing key"
            let craftMode = craftKey == secret ? "0640" : "0644"
            #expect(
                server.logged.contains("\(what) \(craftKey) is open to other users (mode \(craftMode))"),
                "\(server.logged)")
            #expect(
                server.logged.contains("tls.key_file \(pki.serverKey) is open to other users (mode 0604)"),
                "\(server.logged)")
            await server.stop()
        }
        for path in [generated, secret, pki.serverKey] { try Self.setMode(path, 0o600) }
        let private_ = try await TestProcess.Server.start(
            Self.gatewayPath, ["serve", "--config", config, "--listen", "127.0.0.1:0", "--data-dir", dataDir])
        let health = try await TestHTTPClient.connect(port: private_.port)
        #expect(try await health.request("GET", "/healthz").status == 200)
        await health.close()
        #expect(!private_.logged.contains("open to other users"), "\(private_.logged)")
        await private_.stop()
    }

    @Test(
        "data_dir that cannot be made: check-config says so; a relative one names the working directory and --data-dir"
    )
    func dataDirectoryProblems() async throws {
        let root = Self.temporaryPath("tg-dd-problem")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false)
        let blocker = "\(root)/blocker"
        try "a file\n".write(toFile: blocker, atomically: false, encoding: .utf8)
        let config = "\(root)/gateway.yaml"
        try "data_dir: \(blocker)/data\n".write(toFile: config, atomically: false, encoding: .utf8)
        var out = try await TestProcess.run(Self.gatewayPath, ["check-config", config])
        #expect(out.status == 1, "\(out.stdoutString)")
        #expect(out.stderr.contains("data_dir: \(blocker) is not a directory"), "\(out.stderr)")
        try "data_dir: \(root)/new/data\n".write(toFile: config, atomically: false, encoding: .utf8)
        out = try await TestProcess.run(Self.gatewayPath, ["check-config", config])
        #expect(out.status == 0, "a creatable data_dir is fine: \(out.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/new"), "check-config makes nothing")
        // --data-dir overrides the file, as serve's does (a unit's ExecStartPre given ExecStart's flags), and a
        // problem is named by the flag.
        out = try await TestProcess.run(Self.gatewayPath, ["check-config", config, "--data-dir", "\(blocker)/data"])
        #expect(out.status == 1, "\(out.stdoutString)")
        #expect(out.stderr == "\(config): --data-dir: \(blocker) is not a directory\n", "\(out.stderr)")
        try "data_dir: \(blocker)/data\n".write(toFile: config, atomically: false, encoding: .utf8)
        out = try await TestProcess.run(Self.gatewayPath, ["check-config", config, "--data-dir", "\(root)/new/data"])
        #expect(out.status == 0, "the flag's creatable directory, not the file's: \(out.stderr)")

        // serve with a relative data dir that cannot be made: relative to what, and which setting.
        out = try await TestProcess.run(
            "/bin/sh",
            ["-c", "cd '\(root)' && exec '\(Self.gatewayPath)' serve --listen 127.0.0.1:0 --data-dir blocker/data"],
            environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(out.status != 0)
        #expect(
            out.stderr.contains(
                "(a path relative to the working directory \(root); set an absolute --data-dir or data_dir)"),
            "\(out.stderr)")
    }

    @Test(
        "a garbage or empty instance-id file: serve warns once that it replaced it with a new id; a valid one: no warning",
        .timeLimit(.minutes(1))
    )
    func garbageInstanceIDWarns() async throws {
        let dataDir = Self.temporaryPath("tg-garbage-id")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: false)
        try Self.setMode(dataDir, 0o700)
        let path = "\(dataDir)/instance-id"
        let arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir]
        // (An unreadable file takes the same path with "cannot be read"; these tests run as root, which reads it.)
        for contents in [Data("hello world!\u{0}".utf8) + Data([0xff]), Data()] {
            try contents.write(to: URL(fileURLWithPath: path))
            try Self.setMode(path, 0o600)
            let server = try await TestProcess.Server.start(Self.gatewayPath, arguments)
            #expect(
                await server.logOccurrences(of: "does not hold an instance id", timeout: .seconds(5)) == 1,
                "\(server.logged)")
            #expect(server.logged.contains("the instance-id file \(path)"), "\(server.logged)")
            #expect(server.logged.contains("replaced with a new id"), "\(server.logged)")
            await server.stop()
            let written = try String(contentsOfFile: path, encoding: .utf8)
            #expect(written.count > 2 && written.hasSuffix("\n"), "a fresh id is written: \(written)")
            let again = try await TestProcess.Server.start(Self.gatewayPath, arguments)
            let health = try await TestHTTPClient.connect(port: again.port)
            #expect(try await health.request("GET", "/healthz").status == 200)
            await health.close()
            #expect(!again.logged.contains("instance-id"), "the new id is kept: \(again.logged)")
            await again.stop()
        }
    }

    @Test(
        "an existing data dir open to other users: serve warns once naming it and its mode, and serves; a 0700 one: no warning",
        .timeLimit(.minutes(1))
    )
    func exposedDataDirWarns() async throws {
        let dataDir = Self.temporaryPath("tg-exposed")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: false)
        try Self.setMode(dataDir, 0o750)
        let arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir]
        let exposed = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        #expect(await exposed.logOccurrences(of: "is open to other users (mode 0750)", timeout: .seconds(5)) == 1)
        #expect(exposed.logged.contains("the data directory \(dataDir) is open"), "\(exposed.logged)")
        #expect(Self.mode(dataDir) == 0o750, "an operator's directory keeps its mode")
        #expect(Self.mode("\(dataDir)/operations.sqlite") == 0o600)
        await exposed.stop()

        try Self.setMode(dataDir, 0o700)
        let private_ = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        let health = try await TestHTTPClient.connect(port: private_.port)
        #expect(try await health.request("GET", "/healthz").status == 200)
        await health.close()
        #expect(!private_.logged.contains("open to other users"), "\(private_.logged)")
        await private_.stop()
    }

    @Test(
        "cancelling a running operation logs that it was cancelled, not that its lease was lost",
        .timeLimit(.minutes(1)))
    func cancelIsLoggedAsCancel() async throws {
        let dataDir = Self.temporaryPath("tg-cancel-log")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let server = try await TestProcess.Server.start(
            Self.gatewayPath, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir])
        let client = try await TestHTTPClient.connect(port: server.port)
        let name = try await Self.acceptSleep(client)
        #expect(try await eventually(within: .seconds(10)) { try await Self.state(client, name) == "running" })
        let cancelled = try await client.request("POST", "/v1beta/\(name):cancel")
        #expect(cancelled.status == 200, "\(cancelled.bodyString)")
        await client.close()
        #expect(await server.logOccurrences(of: "operation cancelled; its run was stopped", timeout: .seconds(10)) == 1)
        #expect(!server.logged.contains("lease lost"), "\(server.logged)")
        await server.stop()
    }

    @Test("check-config takes no lock: it validates a file while a gateway runs")
    func checkConfigTakesNoLock() async throws {
        let dataDir = Self.temporaryPath("tg-lock-check")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let config = Self.temporaryPath("tg-lock-check") + ".yaml"
        try "data_dir: \(dataDir)\n".write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let server = try await TestProcess.Server.start(
            Self.gatewayPath, ["serve", "--config", config, "--listen", "127.0.0.1:0"])
        defer { Task { await server.stop() } }
        let out = try await TestProcess.run(Self.gatewayPath, ["check-config", config])
        #expect(out.status == 0, "\(out.stderr)")
        // The file path in --config is the same directory: serve's own refusal proves the lock is there.
        let refused = try await TestProcess.run(
            Self.gatewayPath, ["serve", "--config", config, "--listen", "127.0.0.1:0"],
            environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("(pid \(server.pid))"), "\(refused.stderr)")
    }

    /// The embedded default's one pool's queue.
    static let demoQueued = #"trigger_gateway_async_queued{pool="demo"}"#

    @Test(
        "trigger_gateway_async_queued after a restart is the store's queue (2 queued, 1 running), never negative",
        .timeLimit(.minutes(2))
    )
    func queuedGaugeAfterRestart() async throws {
        let dataDir = Self.temporaryPath("tg-queued")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let config = Self.temporaryPath("tg-queued") + ".yaml"
        // One worker: of three runs one is running, two stay queued.
        try "timeouts: {shutdown_grace: 200ms}\nstore: {workers: 1, poll_interval: 100ms}\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let arguments = ["serve", "--config", config, "--listen", "127.0.0.1:0", "--data-dir", dataDir]

        let first = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        var client = try await TestHTTPClient.connect(port: first.port)
        var names: [String] = []
        for _ in 0..<3 { names.append(try await Self.acceptSleep(client)) }
        let firstScrape = try await MetricsE2ETests.scrape(client) {
            $0.samples["trigger_gateway_async_running"] == 1 && $0.samples[Self.demoQueued] == 2
        }
        #expect(firstScrape.samples[Self.demoQueued] == 2, "\(firstScrape.text)")
        await client.close()
        // SIGTERM: the running one is cut after the grace and handed back to the queue.
        #expect(await first.stop() == 0)

        let second = try await TestProcess.Server.start(Self.gatewayPath, arguments)
        defer { Task { await second.stop() } }
        client = try await TestHTTPClient.connect(port: second.port)
        var seen: [Double] = []
        let scrape = try await MetricsE2ETests.scrape(client) {
            seen.append($0.samples[Self.demoQueued] ?? .nan)
            return $0.samples["trigger_gateway_async_running"] == 1 && $0.samples[Self.demoQueued] == 2
        }
        #expect(scrape.samples["trigger_gateway_async_running"] == 1, "\(scrape.text)")
        #expect(scrape.samples[Self.demoQueued] == 2, "\(seen)")
        // NaN: absent, before the restarted gateway's first count.
        #expect(seen.allSatisfy { $0.isNaN || $0 >= 0 }, "\(seen)")

        // Cancelling a queued one: the count follows the store.
        let queued = try #require(
            try await names.asyncFirst { try await Self.state(client, $0) == "queued" })
        let cancelled = try await client.request(
            "POST", "/v1beta/\(queued):cancel", headers: jsonHeaders, body: ByteBuffer(string: "{}"))
        #expect(cancelled.status == 200, "\(cancelled.bodyString)")
        let after = try await MetricsE2ETests.scrape(client) { $0.samples[Self.demoQueued] == 1 }
        #expect(after.samples[Self.demoQueued] == 1, "\(after.text)")
        await client.close()
    }
}

extension Array {
    fileprivate func asyncFirst(where predicate: (Element) async throws -> Bool) async rethrows -> Element? {
        for element in self where try await predicate(element) { return element }
        return nil
    }
}
