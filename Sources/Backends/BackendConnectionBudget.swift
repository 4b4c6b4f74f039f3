#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import NIOCore
import NIOPosix
import Synchronization

/// The process-wide cap on open backend connections (HTTP/1.1 and HTTP/2 to runners, every pool, endpoint and
/// event loop, health checks included), so that the backend side can never take the process to its open-file
/// limit (EMFILE): Swift's libdispatch on Linux traps when it cannot open `/proc/<tid>/stat` at that limit (see
/// `GatewayServer.fitOpenFileLimit`), so running out is fatal, not a failed call.
///
/// Why one process-wide count and not a cap per pool (Envoy's per-cluster `max_connections` circuit breaker,
/// overflow `UO`): the resource is the process's descriptor table, which all pools share. A cap per pool would
/// have to be split by hand and would either waste descriptors (pools idle) or still add up past the limit
/// (pools × endpoints × loops × connections, the worst case nobody writes down). One atomic count checked at
/// connect is the smallest rule that makes EMFILE on the backend side impossible; the pools' own
/// `max_concurrency` still bounds their share in normal operation. nginx does the same with
/// `worker_connections`, which counts proxied connections with client ones.
///
/// Checked once per new connection (a connect), never per call: a call on an idle or multiplexed connection
/// does not touch it. A connect over the budget fails at once, nothing sent, as the gateway's own overload
/// (``BackendErrors/connectionBudgetExhausted(pool:limit:)``: 503 / UNAVAILABLE, `UO`), not an endpoint's
/// failure (no outlier ejection, no retry on another endpoint, which would need a connection too).
package final class BackendConnectionBudget: Sendable {
    /// The one the transports use; `GatewayApp` sets its limit at start from the open-file limit
    /// (`GatewayServer.backendConnectionBudget`). Unlimited until then (unit tests that build transports alone).
    package static let shared = BackendConnectionBudget(limit: .max)

    private let limitValue: Atomic<Int>
    private let openCount = Atomic<Int>(0)
    private let refusedCount = Atomic<Int>(0)

    package init(limit: Int) {
        self.limitValue = Atomic(limit)
    }

    /// Backend connections that may be open (or connecting) at once.
    package var limit: Int {
        get { limitValue.load(ordering: .relaxed) }
        set { limitValue.store(max(newValue, 0), ordering: .relaxed) }
    }

    /// Backend connections open or connecting now.
    package var open: Int { openCount.load(ordering: .relaxed) }

    /// Connects refused since start, over the budget or at the open-file limit (EMFILE/ENFILE) all the same.
    package var refused: Int { refusedCount.load(ordering: .relaxed) }

    /// Takes one connection's place; false (counted in ``refused``) when ``limit`` are open.
    package func tryAcquire() -> Bool {
        let limit = self.limit
        let taken = openCount.add(1, ordering: .relaxed).newValue
        guard taken > limit else { return true }
        openCount.subtract(1, ordering: .relaxed)
        refusedCount.add(1, ordering: .relaxed)
        return false
    }

    /// Gives back a place taken by ``tryAcquire()`` (its connection closed, or its connect failed).
    package func release() {
        openCount.subtract(1, ordering: .relaxed)
    }

    /// A connect the kernel refused for lack of descriptors (EMFILE, ENFILE): counted in ``refused`` like a
    /// connect over the budget (the budget was too large for what else holds descriptors).
    func refusedByKernel() {
        refusedCount.add(1, ordering: .relaxed)
    }

    /// Whether `error` (a connect's) says the process or the system is out of file descriptors.
    static func isOutOfDescriptors(_ error: any Error) -> Bool {
        switch error {
        case let error as IOError:
            return error.errnoCode == EMFILE || error.errnoCode == ENFILE
        case let error as NIOConnectionError:
            return error.connectionErrors.contains { isOutOfDescriptors($0.error) }
        default:
            return false
        }
    }

    /// Connects `bootstrap` to `host:port` within the budget: refused at once when it is spent, and the place
    /// given back when the connection closes or the connect fails. A connect that fails for lack of descriptors
    /// fails as ``BackendErrors/connectionBudgetExhausted(pool:limit:)`` too.
    func connect(
        _ bootstrap: ClientBootstrap, on eventLoop: any EventLoop, host: String, port: Int, pool: String
    ) -> EventLoopFuture<any Channel> {
        guard tryAcquire() else {
            return eventLoop.makeFailedFuture(BackendErrors.connectionBudgetExhausted(pool: pool, limit: limit))
        }
        return bootstrap.connect(host: host, port: port).flatMapErrorThrowing { [self] error in
            release()
            guard Self.isOutOfDescriptors(error) else { throw error }
            refusedByKernel()
            throw BackendErrors.connectionBudgetExhausted(pool: pool, limit: limit, outOfDescriptors: true)
        }.map { [self] channel in
            channel.closeFuture.whenComplete { _ in self.release() }
            return channel
        }
    }
}
