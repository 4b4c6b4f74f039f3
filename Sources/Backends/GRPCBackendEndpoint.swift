import HTTP2Engine
import NIOCore
import Synchronization

/// One endpoint of a gRPC pool and its connections, kept per event loop.
///
/// A call made on an event loop of the pool's group uses a connection on that same loop (as nghttpx's workers
/// and Envoy's per-worker pools do), so the call is encoded, sent, answered and handed back without leaving
/// the loop. Each loop's list has a lock of its own, taken by that loop's calls (and rarely by a reload or
/// metrics read), never by another loop's calls. Picking a connection reserves a stream on it under that
/// lock, so a burst of concurrent calls fills one connection (opening it once, everyone waiting for the same
/// connect) before a second one is opened.
final class GRPCBackendEndpoint: Sendable {
    let endpoint: BackendPoolConfiguration.Endpoint
    let peer: GRPCBackendPeer
    /// Its calls' `:authority` (``BackendPoolConfiguration/Endpoint/authority(tls:)``).
    let authority: String
    /// The fields every `Run` call to this endpoint starts with (``GRPCBackendTransport/callHeaders(path:endpoint:)``).
    let runCallHeaders: HTTP2Headers
    /// The pool's TLS to this endpoint; nil: h2c.
    let tls: BackendTLS?
    let index: Int
    /// Calls in flight and ejection, shared with the pool's ``EndpointBalancer``.
    let health: EndpointHealth
    /// The connections of each loop of the group.
    private let connections: PerLoopLists<GRPCBackendConnection>
    private let group: any EventLoopGroup
    /// What every new connection is counted against.
    private let connectionBudget: BackendConnectionBudget
    /// The pool's `idle_timeout` for its connections (nil: never).
    private let idleTimeout: TimeAmount?
    /// Set by ``retireAll()``: connections opened afterwards (by a call that picked this pool just before
    /// a reload removed it) retire as soon as that call is done.
    private let retired = Atomic<Bool>(false)

    init(
        _ endpoint: BackendPoolConfiguration.Endpoint,
        peer: GRPCBackendPeer,
        index: Int,
        health: EndpointHealth,
        group: any EventLoopGroup,
        tls: BackendTLS? = nil,
        idleTimeout: TimeAmount? = nil,
        connectionBudget: BackendConnectionBudget = .shared
    ) {
        self.connectionBudget = connectionBudget
        self.idleTimeout = idleTimeout
        self.endpoint = endpoint
        self.peer = peer
        self.authority = endpoint.authority(tls: tls)
        self.runCallHeaders = GRPCBackendTransport.callHeaders(
            path: GRPCBackendTransport.runPath, scheme: GRPCBackendTransport.scheme(tls: tls), authority: authority,
            capacity: 13)
        self.tls = tls
        self.index = index
        self.health = health
        self.group = group
        self.connections = PerLoopLists(group: group)
    }

    var connectionCount: Int {
        connections.count(where: \.load.isUsable)
    }

    /// A connected connection with one stream reserved for the caller (released by the session when the
    /// stream closes, or here when connecting fails), completed on `eventLoop`. `pinned`: the connection is one
    /// of `eventLoop`'s own (the loop-native path; `eventLoop` must be a loop of the group); otherwise one of
    /// the shared list, on any loop.
    func acquire(on eventLoop: any EventLoop, pinned: Bool, connectTimeout: TimeAmount)
        -> EventLoopFuture<GRPCBackendConnection>
    {
        let (connection, ready) = reserve(on: eventLoop, pinned: pinned, connectTimeout: connectTimeout)
        return ready ? eventLoop.makeSucceededFuture(connection) : whenReady(connection, on: eventLoop)
    }

    /// `connection`, completed on `eventLoop` once it is connected (its reserved stream is released if it fails).
    /// The unary hot path (``GRPCBackendTransport``) calls ``reserve(on:pinned:connectTimeout:)`` itself and
    /// needs this only when the connection is not ready, so a ready connection costs it no future.
    func whenReady(_ connection: GRPCBackendConnection, on eventLoop: any EventLoop)
        -> EventLoopFuture<GRPCBackendConnection>
    {
        connection.ready.hop(to: eventLoop).flatMapError { error in
            connection.load.release()
            return eventLoop.makeFailedFuture(error)
        }.map { connection }
    }

    /// Picks (or opens) a connection and reserves one stream on it; `ready` when it is connected and on
    /// `eventLoop`, so it can be used at once.
    func reserve(on eventLoop: any EventLoop, pinned: Bool, connectTimeout: TimeAmount)
        -> (connection: GRPCBackendConnection, ready: Bool)
    {
        let pinned = pinned && connections.hasList(for: eventLoop)
        let pick: (inout [GRPCBackendConnection]) -> GRPCBackendConnection = { list in
            while true {
                if list.contains(where: { !$0.load.isUsable }) { list.removeAll { !$0.load.isUsable } }
                // The usable connection with the fewest streams, found without building a filtered copy (every
                // call).
                var candidate: GRPCBackendConnection?
                for connection in list where connection.load.hasCapacity {
                    if let best = candidate, best.load.reservedStreams <= connection.load.reservedStreams {
                        continue
                    }
                    candidate = connection
                }
                guard let candidate else { break }
                if candidate.load.reserve() { return candidate }
                // Evicted idle by the connection budget (or at the idle timeout) since the scan: it is closing.
                candidate.load.markUnusable()
            }
            let connection = GRPCBackendConnection(
                endpoint: self.endpoint,
                peer: self.peer,
                eventLoop: pinned ? eventLoop : self.group.next(),
                connectTimeout: connectTimeout,
                tls: self.tls,
                idleTimeout: self.idleTimeout,
                connectionBudget: self.connectionBudget
            )
            list.append(connection)
            // Not counted by the budget before it is connected: nothing can have evicted it.
            _ = connection.load.reserve()
            return connection
        }
        let connection = pinned ? connections.withList(on: eventLoop, pick) : connections.withSharedList(pick)
        if retired.load(ordering: .sequentiallyConsistent) { connection.retire() }
        return (connection, connection.load.isConnected && connection.eventLoop === eventLoop)
    }

    /// A connection of the shared list, for `async` callers (health checks, streams).
    func acquire(group: any EventLoopGroup, connectTimeout: TimeAmount) async throws -> GRPCBackendConnection {
        try await acquire(on: group.next(), pinned: false, connectTimeout: connectTimeout).get()
    }

    /// Every connection takes no new streams and closes when its streams in flight are done.
    func retireAll() {
        retired.store(true, ordering: .sequentiallyConsistent)
        for connection in takeAll() { connection.retire() }
    }

    func closeAll() {
        for connection in takeAll() { connection.close() }
    }

    private func takeAll() -> [GRPCBackendConnection] {
        connections.takeAll()
    }
}
