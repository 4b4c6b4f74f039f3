import AsyncDispatch
import Backends
import Foundation
import GatewayApp
import GatewayConfig
import GatewayServer
import GatewayTestSupport
import NIOCore
import NIOPosix
import Observability
import Synchronization
import Testing

/// Weak references to what a `GatewayApp` owns, taken while it runs; read after it stopped and was released.
final class AppProbes: @unchecked Sendable {
    weak var app: GatewayApp?
    weak var server: GatewayServer?
    weak var operations: AsyncOperations?
    weak var asyncDispatcher: AsyncDispatcher?
    weak var scheduler: Scheduler?
    weak var health: HealthRegistry?
    weak var metrics: GatewayMetrics?
    weak var configStatus: ConfigStatus?
    weak var requestBuffer: RequestBufferBudget?
    var pools: [Weak<BackendPool>] = []

    func take(_ app: GatewayApp) {
        self.app = app
        server = app.server
        operations = app.operations
        asyncDispatcher = app.asyncDispatcher
        scheduler = app.scheduler
        health = app.health
        metrics = app.metrics
        configStatus = app.configStatus
        requestBuffer = app.requestBuffer
        pools = app.pools.values.map { Weak($0) }
    }

    /// The names of those still alive.
    var alive: [String] {
        var names: [String] = []
        if app != nil { names.append("app") }
        if server != nil { names.append("server") }
        if operations != nil { names.append("operations") }
        if asyncDispatcher != nil { names.append("asyncDispatcher") }
        if scheduler != nil { names.append("scheduler") }
        if health != nil { names.append("health") }
        if metrics != nil { names.append("metrics") }
        if configStatus != nil { names.append("configStatus") }
        if requestBuffer != nil { names.append("requestBuffer") }
        for pool in pools where pool.object != nil { names.append("pool \(pool.name)") }
        return names
    }
}

struct Weak<T: AnyObject> {
    weak var object: T?
    let name: String
    init(_ object: T, name: String) {
        self.object = object
        self.name = name
    }
}

extension Weak where T == BackendPool {
    init(_ pool: BackendPool) { self.init(pool, name: pool.name) }
}

/// The process's open file descriptors (entries of /proc/self/fd).
func openDescriptors() throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
}

/// What each open descriptor refers to (`socket:[…]`, a path), for a failure's message.
func describeDescriptors() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.sorted().map { name in
        "\(name) \((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)")) ?? "?")"
    }
}

/// Runs the tasks already queued on every loop of `group` (twice: a task that queues another one on its way out).
func flushLoops(_ group: any EventLoopGroup) async throws {
    for _ in 0..<2 {
        for loop in group.makeIterator() { try await loop.submit {}.get() }
    }
}

