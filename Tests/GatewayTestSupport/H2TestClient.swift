import HTTP2Engine
import NIOCore
import NIOPosix
import Synchronization

/// An HTTP/2 client over a real socket that reads only when told to: it gives flow-control window back
/// (``consumeAll()``) on request, so a test can play a client that keeps its window shut, or one that reads
/// slowly. Built on the engine's client role; everything it records is readable from any task.
package final class H2TestClient: Sendable {
    /// What one stream has seen so far.
    package struct StreamRecord: Sendable {
        package var status: String?
        package var receivedBytes = 0
        package var body: [UInt8] = []
        package var endStream = false
        /// `grpc-status` from the trailers (or a Trailers-Only response).
        package var grpcStatus: String?
        /// The RST_STREAM / close code, once the stream closed (0 = NO_ERROR).
        package var closedWith: UInt32?
        package var bodyString: String { String(decoding: body, as: UTF8.self) }
    }

    package struct Snapshot: Sendable {
        package var streams: [Int32: StreamRecord] = [:]
        package var sessionClosed = false
    }

    private let channel: any Channel
    private let session: NIOLoopBound<NGHTTP2Session>
    private let recorder: NIOLoopBound<Recorder>
    private let shared: SharedSnapshot

    private init(
        channel: any Channel,
        session: NIOLoopBound<NGHTTP2Session>,
        recorder: NIOLoopBound<Recorder>,
        shared: SharedSnapshot
    ) {
        self.channel = channel
        self.session = session
        self.recorder = recorder
        self.shared = shared
    }

    /// Connects with `initialWindowSize` as the per-stream receive window it announces.
    package static func connect(port: Int, initialWindowSize: Int = 65_535) async throws -> H2TestClient {
        let box = Mutex<(NIOLoopBound<NGHTTP2Session>, NIOLoopBound<Recorder>)?>(nil)
        let shared = SharedSnapshot(Snapshot())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var configuration = HTTP2SessionConfiguration.defaults
                    configuration.initialWindowSize = initialWindowSize
                    let recorder = Recorder(shared: shared)
                    let session = try channel.pipeline.syncOperations.configureHTTP2Session(
                        role: .client,
                        configuration: configuration,
                        delegate: recorder
                    )
                    let bound = (
                        NIOLoopBound(session, eventLoop: channel.eventLoop),
                        NIOLoopBound(recorder, eventLoop: channel.eventLoop)
                    )
                    box.withLock { $0 = bound }
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        let (session, recorder) = box.withLock { $0! }
        return H2TestClient(channel: channel, session: session, recorder: recorder, shared: shared)
    }

    /// Starts a request with `headers` (pseudo-headers first) and `body`; returns its stream id. `endStream`
    /// false leaves the request open after `body` (a client whose body stops).
    package func request(_ headers: [(String, String)], body: [UInt8], endStream: Bool = true) async throws -> Int32 {
        let session = self.session
        return try await channel.eventLoop.submit {
            var block = HTTP2Headers()
            for (name, value) in headers { block.add(name: name, value: value) }
            let stream = try session.value.startRequest(headers: block, endStream: endStream && body.isEmpty)
            if !body.isEmpty {
                var buffer = ByteBuffer()
                buffer.writeBytes(body)
                session.value.sendData(stream: stream, buffer, endStream: endStream)
            }
            return stream.rawValue
        }.get()
    }

    /// Sends more of `stream`'s body (flow control permitting, as the engine sends any DATA).
    package func send(stream: Int32, body: [UInt8], endStream: Bool = false) async throws {
        let session = self.session
        try await channel.eventLoop.submit {
            var buffer = ByteBuffer()
            buffer.writeBytes(body)
            session.value.sendData(stream: HTTP2StreamID(stream), buffer, endStream: endStream)
        }.get()
    }

    /// Waits until all of `stream`'s body given so far has left (flow control let it), or `timeout` passes.
    package func waitSent(stream: Int32, timeout: Duration = .seconds(20)) async throws -> Bool {
        let session = self.session
        let loop = channel.eventLoop
        return try await eventually(within: timeout, interval: .milliseconds(5)) {
            try await loop.submit { session.value.bufferedOutboundBytes(stream: HTTP2StreamID(stream)) == 0 }.get()
        }
    }

    /// Resets `stream` (RST_STREAM CANCEL): a client that gives up mid-request.
    package func reset(stream: Int32) async throws {
        let session = self.session
        try await channel.eventLoop.submit {
            session.value.resetStream(HTTP2StreamID(stream), errorCode: .cancel)
        }.get()
    }

    /// Gives back the window of everything received so far (the client "reads").
    package func consumeAll() async throws {
        let session = self.session
        let recorder = self.recorder
        try await channel.eventLoop.submit {
            for (id, bytes) in recorder.value.unconsumed where bytes > 0 {
                session.value.consume(stream: HTTP2StreamID(id), bytes: bytes)
            }
            recorder.value.unconsumed = [:]
        }.get()
    }

    package var snapshot: Snapshot { shared.state.withLock { $0 } }

    /// Polls until `condition` holds or `timeout` passes; returns the last snapshot either way.
    package func wait(timeout: Duration, until condition: (Snapshot) -> Bool) async throws -> Snapshot {
        var last = snapshot
        _ = await eventually(within: timeout, interval: .milliseconds(10)) {
            last = snapshot
            return condition(last)
        }
        return last
    }

    package func close() async {
        try? await channel.close()
    }

    /// The recorder's view, shared with tests.
    private final class SharedSnapshot: Sendable {
        let state: Mutex<Snapshot>
        init(_ snapshot: Snapshot) { state = Mutex(snapshot) }
    }

    /// The session's delegate: runs on the channel's loop, mirrors what it sees into the shared snapshot.
    private final class Recorder: HTTP2SessionDelegate {
        let shared: SharedSnapshot
        var unconsumed: [Int32: Int] = [:]

        init(shared: SharedSnapshot) { self.shared = shared }

        func session(
            _ session: NGHTTP2Session, didReceiveHeaders headers: HTTP2Headers, stream: HTTP2StreamID, endStream: Bool
        ) {
            shared.state.withLock {
                $0.streams[stream.rawValue, default: StreamRecord()].status = headers.first(name: ":status")
                $0.streams[stream.rawValue, default: StreamRecord()].grpcStatus = headers.first(name: "grpc-status")
                if endStream { $0.streams[stream.rawValue, default: StreamRecord()].endStream = true }
            }
        }

        func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool)
        {
            unconsumed[stream.rawValue, default: 0] += data.readableBytes
            shared.state.withLock {
                $0.streams[stream.rawValue, default: StreamRecord()].receivedBytes += data.readableBytes
                $0.streams[stream.rawValue, default: StreamRecord()].body.append(contentsOf: data.readableBytesView)
                if endStream { $0.streams[stream.rawValue, default: StreamRecord()].endStream = true }
            }
        }

        func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {
            shared.state.withLock {
                $0.streams[stream.rawValue, default: StreamRecord()].endStream = true
                $0.streams[stream.rawValue, default: StreamRecord()].grpcStatus = trailers.first(name: "grpc-status")
            }
        }

        func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
            shared.state.withLock {
                $0.streams[stream.rawValue, default: StreamRecord()].closedWith = errorCode.rawValue
            }
        }

        func session(_ session: NGHTTP2Session, streamWritabilityChanged stream: HTTP2StreamID, isWritable: Bool) {}

        func session(_ session: NGHTTP2Session, didReceiveGoAway lastStreamID: HTTP2StreamID, errorCode: HTTP2ErrorCode)
        {}

        func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?) {
            shared.state.withLock { $0.sessionClosed = true }
        }
    }
}
