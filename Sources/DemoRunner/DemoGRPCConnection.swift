import HTTP2Engine
import NIOCore
import ProtoCodec
import TriggerModel
import WireCodecs

/// One connection of the demo runner's gRPC server: the engine's delegate, turning `Runner/Run` and
/// `Runner/RunStream` calls into runs of the `TriggerRunner` and their results into gRPC responses.
///
/// Lives on the connection's event loop. `Run` goes through the runner's loop-native form (answered on the
/// loop, in a task only for pipelines that wait); streams and `Describe` run in tasks and hop back to the
/// loop to answer. A client RST_STREAM (or the connection closing) cancels that stream's run; `grpc-timeout` becomes the
/// request's deadline and a timer that cancels the run and answers DEADLINE_EXCEEDED. Streaming runs wait
/// for the stream to be writable before producing more, so a slow client slows the run down (STYLE.md 5).
final class DemoGRPCConnection: HTTP2SessionDelegate {
    private let runner: any TriggerRunner
    private let eventLoop: any EventLoop
    private let maxMessageBytes: Int
    var session: NGHTTP2Session?
    private var streams: [HTTP2StreamID: DemoGRPCStream] = [:]

    init(runner: any TriggerRunner, eventLoop: any EventLoop, maxMessageBytes: Int) {
        self.runner = runner
        self.eventLoop = eventLoop
        self.maxMessageBytes = maxMessageBytes
    }

    // MARK: Requests

