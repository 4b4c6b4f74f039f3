@testable import Backends
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TriggerModel
import WireCodecs

/// A streamed (SSE) call's start on the http transport over real sockets. A pooled connection the runner closed
/// after the pool handed it out and before the request was written reached no runner: the stream goes out on a
/// new connection, as a unary call does (`Failure.closedBeforeSend`, review 12, diff review 6). It used to fail
/// as "an endpoint closed the connection mid-stream". A stream cut after its request was written is not retried.
///
/// The race is made deterministic by the transport's ``HTTPBackendTransport/handedOut`` hook: the runner closes
/// the connection there, and the hook returns once our side has seen it closed. Each case runs on both paths: the
/// async consumer (`runStreaming`) and the loop-native source a frontend reads (`openStream`, issue 11).
@Suite("http backend: a stream's start on a pooled connection closed before its request was written")
struct HTTPBackendStreamRetryTests {
    static let events = "event: result\ndata: {\"outputs\":[{\"x\":1}],\"metadata\":{}}\n\n"
    static let answer =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: \(events.utf8.count)\r\n\r\n" + events

    static func transport(
        port: Int, maxTries: Int, handedOut: (@Sendable (HTTPBackendConnection) async -> Void)? = nil
    ) -> HTTPBackendTransport {
        HTTPBackendTransport(
            configuration: BackendPoolConfiguration(
                name: "streamed", transport: .http, endpoints: [.init(host: "127.0.0.1", port: port)],
                connectTimeout: .seconds(30), maxTries: maxTries),
            group: MultiThreadedEventLoopGroup.singleton, codecLimits: .defaults, metrics: nil,
            healthCheckClock: ContinuousClock(), handedOut: handedOut)
    }

    /// How a streamed call is read.
    enum Path: String, CaseIterable, Sendable {
        /// `runStreaming`: the async consumer, on the shared connections.
        case consumer
        /// `openStream` on one loop of the group: `HTTPBackendStreamSource`, on that loop's connections.
        case loop
    }

    /// The loop the `loop` path's streams are read on (the same one for every stream of a test, so that a pooled
    /// connection is found again).
    static let loop = MultiThreadedEventLoopGroup.singleton.next()

    /// Loop-bound: the source a `loop`-path stream reads (touched on ``loop`` only).
    final class OpenedSource: @unchecked Sendable {
        var source: (any TriggerEventSource)?
    }

    /// One streamed call: its events, or the error it ended with.
    static func stream(_ transport: HTTPBackendTransport, _ path: Path) async -> (
        events: [TriggerEvent], error: (any Error)?
    ) {
        var events: [TriggerEvent] = []
        do {
            switch path {
            case .consumer:
                for try await event in transport.runStreaming(makeRequest("echo")) { events.append(event) }
            case .loop:
                let opened = OpenedSource()
                while let event = try await loop.flatSubmit({
                    if opened.source == nil { opened.source = transport.openStream(makeRequest("echo"), on: loop) }
                    return opened.source!.next()
                }).get() {
                    events.append(event)
                }
            }
            return (events, nil)
        } catch {
            return (events, error)
        }
    }

    /// A runner answering each streamed call with `answer`, a transport with one of its connections idle in the
    /// pool (a first stream's), and the hook that has the runner close that connection once it is handed out.
    static func pooledConnectionClosedOnHandOut(maxTries: Int, path: Path) async throws -> (
        ScriptedBackend, HTTPBackendTransport
    ) {
        let backend = try await ScriptedBackend.start(.init(pieces: [answer], close: false))
        // Armed after the first stream; then only the pooled connection, handed out first (a new one is left alone).
        let armed = Atomic(false)
        let handedOut = Atomic(0)
        let transport = Self.transport(port: backend.port, maxTries: maxTries) { connection in
            guard armed.load(ordering: .acquiring), handedOut.add(1, ordering: .relaxed).oldValue == 0 else { return }
            await backend.closeConnections()
            // Our side has read the runner's close (its `isActive` is false): the write will find it closed.
            try? await connection.channel.closeFuture.get()
        }
        let first = await Self.stream(transport, path)
        #expect(first.error == nil, "\(String(describing: first.error))")
        #expect(backend.accepted == 1 && backend.requests == 1)
        armed.store(true, ordering: .releasing)
        return (backend, transport)
    }

    @Test(
        "the runner closes the pooled connection before the request is written: the stream goes out on a new one",
        arguments: Path.allCases)
    func retriedOnNewConnection(path: Path) async throws {
        let (backend, transport) = try await Self.pooledConnectionClosedOnHandOut(maxTries: 3, path: path)
        let (events, error) = await Self.stream(transport, path)
        #expect(error == nil, "\(String(describing: error))")
        guard case .end(let result)? = events.last else {
            Issue.record("no final event: \(events)")
            return
        }
        #expect(try result.outputs == HTTPBackendFramingTests.expected())
        // One new connection, one request on it: the closed one carried nothing.
        #expect(backend.accepted == 2)
        #expect(backend.requests == 2)
        #expect(transport.balancer.retriesTotal == 1)
        // A connection the runner closed while idle is not the endpoint's failure.
        #expect(transport.balancer.isAvailable(0))
        // Every try that counted as in flight on the endpoint stopped counting, once.
        #expect(transport.endpoint(at: 0).health.outstanding.load(ordering: .relaxed) == 0)
        transport.retire()
        try await backend.stop()
    }

    @Test(
        "with maxTries 1 the same start is not tried again: the call fails as never sent, naming the lost connection",
        arguments: Path.allCases)
    func noTriesLeft(path: Path) async throws {
        let (backend, transport) = try await Self.pooledConnectionClosedOnHandOut(maxTries: 1, path: path)
        let (events, error) = await Self.stream(transport, path)
        #expect(events.isEmpty)
        let failure = error as? GatewayError
        #expect(failure?.code == .backendFailed)
        #expect(
            failure?.message.contains("an endpoint closed the connection before answering") == true,
            "\(String(describing: error))")
        #expect(failure?.notSent == true, "a start that wrote nothing is marked never sent")
        #expect(backend.accepted == 1 && backend.requests == 1)
        #expect(transport.balancer.retriesTotal == 0)
        // Every try that counted as in flight on the endpoint stopped counting, once.
        #expect(transport.endpoint(at: 0).health.outstanding.load(ordering: .relaxed) == 0)
        transport.retire()
        try await backend.stop()
    }

    @Test(
        "a stream whose connection closes after its request was written fails mid-stream and is not tried again",
        arguments: Path.allCases)
    func notRetriedOnceWritten(path: Path) async throws {
        // The runner reads the request whole, then closes without answering.
        let backend = try await ScriptedBackend.start(.init(pieces: [], close: true))
        let transport = Self.transport(port: backend.port, maxTries: 3)
        let (events, error) = await Self.stream(transport, path)
        #expect(events.isEmpty)
        let failure = error as? GatewayError
        #expect(failure?.code == .backendFailed)
        #expect(
            failure?.message.contains("an endpoint closed the connection mid-stream") == true,
            "\(String(describing: error))")
        #expect(failure?.notSent == false)
        #expect(backend.accepted == 1)
        #expect(backend.requests == 1)
        #expect(transport.balancer.retriesTotal == 0)
        // Every try that counted as in flight on the endpoint stopped counting, once.
        #expect(transport.endpoint(at: 0).health.outstanding.load(ordering: .relaxed) == 0)
        transport.retire()
        try await backend.stop()
    }
}
