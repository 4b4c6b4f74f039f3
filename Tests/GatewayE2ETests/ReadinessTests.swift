import FoundationEssentials
import GatewayTestSupport
import NIOCore
import OperationStore
import Synchronization
import Testing
import TriggerModel

/// Readiness per component (issue 9, item 3): the gateway is ready while it serves, whatever the store
/// does; async mode is its own component that follows the store within 5 s; async triggers fail fast while
/// it is down; liveness never moves. Driven with real clients (TestHTTPClient, grpcio) against real
/// gateway processes and a PostgreSQL server the test stops and starts.
@Suite("readiness per component, with PostgreSQL stopped and started under the gateway", .serialized)
struct ReadinessTests {
    static var gatewayPath: String { TestProcess.productsDirectory.appendingPathComponent("trigger-gateway").path }

    /// How long readiness may take to follow the store (issue 9: within 5 s).
    static let bound = Duration.seconds(5)

    static func writeConfig(postgresURL: String, healthInterval: String = "200ms") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tg-ready-\(UUID().uuidString).yaml")
        let prefix = "r\(UUID().uuidString.prefix(8).lowercased())_"
        try """
        store: {kind: postgres, url: "\(postgresURL)", table_prefix: \(prefix), health_interval: \(healthInterval), poll_interval: 100ms}
        """.write(to: path, atomically: true, encoding: .utf8)
        return path.path
    }

    static func startGateway(config: String) async throws -> TestProcess.Server {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-ready-\(UUID().uuidString)")
            .path
        return try await TestProcess.Server.start(
            gatewayPath, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--config", config])
    }

    /// Polls `GET path` until it answers `status`; returns how long that took (nil: not within `timeout`).
    static func waitForStatus(
        _ status: Int,
        _ path: String,
        port: Int,
        timeout: Duration = .seconds(30)
    ) async throws -> Duration? {
        let clock = ContinuousClock()
        let start = clock.now
        let client = try await TestHTTPClient.connect(port: port)
        defer { Task { await client.close() } }
        var took: Duration?
        _ = try await eventually(within: timeout, interval: .milliseconds(50)) {
            guard try await client.request("GET", path).status == status else { return false }
            took = clock.now - start
            return true
        }
        return took
    }

    static func readiness(_ client: TestHTTPClient, _ path: String = "/readyz") async throws -> (Int, [String: Any]) {
        let response = try await client.request("GET", path)
        return (response.status, try json(response.body))
    }

    static func syncTrigger(_ client: TestHTTPClient) async throws -> Int {
        try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger",
            headers: jsonHeaders, body: try jsonBody(["data": [["variable": ["p": "still here"]]]])
        ).status
    }

    /// Nothing a client reads may name a server path, Foundation's error domain or a driver type.
    static func expectNothingInternal(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for leak in ["NSCocoaErrorDomain", "PSQLError", "PostgresNIO", "SQLiteError", "/tmp/", "/dev/shm", ".sqlite"] {
            #expect(!text.contains(leak), "\(text)", sourceLocation: sourceLocation)
        }
    }

    @Test("h1 and grpc readiness: PostgreSQL stopped then started under a running gateway flips only async, within 5 s")
    func postgresStoppedAndStartedUnderGateway() async throws {
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            let config = try Self.writeConfig(postgresURL: postgres.url())
            defer { try? FileManager.default.removeItem(atPath: config) }
            let gateway = try await Self.startGateway(config: config)
            defer { Task { await gateway.stop() } }
            let port = gateway.port
            try #require(try await Self.waitForStatus(200, "/readyz?component=async", port: port) != nil)
            let client = try await TestHTTPClient.connect(port: port)
            let async = try await AsyncClient.connect(port: port)

            var (status, body) = try await Self.readiness(client)
            #expect(status == 200)
            #expect(body["status"] as? String == "SERVING")
            #expect(body["components"] as? [String: String] == ["gateway": "SERVING", "async": "SERVING"])
            #expect(try await Peers.grpcio("health-check", port: port, ["trigger.async"])["status"] as? Int == 1)
            let accepted = try await async.trigger("upper", ["p": "before"])
            #expect(accepted.status == 200, "\(accepted.json)")

            // A watcher of trigger.async sees SERVING, then NOT_SERVING when the store goes.
            let readyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tg-watch-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: readyFile) }
            async let watched = Peers.grpcio("health-watch", port: port, ["trigger.async", "2", readyFile, "30"])
            // The watcher writes the file once it has the first status: the outage must come after it.
            #expect(await eventually(within: .seconds(20)) { FileManager.default.fileExists(atPath: readyFile) })

            try await postgres.stop()
            let down = try await Self.waitForStatus(503, "/readyz?component=async", port: port)
            #expect(
                down != nil && down! <= Self.bound,
                "async readiness took \(String(describing: down)) to follow the outage")
            let watch = try await watched
            #expect(watch["statuses"] as? [Int] == [1, 2], "\(watch)")

            (status, body) = try await Self.readiness(client)
            #expect(status == 200, "overall readiness does not depend on the store")
            #expect(body["components"] as? [String: String] == ["gateway": "SERVING", "async": "NOT_SERVING"])
            (status, body) = try await Self.readiness(client, "/v1beta/__readiness")
            #expect(status == 200)
            #expect((body["health_check_response"] as? [String: String])?["status"] == "SERVING_STATUS_SERVING")
            #expect(try await client.request("GET", "/healthz").status == 200)
            #expect(try await client.request("GET", "/v1beta/__liveness").status == 200)
            let health = try await Peers.grpcio("health", port: port)
            #expect(health["pipeline_readiness"] as? Int == 1)
            #expect(health["mgmt_readiness"] as? Int == 1)
            #expect(health["pipeline_liveness"] as? Int == 1)
            #expect(health["grpc_health"] as? Int == 1)
            #expect(try await Peers.grpcio("health-check", port: port, ["trigger.async"])["status"] as? Int == 2)

            // Async fails fast (no 10 s store timeout) and says when to come back; sync keeps working.
            let clock = ContinuousClock()
            let started = clock.now
            let refused = try await async.client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger-async",
                headers: jsonHeaders, body: try jsonBody(["data": [["variable": ["p": "during"]]]]))
            #expect(clock.now - started < .seconds(2))
            #expect(refused.status == 503)
            #expect(refused.header("retry-after") != nil)
            Self.expectNothingInternal(refused.bodyString)
            let grpcRefused = try await AsyncGRPCTests.run("async", port: port, ["upper", #"[{"p":"grpc during"}]"#])
            #expect(grpcRefused["code"] as? String == "UNAVAILABLE", "\(grpcRefused)")
            Self.expectNothingInternal("\(grpcRefused)")
            #expect(try await Self.syncTrigger(client) == 200)
            // Reads of operations answer 503 with Retry-After too, and nothing internal.
            let read = try await client.request("GET", "/v1beta/operations")
            #expect(read.status == 503)
            #expect(read.header("retry-after") != nil)
            Self.expectNothingInternal(read.bodyString)
            // The log says what failed in words, not as a driver's Swift dump (review 8): the not-ready line
            // carries the cause (review 18, F3), and any failed call says it likewise.
            #expect(await gateway.logOccurrences(of: "operation store not ready", timeout: .seconds(10)) >= 1)
            let notReady = gateway.logged.split(separator: "\n").filter { $0.contains("operation store not ready") }
            #expect(
                notReady.contains { $0.contains("error=") },
                "\(notReady)")
            let storeLines = gateway.logged.split(separator: "\n").filter {
                $0.contains("operation store call failed") || $0.contains("operation store not ready")
            }
            for line in storeLines {
                #expect(!line.contains("ConnectionPoolModule") && !line.contains("(base:"), "\(line)")
                #expect(!line.contains("PSQLError") && !line.contains("PostgresNIO"), "\(line)")
                #expect(!line.contains("GatewayError("), "\(line)")
            }

            try await postgres.start()
            let up = try await Self.waitForStatus(200, "/readyz?component=async", port: port)
            #expect(
                up != nil && up! <= Self.bound, "async readiness took \(String(describing: up)) to follow the return")
            #expect(try await Peers.grpcio("health-check", port: port, ["trigger.async"])["status"] as? Int == 1)
            let after = try await async.trigger("upper", ["p": "after"])
            #expect(after.status == 200, "\(after.json)")
            let name = try #require(after.json.operationName)
            #expect(try await async.waitDone(name).metadataState == "succeeded")
            #expect(try await Self.syncTrigger(client) == 200)
            await client.close()
            await async.client.close()
            #expect(await gateway.stop() == 0)
        }
    }

    @Test(
        "PostgreSQL stopped: async readiness follows within one probe period, here well under health_interval 2s (the server's closing of the gateway's session is heard at once), and comes back after a restart"
    )
    func postgresStopHeardAtOnce() async throws {
        try await ThrowawayPostgres.with { postgres in
            try await postgres.start()
            let config = try Self.writeConfig(postgresURL: postgres.url(), healthInterval: "2s")
            defer { try? FileManager.default.removeItem(atPath: config) }
            let gateway = try await Self.startGateway(config: config)
            defer { Task { await gateway.stop() } }
            let port = gateway.port
            try #require(try await Self.waitForStatus(200, "/readyz?component=async", port: port) != nil)
            for round in 1...2 {
                // Past the first probe period, so the stop does not land on a probe of the start.
                try await Task.sleep(for: .milliseconds(2500))
                try await postgres.stop()
                // Before: the next probe (up to 2 s away) then waited up to 2 s for a pool connection: 2-4 s.
                let down = try await Self.waitForStatus(503, "/readyz?component=async", port: port)
                #expect(
                    down != nil && down! < .seconds(1),
                    "round \(round): async readiness took \(String(describing: down))")
                try await postgres.start()
                let up = try await Self.waitForStatus(200, "/readyz?component=async", port: port)
                #expect(up != nil && up! <= Self.bound, "round \(round): back after \(String(describing: up))")
            }
            #expect(await gateway.stop() == 0)
        }
    }

    @Test("a gateway started with PostgreSQL down serves sync, answers async 503, and takes async once it is up")
    func startedWithPostgresDown() async throws {
        try await ThrowawayPostgres.with { postgres in
            // The cluster exists but its server is not running: connections are refused.
            let config = try Self.writeConfig(postgresURL: postgres.url(password: "hunter2secret"))
            defer { try? FileManager.default.removeItem(atPath: config) }
            let gateway = try await Self.startGateway(config: config)
            defer { Task { await gateway.stop() } }
            let port = gateway.port
            let client = try await TestHTTPClient.connect(port: port)

            #expect(try await Self.syncTrigger(client) == 200)
            var (status, body) = try await Self.readiness(client)
            #expect(status == 200)
            #expect(body["components"] as? [String: String] == ["gateway": "SERVING", "async": "NOT_SERVING"])
            (status, body) = try await Self.readiness(client, "/readyz?component=async")
            #expect(status == 503)
            #expect(body["status"] as? String == "NOT_SERVING")
            let refused = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger-async",
                headers: jsonHeaders, body: try jsonBody(["data": [["variable": ["p": "early"]]]]))
            #expect(refused.status == 503)
            #expect(refused.header("retry-after") != nil)
            Self.expectNothingInternal(refused.bodyString)

            let log = gateway.printedErrors
            let warnings = log.split(separator: "\n").filter { $0.contains("operation store not ready at start-up") }
            #expect(warnings.count == 1, "\(log)")
            #expect(warnings.first?.contains("127.0.0.1:\(postgres.port)") == true, "\(log)")
            #expect(!log.contains("hunter2secret"), "\(log)")

            try await postgres.start()
            let up = try await Self.waitForStatus(200, "/readyz?component=async", port: port)
            #expect(up != nil && up! <= Self.bound, "async readiness took \(String(describing: up)) after the start")
            let async = try await AsyncClient.connect(port: port)
            let accepted = try await async.trigger("upper", ["p": "later"])
            #expect(accepted.status == 200, "\(accepted.json)")
            let name = try #require(accepted.json.operationName)
            #expect(try await async.waitDone(name).metadataState == "succeeded")
            #expect(!gateway.printedErrors.contains("hunter2secret"))
            await client.close()
            await async.client.close()
            #expect(await gateway.stop() == 0)
        }
    }

    @Test("an SQLite data dir that cannot be written stops start-up with one line naming the path")
    func sqliteDataDirNotWritable() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-file-\(UUID().uuidString)")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let dataDir = file.appendingPathComponent("data").path
        let output = try await TestProcess.run(
            Self.gatewayPath, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir])
        #expect(output.status != 0)
        let lines = output.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(output.stderr)")
        #expect(output.stderr.contains(dataDir), "\(output.stderr)")
        #expect(output.stderr.contains("Not a directory"), "\(output.stderr)")
        #expect(!output.stderr.contains("NSCocoaErrorDomain"), "\(output.stderr)")
        #expect(!output.stdoutString.contains("listening on"))
    }

    @Test("grpc Health/Watch of the whole gateway sees it drain: SERVING, then NOT_SERVING, and the call ends")
    func watchSeesDrain() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-ready-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let gateway = try await TestProcess.Server.start(
            Self.gatewayPath, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir])
        defer { Task { await gateway.stop() } }
        let readyFile = FileManager.default.temporaryDirectory.appendingPathComponent("tg-watch-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: readyFile) }
        async let watched = Peers.grpcio("health-watch", port: gateway.port, ["", "5", readyFile, "30"])
        // The watcher writes the file once it has the first status: the shutdown must come after it.
        #expect(await eventually(within: .seconds(20)) { FileManager.default.fileExists(atPath: readyFile) })
        #expect(await gateway.stop() == 0)
        let watch = try await watched
        #expect(watch["statuses"] as? [Int] == [1, 2], "\(watch)")
        #expect(watch["code"] as? String == "OK", "\(watch)")
    }

    @Test("grpc health: unknown services answer NOT_FOUND on Check and SERVICE_UNKNOWN on Watch; known ones SERVING")
    func healthServices() async throws {
        try await withTestGateway { gateway in
            let port = gateway.port
            #expect(try await Peers.grpcio("health-check", port: port, [""])["status"] as? Int == 1)
            #expect(try await Peers.grpcio("health-check", port: port, ["trigger.async"])["status"] as? Int == 1)
            let unknown = try await Peers.grpcio("health-check", port: port, ["no.such.service"])
            #expect(unknown["code"] as? String == "NOT_FOUND", "\(unknown)")
            let readyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tg-watch-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: readyFile) }
            let watch = try await Peers.grpcio("health-watch", port: port, ["no.such.service", "1", readyFile, "30"])
            #expect(watch["statuses"] as? [Int] == [3], "\(watch)")

            let client = try await gateway.client()
            let response = try await client.request("GET", "/readyz")
            #expect(response.status == 200)
            let body = try json(response.body)
            #expect(body["components"] as? [String: String] == ["gateway": "SERVING", "async": "SERVING"])
            #expect(try await client.request("GET", "/readyz?component=async").status == 200)
            #expect(try await client.request("GET", "/readyz?component=nope").status == 404)
            await client.close()
        }
    }

    static let asyncReady = #"trigger_gateway_ready{component="async"}"#
    static let gatewayReady = #"trigger_gateway_ready{component="gateway"}"#

    @Test(
        "h1 readiness: a store whose writes fail flips async to 503 within 5 s and back, sync untouched; trigger_gateway_ready says so"
    )
    func storeNotWritable() async throws {
        try await WriteFailingStore.withGateway { gateway, store in
            let client = try await gateway.client()
            #expect(try await Self.waitForStatus(200, "/readyz?component=async", port: gateway.port) != nil)
            let serving = try await MetricsE2ETests.scrape(client)
            #expect(serving.samples[Self.asyncReady] == 1 && serving.samples[Self.gatewayReady] == 1)
            store.failing.withLock { $0 = true }
            let down = try await Self.waitForStatus(503, "/readyz?component=async", port: gateway.port)
            #expect(down != nil && down! <= Self.bound, "\(String(describing: down))")
            // The gauge is what readiness answers (review 18, F3): async 0, the whole gateway still 1.
            let notServing = try await MetricsE2ETests.scrape(client)
            #expect(notServing.samples[Self.asyncReady] == 0 && notServing.samples[Self.gatewayReady] == 1)
            let refused = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger-async",
                headers: jsonHeaders, body: try jsonBody(["data": [["variable": ["p": "x"]]]]))
            #expect(refused.status == 503)
            #expect(refused.header("retry-after") != nil)
            #expect(try await Self.syncTrigger(client) == 200)
            #expect(try await client.request("GET", "/readyz").status == 200)
            store.failing.withLock { $0 = false }
            let up = try await Self.waitForStatus(200, "/readyz?component=async", port: gateway.port)
            #expect(up != nil && up! <= Self.bound, "\(String(describing: up))")
            #expect(try await MetricsE2ETests.scrape(client).samples[Self.asyncReady] == 1)
            let accepted = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger-async",
                headers: jsonHeaders, body: try jsonBody(["data": [["variable": ["p": "y"]]]]))
            #expect(accepted.status == 200, "\(accepted.bodyString)")
            await client.close()
        }
    }
}

