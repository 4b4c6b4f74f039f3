import HTTP2Engine
import NIOCore
import NIOPosix
import Synchronization
import TriggerModel
import WireCodecs

/// One HTTP/2 connection (h2c, or TLS with ALPN `h2`) to one backend endpoint, shared by many concurrent calls
/// (one stream each).
///
/// A `Sendable` handle: the channel and its ``GRPCBackendSession`` live on `eventLoop`; the handle only
/// keeps immutable fields, the connect future and the ``GRPCBackendConnectionLoad`` that the endpoint reads
/// to pick a connection. Connecting starts in `init`; `ready` fails with the gateway's error when it cannot.
final class GRPCBackendConnection: Sendable {
    let eventLoop: any EventLoop
    let load: GRPCBackendConnectionLoad
    let peer: GRPCBackendPeer
    /// Succeeds once the TCP connection is up (and its TLS handshake done) and the session installed (SETTINGS
    /// are on their way).
    let ready: EventLoopFuture<Void>
    private let core: NIOLoopBoundBox<GRPCBackendSession?>
    private let channel: EventLoopFuture<any Channel>

    /// The session's settings: stream windows bound what a backend may send ahead of a slow streaming
    /// consumer; the connection window covers every stream's window so one stalled consumer never blocks
    /// the other streams of the connection (flow control is per stream, the connection window is shared).
    static let sessionConfiguration: HTTP2SessionConfiguration = {
        var configuration = HTTP2SessionConfiguration.defaults
        configuration.initialWindowSize = 128 << 10
        configuration.connectionWindowSize = GRPCBackendConnectionLoad.maxStreams * configuration.initialWindowSize
        // The calls a frontend read starts in one tick leave in one write.
        configuration.flushesOncePerTick = true
        return configuration
    }()

    /// `tls`: the pool's TLS, installed in front of the HTTP/2 session; `ready` then also waits for the
    /// handshake, bounded by `connectTimeout` like the TCP connect.
    init(
        endpoint: BackendPoolConfiguration.Endpoint,
        peer: GRPCBackendPeer,
        eventLoop: any EventLoop,
        connectTimeout: TimeAmount,
        tls: BackendTLS? = nil,
        idleTimeout: TimeAmount? = nil,
        connectionBudget: BackendConnectionBudget = .shared
    ) {
        self.eventLoop = eventLoop
        self.peer = peer
        let core = NIOLoopBoundBox.makeEmptyBox(valueType: GRPCBackendSession.self, eventLoop: eventLoop)
        self.core = core
        let load = GRPCBackendConnectionLoad()
        self.load = load
        let handshake = eventLoop.makePromise(of: Void.self)
        let bootstrap = tls.clientBootstrap(
            on: eventLoop, host: endpoint.host, pool: peer.pool, endpoint: peer.endpoint,
            connectTimeout: connectTimeout, handshake: handshake
        ) { channel in
            let delegate = GRPCBackendSession(channel: channel, load: load)
            delegate.session = try channel.pipeline.syncOperations.configureHTTP2Session(
                role: .client,
                configuration: Self.sessionConfiguration,
                delegate: delegate
            )
            core.value = delegate
        }
        let channel = connectionBudget.connect(
            bootstrap, on: eventLoop, host: endpoint.host, port: endpoint.port, pool: peer.pool, use: load.streams,
            idleTimeout: idleTimeout)
        self.channel = channel
        self.ready =
            channel
            .flatMapErrorThrowing { error in
                handshake.fail(error)
                load.markUnusable()
                throw Self.connectError(error, peer: peer, timeout: connectTimeout)
            }
            .flatMap { channel in
                handshake.futureResult.map { channel }.flatMapErrorThrowing { error in
                    // The handshake's error names the certificate problem and was logged with the endpoint.
                    load.markUnusable()
                    throw error
                }
            }
            .map { channel in
                load.markConnected()
                channel.closeFuture.whenComplete { _ in load.markUnusable() }
            }
    }

