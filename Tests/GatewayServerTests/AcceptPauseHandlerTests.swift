#if canImport(Glibc)
    import Glibc
#endif
@testable import GatewayServer
import GatewayTestSupport
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// ``AcceptPauseHandler`` on a real listening socket (NIO's `EmbeddedChannel` always reports `autoRead` true, so
/// it cannot show the pause): the accept error NIO fires on the server channel when `accept` fails with EMFILE
/// is fired into the real server channel's pipeline, and a real client then connects.
@Suite("accept pause at EMFILE, on a real listener")
struct AcceptPauseHandlerTests {
    /// What reaches the handler after the pause handler: errors it passed on.
    final class Tail: ChannelInboundHandler, Sendable {
        typealias InboundIn = any Channel
        let errors = Mutex<[Int32]>([])
        /// Connections accepted (the child channel initializer ran).
        let accepted = Atomic(0)
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            errors.withLock { $0.append((error as? IOError)?.errnoCode ?? -1) }
        }
    }

    static func listen(
        pause: TimeAmount, refuse: (@Sendable (any Channel) -> Bool)? = nil
    ) async throws -> (MultiThreadedEventLoopGroup, any Channel, Tail) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tail = Tail()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        AcceptPauseHandler(pause: pause, logger: Logger(label: "test"), refuse: refuse))
                    try channel.pipeline.syncOperations.addHandler(tail)
                }
            }
            .childChannelInitializer { channel in
                tail.accepted.add(1, ordering: .relaxed)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return (group, channel, tail)
    }

    static func autoRead(_ channel: any Channel) async throws -> Bool {
        try await channel.getOption(.autoRead).get()
    }

    // Two tests, not one with a short pause: the pause's checks ran on the real clock, and on a loaded machine the
    // client's connect and the 300 ms look took longer than a 1.5 s pause (the stop CI of the twenty-second
    // session: accepted during "the pause", which had ended). The pause's effect is looked at under a pause no run
    // outlasts; its end under a short one.
    @Test(
        "EMFILE at accept: accepting pauses (autoRead off, a client waits in the backlog); a second EMFILE in the pause changes nothing and neither is passed on"
    )
    func pauses() async throws {
        let (group, server, tail) = try await Self.listen(pause: .hours(1))
        let port = try #require(server.localAddress?.port)
        #expect(try await Self.autoRead(server))

        server.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        #expect(try await Self.autoRead(server) == false, "accepting did not pause")
        // Again inside the pause (epoll reporting the still-readable listener): still paused, nothing passed on.
        server.pipeline.fireErrorCaught(IOError(errnoCode: ENFILE, reason: "accept"))
        #expect(tail.errors.withLock { $0 }.isEmpty, "EMFILE/ENFILE went on down the pipeline")

        // A client connects during the pause: the kernel completes its handshake (backlog), nobody accepts it.
        let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        try await Task.sleep(for: .milliseconds(300))  // a window in which nothing must happen
        #expect(tail.accepted.load(ordering: .relaxed) == 0, "accepted during the pause")
        #expect(try await Self.autoRead(server) == false)

        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test(
        "after the pause accepting resumes by itself and takes the client waiting in the backlog, not before the pause; any other accept error is passed on without a pause"
    )
    func resumes() async throws {
        let pause = TimeAmount.milliseconds(300)
        let (group, server, tail) = try await Self.listen(pause: pause)
        let port = try #require(server.localAddress?.port)

        let clock = ContinuousClock()
        let failed = clock.now
        server.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()

        let resumed = await eventually(within: .seconds(10)) { tail.accepted.load(ordering: .relaxed) == 1 }
        #expect(resumed, "the waiting client was never accepted")
        let waited = clock.now - failed
        #expect(waited >= .milliseconds(280), "resumed after \(waited), before the \(pause) pause")
        #expect(try await Self.autoRead(server))

        // Any other accept error is not the pause handler's: passed on, accepting not paused.
        server.pipeline.fireErrorCaught(IOError(errnoCode: ECONNABORTED, reason: "accept"))
        #expect(try await Self.autoRead(server))
        let passed = await eventually(within: .seconds(10)) { tail.errors.withLock { $0 } == [ECONNABORTED] }
        #expect(passed, "\(tail.errors.withLock { $0 })")

        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test(
        """
        refused connections still closing: accepting pauses at maxRefusalsClosing of them (the next client waits in \
        the backlog) and resumes once they are closed; after StopAccepting it stays off
        """
    )
    func pausesWhileRefusalsClose() async throws {
        // Every connection is refused and kept open by the test, so their closes complete when the test says.
        let refused = Mutex<[any Channel]>([])
        let (group, server, tail) = try await Self.listen(pause: .hours(1)) { accepted in
            refused.withLock { $0.append(accepted) }
            return true
        }
        let port = try #require(server.localAddress?.port)
        let limit = AcceptPauseHandler.maxRefusalsClosing
        var clients: [any Channel] = []
        for _ in 0..<limit {
            clients.append(try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get())
        }
        #expect(await eventually(within: .seconds(10)) { refused.withLock { $0.count } == limit })
        #expect(try await Self.autoRead(server) == false, "accepting did not pause at \(limit) refusals closing")
        // One more client: it waits in the backlog while the refusals close.
        clients.append(try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get())
        try await Task.sleep(for: .milliseconds(300))  // a window in which nothing must happen
        #expect(refused.withLock { $0.count } == limit, "accepted while paused")
        #expect(tail.accepted.load(ordering: .relaxed) == 0, "a refused connection went on")

        let closing = refused.withLock { $0 }
        for channel in closing.dropLast() { try await channel.close() }
        #expect(try await Self.autoRead(server) == false, "resumed with one refusal still closing")
        try await closing.last?.close()
        #expect(
            await eventually(within: .seconds(10)) { refused.withLock { $0.count } == limit + 1 },
            "the waiting client was never accepted after the refusals closed")

        // Stopped: refusals closing afterwards do not turn accepting back on.
        for _ in 0..<(limit - 1) {
            clients.append(try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get())
        }
        #expect(await eventually(within: .seconds(10)) { refused.withLock { $0.count } == 2 * limit })
        server.pipeline.fireUserInboundEventTriggered(AcceptPauseHandler.StopAccepting())
        for channel in refused.withLock({ $0 }) { try? await channel.close() }
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await Self.autoRead(server) == false, "accepting resumed after StopAccepting")

        for client in clients { try? await client.close() }
        try await server.close()
        try await group.shutdownGracefully()
    }
}