/// A real SQLite store whose writes fail while `failing` is set, as on a full or read-only disk.
final class WriteFailingStore: OperationStore {
    /// Runs `body` with a test gateway whose store is one of these around the usual one, its health checked
    /// every 100 ms (`yaml`), and with that store (to flip ``failing``). `log` and `claimStallBound`: as
    /// `withTestGateway`'s.
    static func withGateway<T: Sendable>(
        yaml: String = "store: {health_interval: 100ms}\n",
        log: RecordedLog? = nil,
        claimStallBound: Duration? = nil,
        _ body: (TestGateway, WriteFailingStore) async throws -> T
    ) async throws -> T {
        let wrapped = Mutex<WriteFailingStore?>(nil)
        return try await withTestGateway(
            yaml: yaml,
            wrapStore: { base in
                let store = WriteFailingStore(base)
                wrapped.withLock { $0 = store }
                return store
            },
            log: log,
            claimStallBound: claimStallBound
        ) { gateway in
            try await body(gateway, try #require(wrapped.withLock { $0 }))
        }
    }

    let base: any OperationStore
    let failing = Mutex(false)
    /// Enqueues and probes refused as a full disk refuses them.
    let diskFull = Mutex(false)
    /// While set, a claim does not return (review 26 H1: a PostgresNIO call that ignored its cancellation), also
    /// when its caller is cancelled, until this is cleared; then it claims as usual.
    let hangsClaims = Mutex(false)

    init(_ base: any OperationStore) { self.base = base }

    private func check() throws {
        if failing.withLock({ $0 }) { throw GatewayError(.unavailable, OperationStoreErrors.unavailableMessage) }
    }

    func enqueue(_ request: TriggerRequest, idempotencyKey: String?) async throws -> (
        operation: Operation, created: Bool
    ) {
        try check()
        if diskFull.withLock({ $0 }) { throw GatewayError(.unavailable, OperationStoreErrors.diskFullMessage) }
        return try await base.enqueue(request, idempotencyKey: idempotencyKey)
    }
    func get(id: String) async throws -> Operation? { try await base.get(id: id) }
    func list(filter: OperationFilter, pageSize: Int, pageToken: String?) async throws -> (
        operations: [Operation], nextPageToken: String?
    ) { try await base.list(filter: filter, pageSize: pageSize, pageToken: pageToken) }
    func cancel(id: String, webhookOwner: String?) async throws -> Operation {
        try check()
        return try await base.cancel(id: id, webhookOwner: webhookOwner)
    }
    func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]
    {
        try check()
        return try await base.claimWebhooks(owner: owner, leaseDuration: leaseDuration, limit: limit, now: now)
    }
    func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws -> Bool {
        try check()
        return try await base.recordWebhookAttempt(
            id: id, owner: owner, attempts: attempts, nextAttemptAt: nextAttemptAt)
    }
    func claim(
        owner: String, leaseDuration: Duration, limit: Int, now: Date, scope: ClaimScope, takeover: LeaseTakeover
    ) async throws -> [Operation] {
        // Detached: the caller's cancellation does not reach it.
        await Task.detached { [self] in
            while hangsClaims.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(10)) }
        }.value
        try check()
        return try await base.claim(
            owner: owner, leaseDuration: leaseDuration, limit: limit, now: now, scope: scope, takeover: takeover)
    }
    func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool {
        try check()
        return try await base.renewLease(id: id, owner: owner, leaseDuration: leaseDuration, now: now)
    }
    func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws -> Bool {
        try check()
        return try await base.complete(id: id, owner: owner, result: result, now: now, webhook: webhook)
    }
    func fail(id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool)
        async throws -> Bool
    {
        try check()
        return try await base.fail(id: id, owner: owner, error: error, retryAt: retryAt, now: now, webhook: webhook)
    }
    func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int {
        try check()
        return try await base.expireLeases(ownerPrefix: ownerPrefix, sparing: sparing, now: now)
    }
    func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool {
        try check()
        return try await base.release(id: id, owner: owner, notBefore: notBefore, callMade: callMade, now: now)
    }
    func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool {
        try check()
        return try await base.uncountAdoptedClaims(id: id, owner: owner, count: count, from: attempts)
    }
    func queuedCount() async throws -> Int { try await base.queuedCount() }
    func queuedCount(pipelineKey: String) async throws -> Int { try await base.queuedCount(pipelineKey: pipelineKey) }
    func queuedByPipeline() async throws -> [PipelineQueue] { try await base.queuedByPipeline() }
    func purge(finishedBefore: Date) async throws -> Int { try await base.purge(finishedBefore: finishedBefore) }
    func delete(id: String) async throws -> Bool { try await base.delete(id: id) }
    func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool {
        try check()
        return try await base.instanceInUseElsewhere(instance: instance, probeInterval: probeInterval)
    }

    func probe(instance: String, now: Date) async throws {
        try check()
        if diskFull.withLock({ $0 }) { throw GatewayError(.unavailable, OperationStoreErrors.diskFullMessage) }
        try await base.probe(instance: instance, now: now)
    }
    func close() async throws { try await base.close() }
}