    func session(
        _ session: NGHTTP2Session,
        didReceiveHeaders headers: HTTP2Headers,
        stream: HTTP2StreamID,
        endStream: Bool
    ) {
        guard headers.first(name: ":method") == "POST",
            let contentType = headers.first(name: "content-type"), contentType.hasPrefix("application/grpc")
        else {
            // gRPC PROTOCOL-HTTP2.md: a request that is not gRPC gets HTTP 415, not a gRPC status.
            session.sendResponseHeaders(stream: stream, headers: [":status": "415"], endStream: true)
            return
        }
        let method: DemoGRPCStream.Method
        switch headers.first(name: ":path") {
        case "/trigger.runner.v1.Runner/Run": method = .run
        case "/trigger.runner.v1.Runner/RunStream": method = .runStream
        case "/grpc.health.v1.Health/Check": method = .healthCheck
        case "/trigger.runner.v1.Runner/Describe": method = .describe
        case let path:
            sendTrailersOnly(
                stream: stream,
                code: GatewayError.Code.unimplemented.rpcCode,
                message: "unknown method \(path ?? "(none)")"
            )
            return
        }
        var deadline: NIODeadline?
        if let header = headers.first(name: "grpc-timeout") {
            guard let timeout = GRPCTimeout.parse(header) else {
                sendTrailersOnly(stream: stream, code: 3, message: "malformed grpc-timeout \"\(header)\"")
                return
            }
            deadline = .now() + timeout
        }
        let state = DemoGRPCStream(
            id: stream,
            method: method,
            metadata: headers,
            deadline: deadline,
            maxMessageBytes: maxMessageBytes
        )
        streams[stream] = state
        if let deadline {
            let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
            state.deadlineTimer = eventLoop.scheduleTask(deadline: deadline) {
                loopBound.value.deadlinePassed(stream)
            }
        }
        if endStream { requestComplete(state) }
    }

    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool) {
        guard let state = streams[stream], !state.runStarted, !state.answered else { return }
        state.deframer.append(data)
        // The request is buffered whole (it is one message), bounded by the deframer's cap.
        session.consume(stream: stream, bytes: data.readableBytes)
        do {
            while let message = try state.deframer.next() {
                guard state.message == nil else {
                    fail(state, GatewayError(.invalidArgument, "more than one request message on a unary request"))
                    return
                }
                state.message = message
            }
        } catch {
            fail(state, error)
            return
        }
        if endStream { requestComplete(state) }
    }

    func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {
        guard let state = streams[stream], !state.runStarted, !state.answered else { return }
        requestComplete(state)
    }

    private func requestComplete(_ state: DemoGRPCStream) {
        guard !state.answered, !state.runStarted else { return }
        guard let message = state.message, !state.deframer.hasPartialMessage else {
            fail(state, GatewayError(.invalidArgument, "the request has no complete message"))
            return
        }
        if state.method == .healthCheck {
            // Serving whatever service is asked for: the runner is up when it answers.
            _ = InstillCodec.decodeGRPCHealthRequest(message)
            state.message = nil
            let framed = GRPCMessageFramer.frame(InstillCodec.encodeGRPCHealthResponse(serving: true))
            session?.withBatchedWrites {
                sendHeadersIfNeeded(state)
                session?.sendData(stream: state.id, framed, endStream: false)
                sendStatus(state, code: 0, message: "")
            }
            return
        }
        if state.method == .describe {
            state.message = nil
            startDescribe(state, message)
            return
        }
        var request: TriggerRequest
        do {
            request = try RunnerCodec.decodeRunRequest(message)
        } catch {
            fail(state, error)
            return
        }
        state.message = nil
        state.applyMetadata(to: &request)
        switch state.method {
        case .run: startUnary(state, request)
        case .runStream: startStreaming(state, request)
        case .healthCheck, .describe: break  // answered above
        }
    }

    // MARK: Runs

    /// `Runner/Run` through the runner's loop-native form: a pipeline that answers at once (`echo`) is answered
    /// from this read, with no task and no hop (what the gateway's own in-process path does, issue 11); the
    /// others run in a task of the runner's. Without this, every call woke a pool thread and hopped back, and
    /// that scheduling made the runner's CPU per call depend on how calls arrived, which skewed bench/'s
    /// gateway-vs-peer rows (bench/README "Branch backendcost").
    private func startUnary(_ state: DemoGRPCStream, _ request: TriggerRequest) {
        let cancellation = TriggerCancellation()
        state.cancellation = cancellation
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let stream = state.id
        runner.run(request, on: eventLoop, cancellation: cancellation).whenComplete { result in
            let outcome: Result<ByteBuffer, any Error>
            switch result {
            case .success(let result):
                outcome = .success(GRPCMessageFramer.frame(RunnerCodec.encodeRunResponse(result)))
            case .failure(let error as GatewayError) where error.code.isApplication:
                // The pipeline's own failure travels in the message with grpc-status OK (runner.proto), so the
                // gateway never mistakes it for the runner failing.
                outcome = .success(GRPCMessageFramer.frame(RunnerCodec.encodeRunError(error)))
            case .failure(let error):
                outcome = .failure(error)
            }
            loopBound.value.unaryFinished(stream, outcome)
        }
    }

    /// `Runner/Describe`: the runner's description when it can give one, UNIMPLEMENTED otherwise.
    private func startDescribe(_ state: DemoGRPCStream, _ message: ByteBuffer) {
        let runner = self.runner
        answerUnary(state) {
            let ref = try RunnerCodec.decodeDescribeRequest(message)
            guard let describing = runner as? any PipelineDescribing else {
                throw GatewayError(.unimplemented, "this runner does not describe its pipelines")
            }
            return RunnerCodec.encodeDescribeResponse(try await describing.describePipeline(ref))
        }
    }

    /// Runs `work` off the loop; back on it, the stream gets the message `work` returned, framed, with status
    /// OK, or the status of the error it threw.
    private func answerUnary(_ state: DemoGRPCStream, _ work: @escaping @Sendable () async throws -> ByteBuffer) {
        let eventLoop = self.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let stream = state.id
        state.task = Task {
            let outcome: Result<ByteBuffer, any Error>
            do {
                outcome = .success(GRPCMessageFramer.frame(try await work()))
            } catch {
                outcome = .failure(error)
            }
            eventLoop.execute { loopBound.value.unaryFinished(stream, outcome) }
        }
    }

    private func unaryFinished(_ stream: HTTP2StreamID, _ outcome: Result<ByteBuffer, any Error>) {
        guard let state = streams[stream], !state.answered, let session else { return }
        switch outcome {
        case .success(let framed):
            session.withBatchedWrites {
                sendHeadersIfNeeded(state)
                session.sendData(stream: stream, framed, endStream: false)
                sendStatus(state, code: 0, message: "")
            }
        case .failure(let error):
            fail(state, error)
        }
    }

    private func startStreaming(_ state: DemoGRPCStream, _ request: TriggerRequest) {
        let events = runner.runStreaming(request)
        let eventLoop = self.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let stream = state.id
        state.task = Task {
            var failure: (any Error)?
            do {
                for try await event in events {
                    let framed = GRPCMessageFramer.frame(RunnerCodec.encodeRunEvent(event))
                    try await eventLoop.flatSubmit { loopBound.value.sendEvent(stream, framed) }.get()
                }
            } catch {
                failure = error
            }
            let outcome = failure
            eventLoop.execute { loopBound.value.streamingFinished(stream, outcome) }
        }
    }

    /// Queues one event; the future completes once the stream can take more (back-pressure), and fails when
    /// the stream is gone, which ends the run's loop.
    private func sendEvent(_ stream: HTTP2StreamID, _ framed: ByteBuffer) -> EventLoopFuture<Void> {
        guard let state = streams[stream], !state.answered, let session else {
            return eventLoop.makeFailedFuture(CancellationError())
        }
        session.withBatchedWrites {
            sendHeadersIfNeeded(state)
            session.sendData(stream: stream, framed, endStream: false)
        }
        if session.isWritable(stream: stream) { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        state.writabilityWaiter = promise
        return promise.futureResult
    }

    private func streamingFinished(_ stream: HTTP2StreamID, _ failure: (any Error)?) {
        guard let state = streams[stream], !state.answered else { return }
        if let failure {
            fail(state, failure)
        } else {
            sendStatus(state, code: 0, message: "")
        }
    }

    private func deadlinePassed(_ stream: HTTP2StreamID) {
        guard let state = streams[stream], !state.answered else { return }
        state.cancelRun()
        fail(state, GatewayError(.deadlineExceeded, "the run did not finish within its grpc-timeout"))
    }

    // MARK: Answers

    private func sendHeadersIfNeeded(_ state: DemoGRPCStream) {
        guard !state.sentHeaders else { return }
        state.sentHeaders = true
        session?.sendResponseHeaders(
            stream: state.id, headers: HTTP2Headers(GRPCResponseFields.headers()), endStream: false)
    }

    /// Ends the call with the error's status: trailers after a response began, Trailers-Only before.
    private func fail(_ state: DemoGRPCStream, _ error: any Error) {
        let (code, message) = Self.status(for: error)
        sendStatus(state, code: code, message: message)
    }

    private func sendStatus(_ state: DemoGRPCStream, code: Int, message: String) {
        guard !state.answered else { return }
        state.answered = true
        state.deadlineTimer?.cancel()
        state.deadlineTimer = nil
        if state.sentHeaders {
            session?.sendTrailers(
                stream: state.id, HTTP2Headers(GRPCResponseFields.status(code: code, message: message)))
        } else {
            state.sentHeaders = true
            sendTrailersOnly(stream: state.id, code: code, message: message)
        }
    }

    private func sendTrailersOnly(stream: HTTP2StreamID, code: Int, message: String) {
        session?.sendResponseHeaders(
            stream: stream,
            headers: HTTP2Headers(GRPCResponseFields.trailersOnly(code: code, message: message)),
            endStream: true
        )
    }

    /// The gRPC status of a run's error: the gateway's own mapping for `GatewayError`, CANCELLED for a
    /// cancelled run, UNKNOWN for anything else.
    static func status(for error: any Error) -> (code: Int, message: String) {
        switch error {
        case let error as GatewayError: (error.code.rpcCode, error.message)
        case is CancellationError: (1, "the run was cancelled")
        default: (2, "\(error)")
        }
    }

    // MARK: Stream lifecycle

    func session(_ session: NGHTTP2Session, streamWritabilityChanged stream: HTTP2StreamID, isWritable: Bool) {
        guard isWritable, let state = streams[stream], let waiter = state.writabilityWaiter else { return }
        state.writabilityWaiter = nil
        waiter.succeed()
    }

    func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        guard let state = streams.removeValue(forKey: stream) else { return }
        state.deadlineTimer?.cancel()
        // A reset from the client (or the connection closing) before the answer: stop the run.
        if !state.answered || errorCode != .noError { state.cancelRun() }
        state.writabilityWaiter?.fail(CancellationError())
        state.writabilityWaiter = nil
    }

    func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?) {
        for state in streams.values {
            state.cancelRun()
            state.writabilityWaiter?.fail(CancellationError())
        }
        streams.removeAll()
        self.session = nil
    }
}

@available(*, unavailable)
extension DemoGRPCConnection: Sendable {}
