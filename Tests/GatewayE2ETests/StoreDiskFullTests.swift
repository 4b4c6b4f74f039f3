import FoundationEssentials
import Foundation
import GatewayApp
import GatewayServer
import GatewayTestSupport
import Logging
import NIOCore
import OperationStore
import Synchronization
import Testing
import TriggerModel

/// Review 21, M3: a store write refused for lack of disk space fails async readiness at once, and readiness stays
/// failed until the disk has room for the largest trigger again; the client reads why.
@Suite("async readiness on a full data disk", .serialized)
struct StoreDiskFullTests {
    static let asyncReady = #"trigger_gateway_ready{component="async"}"#
    static let freeBytes = "trigger_gateway_data_directory_free_bytes"

    /// The latch alone (no store, no mount): a refusal marks async NOT_SERVING with the disk-full answer and logs
    /// once; a healthy probe does not clear it while the disk has less than `needed` free (no flap), nor when a
    /// refusal came during the probe; once the room is back it does, and says it was tripped.
    @Test("StoreFullLatch: NOT_SERVING at the first refusal, one warning; held until `needed` bytes are free")
    func latch() throws {
        let health = HealthRegistry(gateway: .serving, async: .serving)
        let free = Mutex<UInt64?>(10_000)
        let log = RecordedLog()
        let latch = StoreFullLatch(
            health: health, space: .init(availableBytes: { free.withLock { $0 } }, needed: 2 << 20),
            storeName: "sqlite /d/operations.sqlite", logger: Logger(label: "t") { _ in log })
        #expect(
            latch.stillFull() == nil
                && health.asyncRefusal
                    == GatewayError(
                        .unavailable, "async triggers are unavailable: the operation store is not ready; retry later")
        )
        let before = latch.refusals
        latch.trip()
        latch.trip()
        #expect(health.status(.async) == .notServing && latch.isTripped)
        #expect(health.asyncRefusal == GatewayError(.unavailable, OperationStoreErrors.diskFullMessage))
        #expect(log.lines.map(\.message) == ["operation store not ready: async triggers answer 503 until it is back"])
        #expect(log.lines.first?.metadata["error"] == OperationStoreErrors.diskFullMessage)
        // A probe that began before the refusals does not mark SERVING, whatever the disk says.
        #expect(latch.serve(unlessTrippedSince: before) == nil)
        #expect(health.status(.async) == .notServing)
        // Room for the probe's row is not room for a trigger: the edge is `needed` bytes free.
        let seen = latch.refusals
        for bytes: UInt64? in [nil, 0, (2 << 20) - 1] {
            free.withLock { $0 = bytes }
            #expect(latch.stillFull()?.contains("disk is full") == true, "\(String(describing: bytes))")
        }
        free.withLock { $0 = 2 << 20 }
        #expect(latch.stillFull() == nil)
        #expect(latch.serve(unlessTrippedSince: seen) == true)
        #expect(health.status(.async) == .serving && !latch.isTripped)
        #expect(health.asyncRefusal.message != OperationStoreErrors.diskFullMessage)
        // Cleared: the next healthy probe has nothing to report.
        #expect(latch.serve(unlessTrippedSince: latch.refusals) == false)
        // PostgreSQL (no space known): the probe's successful write is enough.
        let server = StoreFullLatch(health: health, storeName: "postgres", logger: Logger(label: "t") { _ in log })
        server.trip()
        #expect(server.stillFull() == nil && server.serve(unlessTrippedSince: server.refusals) == true)
    }

    /// A store whose enqueues are refused for lack of space: async readiness fails at the refusal, not at the next
    /// probe (up to 2 s away here, the longest `health_interval`), over a real socket. (The probe's own write
    /// still succeeding is `realFullDisk`'s case; here it fails too, so no probe in between can make it SERVING.)
    @Test("h1: an enqueue refused for a full disk fails async readiness at once; the client reads the disk is full")
    func refusalFailsReadinessAtOnce() async throws {
        let log = RecordedLog()
        let wrapped = Mutex<WriteFailingStore?>(nil)
        try await withTestGateway(
            yaml: "store: {health_interval: 2s}\n",
            wrapStore: { base in
                let store = WriteFailingStore(base)
                wrapped.withLock { $0 = store }
                return store
            },
            log: log
        ) { gateway in
            let store = try #require(wrapped.withLock { $0 })
            let client = try await gateway.client()
            #expect(try await client.request("GET", "/readyz?component=async").status == 200)
            let serving = try await MetricsE2ETests.scrape(client)
            #expect(serving.samples[Self.asyncReady] == 1)
            #expect((serving.samples[Self.freeBytes] ?? 0) > 0, "SQLite: the data directory's free bytes are shown")
            store.diskFull.withLock { $0 = true }
            for expected in [OperationStoreErrors.diskFullMessage, OperationStoreErrors.diskFullMessage] {
                // The first reaches the store; the second is refused for readiness, with the same words.
                let refused = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger-async",
                    headers: jsonHeaders, body: try jsonBody(["data": [["variable": ["p": "x"]]]]))
                #expect(refused.status == 503)
                #expect(try json(refused.body)["message"] as? String == expected, "\(refused.bodyString)")
                #expect(try json(refused.body)["code"] as? Int == 14)
                #expect(refused.header("retry-after") != nil)
            }
            #expect(try await client.request("GET", "/readyz?component=async").status == 503)
            #expect(try await MetricsE2ETests.scrape(client).samples[Self.asyncReady] == 0)
            let warnings = log.lines.filter { $0.message.hasPrefix("operation store not ready") }
            #expect(warnings.count == 1, "\(warnings)")
            await client.close()
        }
    }

    // MARK: A real full disk

    static var gatewayPath: String { TestProcess.productsDirectory.appendingPathComponent("trigger-gateway").path }

    /// Whether this process can mount a tmpfs (root with CAP_SYS_ADMIN: CI, sessions), tried once.
    static let canMount: Bool = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-mount-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil,
            run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir])
        else { return false }
        return run("/bin/umount", [dir])
    }()

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    static func asyncTrigger(_ client: TestHTTPClient, bytes: Int) async throws -> (Int, String) {
        let blob = Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }).base64EncodedString()
        let response = try await client.request(
            "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger-async", headers: jsonHeaders,
            body: try jsonBody(["data": [["variable": ["blob": "data:application/octet-stream;base64,\(blob)"]]]]))
        return (response.status, (try? json(response.body)["message"] as? String) ?? response.bodyString)
    }

    /// The review's s7 as a test: a gateway process on an 8 MiB tmpfs filled to 48 KiB free. A 300 KB async
    /// trigger is refused (its blob files do not fit: ENOSPC); readiness fails and stays failed across 30 probes
    /// while the probe's own row still fits; no blob file of the refused trigger stays; freeing the space brings
    /// async back within about one probe interval and the same trigger is taken.
    @Test(
        "a real full disk (tmpfs): 503 saying so, NOT_SERVING held across probes, nothing left behind, back once freed",
        .enabled(if: canMount, "needs to mount a tmpfs (root with CAP_SYS_ADMIN)")
    )
    func realFullDisk() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tg-full-\(UUID().uuidString)").path
        let mount = "\(root)/mnt"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try #require(Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=8m,mode=0777", "tmpfs", mount]))
        defer { Self.run("/bin/umount", [mount]) }
        let config = "\(root)/gateway.yaml"
        // Readiness needs max_body_bytes + 1 MiB = 2 MiB back after a refusal.
        try "store: {health_interval: 100ms}\nlimits: {max_body_bytes: 1MiB}\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        let dataDir = "\(mount)/data"
        let server = try await TestProcess.Server.start(
            Self.gatewayPath, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--config", config])
        defer { Task { _ = await server.stop() } }
        let client = try await TestHTTPClient.connect(port: server.port)
        #expect(try await ReadinessTests.waitForStatus(200, "/readyz?component=async", port: server.port) != nil)
        #expect(try await Self.asyncTrigger(client, bytes: 300_000).0 == 200, "space for one before filling")
        // Its run stored (the result's blob files too) before the fill, so nothing but probes writes meanwhile.
        _ = try await MetricsE2ETests.scrape(client) {
            $0.samples[#"trigger_gateway_async_finished_total{state="succeeded"}"#] == 1
        }
        let blobEntries = { (try? FileManager.default.contentsOfDirectory(atPath: "\(dataDir)/blobs").count) ?? -1 }
        let storedBlobs = blobEntries()
        // Fill to 48 KiB free: the probe's row fits, a 300 KB trigger does not.
        let free = try #require(DataDirectorySpaceProbe.free(mount))
        try DataDirectorySpaceProbe.fill("\(mount)/filler", bytes: Int(free) - 48 * 1024)
        let (status, message) = try await Self.asyncTrigger(client, bytes: 300_000)
        #expect(status == 503)
        #expect(message == OperationStoreErrors.diskFullMessage, "\(message)")
        #expect(try await client.request("GET", "/readyz?component=async").status == 503)
        let full = try await MetricsE2ETests.scrape(client)
        #expect(full.samples[Self.asyncReady] == 0)
        #expect(
            (full.samples[Self.freeBytes] ?? .infinity) < 2 * 1024 * 1024,
            "\(String(describing: full.samples[Self.freeBytes]))")
        #expect(blobEntries() == storedBlobs, "no blob directory of the refused trigger is left")
        // Thirty probe intervals: the probe's write succeeds each time, readiness does not flap back (and a
        // failing store's back-off would have grown to its 3 s cap by now).
        for _ in 0..<30 {
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await client.request("GET", "/readyz?component=async").status == 503)
        }
        #expect(try await Self.asyncTrigger(client, bytes: 10).1 == OperationStoreErrors.diskFullMessage)
        try FileManager.default.removeItem(atPath: "\(mount)/filler")
        // Within an interval or so (100 ms here; 1 s allows for a loaded machine), not after the failing-store
        // back-off (3 s): the store kept answering.
        let back = try await ReadinessTests.waitForStatus(200, "/readyz?component=async", port: server.port)
        #expect(back != nil && back! <= .seconds(1), "\(String(describing: back))")
        #expect(try await Self.asyncTrigger(client, bytes: 300_000).0 == 200)
        #expect(server.logged.contains("is full"), "the log names the full disk")
        await client.close()
        _ = await server.stop()
    }
}

/// statvfs for the test's own fill (the gateway's `DataDirectorySpace` is package to its module).
enum DataDirectorySpaceProbe {
    static func free(_ path: String) -> UInt64? {
        var status = statvfs()
        guard statvfs(path, &status) == 0 else { return nil }
        return UInt64(status.f_bavail) * UInt64(status.f_frsize)
    }

    /// Writes `bytes` zero bytes to a new file at `path` (plain writes: Foundation's `Data.write` refuses a file
    /// near the free space before writing).
    static func fill(_ path: String, bytes: Int) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var left = bytes
        while left > 0 {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min(left, chunk.count)) }
            guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            left -= n
        }
    }
}
