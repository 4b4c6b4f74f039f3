import HTTP2Engine
import Observability

/// `limits.max_buffered_request_bytes_per_connection` (review 24, M1 item 3): the request-body bytes one HTTP/2
/// connection's streams hold buffered together are bounded, and past the bound the connection's streams get no
/// more flow-control window until bytes are released, as Envoy's `per_connection_buffer_limit_bytes` and nghttpx
/// hold an HTTP/2 peer back. Without it one connection could buffer `max_concurrent_streams` × `max_body_bytes`
/// (3.2 GiB by default), more than the whole process budget (`limits.max_buffered_request_bytes`, 1 GiB), and
/// every other client's body was refused with 503 while it trickled. Held back by the protocol, that client waits;
/// the others are served.
///
/// The engine sends WINDOW_UPDATE only when the owner consumes received DATA (automatic window updates are off);
/// ``admitRequestData(_:of:stream:)`` is the one place that decides, for every DATA frame of a request body.
///
/// - A stream's held bytes go back to the connection's window at once, only its own window stays shut
///   (`NGHTTP2Session.releaseConnectionWindow`): held streams keeping the 1 MiB connection window would shut it for
///   every stream, the one that could finish included. So what the connection holds is at most the bound, plus
///   one stream window (64 KiB) per held stream, plus the oldest body (below).
/// - Progress (no deadlock when every stream is part-way through its body at the bound): the connection's OLDEST
///   body still being received (lowest stream id in a collecting phase) is always granted window, up to its own
///   limit (`limits.max_body_bytes`, which alone bounds one stream): it can always finish, its end releases its
///   bytes, and the next oldest becomes the one that may. Oldest rather than, say, largest: the order is fixed and
///   is the order the client opened them, so a client cannot pick which stream is favoured by how it sends, and a
///   stream's wait is bounded by those opened before it. A client that stalls its oldest body stalls only itself,
///   and `timeouts.body_progress` / `timeouts.request` end that stream (the engine does not count a held stream's
///   wait as its silence, only `timeouts.request` bounds it).
/// - Released: a body handed to its call, refused or answered early, or its stream reset or closed
///   (``requestBodyEnded(_:stream:)``); then the held windows are granted while the connection is under the bound.
///
/// HTTP/1.1 needs none of this: `HTTP1FrontendHandler` reads one request at a time (its body bounded by
/// `max_body_bytes` and the process budget); a pipelined next request's bytes are held to one read and reads stop
/// until the answer before it is written (`read(context:)`), so a connection holds at most one body and one read
/// beyond it, and TCP's own window holds the client back.
extension HTTP2FrontendConnection {
    /// `state`'s body holds `bytes` now (received bytes, or a gRPC message at its decompressed size, as its
    /// claim counts them): the connection's count follows.
    @inline(__always)
    func requestBodyHolds(_ bytes: Int, _ state: StreamState) {
        bufferedRequestBytes += bytes - state.bufferedBodyBytes
        state.bufferedBodyBytes = bytes
    }

    /// `size` bytes of DATA arrived on `stream` and were taken into its body (or dropped): consumed, so the
    /// client's window reopens, unless the connection holds more than its bound and this is not its oldest body;
    /// then held until ``requestBodyEnded(_:stream:)`` finds room. At the bound exactly, still consumed.
    @inline(__always)
    func admitRequestData(_ size: Int, of state: StreamState, stream: HTTP2StreamID) {
        let bound = services.maxBufferedRequestBytesPerConnection
        if state.heldWindow == 0, bound == 0 || bufferedRequestBytes <= bound {
            session.consume(stream: stream, bytes: size)
        } else {
            admitOverBound(size, of: state, stream: stream, bound: bound)
        }
    }

    private func admitOverBound(_ size: Int, of state: StreamState, stream: HTTP2StreamID, bound: Int) {
        let underBound = bound == 0 || bufferedRequestBytes <= bound
        guard !underBound, state.isCollectingBody, !isOldestBody(stream) else {
            grantWindow(state, stream: stream, received: size)
            return
        }
        if state.heldWindow == 0 {
            heldWindowStreams += 1
            if heldWindowStreams == 1 { services.metrics?.requestBuffer.connectionHeld() }
        }
        state.heldWindow += size
        session.releaseConnectionWindow(stream: stream, bytes: size)
    }

    /// `state`'s body no longer counts against the connection's bound: handed to its call, refused or answered
    /// early (what still comes is consumed and dropped), or its stream closed. Its held window, if any, is
    /// granted; so are the other held streams' if the connection is now under its bound, or the oldest body's if
    /// this one was the oldest. Cheap when nothing is held (every call's answer passes here).
    @inline(__always)
    func requestBodyEnded(_ state: StreamState, stream: HTTP2StreamID) {
        guard state.bufferedBodyBytes != 0 || state.heldWindow != 0 || heldWindowStreams != 0 else { return }
        bufferedRequestBytes -= state.bufferedBodyBytes
        state.bufferedBodyBytes = 0
        if state.heldWindow > 0 { grantWindow(state, stream: stream, received: 0) }
        if heldWindowStreams > 0 { grantHeldWindows() }
    }

    /// Consumes `received` bytes and the stream's held ones: WINDOW_UPDATE for them (none once the stream is
    /// closed: the engine already returned its unconsumed bytes to the connection).
    private func grantWindow(_ state: StreamState, stream: HTTP2StreamID, received: Int) {
        let bytes = received + state.heldWindow
        if state.heldWindow > 0 {
            state.heldWindow = 0
            heldWindowStreams -= 1
        }
        session.consume(stream: stream, bytes: bytes)
    }

    /// Grants each held stream its window if the connection is under its bound; over it, the oldest body's
    /// (the progress rule) and any whose body ended.
    private func grantHeldWindows() {
        let bound = services.maxBufferedRequestBytesPerConnection
        let underBound = bound == 0 || bufferedRequestBytes <= bound
        var oldest: HTTP2StreamID?
        if !underBound {
            for (id, state) in streams where state.isCollectingBody {
                if let current = oldest, current < id { continue }
                oldest = id
            }
        }
        for (id, state) in streams where state.heldWindow > 0 {
            if underBound || id == oldest || !state.isCollectingBody { grantWindow(state, stream: id, received: 0) }
        }
    }

    /// No body older than `stream`'s is still being received on this connection (stream ids grow with age,
    /// RFC 9113 §5.1.1).
    private func isOldestBody(_ stream: HTTP2StreamID) -> Bool {
        for (id, state) in streams where id < stream && state.isCollectingBody { return false }
        return true
    }
}

extension HTTP2FrontendConnection.StreamState {
    /// Its request body is being received into a buffer (REST, a unary gRPC call); a reflection call's messages
    /// are answered as they come and are not counted.
    var isCollectingBody: Bool {
        switch phase {
        case .restCollecting, .grpcCollecting: true
        case .grpcReflection, .running, .done: false
        }
    }
}
