import HTTP2Engine
import NIOCore
import ProtoCodec
import TriggerModel
import WireCodecs

/// One gRPC call to a backend, from its HEADERS to its close: collects the response headers, messages and
/// trailers and turns them into a `TriggerResult` (unary) or a pulled sequence of `TriggerEvent`s
/// (server streaming).
///
/// Lives on its connection's event loop and is only touched there (callers box it in a `NIOLoopBoundBox`).
/// Its stream and session are known once ``GRPCBackendSession`` has started it. The session is held strongly:
/// the reference cycle through ``GRPCBackendSession``'s map of calls ends when the engine reports the stream
/// closed (every stream is, when the connection goes), and a weak reference gave the session a side table,
/// which sent every retain and release of it, dozens per call, through the runtime's slow path (issue 11).
///
/// Flow control is the back-pressure (STYLE.md habit 5): a unary call consumes DATA as it arrives (the
/// message is buffered either way, bounded by the deframer's cap); a streaming call consumes only the bytes
/// of messages the consumer has pulled, plus, while the consumer waits, the bytes of the message it waits
/// for, so a backend can never run more than one stream window ahead of a slow consumer.
final class GRPCBackendCall {
    enum Kind {
        case unary
        case streaming
    }

    /// The stream was refused before the backend processed it (GOAWAY, REFUSED_STREAM, or the connection
    /// was already closing): safe to retry on another connection.
    struct Refused: Error {}

    let kind: Kind
    let peer: GRPCBackendPeer
    private var deframer: GRPCMessageDeframer
    private(set) var stream: HTTP2StreamID?
    private var session: NGHTTP2Session?
    private var deadlineTimer: Scheduled<Void>?

    /// How the call ended: trailers (success or a status error), a reset, a lost connection, a
    /// cancellation. Nil while it runs.
    private(set) var outcome: Result<Void, any Error>?

    // Unary.
    /// A `Run` call's outcome, called once on the connection's loop and then dropped (issue 11: a promise and a
    /// `whenComplete` closure per call only to hand the result to the transport, which this replaces).
    private var unaryCompletion: ((Result<TriggerResult, any Error>) -> Void)?
    /// Told the `grpc-status` the backend answered (``TriggerCancellation/answered(status:clearingHandler:)``), for
    /// the request's record (`upstream_status`); nil for calls no record follows (health checks, streams).
    private let statusSink: TriggerCancellation?
    /// A unary call of another service (the active health check): the response message, undecoded.
    private let rawPromise: EventLoopPromise<ByteBuffer>?
    private var unaryMessage: ByteBuffer?

    // Streaming.
    private var pendingPull: (any TriggerEventReceiver)?
    /// Stream offsets, in DATA payload bytes: received, given back to the backend, and the end of the last
    /// message handed to the consumer.
    private var receivedBytes = 0
    private var consumedBytes = 0
    private var deliveredBytes = 0
    /// A terminal event (`.end` / `.error`) reached the consumer: a clean stream may now end.
    private var sawTerminalEvent = false
    /// The consumer has seen the end (nil or an error): nothing more to hand out.
    private(set) var isDrained = false

    /// The 5-byte Length-Prefixed-Message prefix (gRPC PROTOCOL-HTTP2.md).
    private static let prefixBytes = 5

    /// A unary `Run`: `completion` gets the decoded result or the call's error, once, on the connection's loop.
    /// `statusSink`: told the backend's `grpc-status` once it is read.
    init(
        unary completion: @escaping (Result<TriggerResult, any Error>) -> Void,
        peer: GRPCBackendPeer,
        maxMessageBytes: Int,
        statusSink: TriggerCancellation? = nil
    ) {
        self.kind = .unary
        self.peer = peer
        self.statusSink = statusSink
        self.unaryCompletion = completion
        self.rawPromise = nil
        self.deframer = GRPCMessageDeframer(maxMessageBytes: maxMessageBytes)
    }

