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
    /// The pool of each route, by its index in the table (`RouteTable.Entry.index`): a resolved route finds
    /// its pool without hashing the pool's name. Nil for a route whose pool this configuration lacks.
    private let poolOfRoute: [BackendPool?]
    /// What runners last said of their pipelines (``pipelineDescription(_:waitingAtMost:)``), for this generation
    /// only.
    let descriptions: PipelineDescriptionCache

    /// - Parameter descriptions: the description cache (tests pass one on a clock they move).
    package init(
        routes: RouteTable, pools: [String: BackendPool],
        descriptions: PipelineDescriptionCache = PipelineDescriptionCache()
    ) {
        self.routes = routes
        self.pools = pools
        self.descriptions = descriptions
        var poolOfRoute = [BackendPool?](repeating: nil, count: (routes.entries.map(\.index).max() ?? -1) + 1)
        for entry in routes.entries { poolOfRoute[entry.index] = pools[entry.pool] }
        self.poolOfRoute = poolOfRoute
    }

    /// Where a trigger goes: the route that matched and its pool. Resolved once per request by the frontend
    /// (for the record, the deadline and the call), not once per use.
    package struct Target: Sendable {
        package var route: RouteTable.ResolvedRoute
        package var pool: BackendPool
        /// The pool's `request_timeout`, which bounds a sync call too, and a stream's wait for its first event.
        package var requestTimeout: TimeAmount { pool.configuration.requestTimeout }
        /// What a caller is told when the pool did not answer within `amount` (the pool's one deadline wording).
        package func deadlineExceeded(after amount: TimeAmount) -> GatewayError { pool.deadlineExceeded(after: amount) }
        /// Whether the pool sends blobs as base64 text (the http transport's JSON, API.md §5), so that a
        /// frontend may keep a client's canonical base64 as it is instead of decoding it (issue 12).
        /// Pattern matched: `==` on GatewayConfig's enum went through Equatable's witness (issue 11).
        package var sendsBlobsAsBase64: Bool {
            if case .http = pool.configuration.transport { true } else { false }
        }
    }

    /// The route `ref` matches and its pool; nil when no route matches it or its pool is gone.
    package func target(for ref: PipelineRef) -> Target? {
        guard let route = routes.resolve(ref), let pool = poolOfRoute[route.routeIndex] else { return nil }
        return Target(route: route, pool: pool)
    }

    /// The `.notFound` error of a pipeline no route matches.
    package static func notFound(_ ref: PipelineRef) -> GatewayError {
        GatewayError(.notFound, "pipeline \"\(ref)\" not found: no route matches it")
    }

    /// The pool a pipeline is routed to, or `.notFound` naming the pipeline.
    package func pool(for ref: PipelineRef) throws -> BackendPool {
        guard let target = target(for: ref) else { throw Self.notFound(ref) }
        return target.pool
    }

    /// The route `ref` matches, with its pool's name and its pattern as configured; nil when no route matches
    /// it or its pool is gone.
    package func route(for ref: PipelineRef) -> RouteTable.ResolvedRoute? {
        target(for: ref)?.route
    }

    /// The `request_timeout` of the pool named `name`; nil for a pool this configuration does not have.
    package func requestTimeout(ofPool name: String) -> TimeAmount? {
        pools[name]?.configuration.requestTimeout
    }

    /// The configured pools' names (bounded by the configuration: what per-pool metric labels may take).
    package var poolNames: Dictionary<String, BackendPool>.Keys { pools.keys }

    /// The name of the pool `ref` is routed to; nil when no route matches it.
    package func poolName(for ref: PipelineRef) -> String? {
        routes.resolve(ref).flatMap { pools[$0.pool] == nil ? nil : $0.pool }
    }

    /// The releases routes name for `ref`'s pipeline (`RouteTable.releases(of:)`).
    package func releases(of ref: PipelineRef) -> [String] {
        routes.releases(of: ref)
    }

    /// The pipeline ids routes name in `namespace` (`RouteTable.pipelines(in:)`).
    package func pipelines(in namespace: String) -> [String] {
        routes.pipelines(in: namespace)
    }

    /// The pipelines a client may list in `namespace`: the ids routes name there (``pipelines(in:)``) and
    /// `including`'s, those a trigger would reach (a route matches and its pool exists), sorted and unique. What
    /// Craft AI's `list_pipelines` and Instill's `ListNamespacePipelines` list.
    package func servedPipelines(in namespace: String, including extra: some Sequence<String> = [String]())
        -> [String]
    {
        var names = Set(pipelines(in: namespace))
        names.formUnion(extra)
        return names.filter { target(for: PipelineRef(namespace: namespace, pipeline: $0)) != nil }.sorted()
    }

    /// A pool's slot limit, the slots in use now (calls and streams) and whether any endpoint is available
    /// (``BackendPool/hasAvailableEndpoint``), for the async dispatcher's claims; nil for a pool this
    /// configuration does not have.
    package func load(ofPool name: String) -> (maxConcurrency: Int, inUse: Int, reachable: Bool)? {
        pools[name].map { ($0.configuration.maxConcurrency, $0.slotsInUse, $0.hasAvailableEndpoint) }
    }

    /// Sync mode: forwards, waits, returns the outputs.
    package func runSync(_ request: TriggerRequest) async throws -> TriggerResult {
        try await pool(for: request.ref).run(request)
    }

    /// ``runSync(_:)`` under the caller's `cancellation`, which keeps the endpoint and what the tries told
    /// (``TriggerCancellation/upstream``) for the caller to read once the call ended.
    package func runSync(_ request: TriggerRequest, cancellation: TriggerCancellation) async throws -> TriggerResult {
        try await pool(for: request.ref).run(request, cancellation: cancellation)
    }

    /// Sync mode on the caller's event loop: routing, the pool's slot and deadline, and the transport's call
    /// all run on `eventLoop`, which the returned future completes on (DESIGN.md "Threading model").
    package func runSync(
        _ request: TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        runSync(request, target: target(for: request.ref), on: eventLoop, cancellation: cancellation)
    }

    /// ``runSync(_:on:cancellation:)`` with the request's route already resolved (``target(for:)``; nil:
    /// `.notFound`).
    package func runSync(
        _ request: consuming TriggerRequest,
        target: Target?,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        guard let target else { return eventLoop.makeFailedFuture(Self.notFound(request.ref)) }
        return target.pool.run(request, on: eventLoop, cancellation: cancellation)
    }

    /// ``runSync(_:target:on:cancellation:)`` reported once to `completion` on `eventLoop`, with no future
    /// (``BackendPool/run(_:on:cancellation:completion:)``); a missing route is reported at once. `request` is
    /// consumed: moved down to the transport's call, not copied there.
    package func runSync(
        _ request: consuming TriggerRequest,
        target: Target?,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation,
        completion: @escaping (Result<TriggerResult, any Error>) -> Void
    ) {
        guard let target else {
            completion(.failure(Self.notFound(request.ref)))
            return
        }
        target.pool.run(request, on: eventLoop, cancellation: cancellation, completion: completion)
    }

    /// Stream mode on the caller's event loop: the backend's events pulled one at a time on `eventLoop`.
    /// Throws before the first event only for routing errors and for the pool's overload (a stream holds a
    /// slot for its whole life), so a frontend can still answer those with a plain error response.
    package func openStream(_ request: TriggerRequest, on eventLoop: any EventLoop) throws -> any TriggerEventSource {
        try openStream(request, target: target(for: request.ref), on: eventLoop)
    }

    /// ``openStream(_:on:)`` with the request's route already resolved (nil: `.notFound`).
    package func openStream(
        _ request: TriggerRequest, target: Target?, on eventLoop: any EventLoop
    ) throws -> any TriggerEventSource {
        guard let target else { throw Self.notFound(request.ref) }
        return try target.pool.admitStream(request, on: eventLoop)
    }
}