    /// Starts `call` on this connection (the caller holds a reservation from ``GRPCBackendConnectionLoad``).
    func start(
        _ call: NIOLoopBoundBox<GRPCBackendCall>,
        headers: HTTP2Headers,
        message: BufferPieces,
        deadline: NIODeadline?
    ) {
        // On the connection's own loop (the per-loop pools' case) the stream starts now: no hop, and no closure
        // to allocate.
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.startOnLoop(call.value, headers: headers, message: message, deadline: deadline) }
            return
        }
        startOnLoop(call.value, headers: headers, message: message, deadline: deadline)
    }

    /// ``start(_:headers:message:deadline:)`` from this connection's own loop (the caller checked
    /// `eventLoop.inEventLoop`): the call needs no box to get here (issue 11: one allocation per call).
    func startOnLoop(
        _ call: GRPCBackendCall,
        headers: HTTP2Headers,
        message: BufferPieces,
        deadline: NIODeadline?
    ) {
        eventLoop.assertInEventLoop()
        guard let session = core.value else {
            load.release()
            call.failedToStart(GRPCBackendCall.Refused())
            return
        }
        session.start(call, headers: headers, message: message, deadline: deadline)
    }

    func close() {
        load.markUnusable()
        channel.whenSuccess { $0.close(promise: nil) }
    }

    /// Takes no new streams and closes once the streams in flight are done (a pool removed by a reload).
    func retire() {
        if load.markRetiring() { close() }
    }

    private static func connectError(_ error: any Error, peer: GRPCBackendPeer, timeout: TimeAmount) -> GatewayError {
        if let error = error as? GatewayError { return error }
        if case .connectTimeout = error as? ChannelError {
            return BackendErrors.connectTimeout(pool: peer.pool, endpoint: peer.endpoint, after: timeout)
        }
        return BackendErrors.connectFailed(
            pool: peer.pool, endpoint: peer.endpoint, reason: BackendErrors.reason(error))
    }
}

/// What an endpoint needs to know about a connection to pick one, readable from any thread: whether new
/// streams may start on it, and how many streams are reserved (started or about to be).
final class GRPCBackendConnectionLoad: Sendable {
    /// Streams per connection before another connection is opened. libnghttp2 would queue requests above the
    /// peer's SETTINGS_MAX_CONCURRENT_STREAMS rather than fail them, but the engine does not expose the
    /// peer's value, so we use the common default (100: grpc-go, nghttpx, our own server).
    static let maxStreams = 100

    /// Its streams (reserved: started or about to be), and whether the connection budget evicted it: an HTTP/2
    /// connection is idle when it carries no stream.
    let streams = BackendConnectionUse(users: 0)
    private let usable = Atomic<Bool>(true)
    /// The connection's `ready` future succeeded (set on the connection's loop before it completes).
    private let connected = Atomic<Bool>(false)
    /// Set when the pool was removed by a reload: the connection closes once its last stream is released.
    private let retiring = Atomic<Bool>(false)

    var isUsable: Bool { usable.load(ordering: .relaxed) }
    var isConnected: Bool { connected.load(ordering: .acquiring) }
    func markConnected() { connected.store(true, ordering: .releasing) }
    /// Negative once evicted.
    var reservedStreams: Int { streams.count }
    var hasCapacity: Bool { isUsable && (0..<Self.maxStreams).contains(reservedStreams) }

    /// Reserves a stream; false when the connection budget evicted the connection (idle, closing).
    func reserve() -> Bool { streams.tryTake() }
    /// Gives a stream back; true when that was the last stream of a retiring connection, which the caller
    /// then closes. Sequentially consistent with ``markRetiring()``: of a racing release and retire, at least
    /// one sees both the flag and the zero count.
    @discardableResult
    func release() -> Bool {
        let left = streams.put()
        return left == 0 && retiring.load(ordering: .sequentiallyConsistent)
    }
    func markUnusable() { usable.store(false, ordering: .relaxed) }
    /// No new streams; true when no stream is reserved, so the caller closes the connection now.
    func markRetiring() -> Bool {
        usable.store(false, ordering: .relaxed)
        retiring.store(true, ordering: .sequentiallyConsistent)
        return streams.count == 0
    }
}