    init(raw promise: EventLoopPromise<ByteBuffer>, peer: GRPCBackendPeer, maxMessageBytes: Int) {
        self.kind = .unary
        self.peer = peer
        self.statusSink = nil
        self.rawPromise = promise
        self.deframer = GRPCMessageDeframer(maxMessageBytes: maxMessageBytes)
    }

    init(streamingPeer peer: GRPCBackendPeer, maxMessageBytes: Int) {
        self.kind = .streaming
        self.peer = peer
        self.statusSink = nil
        self.rawPromise = nil
        self.deframer = GRPCMessageDeframer(maxMessageBytes: maxMessageBytes)
    }

    // MARK: Events from the session

    /// The request's HEADERS are submitted on `stream`; a deadline, if any, is enforced locally too, so a
    /// backend that ignores `grpc-timeout` cannot hold the caller past it.
    func started(session: NGHTTP2Session, stream: HTTP2StreamID, deadline: NIODeadline?, eventLoop: any EventLoop) {
        self.session = session
        self.stream = stream
        if let deadline {
            let peer = self.peer
            let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
            self.deadlineTimer = eventLoop.scheduleTask(deadline: deadline) {
                loopBound.value.cancel(
                    BackendErrors.endpointFailure(
                        .deadlineExceeded, pool: peer.pool, endpoint: peer.endpoint,
                        "an endpoint did not answer before the deadline"
                    )
                )
            }
        }
    }

    func receivedHeaders(_ headers: HTTP2Headers, endStream: Bool) {
        guard outcome == nil else { return }
        guard headers.first(name: ":status") == "200" else {
            garbage("HTTP status \(headers.first(name: ":status") ?? "(none)")")
            return
        }
        // Trailers-Only (gRPC PROTOCOL-HTTP2.md): one HEADERS block carrying the status, typically an error.
        if endStream || headers.first(name: "grpc-status") != nil {
            receivedTrailers(headers)
            return
        }
        guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix("application/grpc")
        else {
            garbage("content-type \(headers.first(name: "content-type") ?? "(none)") is not application/grpc")
            return
        }
    }

    func receivedData(_ data: ByteBuffer, endStream: Bool) {
        guard outcome == nil else { return }
        deframer.append(data)
        receivedBytes += data.readableBytes
        switch kind {
        case .unary:
            giveBack(upTo: receivedBytes)
            do {
                while let message = try deframer.next() {
                    guard unaryMessage == nil else {
                        garbage("more than one message in a unary response")
                        return
                    }
                    unaryMessage = message
                }
            } catch {
                garbage(Self.describe(error))
                return
            }
        case .streaming:
            deliverIfPulled()
        }
        if endStream, outcome == nil {
            garbage("the stream ended without trailers (no grpc-status)")
        }
    }

    func receivedTrailers(_ trailers: HTTP2Headers) {
        guard outcome == nil else { return }
        let status: Result<Void, GatewayError>
        switch parseStatus(trailers) {
        case .ok: status = .success(())
        case .failed(let error): status = .failure(error)
        case .garbage(let reason):
            garbage(reason)
            return
        }
        switch kind {
        case .unary:
            switch status {
            case .failure(let error):
                finish(.failure(error))
            case .success:
                if deframer.hasPartialMessage {
                    garbage("a truncated message before the trailers")
                    return
                }
                guard let message = unaryMessage else {
                    garbage("grpc-status 0 without a response message")
                    return
                }
                if let rawPromise {
                    finish(.success(()))
                    rawPromise.succeed(message)
                    return
                }
                do {
                    switch try RunnerCodec.decodeRunOutcome(message) {
                    case .success(let result):
                        finish(.success(()))
                        complete(.success(result))
                    case .failure(let applicationError):
                        // The pipeline ran and failed: the backend did its job (the call succeeded on the wire).
                        finish(.success(()))
                        complete(.failure(applicationError))
                    }
                } catch {
                    garbage("undecodable RunResponse: \(Self.describe(error))")
                }
            }
        case .streaming:
            finish(status.mapError { $0 as any Error })
        }
    }

