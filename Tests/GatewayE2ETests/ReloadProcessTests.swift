import Foundation
import GatewayTestSupport
import NIOCore
import Synchronization
import Testing

/// SIGHUP on the real executable (issue 9 item 2): reload under sync, stream and async load loses nothing,
/// a new route answers within a second, a broken file keeps the running configuration; SIGINT and SIGTERM
/// still drain.
@Suite("trigger-gateway reloads on SIGHUP", .serialized)
struct ReloadProcessTests {
    static func config(extraNamespaces: [String]) -> String {
        var yaml =
            "pools: [{name: local, transport: inprocess}]\nroutes:\n  - {namespace: demo, pipeline: \"*\", pool: local}\n"
        for ns in extraNamespaces { yaml += "  - {namespace: \(ns), pipeline: \"*\", pool: local}\n" }
        return yaml
    }

    /// Failures seen by the load loops, with what went wrong.
    final class Tally: Sendable {
        let failures = Mutex<[String]>([])
        let completed = Atomic<Int>(0)
        let operations = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)
        func fail(_ what: String) { failures.withLock { $0.append(what) } }
    }

    static func syncLoop(port: Int, tally: Tally) async {
        guard let client = try? await TestHTTPClient.connect(port: port) else { return tally.fail("sync: connect") }
        var n = 0
        while !tally.stop.load(ordering: .relaxed), n < 5_000 {
            n += 1
            do {
                let r = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"x"}}]}"#)
                )
                if r.status != 200 { tally.fail("sync \(r.status): \(r.bodyString)") }
                tally.completed.add(1, ordering: .relaxed)
            } catch {
                tally.fail("sync: \(error)")
                return
            }
        }
        await client.close()
    }

    static func streamLoop(port: Int, tally: Tally) async {
        guard let client = try? await TestHTTPClient.connect(port: port) else { return tally.fail("stream: connect") }
        var n = 0
        while !tally.stop.load(ordering: .relaxed), n < 2_000 {
            n += 1
            do {
                let r = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/tokens/trigger-stream", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"a b c","delay_ms":5}}]}"#)
                )
                let text = r.bodyString
                if r.status != 200 || text.contains("PIPELINE_ERROR_UPDATED") || !text.contains(#""text":"a b c""#) {
                    tally.fail("stream \(r.status): \(text)")
                }
                tally.completed.add(1, ordering: .relaxed)
            } catch {
                tally.fail("stream: \(error)")
                return
            }
        }
        await client.close()
    }

    static func asyncLoop(port: Int, tally: Tally) async {
        guard let client = try? await TestHTTPClient.connect(port: port) else { return tally.fail("async: connect") }
        var n = 0
        while !tally.stop.load(ordering: .relaxed), n < 2_000 {
            n += 1
            do {
                let r = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger-async", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"i":\#(n)}}]}"#)
                )
                guard r.status == 200, let operation = try json(r.body)["operation"] as? [String: Any],
                    let name = operation["name"] as? String
                else {
                    tally.fail("async \(r.status): \(r.bodyString)")
                    continue
                }
                tally.operations.withLock { $0.append(name) }
                tally.completed.add(1, ordering: .relaxed)
            } catch {
                tally.fail("async: \(error)")
                return
            }
        }
        await client.close()
    }

    @Test(
        "reload under sync, stream and async load: nothing fails, each new route answers within 1 s, a broken file is refused"
    )
    func reloadUnderLoad() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-hup-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Self.config(extraNamespaces: []).write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            let tally = Tally()
            let port = server.port
            let loads = Task {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await Self.syncLoop(port: port, tally: tally) }
                    group.addTask { await Self.streamLoop(port: port, tally: tally) }
                    group.addTask { await Self.asyncLoop(port: port, tally: tally) }
                }
            }
            let probe = try await TestHTTPClient.connect(port: port)
            var namespaces: [String] = []
            for round in 1...4 {
                // Each reload lands while all three loads are running: wait until they made progress since the last.
                let mark = tally.completed.load(ordering: .relaxed)
                #expect(
                    await eventually(within: .seconds(10), interval: .milliseconds(5)) {
                        tally.completed.load(ordering: .relaxed) >= mark + 6
                    })
                namespaces.append("added\(round)")
                try Self.config(extraNamespaces: namespaces).write(to: file, atomically: true, encoding: .utf8)
                server.signal(SIGHUP)
                // The gateway logs the reload once the new routes are in place: the route answers from then on.
                #expect(
                    await server.logOccurrences(of: "config reloaded", atLeast: round, timeout: .seconds(1)) == round,
                    "no reload within 1 s of SIGHUP")
                let status = try await probe.request(
                    "POST", "/v1beta/namespaces/added\(round)/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#)
                ).status
                #expect(status == 200, "route added\(round) did not answer after its reload")
            }
            #expect(await server.logOccurrences(of: "config reloaded", atLeast: 4, timeout: .seconds(5)) == 4)

            // A broken file with three mistakes: refused with check-config's own message, every mistake of it and
            // their count, on the one refusal line; the running routes stay.
            let broken = "limits: {max_batch: 0}\nroutes: [{namespace: demo, pool: gpu}]\ntimeouts: {idle: 0s}\n"
            try broken.write(to: file, atomically: true, encoding: .utf8)
            let check = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path])
            #expect(check.status != 0)
            let message = check.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(message.split(separator: "\n").count == 4, "\(message)")
            #expect(message.hasSuffix("3 mistakes in \(file.path)"), "\(message)")
            server.signal(SIGHUP)
            #expect(
                await server.logOccurrences(of: "config reload refused", timeout: .seconds(5)) == 1, "\(server.logged)")
            // In a logfmt value (the log's default format) the message's quotes and newlines are escaped.
            let logged = message.replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(
                of: "\n", with: "\\n")
            #expect(
                server.logged.contains("config.error=\"\(logged)\""),
                "the log carries check-config's message \(message): \(server.logged)")
            let still = try await probe.request(
                "POST", "/v1beta/namespaces/added4/pipelines/echo/trigger", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#)
            )
            #expect(still.status == 200, "\(still.bodyString)")
            let metrics = try await probe.request("GET", "/metrics").bodyString
            #expect(metrics.contains("trigger_gateway_config_last_reload_successful 0"), "\(metrics)")
            #expect(metrics.contains(#"trigger_gateway_config_reloads_total{outcome="applied"} 4"#), "\(metrics)")
            await probe.close()

            tally.stop.store(true, ordering: .relaxed)
            await loads.value
            let failures = tally.failures.withLock { $0 }
            #expect(failures.isEmpty, "\(failures.prefix(5))")
            #expect(tally.completed.load(ordering: .relaxed) >= 24)
            // Every accepted async operation completes.
            let client = try await TestHTTPClient.connect(port: port)
            for name in tally.operations.withLock({ $0 }) {
                let r = try await client.request("GET", "/v1beta/\(name)?wait=10s")
                let done = (try json(r.body)["operation"] as? [String: Any])?["done"] as? Bool
                #expect(done == true, "\(name): \(r.bodyString)")
            }
            await client.close()
            #expect(await server.stop() == 0)
        }
    }

    /// Review 8, findings 1, 3 and 3b on the real executable: a reload is checked against the configuration
    /// actually in force, and a file that would silently switch things off is refused, the running one staying.
    @Test("a log level given on the command line is no 'restart required' change at a reload (review 12 #5)")
    func commandLineLogOverrideSurvivesReload() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-hup-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Self.config(extraNamespaces: []).write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path, "--log-level", "debug"]) { server in
            // `trigger_gateway_config_restart_required` says what the warning says (review 18 F4), on the binary's
            // own /metrics.
            let client = try await TestHTTPClient.connect(port: server.port)
            func restartRequired() async throws -> Double? {
                Exposition(try await client.request("GET", "/metrics").bodyString)
                    .samples["trigger_gateway_config_restart_required"]
            }
            #expect(try await restartRequired() == 0)
            try Self.config(extraNamespaces: ["added"]).write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1)
            #expect(!server.logged.contains("restart required"), "\(server.logged)")
            #expect(try await restartRequired() == 0)
            // A key the file does change still warns.
            try (Self.config(extraNamespaces: ["added"]) + "\nlimits: {max_connections: 77}\n").write(
                to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "restart required", timeout: .seconds(10)) == 1)
            #expect(server.logged.contains("config.keys=limits.max_connections"), "\(server.logged)")
            #expect(try await restartRequired() == 1)
            await client.close()
        }
    }

    /// Review 18, F8: a reload that removed a route failed every queued operation of it at once (NOT_FOUND,
    /// attempts 1), silently. They wait now, as for a runner that is down, and run once a reload brings the route
    /// back; meanwhile one warning per pipeline (a minute apart) and `trigger_gateway_async_unrouted_queued` say so,
    /// and the dispatcher does not claim and hand them back in a loop.
    @Test("operations of a route a reload removed stay queued (attempts 0), warned about once, and run when it is back")
    func removedRouteKeepsItsOperationsQueued() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-hup-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let reserved = try ReservedPort()
        defer { withExtendedLifetime(reserved) {} }
        let down = reserved.port
        func config(other pool: String?) -> String {
            var yaml = """
                store: {poll_interval: 100ms}
                pools:
                  - {name: local, transport: inprocess}
                  - {name: down, transport: http, endpoints: ["127.0.0.1:\(down)"]}
                routes:
                  - {namespace: demo, pipeline: "*", pool: local}

                """
            if let pool { yaml += "  - {namespace: other, pipeline: \"*\", pool: \(pool)}\n" }
            return yaml
        }
        try config(other: "down").write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            let client = try await TestHTTPClient.connect(port: server.port)
            var names: [String] = []
            for i in 0..<3 {
                let accepted = try await client.request(
                    "POST", "/v1beta/namespaces/other/pipelines/upper/trigger-async", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"op\#(i)"}}]}"#))
                #expect(accepted.status == 200, "\(accepted.bodyString)")
                names.append(try #require(try json(accepted.body).operationName))
            }
            func operation(_ name: String) async throws -> [String: Any] {
                let response = try await client.request("GET", "/v1beta/\(name)")
                return try #require(try json(response.body)["operation"] as? [String: Any])
            }
            func metrics() async throws -> Exposition {
                Exposition(try await client.request("GET", "/metrics").bodyString)
            }
            let warning = "async operations wait for a route"
            try config(other: nil).write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1)
            #expect(await server.logOccurrences(of: warning, timeout: .seconds(10)) == 1, "\(server.logged)")
            #expect(server.logged.contains("operations.queued=3 pipeline=other/upper"), "\(server.logged)")
            let gauge = "trigger_gateway_async_unrouted_queued"
            #expect(await eventually(within: .seconds(5)) { (try? await metrics().samples[gauge]) == 3 })
            let releases = #"trigger_gateway_store_operation_duration_seconds_count{operation="release"}"#
            let handedBack = try await metrics().samples[releases]
            // Twenty poll intervals: nothing is claimed and handed back again, no second warning within its minute.
            try await Task.sleep(for: .seconds(2))
            #expect(try await metrics().samples[releases] == handedBack, "claimed and handed back in a loop")
            #expect(server.logged.components(separatedBy: warning).count - 1 == 1, "\(server.logged)")
            for name in names {
                let waiting = try await operation(name)
                let metadata = waiting["metadata"] as? [String: Any]
                #expect(metadata?["state"] as? String == "queued", "\(waiting)")
                #expect(metadata?["attempts"] as? Int == 0, "\(waiting)")
            }
            // The route back (to a pool that runs): they run and succeed.
            try config(other: "local").write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", atLeast: 2, timeout: .seconds(10)) == 2)
            let async = AsyncClient(client: client)
            for name in names {
                let done = try await async.waitDone(name, timeout: .seconds(20))
                #expect((done["metadata"] as? [String: Any])?["state"] as? String == "succeeded", "\(done)")
            }
            #expect(try await metrics().samples[gauge] == 0)
            await client.close()
        }
    }

    /// Operator review 58, F4: under `log.level: warning`, a reload that changed no level wrote no line, not even
    /// the one that says the access log was switched off.
    @Test(
        "under log.level warning, an applied reload is logged, at warning, with log.access=false when it turns that off"
    )
    func reloadLoggedUnderWarning() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-hup-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try "log: {level: warning}\n".write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            try "log: {level: warning, access: false}\n".write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1, "\(server.logged)")
            let line = server.logged.split(separator: "\n").first { $0.contains("config reloaded") } ?? ""
            #expect(line.contains("level=warning") && line.contains("log.access=false"), "\(line)")
        }
    }

    /// Review 18, F5: `log.level` needed a restart (a reload logged `restart required … config.keys=…,log`), though an
    /// operator debugging a runner wants its debug lines now. A reload applies it; `log.format` still needs a restart.
    @Test("log.level is applied by a reload: info → debug lines appear → info: they stop; log.format needs a restart")
    func logLevelAppliedByReload() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-hup-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let reserved = try ReservedPort()
        defer { withExtendedLifetime(reserved) {} }
        let down = reserved.port
        func config(_ log: String) -> String {
            """
            log: \(log)
            pools: [{name: down, transport: http, endpoints: ["127.0.0.1:\(down)"]}]
            routes: [{namespace: demo, pipeline: "*", pool: down}]

            """
        }
        try config("{level: info}").write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            let client = try await TestHTTPClient.connect(port: server.port)
            // A call to a runner that is down: `backend endpoint failed` per try, a warning at most once per 10 s,
            // the rest at debug level.
            func call() async throws {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#))
                #expect(response.status == 502, "\(response.bodyString)")
            }
            func debugLines() -> Int { server.logged.components(separatedBy: "level=debug").count - 1 }
            try await call()
            try await call()
            #expect(debugLines() == 0, "\(server.logged)")
            try config("{level: debug}").write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1)
            #expect(server.logged.contains("log.level=debug"), "\(server.logged)")
            #expect(!server.logged.contains("restart required"), "\(server.logged)")
            try await call()
            #expect(await eventually(within: .seconds(5)) { debugLines() > 0 }, "\(server.logged)")
            #expect(
                server.logged.split(separator: "\n").contains {
                    $0.contains("level=debug") && $0.contains("backend endpoint failed")
                }, "\(server.logged)")
            try config("{level: info}").write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", atLeast: 2, timeout: .seconds(10)) == 2)
            let atInfo = debugLines()
            try await call()
            try await call()
            #expect(debugLines() == atInfo, "\(server.logged)")
            // The format is the handler's, installed at start: still a restart.
            try config("{level: info, format: json}").write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "restart required", timeout: .seconds(10)) == 1)
            #expect(server.logged.contains("config.keys=log.format"), "\(server.logged)")
            await client.close()
        }
    }

    /// Review 17, finding 6: only the start checked key files' modes, though a reload is when rotated keys come in.
    @Test("a secret key file open to other users is warned about when a reload puts it in force, as at start")
    func exposedKeyWarnedAtReload() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-hup-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("gateway.yaml")
        let keyFile = dir.appendingPathComponent("craft.key")
        try Data(String(repeating: "k", count: 40).utf8).write(to: keyFile)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile.path)
        try (Self.config(extraNamespaces: []) + "craft: {jwt_secret_file: \(keyFile.path)}\n").write(
            to: file, atomically: true, encoding: .utf8)
        let warning = "craft.jwt_secret_file \(keyFile.path) is open to other users (mode 0644)"
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1)
            #expect(!server.logged.contains("open to other users"), "\(server.logged)")
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile.path)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", atLeast: 2, timeout: .seconds(10)) == 2)
            #expect(await server.logOccurrences(of: warning, timeout: .seconds(10)) == 1, "\(server.logged)")
        }
    }

    @Test(
        "SIGHUP: no tokens on a non-loopback listener, an empty file, a bad craft.jwt_secret_file are refused; check-config agrees"
    )
    func refusedReloads() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-hup-refuse-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("gateway.yaml")
        let keyFile = dir.appendingPathComponent("craft.key")
        try Data(String(repeating: "k", count: 40).utf8).write(to: keyFile)
        // A non-loopback listener (all addresses) is allowed because it has a token. The file's `listen` is the
        // one in force: no `--listen` override, which a reload would apply to the new file as well.
        let running = """
            listen: "0.0.0.0:0"
            tokens: [{name: alice, token: s3cret}]
            craft: {jwt_secret_file: \(keyFile.path)}
            """
        try running.write(to: file, atomically: true, encoding: .utf8)
        let server = try await TestProcess.Server.start(
            ProcessTests.gatewayPath,
            ["serve", "--config", file.path, "--data-dir", dir.appendingPathComponent("data").path])
        do {
            try await Self.refusedReloads(server: server, file: file, keyFile: keyFile, running: running)
        } catch {
            await server.stop()
            throw error
        }
    }

    static func refusedReloads(server: TestProcess.Server, file: URL, keyFile: URL, running: String) async throws {
        // The start-up line names the address as host:port, not as SocketAddress's description.
        #expect(
            await server.logOccurrences(of: "listen.address=0.0.0.0:\(server.port)\n", timeout: .seconds(10)) == 1,
            "\(server.logged)")
        let client = try await TestHTTPClient.connect(port: server.port)
        let alice = [("authorization", "Bearer s3cret")]
        func trigger(_ headers: [(String, String)]) async throws -> Int {
            try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger", headers: jsonHeaders + headers,
                body: ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#)
            ).status
        }
        #expect(try await trigger([]) == 401)
        #expect(try await trigger(alice) == 200)

        var refusals = 0
        // Each file: what check-config says about it alone, and that SIGHUP refuses it with the message.
        for (yaml, message) in [
            // No `listen:` (the default is loopback) and no tokens: the listen policy is checked against the
            // running 0.0.0.0, which a reload keeps, not against the file's default.
            ("tokens: []\n", "refusing to listen on 0.0.0.0:"),
            ("# the rest of the file was lost\n\n", "the file is empty"),
            ("", "the file is empty"),
        ] {
            try yaml.write(to: file, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            refusals += 1
            #expect(
                await server.logOccurrences(of: "config reload refused", atLeast: refusals, timeout: .seconds(10))
                    == refusals, "\(yaml): \(server.logged)")
            #expect(server.logged.contains(message), "\(yaml): \(server.logged)")
            #expect(try await trigger([]) == 401, "\(yaml): the token is still required")
            #expect(try await trigger(alice) == 200)
        }
        let empty = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path])
        #expect(empty.status != 0 && empty.stderr.contains("\(file.path): the file is empty"), "\(empty.stderr)")

        // The Craft key replaced by a short file mid-rotation: refused, the running key keeps serving.
        let refresh = try await client.request(
            "POST", "/api/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": "s3cret"]))
        let accessToken = try #require(try json(refresh.body)["access_token"] as? String, "\(refresh.bodyString)")
        try running.write(to: file, atomically: true, encoding: .utf8)
        try Data("short".utf8).write(to: keyFile)
        server.signal(SIGHUP)
        refusals += 1
        #expect(
            await server.logOccurrences(of: "config reload refused", atLeast: refusals, timeout: .seconds(10))
                == refusals, "\(server.logged)")
        #expect(server.logged.contains("craft.jwt_secret_file: the access-token key"), "\(server.logged)")
        let craft = try await client.request(
            "GET", "/api/v1/pipelines/echo", headers: [("authorization", "Bearer \(accessToken)")])
        #expect(craft.status == 200, "the running key stays: \(craft.bodyString)")
        let check = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path])
        #expect(check.status != 0, "\(check.stdoutString)")
        #expect(
            check.stderr.contains("craft.jwt_secret_file: the access-token key \(keyFile.path) holds 5 bytes"),
            "\(check.stderr)")
        try FileManager.default.removeItem(at: keyFile)
        let missing = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path])
        #expect(missing.status != 0 && missing.stderr.contains("cannot be read"), "\(missing.stderr)")

        let metrics = try await client.request("GET", "/metrics", headers: alice).bodyString
        #expect(metrics.contains("trigger_gateway_config_last_reload_successful 0"), "\(metrics)")
        #expect(metrics.contains(#"trigger_gateway_config_reloads_total{outcome="refused"} 4"#), "\(metrics)")
        await client.close()
        #expect(await server.stop() == 0)
    }

    /// Review 27 M2: a token can come from a file (`token_file`), re-read at each reload, so a rotated secret takes
    /// effect with SIGHUP and never sits in the versioned file.
    @Test(
        "token_file: its token authenticates; after the file is rewritten and SIGHUP the new one does, the old is 401")
    func tokenFileRotatedByReload() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-tokenfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("ci.token")
        let old = "old-0123456789abcdef", new = "new-0123456789abcdef"
        try (old + "\n").write(to: tokenFile, atomically: true, encoding: .utf8)
        // Open to other users: warned about at start, as a TLS key is.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: tokenFile.path)
        let file = dir.appendingPathComponent("gateway.yaml")
        try "tokens: [{name: ci, token_file: \(tokenFile.path)}]\n".write(to: file, atomically: true, encoding: .utf8)
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            let client = try await TestHTTPClient.connect(port: server.port)
            func status(_ token: String) async throws -> Int {
                try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                    headers: jsonHeaders + [("authorization", "Bearer \(token)")],
                    body: ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#)
                ).status
            }
            #expect(try await status(old) == 200)
            #expect(try await status(new) == 401)
            #expect(
                server.logged.contains("tokens[0].token_file \(tokenFile.path) is open to other users (mode 0644)"),
                "\(server.logged)")
            try (new + "\n").write(to: tokenFile, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reloaded", timeout: .seconds(10)) == 1)
            #expect(try await status(new) == 200)
            #expect(try await status(old) == 401)
            // An empty file at a reload is refused with its path; the running token stays.
            try "\n".write(to: tokenFile, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(await server.logOccurrences(of: "config reload refused", timeout: .seconds(10)) == 1)
            #expect(server.logged.contains("\(tokenFile.path) is empty"), "\(server.logged)")
            #expect(try await status(new) == 200)
            #expect(!server.logged.contains(old) && !server.logged.contains(new), "a token was logged")
            await client.close()
        }
    }
}
