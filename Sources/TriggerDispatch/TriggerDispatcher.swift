package import Backends
package import NIOCore
package import Routing
package import TriggerModel

/// Runs triggers in the client's mode: resolves the route, picks the pool, and calls it.
///
/// Built once at start-up from the frozen route table and the pools; immutable afterwards, so every
/// frontend connection shares one instance without locking.
package final class TriggerDispatcher: Sendable {
    private let routes: RouteTable
    private let pools: [String: BackendPool]

    package init(routes: RouteTable, pools: [String: BackendPool]) {
        self.routes = routes
        self.pools = pools
    }

    /// The pool a pipeline is routed to, or `.notFound` naming the pipeline.
    package func pool(for ref: PipelineRef) throws -> BackendPool {
        guard let route = routes.resolve(ref), let pool = pools[route.pool] else {
            throw GatewayError(.notFound, "pipeline \"\(ref)\" not found: no route matches it")
        }
        return pool
    }

    /// The route `ref` matches, with its pool's name and its pattern as configured; nil when no route matches
    /// it or its pool is gone. For the request's record; running the trigger resolves it again.
    package func route(for ref: PipelineRef) -> RouteTable.ResolvedRoute? {
        routes.resolve(ref).flatMap { pools[$0.pool] == nil ? nil : $0 }
    }

    /// The `request_timeout` of the pool named `name`; nil for a pool this configuration does not have.
    package func requestTimeout(ofPool name: String) -> TimeAmount? {
        pools[name]?.configuration.requestTimeout
    }

    /// The name of the pool `ref` is routed to; nil when no route matches it.
    package func poolName(for ref: PipelineRef) -> String? {
        routes.resolve(ref).flatMap { pools[$0.pool] == nil ? nil : $0.pool }
    }

    /// Whether `ref`'s pool sends blobs as base64 text (the http transport's JSON, API.md §5), so that a
    /// frontend may keep a client's canonical base64 as it is instead of decoding it (issue 12).
    package func sendsBlobsAsBase64(for ref: PipelineRef) -> Bool {
        guard let route = routes.resolve(ref) else { return false }
        return pools[route.pool]?.configuration.transport == .http
    }

    /// The releases routes name for `ref`'s pipeline (`RouteTable.releases(of:)`).
    package func releases(of ref: PipelineRef) -> [String] {
        routes.releases(of: ref)
    }

    /// A pool's slot limit and the slots in use now (calls and streams), for the async dispatcher's claims;
    /// nil for a pool this configuration does not have.
    package func load(ofPool name: String) -> (maxConcurrency: Int, inUse: Int)? {
        pools[name].map { ($0.configuration.maxConcurrency, $0.slotsInUse) }
    }

    /// Sync mode: forwards, waits, returns the outputs.
    package func runSync(_ request: TriggerRequest) async throws -> TriggerResult {
        try await pool(for: request.ref).run(request)
    }

    /// Sync mode on the caller's event loop: routing, the pool's slot and deadline, and the transport's call
    /// all run on `eventLoop`, which the returned future completes on (DESIGN.md "Threading model").
    package func runSync(
        _ request: TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        do {
            return try pool(for: request.ref).run(request, on: eventLoop, cancellation: cancellation)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }

    /// Stream mode on the caller's event loop: the backend's events pulled one at a time on `eventLoop`.
    /// Throws before the first event only for routing errors and for the pool's overload (a stream holds a
    /// slot for its whole life), so a frontend can still answer those with a plain error response.
    package func openStream(_ request: TriggerRequest, on eventLoop: any EventLoop) throws -> any TriggerEventSource {
        try pool(for: request.ref).admitStream(request, on: eventLoop)
    }
}