    /// The stream closed while the connection stays up.
    func closed(errorCode: HTTP2ErrorCode) {
        guard outcome == nil else { return }
        switch errorCode {
        case .noError:
            garbage("the stream closed without grpc-status")
        case .refusedStream:
            finish(.failure(Refused()))
        default:
            finish(
                .failure(
                    BackendErrors.endpointFailure(
                        pool: peer.pool, endpoint: peer.endpoint, "an endpoint reset the stream (\(errorCode))"
                    )
                )
            )
        }
    }

    /// The connection closed under the stream; `error` is the session's reason, if any.
    func connectionLost(_ error: (any Error)?) {
        guard outcome == nil else { return }
        if let error, let tls = BackendErrors.tlsFailure(pool: peer.pool, endpoint: peer.endpoint, error) {
            finish(.failure(tls))
        } else if let error = error as? HTTP2EngineError, error.code == .protocolError || error.code == .goAwaySent {
            // An HTTP/1.1 server's answer to our preface ends here too: the hint names the usual cause, a grpc pool
            // in front of an http runner (review 17, finding 8: operators read a library's error type instead).
            garbage(
                "an HTTP/2 protocol error (\(error.message)); an endpoint that speaks only HTTP/1.1, such as an http "
                    + "runner, fails so: check the pool's transport")
        } else {
            finish(.failure(BackendErrors.connectionLost(pool: peer.pool, endpoint: peer.endpoint)))
        }
    }

    /// The caller gave up (task cancelled, local deadline, consumer gone): reset the stream, only this one,
    /// so the backend stops working on it (RST_STREAM CANCEL, as gRPC clients do).
    func cancel(_ error: any Error) {
        guard outcome == nil else { return }
        // Outcome first: outside a delegate callback the engine runs the reset at once and reports the
        // stream closed (CANCEL) from inside `resetStream`, which must not count as the backend's doing.
        finish(.failure(error))
        resetStream()
    }

    /// The call could not be started on its connection.
    func failedToStart(_ error: any Error) {
        guard outcome == nil else { return }
        finish(.failure(error))
    }

    // MARK: Streaming consumer side

    /// The next event for the consumer: a decoded message, nil at a clean end, or the call's error.
    func pull(eventLoop: any EventLoop) -> EventLoopFuture<TriggerEvent?> {
        let promise = eventLoop.makePromise(of: TriggerEvent?.self)
        pull(to: PromiseEventReceiver(promise))
        return promise.futureResult
    }

    /// `pull(eventLoop:)` without a future: `receiver.receive` is called once, on the call's loop, with the next
    /// event (at once when one is buffered). The stream relay's form (issue 11: a future per event cost ~1 k
    /// instructions and an allocation to make and free; a closure, one allocation).
    func pull(to receiver: any TriggerEventReceiver) {
        precondition(kind == .streaming && pendingPull == nil, "one pull at a time on a streaming call")
        if isDrained { return receiver.receive(.success(nil)) }
        pendingPull = receiver
        deliverIfPulled()
    }

    private func deliverIfPulled() {
        guard let receiver = pendingPull else { return }
        do {
            if let message = try deframer.next() {
                pendingPull = nil
                deliveredBytes += message.readableBytes + Self.prefixBytes
                giveBack(upTo: deliveredBytes)
                do {
                    let event = try RunnerCodec.decodeRunEvent(message)
                    switch event {
                    case .end, .error: sawTerminalEvent = true
                    case .status, .output: break
                    }
                    receiver.receive(.success(event))
                } catch {
                    garbage("undecodable RunEvent: \(Self.describe(error))")
                    isDrained = true
                    receiver.receive(.failure(outcomeError))
                }
                return
            }
        } catch {
            pendingPull = nil
            garbage(Self.describe(error))
            isDrained = true
            receiver.receive(.failure(outcomeError))
            return
        }
        if let outcome {
            pendingPull = nil
            isDrained = true
            switch outcome {
            case .failure(let error):
                receiver.receive(.failure(error))
            case .success where deframer.hasPartialMessage:
                garbage("a truncated message before the trailers")
                receiver.receive(.failure(outcomeError))
            case .success where !sawTerminalEvent:
                garbage("the stream ended without an end event")
                receiver.receive(.failure(outcomeError))
            case .success:
                receiver.receive(.success(nil))
            }
            return
        }
        // The consumer waits for a message still arriving: let the backend send the rest of it.
        giveBack(upTo: receivedBytes)
    }

