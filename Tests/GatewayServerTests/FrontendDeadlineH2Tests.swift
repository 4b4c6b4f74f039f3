import Backends
import GatewayConfig
@testable import GatewayServer
import GatewayTestSupport
import HTTP2Engine
import NIOCore
import NIOEmbedded
import Observability
import ProtoCodec
import Synchronization
import Testing
import TriggerModel
import WireCodecs

/// A sync call's deadline through the HTTP/2 frontend, on the event loop's clock: a gRPC call's `grpc-timeout`
/// (gRPC over HTTP/2, "Timeout"), `timeouts.request` and a route's pool `request_timeout`, whichever ends first
/// (`RequestContext`), each one nanosecond before its edge and on it. The gateway's connection runs on NIO's
/// testing loop (`FrontendDeadlineTests.connection(for: .http2)`); the client is the engine's own client role on an
/// `EmbeddedChannel`, its bytes carried across by hand, so no socket and no real time decides anything. The
/// real-socket tests (StreamGRPCTests, GRPCInteropTests) cover the same rule with grpcio and wall time.
@Suite("Sync call deadlines through the HTTP/2 frontend, on the event loop's clock")
struct FrontendDeadlineH2Tests {
    /// What the client saw on its one stream. Touched only on the client's loop (hence `@unchecked Sendable`).
    final class ClientRecorder: HTTP2SessionDelegate, @unchecked Sendable {
        var headers: HTTP2Headers?
        var trailers: HTTP2Headers?
        var body = ByteBuffer()
        var closed: HTTP2ErrorCode?

        func session(
            _ session: NGHTTP2Session, didReceiveHeaders headers: HTTP2Headers, stream: HTTP2StreamID, endStream: Bool
        ) {
            self.headers = headers
        }

        func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool)
        {
            var data = data
            self.body.writeBuffer(&data)
            session.consume(stream: stream, bytes: self.body.readableBytes)
        }

        func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {
            self.trailers = trailers
        }

