import NIOCore
import Synchronization

/// One endpoint of a gRPC pool and its connections.
///
/// Picking a connection reserves a stream on it under the lock, so a burst of concurrent calls fills one
/// connection (opening it once, everyone awaiting the same connect) before a second one is opened.
final class GRPCBackendEndpoint: Sendable {
    let endpoint: BackendPoolConfiguration.Endpoint
    let peer: GRPCBackendPeer
    let index: Int
    /// Calls in flight and ejection, shared with the pool's ``EndpointBalancer``.
    let health: EndpointHealth
    private let connections = Mutex<[GRPCBackendConnection]>([])
    /// Set by ``retireAll()``: connections opened afterwards (by a call that picked this pool just before
    /// a reload removed it) retire as soon as that call is done.
    private let retired = Atomic<Bool>(false)

    init(_ endpoint: BackendPoolConfiguration.Endpoint, peer: GRPCBackendPeer, index: Int, health: EndpointHealth) {
        self.endpoint = endpoint
        self.peer = peer
        self.index = index
        self.health = health
    }

    var connectionCount: Int {
        connections.withLock { $0.filter(\.load.isUsable).count }
    }

    /// A connected connection with one stream reserved for the caller (released by the session when the
    /// stream closes, or here when connecting fails).
    func acquire(group: any EventLoopGroup, connectTimeout: TimeAmount) async throws -> GRPCBackendConnection {
        let connection: GRPCBackendConnection = connections.withLock { list in
            list.removeAll { !$0.load.isUsable }
            let candidate = list.filter(\.load.hasCapacity).min { $0.load.reservedStreams < $1.load.reservedStreams }
            let connection =
                candidate
                ?? GRPCBackendConnection(
                    endpoint: endpoint,
                    peer: peer,
                    eventLoop: group.next(),
                    connectTimeout: connectTimeout
                )
            if candidate == nil { list.append(connection) }
            connection.load.reserve()
            return connection
        }
        if retired.load(ordering: .sequentiallyConsistent) { connection.retire() }
        do {
            try await connection.ready.get()
        } catch {
            connection.load.release()
            throw error
        }
        return connection
    }

    /// Every connection takes no new streams and closes when its streams in flight are done.
    func retireAll() {
        retired.store(true, ordering: .sequentiallyConsistent)
        let all = connections.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for connection in all { connection.retire() }
    }

    func closeAll() {
        let all = connections.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for connection in all { connection.close() }
    }
}
