import HTTP2Engine
import NIOCore
import WireCodecs

/// The client side of one h2c connection to a backend: the engine's delegate, owning the map from stream
/// to ``GRPCBackendCall`` and starting new calls on the session.
///
/// Lives on the connection's event loop. The engine holds it (as delegate) until the connection closes;
/// ``GRPCBackendConnection`` keeps it in a loop-bound box to start calls. Every stream it opens is released
/// from the connection's ``GRPCBackendConnectionLoad`` exactly once: when the engine reports it closed, or
/// when it could not be started.
final class GRPCBackendSession: HTTP2SessionDelegate {
    let channel: any Channel
    let load: GRPCBackendConnectionLoad
    var session: NGHTTP2Session?
    /// The open calls by stream: an `HTTP2StreamObjectTable` (a hash table keyed by stream id, issue 11) holding
    /// only `GRPCBackendCall`s, read through `call(_:)`.
    private var calls = HTTP2StreamObjectTable()
    /// Calls whose stream closed because the connection did; they learn the reason in `sessionDidClose`.
    private var orphans: [GRPCBackendCall] = []

    init(channel: any Channel, load: GRPCBackendConnectionLoad) {
        self.channel = channel
        self.load = load
    }

    /// Opens a stream for `call` and sends the one request message (gRPC request streams are unary here),
    /// framed, as consecutive buffers (a large blob is its own buffer, never copied into one message buffer).
    ///
    /// The stream id is known only once `startRequest` returns, and the engine may report the stream closed
    /// (refused) from inside its drain; batching the writes keeps every callback until the call is
    /// registered.
    func start(
        _ call: GRPCBackendCall,
        headers: HTTP2Headers,
        message: BufferPieces,
        deadline: NIODeadline?
    ) {
        guard call.outcome == nil else {
            releaseStream()  // cancelled while waiting for the connection
            return
        }
        guard let session, session.canStartRequests else {
            releaseStream()
            call.failedToStart(GRPCBackendCall.Refused())
            return
        }
        do {
            try session.withBatchedWrites {
                let stream = try session.startRequest(headers: headers, endStream: false)
                calls[stream] = call
                call.started(session: session, stream: stream, deadline: deadline, eventLoop: channel.eventLoop)
                message.forEachPiece { piece, isLast in session.sendData(stream: stream, piece, endStream: isLast) }
                if message.isEmpty { session.sendData(stream: stream, ByteBuffer(), endStream: true) }
            }
        } catch {
            // `.sessionClosing` or `.streamIDsExhausted`: nothing reached the backend, another connection may.
            load.markUnusable()
            releaseStream()
            call.failedToStart(GRPCBackendCall.Refused())
        }
    }

    // MARK: HTTP2SessionDelegate

    func session(
        _ session: NGHTTP2Session,
        didReceiveHeaders headers: HTTP2Headers,
        stream: HTTP2StreamID,
        endStream: Bool
    ) {
        call(stream)?.receivedHeaders(headers, endStream: endStream)
    }

    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool) {
        call(stream)?.receivedData(data, endStream: endStream)
    }

    private func call(_ stream: HTTP2StreamID) -> GRPCBackendCall? {
        calls[stream].map { unsafeDowncast($0, to: GRPCBackendCall.self) }
    }

    func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {
        call(stream)?.receivedTrailers(trailers)
    }

    func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        guard let removed = calls.removeValue(forKey: stream) else { return }
        let call = unsafeDowncast(removed, to: GRPCBackendCall.self)
        releaseStream()
        if errorCode == .cancel, !channel.isActive {
            // The engine closes every stream with CANCEL when the connection goes, then reports the
            // connection's own error; wait for it so the caller learns why.
            orphans.append(call)
            let loopBound = NIOLoopBound(self, eventLoop: channel.eventLoop)
            channel.eventLoop.execute { loopBound.value.failOrphans(nil) }
        } else {
            call.closed(errorCode: errorCode)
        }
    }

    func session(_ session: NGHTTP2Session, didReceiveGoAway lastStreamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        // Streams above lastStreamID close as refused; no new ones may start here.
        load.markUnusable()
    }

    func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?) {
        load.markUnusable()
        failOrphans(error)
        self.session = nil
    }

    /// Gives a stream's reservation back; a retiring connection closes after its last stream.
    private func releaseStream() {
        if load.release() { channel.close(promise: nil) }
    }

    private func failOrphans(_ error: (any Error)?) {
        let orphans = self.orphans
        self.orphans.removeAll()
        for call in orphans { call.connectionLost(error) }
    }
}

@available(*, unavailable)
extension GRPCBackendSession: Sendable {}
