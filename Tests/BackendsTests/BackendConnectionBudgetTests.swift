#if canImport(Glibc)
    import Glibc
#endif
@testable import Backends
import GatewayTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TriggerModel
import WireCodecs

/// The process-wide backend connection budget (what keeps the backend side from reaching EMFILE): a connect at
/// the last place succeeds, one past it fails at once as the gateway's overload (503 / UNAVAILABLE, `UO`, not
/// sent), not as the endpoint's failure; a closed connection gives its place back.
@Suite("backend connection budget")
struct BackendConnectionBudgetTests {
    @Test("the count: the last place is taken, one more is refused and counted, a released place is taken again")
    func counting() {
        let budget = BackendConnectionBudget(limit: 2)
        #expect(budget.tryAcquire())
        #expect(budget.tryAcquire())
        #expect(budget.open == 2)
        #expect(!budget.tryAcquire())
        #expect(budget.open == 2)
        #expect(budget.refused == 1)
        budget.release()
        #expect(budget.tryAcquire())
        #expect(budget.refused == 1)
    }

    @Test("EMFILE and ENFILE at connect (alone or in a connection error) are out of descriptors; ECONNREFUSED is not")
    func outOfDescriptors() {
        #expect(BackendConnectionBudget.isOutOfDescriptors(IOError(errnoCode: EMFILE, reason: "socket")))
        #expect(BackendConnectionBudget.isOutOfDescriptors(IOError(errnoCode: ENFILE, reason: "socket")))
        #expect(!BackendConnectionBudget.isOutOfDescriptors(IOError(errnoCode: ECONNREFUSED, reason: "connect")))
        let error = BackendErrors.connectionBudgetExhausted(pool: "p", limit: 3, outOfDescriptors: true)
        #expect(error.code == .overloaded)
        #expect(error.upstreamFailure == .overflow)
        #expect(error.notSent)
        #expect(error.message.contains("out of file descriptors"), "\(error.message)")
    }

    @Test(
        "http pool over real sockets, budget 1: a call on the one connection succeeds, a call needing a second fails as overload, not the endpoint's failure; the place comes back when the connection closes"
    )
    func httpCalls() async throws {
        let answer = #"{"outputs":[{"x":1}]}"#
        let backend = try await ScriptedBackend.start(
            .init(
                pieces: [
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(answer.utf8.count)\r\n\r\n"
                        + answer
                ],
                close: false))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let budget = BackendConnectionBudget(limit: 1)
        let transport = HTTPBackendTransport(
            configuration: BackendPoolConfiguration(
                name: "tight", transport: .http, endpoints: [.init(host: "127.0.0.1", port: backend.port)]),
            group: group, codecLimits: .defaults, connectionBudget: budget)

        // At the edge: the one place, twice (the second call reuses the first's connection, kept on loop 0).
        for _ in 0..<2 {
            let result = try await transport.run(makeRequest("echo"), on: loops[0], cancellation: TriggerCancellation())
                .get()
            #expect(result.outputs.count == 1)
        }
        #expect(budget.open == 1)
        #expect(backend.accepted == 1)

        // Just past it: a call on loop 1 needs a connection of its own.
        do {
            _ = try await transport.run(makeRequest("echo"), on: loops[1], cancellation: TriggerCancellation()).get()
            Issue.record("a second connection was made over a budget of 1")
        } catch let error as GatewayError {
            #expect(error.code == .overloaded)
            #expect(error.code.httpStatus == 503)
            #expect(error.upstreamFailure == .overflow)
            #expect(error.notSent)
            #expect(error.message.contains("backend connections are all open"), "\(error.message)")
        }
        #expect(budget.refused == 1)
        #expect(backend.accepted == 1)
        // Not the endpoint's failure: no outlier count, no retry.
        #expect(transport.balancer.health[0].consecutiveFailures.load(ordering: .relaxed) == 0)
        #expect(transport.balancer.retriesTotal == 0)

        // The idle connection closes: its place comes back, and the loop-1 call connects.
        transport.retire()
        let freed = try await eventually(within: .seconds(10)) { budget.open == 0 }
        #expect(freed, "open: \(budget.open)")
        let again = HTTPBackendTransport(
            configuration: transport.configuration, group: group, codecLimits: .defaults, connectionBudget: budget)
        let result = try await again.run(makeRequest("echo"), on: loops[1], cancellation: TriggerCancellation()).get()
        #expect(result.outputs.count == 1)
        again.retire()
        try await backend.stop()
        try await group.shutdownGracefully()
    }

    @Test(
        "grpc pool, budget 1: calls share the one HTTP/2 connection of a loop; a call on another loop, needing a second connection, fails as overload; the place comes back when the transport closes"
    )
    func grpcCalls() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let budget = BackendConnectionBudget(limit: 1)
        try await withGRPCBackend(group: group) { backend in
            let transport = GRPCBackendTransport(
                configuration: backend.configuration, group: group, connectionBudget: budget)
            for _ in 0..<2 {
                let result = try await transport.run(
                    makeRequest("echo"), on: loops[0], cancellation: TriggerCancellation()
                ).get()
                #expect(result.outputs.count == 1)
            }
            #expect(budget.open == 1)
            do {
                _ = try await transport.run(makeRequest("echo"), on: loops[1], cancellation: TriggerCancellation())
                    .get()
                Issue.record("a second connection was made over a budget of 1")
            } catch let error as GatewayError {
                #expect(error.code == .overloaded)
                #expect(error.upstreamFailure == .overflow)
                #expect(error.notSent)
            }
            #expect(budget.refused == 1)
            #expect(transport.balancer.retriesTotal == 0)
            transport.close()
            let freed = try await eventually(within: .seconds(10)) { budget.open == 0 }
            #expect(freed, "open: \(budget.open)")
        }
        try await group.shutdownGracefully()
    }

    @Test(
        "the worst case a pool's config allows: per endpoint, a list per loop plus the shared one, each at the pool's peak"
    )
    func worstCase() {
        var pool = BackendPoolConfiguration(
            name: "p", transport: .http, endpoints: [.init(host: "a", port: 1), .init(host: "b", port: 1)],
            maxConcurrency: 100)
        #expect(pool.worstCaseConnections(loops: 2) == 2 * 3 * 100)
        pool.transport = .grpc
        #expect(pool.worstCaseConnections(loops: 2) == 2 * 3 * 1)
        pool.maxConcurrency = 101
        #expect(pool.worstCaseConnections(loops: 2) == 2 * 3 * 2)
        pool.transport = .inProcess
        #expect(pool.worstCaseConnections(loops: 2) == 0)
    }
}