    // MARK: Helpers

    private var outcomeError: any Error {
        if case .failure(let error) = outcome { return error }
        return GatewayError(.internalError, "gRPC call outcome queried before it ended")
    }

    /// Tells the session that the stream's bytes up to `offset` are processed (WINDOW_UPDATE as needed).
    private func giveBack(upTo offset: Int) {
        guard offset > consumedBytes else { return }
        if let stream { session?.consume(stream: stream, bytes: offset - consumedBytes) }
        consumedBytes = offset
    }

    private func garbage(_ reason: String) {
        let error = BackendErrors.badResponse(pool: peer.pool, endpoint: peer.endpoint, reason: reason)
        let wasRunning = outcome == nil
        // A replacement deframer holds nothing, so no further message is handed out after garbage.
        deframer = GRPCMessageDeframer(maxMessageBytes: 0)
        finish(.failure(error))
        // Streaming: the outcome was set after a failure to decode; make sure it is the garbage error.
        if case .success = outcome { outcome = .failure(error) }
        // Nothing more from this stream is of use; the reset also releases its window.
        if wasRunning { resetStream() }
    }

    private func resetStream() {
        if let stream { session?.resetStream(stream, errorCode: .cancel) }
    }

    private func finish(_ result: Result<Void, any Error>) {
        guard outcome == nil else { return }
        outcome = result
        deadlineTimer?.cancel()
        deadlineTimer = nil
        switch kind {
        case .unary:
            if case .failure(let error) = result {
                complete(.failure(error))
                rawPromise?.fail(error)
            }
        case .streaming:
            deliverIfPulled()
        }
    }

    /// Hands a unary `Run`'s result to its completion, at most once.
    private func complete(_ result: Result<TriggerResult, any Error>) {
        guard let completion = unaryCompletion.take() else { return }
        completion(result)
    }

    /// `grpc-status` / `grpc-message` → success, a mapped error, or a reason the block is garbage.
    private func parseStatus(_ block: HTTP2Headers) -> ParsedStatus {
        guard let raw = block.first(name: "grpc-status") else { return .garbage("no grpc-status") }
        guard let code = Int(raw), code >= 0 else { return .garbage("grpc-status \"\(raw)\"") }
        statusSink?.answered(status: code)
        if code == 0 { return .ok }
        let message = block.first(name: "grpc-message").map(GRPCStatusMessage.percentDecode) ?? ""
        return .failed(Self.mapStatus(code: code, message: message, peer: peer))
    }

    private enum ParsedStatus {
        case ok
        case failed(GatewayError)
        case garbage(String)
    }

    /// A backend's non-OK status as the gateway's error. The backend's message is kept as it is (it is what
    /// the client should read); UNKNOWN, INTERNAL and UNAVAILABLE say the backend failed, which the gateway
    /// reports as `.backendFailed` (502 / UNAVAILABLE) rather than as its own unavailability or bug, and as an
    /// endpoint failure flagged `UPE` (``BackendErrors/runnerStatus(pool:endpoint:code:message:)``).
    static func mapStatus(code: Int, message: String, peer: GRPCBackendPeer) -> GatewayError {
        let text =
            message.isEmpty ? "backend pool \"\(peer.pool)\": an endpoint answered grpc-status \(code)" : message
        switch code {
        case 2, 13, 14:
            return BackendErrors.runnerStatus(pool: peer.pool, endpoint: peer.endpoint, code: code, message: text)
        default: return GatewayError(.fromRPCCode(code), text)
        }
    }

    private static func describe(_ error: any Error) -> String {
        BackendErrors.reason(error)
    }
}

/// Names the far end of a call in error messages: the pool and the endpoint.
struct GRPCBackendPeer: Sendable {
    var pool: String
    var endpoint: String
}

@available(*, unavailable)
extension GRPCBackendCall: Sendable {}