@Suite("A stopped gateway keeps nothing alive")
struct TeardownTests {
    @Test("after stop and release, the app's server, async mode, scheduler, health, metrics and pools are freed")
    func appObjectsFreed() async throws {
        let probes = AppProbes()
        // A gateway first, so what the process sets up once (NIO's singleton loops, the store's shared state) is
        // in the baseline.
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            _ = try await client.request("GET", "/metrics")
            await client.close()
        }
        try await flushLoops(MultiThreadedEventLoopGroup.singleton)
        let descriptors = try openDescriptors()
        let dataDir = Mutex("")
        try await withHTTPBackend(runner: EchoAnyRunner()) { port in
            let yaml = """
                pools: [{name: web, transport: http, endpoints: ["127.0.0.1:\(port)"]}, {name: local, transport: inprocess}]
                routes: [{namespace: demo, pipeline: "*", pool: web}, {namespace: other, pipeline: "*", pool: local}]
                """
            try await withTestGateway(yaml: yaml) { gateway in
                probes.take(gateway.app)
                dataDir.withLock { $0 = gateway.configuration.dataDir }
                let client = try await gateway.client()
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/upper/trigger",
                    headers: jsonHeaders, body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"hi"}}]}"#))
                #expect(response.status == 200, "\(response.bodyString)")
                _ = try await client.request("GET", "/metrics")
                await client.close()
            }
        }
        try await flushLoops(MultiThreadedEventLoopGroup.singleton)
        #expect(probes.alive == [])
        // Its listener, backend connections and SQLite files are closed: nothing of its data directory is open,
        // and no more descriptors than before it (sockets closed by their peers may still be closing: fewer).
        let open = describeDescriptors()
        let directory = dataDir.withLock { $0 }
        #expect(!directory.isEmpty && !open.contains { $0.contains(directory) }, "\(open)")
        // The backend servers' ends of those connections close when they read the gateway's close: looked at, with
        // a bound (a socket count is only visible by looking).
        let settled = await eventually(within: .seconds(10)) {
            (try? openDescriptors()).map { $0 <= descriptors } ?? false
        }
        #expect(settled, "\(describeDescriptors()) open, \(descriptors) before the gateway")
    }

    @Test("50 reloads that replace an http and a grpc pool leave one retired generation alive and the fds flat")
    func reloadsReleaseReplacedGenerations() async throws {
        let reloads = 50
        try await withHTTPBackend(runner: EchoAnyRunner()) { httpPort in
            try await withGRPCBackend(runner: EchoAnyRunner()) { grpcPort in
                // A changed request_timeout replaces both pools at every reload (`makePools` carries over only
                // pools whose settings are unchanged).
                func yaml(_ generation: Int) -> String {
                    let timeout = 30 + generation % 2
                    return """
                        pools:
                          - {name: web, transport: http, endpoints: ["127.0.0.1:\(httpPort)"], request_timeout: \(timeout)s}
                          - {name: rpc, transport: grpc, endpoints: ["127.0.0.1:\(grpcPort)"], request_timeout: \(timeout)s}
                        routes:
                          - {namespace: demo, pipeline: "*", pool: web}
                          - {namespace: other, pipeline: "*", pool: rpc}
                        """
                }
                try await withTestGateway(yaml: yaml(0)) { gateway in
                    let client = try await gateway.client()
                    func triggerBoth() async throws {
                        for namespace in ["demo", "other"] {
                            let response = try await client.request(
                                "POST", "/v1beta/namespaces/\(namespace)/pipelines/upper/trigger",
                                headers: jsonHeaders,
                                body: ByteBuffer(string: #"{"data":[{"variable":{"prompt":"hi"}}]}"#))
                            #expect(response.status == 200, "\(namespace): \(response.bodyString)")
                        }
                    }
                    // The first generation's backend connections are open (one per pool): the baseline.
                    try await triggerBoth()
                    let baseline = try openDescriptors()
                    var replaced: [Weak<BackendPool>] = []
                    var dispatchers: [Weak<AnyObject>] = []
                    for generation in 1...reloads {
                        replaced += gateway.app.pools.values.map { Weak($0) }
                        dispatchers.append(
                            Weak(gateway.app.server.currentServices.value.dispatcher, name: "\(generation)"))
                        let report = try gateway.reload(yaml: yaml(generation))
                        #expect(report.poolsRetired == ["rpc", "web"])
                        try await triggerBoth()
                    }
                    await client.close()
                    try await flushLoops(MultiThreadedEventLoopGroup.singleton)
                    // The generation just replaced may still be held (its retired pools until the next reload or
                    // scrape notices their last call ended); none older.
                    let alivePools = replaced.filter { $0.object != nil }.count
                    #expect(alivePools <= 2, "\(alivePools) replaced pools alive after \(reloads) reloads")
                    let aliveDispatchers = dispatchers.filter { $0.object != nil }.count
                    #expect(aliveDispatchers <= 1, "\(aliveDispatchers) replaced dispatchers alive")
                    // A retired pool's idle backend connections close at once (`retire`): two connections (one
                    // per pool) now, as at the baseline; slack for the client connection that just closed.
                    let open = try openDescriptors()
                    #expect(open <= baseline + 2, "\(open) descriptors open, \(baseline) at the first generation")
                }
            }
        }
    }
}
