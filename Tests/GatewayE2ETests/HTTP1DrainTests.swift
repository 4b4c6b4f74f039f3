import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// The drain (SIGTERM) of HTTP/1.1 keep-alive connections over real sockets (review 18, F10): a proxy that
/// reuses an idle upstream connection (nginx `keepalive`) may have sent a request just as the drain starts.
/// It must get its answer, with `Connection: close`, and then an orderly end: never a reset, which nginx
/// turns into a 502 for a POST it does not retry. The gateway runs on a one-loop group, so that a task run on
/// that loop after the drain notice was queued proves the connection has seen the notice: the request is
/// sent after the drain began, deterministically, not in a race with it.
@Suite("HTTP/1.1 drain of keep-alive connections", .serialized)
struct HTTP1DrainTests {
    static let health = "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
    static func trigger(_ value: String) -> String {
        let body = #"{"data":[{"variable":{"p":"\#(value)"}}]}"#
        return "POST /v1beta/namespaces/demo/pipelines/echo/trigger HTTP/1.1\r\nHost: gw\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// A gateway on a one-loop group, and a connection to it that the gateway has accepted: one that has been
    /// served one request and is idle (`served`), or one that has sent nothing yet.
    static func withConnection(
        served: Bool,
        _ body: (TestGateway, SlowSocket, any EventLoop) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await withTestGateway(yaml: "timeouts: {shutdown_grace: 5s}", eventLoopGroup: group) { gateway in
                let socket = try await SlowSocket.connect(port: gateway.port)
                if served {
                    socket.send(Self.health)
                    let first = try await socket.waitForClose(timeout: .seconds(5), stopAfter: "SERVING\"}}")
                    #expect(first.text.hasPrefix("HTTP/1.1 200"), "\(first.text)")
                    #expect(!first.closedByServer && !first.text.lowercased().contains("connection: close"))
                } else {
                    #expect(await eventually(within: .seconds(10)) { gateway.openConnections() == 1 })
                }
                try await body(gateway, socket, group.next())
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    @Test(
        "a request sent just after the drain began, on an idle keep-alive connection or as a new connection's first, is served with Connection: close, then EOF, never a reset",
        arguments: [true, false])
    func requestAtDrainStartServed(served: Bool) async throws {
        try await Self.withConnection(served: served) { gateway, socket, loop in
            await gateway.beginShutdown()
            await gateway.drainNoticeSent()
            try await loop.submit {}.get()  // the connection has handled the notice
            #expect(socket.send(Self.trigger("in flight")))
            let outcome = try await socket.waitForClose(timeout: .seconds(5))
            #expect(outcome.text.hasPrefix("HTTP/1.1 200"), "\(outcome.text)")
            #expect(outcome.text.contains(#""p":"in flight""#), "\(outcome.text)")
            #expect(outcome.text.lowercased().contains("\r\nconnection: close\r\n"), "\(outcome.text)")
            #expect(outcome.closedByServer && !outcome.reset, "an orderly end after the answer: \(outcome)")
        }
    }

    @Test(
        "an idle keep-alive connection, or one that has sent nothing, is kept for the drain's grace (1 s), then ended with FIN, not a reset, and the stop completes",
        arguments: [true, false])
    func idleConnectionClosedAfterGrace(served: Bool) async throws {
        try await Self.withConnection(served: served) { gateway, socket, loop in
            let before = ContinuousClock.now
            await gateway.beginShutdown()
            await gateway.drainNoticeSent()
            try await loop.submit {}.get()
            let outcome = try await socket.waitForClose(timeout: .seconds(5))
            let elapsed = outcome.ended - before
            #expect(outcome.closedByServer && !outcome.reset, "\(outcome)")
            #expect(outcome.received.isEmpty, "\(outcome.text)")
            // Not before the grace (the notice came after `before`), and well before `shutdown_grace` (5 s).
            #expect(elapsed >= .seconds(1) && elapsed < .seconds(3), "\(elapsed)")
            // After our FIN the gateway still reads (and drops) what comes, for a moment: a request that crossed
            // the FIN is absorbed, not answered with a reset.
            #expect(socket.send(Self.trigger("crossed")))
            let after = try await socket.waitForClose(timeout: .seconds(2))
            #expect(after.received.isEmpty && !after.reset, "\(after)")
        }
    }
}