        func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
            self.closed = errorCode
        }

        func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?) {}
    }

    /// The engine's client on a testing channel of its own loop (its clock stays still), talking to the gateway's
    /// `server` channel. Everything that touches the session or the recorder runs on the client's loop.
    struct Client {
        let loop = NIOAsyncTestingEventLoop()
        let channel: NIOAsyncTestingChannel
        let recorder = ClientRecorder()
        let session: NIOLoopBound<NGHTTP2Session>
        let server: NIOAsyncTestingChannel

        init(server: NIOAsyncTestingChannel) async throws {
            self.server = server
            self.channel = NIOAsyncTestingChannel(loop: self.loop)
            let (channel, recorder) = (self.channel, self.recorder)
            let loop = self.loop
            self.session = try await loop.executeInContext {
                NIOLoopBound(
                    try channel.pipeline.syncOperations.configureHTTP2Session(role: .client, delegate: recorder),
                    eventLoop: loop)
            }
            try await self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        }

        /// Runs `body` with the session on the client's loop.
        func onLoop<T: Sendable>(_ body: @escaping @Sendable (NGHTTP2Session, ClientRecorder) throws -> T) async throws
            -> T
        {
            let (session, recorder) = (self.session, self.recorder)
            return try await self.loop.executeInContext { try body(session.value, recorder) }
        }

        /// Moves bytes both ways until neither side has anything more to say.
        func exchange() async throws {
            var moved = true
            while moved {
                moved = false
                while let bytes = try await self.channel.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    try await self.server.writeInbound(bytes)
                }
                while let bytes = try await self.server.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    try await self.channel.writeInbound(bytes)
                }
            }
        }

        func finish() async {
            _ = try? await self.channel.finish(acceptAlreadyClosed: true)
            await self.loop.shutdownGracefully()
        }
    }

    /// The Instill `TriggerNamespacePipeline` call for `demo/wait`, one item; returns its stream.
    @discardableResult
    static func grpcTrigger(_ client: Client, timeout: String?) async throws -> HTTP2StreamID {
        var headers: HTTP2Headers = [
            ":method": "POST", ":scheme": "http", ":authority": "gw",
            ":path": "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
            "content-type": "application/grpc", "te": "trailers",
        ]
        if let timeout { headers.add(name: "grpc-timeout", value: timeout) }
        let request = headers
        let message = InstillCodec.encodeTriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "wait"),
            inputs: [TriggerInput(variables: ["x": .number(1)])])
        return try await client.onLoop { session, _ in
            let stream = try session.startRequest(headers: request, endStream: false)
            session.sendData(stream: stream, GRPCMessageFramer.frame(message), endStream: true)
            return stream
        }
    }

    /// Sends a call (`send`), stands one nanosecond before `deadline` (nothing answered, the run going on), then
    /// on it: the stream is answered and closed (`check` judges the answer), and the run is cancelled.
    static func expectCut(
        at deadline: TimeAmount,
        requestTimeout: TimeAmount,
        poolTimeout: TimeAmount,
        send: (Client) async throws -> Void,
        check: @escaping @Sendable (ClientRecorder) -> Void
    ) async throws {
        let runner = FrontendDeadlineTests.Hanging()
        let (loop, server) = try await FrontendDeadlineTests.connection(
            requestTimeout: requestTimeout, poolTimeout: poolTimeout, runner: runner, wire: .http2)
        let client = try await Client(server: server)
        try await send(client)
        try await client.exchange()
        await loop.run()
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })

        await loop.advanceTime(by: deadline - .nanoseconds(1))
        try await client.exchange()
        let early = try await client.onLoop { _, recorder in (recorder.headers, recorder.closed) }
        #expect(early.0 == nil, "answered before the deadline")
        #expect(early.1 == nil)
        #expect(runner.cancelled.load(ordering: .sequentiallyConsistent) == 0)

        await loop.advanceTime(by: .nanoseconds(1))
        #expect(
            await eventually(within: .seconds(20)) {
                try? await client.exchange()
                return (try? await client.onLoop { _, recorder in recorder.closed != nil }) ?? false
            }, "no answer at the deadline")
        try await client.onLoop { _, recorder in check(recorder) }
        #expect(
            await eventually(within: .seconds(20)) { runner.cancelled.load(ordering: .sequentiallyConsistent) == 1 })
        await client.finish()
        _ = try? await server.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    static func expectDeadlineExceeded(_ recorder: ClientRecorder) {
        let status = recorder.trailers?.first(name: "grpc-status") ?? recorder.headers?.first(name: "grpc-status")
        #expect(
            status == "4",
            "DEADLINE_EXCEEDED expected: \(String(describing: recorder.headers)) \(String(describing: recorder.trailers))"
        )
    }

    @Test(
        "grpc-timeout shorter than timeouts.request ends the call at its edge: DEADLINE_EXCEEDED",
        .timeLimit(.minutes(1)))
    func grpcTimeout() async throws {
        // 20M: 20 minutes (gRPC over HTTP/2: "M" is minutes).
        try await Self.expectCut(
            at: .minutes(20), requestTimeout: .hours(1), poolTimeout: .hours(2),
            send: { try await Self.grpcTrigger($0, timeout: "20M") }, check: Self.expectDeadlineExceeded)
    }

    @Test("without grpc-timeout, timeouts.request ends a gRPC call: DEADLINE_EXCEEDED", .timeLimit(.minutes(1)))
    func requestTimeoutOnGRPC() async throws {
        try await Self.expectCut(
            at: .hours(1), requestTimeout: .hours(1), poolTimeout: .hours(2),
            send: { try await Self.grpcTrigger($0, timeout: nil) }, check: Self.expectDeadlineExceeded)
    }

    @Test("a grpc-timeout longer than the pool's request_timeout: the pool's edge wins", .timeLimit(.minutes(1)))
    func poolTimeoutOnGRPC() async throws {
        try await Self.expectCut(
            at: .minutes(30), requestTimeout: .hours(3), poolTimeout: .minutes(30),
            send: { try await Self.grpcTrigger($0, timeout: "2H") }, check: Self.expectDeadlineExceeded)
    }

    @Test("REST over h2c: timeouts.request ends a sync trigger with 504", .timeLimit(.minutes(1)))
    func restOverH2() async throws {
        try await Self.expectCut(
            at: .hours(1), requestTimeout: .hours(1), poolTimeout: .hours(2),
            send: { client in
                let body = ByteBuffer(string: #"{"data":[{"variable":{"x":1}}]}"#)
                let headers: HTTP2Headers = [
                    ":method": "POST", ":scheme": "http", ":authority": "gw",
                    ":path": "/v1beta/namespaces/demo/pipelines/wait/trigger", "content-type": "application/json",
                ]
                try await client.onLoop { session, _ in
                    let stream = try session.startRequest(headers: headers, endStream: false)
                    session.sendData(stream: stream, body, endStream: true)
                }
            },
            check: { recorder in
                #expect(recorder.headers?.first(name: ":status") == "504", "\(String(describing: recorder.headers))")
                #expect(String(buffer: recorder.body).contains("3600s"), "\(String(buffer: recorder.body))")
            })
    }

    /// Review 24, M4: over h2c too, `timeouts.request` bounds the upload: a body whose DATA frames each come within
    /// `body_progress` gets the slow upload's 408 at the request deadline (nothing one nanosecond before).
    @Test("REST over h2c: a progressing upload is answered 408 at timeouts.request", .timeLimit(.minutes(1)))
    func uploadCutAtRequestTimeout() async throws {
        let runner = FrontendDeadlineTests.Hanging()
        let (loop, server) = try await FrontendDeadlineTests.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(2), runner: runner, bodyProgress: .minutes(45),
            wire: .http2)
        let client = try await Client(server: server)
        let headers: HTTP2Headers = [
            ":method": "POST", ":scheme": "http", ":authority": "gw",
            ":path": "/v1beta/namespaces/demo/pipelines/wait/trigger", "content-type": "application/json",
        ]
        let stream = try await client.onLoop { session, _ in
            let stream = try session.startRequest(headers: headers, endStream: false)
            session.sendData(stream: stream, ByteBuffer(string: "{"), endStream: false)
            return stream
        }
        try await client.exchange()
        await loop.run()
        await loop.advanceTime(by: .minutes(40))
        try await client.onLoop { session, _ in
            session.sendData(stream: stream, ByteBuffer(string: " "), endStream: false)
        }
        try await client.exchange()
        await loop.advanceTime(by: .minutes(20) - .nanoseconds(1))
        try await client.exchange()
        #expect(try await client.onLoop { _, recorder in recorder.headers } == nil, "answered before the deadline")
        await loop.advanceTime(by: .nanoseconds(1))
        #expect(
            await eventually(within: .seconds(20)) {
                try? await client.exchange()
                return (try? await client.onLoop { _, recorder in recorder.headers != nil }) ?? false
            }, "no answer at the deadline")
        try await client.onLoop { _, recorder in
            #expect(recorder.headers?.first(name: ":status") == "408", "\(String(describing: recorder.headers))")
            #expect(String(buffer: recorder.body).contains("not received in time"), "\(String(buffer: recorder.body))")
        }
        #expect(runner.started.load(ordering: .sequentiallyConsistent) == 0, "the runner was called")
        await client.finish()
        _ = try? await server.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    /// Review 21 I1: grpcio's deadline starts when it sends, the gateway's when the headers are read, so at the
    /// deadline the client's RST_STREAM can arrive before the gateway's own timer fires. From
    /// `deadlineResetSlack` (10 ms) before the gateway's view of the deadline, such a reset is recorded as the
    /// client's deadline (`DT`, DEADLINE_EXCEEDED, what grpcio reports); one nanosecond earlier it is the client's
    /// own cancel (`DC`, CANCELLED). On the loop's clock: the gateway's timer never fires here.
    @Test(
        "a client's reset of an unanswered call from 10 ms before its grpc-timeout is DT and DEADLINE_EXCEEDED; a nanosecond earlier DC and CANCELLED",
        .timeLimit(.minutes(1)))
    func resetAtClientDeadline() async throws {
        #expect(HTTP2FrontendConnection.deadlineResetSlack(.minutes(20)) == .milliseconds(10))
        #expect(HTTP2FrontendConnection.deadlineResetSlack(.milliseconds(20)) == .milliseconds(2))
        let slackStart = TimeAmount.minutes(20) - .milliseconds(10)
        for (at, flag, status) in [
            (slackStart, RequestRecord.Termination.downstreamDeadline, 4),
            (slackStart - .nanoseconds(1), RequestRecord.Termination.downstreamDisconnected, 1),
        ] {
            let observer = RecordingObserver()
            let runner = FrontendDeadlineTests.Hanging()
            let (loop, server) = try await FrontendDeadlineTests.connection(
                requestTimeout: .hours(1), poolTimeout: .hours(2), runner: runner, wire: .http2,
                observers: [observer])
            let client = try await Client(server: server)
            let stream = try await Self.grpcTrigger(client, timeout: "20M")
            try await client.exchange()
            await loop.run()
            #expect(
                await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
            await loop.advanceTime(by: at)
            #expect(observer.all.isEmpty, "recorded before the reset")
            try await client.onLoop { session, _ in session.resetStream(stream, errorCode: .cancel) }
            try await client.exchange()
            await loop.run()
            #expect(await eventually(within: .seconds(20)) { observer.all.count == 1 }, "no record of the reset call")
            let record = try #require(observer.all.first)
            #expect(record.termination == flag, "reset at \(at.nanoseconds) ns")
            #expect(record.grpcStatus == status)
            #expect(record.responseFlags == flag.rawValue)
            #expect(
                await eventually(within: .seconds(20)) {
                    runner.cancelled.load(ordering: .sequentiallyConsistent) == 1
                })
            await client.finish()
            _ = try? await server.finish(acceptAlreadyClosed: true)
            await loop.shutdownGracefully()
        }
    }
}
