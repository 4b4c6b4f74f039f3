package import NIOCore

/// What the owner of an ``NGHTTP2Session`` (the gRPC/REST-over-h2 frontend, or the gRPC backend client) is
/// told about its streams. Every call arrives on the channel's event loop.
///
/// Calls may arrive while the session is inside libnghttp2. The owner may call any operation of the
/// session from inside them (answer a request, consume bytes, reset a stream, start a request); the session
/// queues such operations and runs them as soon as libnghttp2 returns, in the same drain, so replies
/// coalesce into one write.
///
/// Per stream the order is: `didReceiveHeaders`, zero or more `didReceiveData`, optionally
/// `didReceiveTrailers`, then exactly one `streamClosed`. `endStream == true` (or trailers) means the peer
/// finished sending; the stream is only gone at `streamClosed`. A server-side stream the owner never saw
/// headers for (refused, or reset while decoding headers) produces no calls at all. A stream the client
/// started always ends with `streamClosed`, even if it never reached the wire (`.refusedStream`).
///
/// The session holds its delegate strongly until the connection closes, then drops it; holding the session
/// strongly from the delegate is therefore fine.
package protocol HTTP2SessionDelegate: AnyObject {
    /// A request (server) or the final response (client) header block. Informational 1xx blocks are skipped.
    func session(
        _ session: NGHTTP2Session,
        didReceiveHeaders headers: HTTP2Headers,
        stream: HTTP2StreamID,
        endStream: Bool
    )

    /// Server: a request header block larger than ``HTTP2SessionConfiguration/maxHeaderListSize`` (RFC 9113
    /// §6.5.2 size: names, values and 32 bytes per field). `headers` holds the fields that fit, plus any
    /// `content-type` after them, so the owner can answer in the client's protocol (gRPC core answers
    /// RESOURCE_EXHAUSTED "received metadata size exceeds hard limit"; HTTP, 431 per RFC 6585 §5). `size` is
    /// the whole block's size in bytes. The stream then goes on like any other (data, `streamClosed`).
    ///
    /// Optional: by default the stream is reset with INTERNAL_ERROR, as nghttpx does.
    func session(
        _ session: NGHTTP2Session,
        didReceiveOversizedHeaders headers: HTTP2Headers,
        size: Int,
        stream: HTTP2StreamID,
        endStream: Bool
    )

    /// `stream` made no progress within one of the session's progress timeouts — the peer took none of its
    /// queued bytes for ``HTTP2SessionConfiguration/writeProgressTimeout``, or its request body stayed silent
    /// for ``HTTP2SessionConfiguration/requestBodyProgressTimeout`` — and the session resets it (RST_STREAM
    /// CANCEL) or, when the whole connection is stalled, closes the connection, right after this call; its
    /// `streamClosed` follows. Lets the owner record that the session ended it (Envoy's stream idle timeout,
    /// `SI`), not the peer. Optional: default does nothing.
    func session(_ session: NGHTTP2Session, idleTimeoutOn stream: HTTP2StreamID)

    /// Server: `stream`'s request body stayed silent for ``HTTP2SessionConfiguration/requestBodyProgressTimeout``
    /// after its header block was delivered. The owner may answer it now, completely (a response or
    /// Trailers-Only block ending the stream, queued from inside this call), and return true: the session then
    /// resets the stream with NO_ERROR right after that answer's last frame is sent, since RFC 9113 §8.1 lets a
    /// server answer before the request is complete and then tell the client to stop sending that way (as
    /// nghttpx does), and the connection goes on. Returning false (nothing to answer with, or an answer already
    /// under way) resets the stream with CANCEL, after ``session(_:idleTimeoutOn:)``, as for the other
    /// progress timeouts. Optional: by default false.
    func session(_ session: NGHTTP2Session, requestBodyTimedOutOn stream: HTTP2StreamID) -> Bool

    /// The payload of one DATA frame (possibly empty when it only carries END_STREAM).
    ///
    /// These bytes count against the flow-control windows until the owner calls
    /// ``NGHTTP2Session/consume(stream:bytes:)``; that is the back-pressure: a peer stops after the window.
    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool)

    /// A trailing header block; it always ends the peer's side of the stream (gRPC `grpc-status` lives here).
    func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID)

    /// The stream is gone. `noError` after both sides ended normally; otherwise the RST_STREAM code (ours
    /// or the peer's), `refusedStream` for a client stream GOAWAY cut off, or `cancel` when the connection
    /// closed under it. Later operations on this id are ignored; its unconsumed bytes are released.
    func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode)

    /// The stream's outbound queue crossed the high watermark (`false`) or drained below half of it
    /// (`true`). Optional: default does nothing.
    func session(_ session: NGHTTP2Session, streamWritabilityChanged stream: HTTP2StreamID, isWritable: Bool)

    /// The peer sent GOAWAY: streams above `lastStreamID` were not processed (they close with
    /// `refusedStream`); no new streams can be started. Optional: default does nothing.
    func session(_ session: NGHTTP2Session, didReceiveGoAway lastStreamID: HTTP2StreamID, errorCode: HTTP2ErrorCode)

    /// The connection is closed; every open stream has already been reported closed. `error` is nil after an
    /// orderly end (both sides' GOAWAY, or EOF with nothing open). Optional: default does nothing.
    func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?)
}

extension HTTP2SessionDelegate {
    package func session(_ session: NGHTTP2Session, idleTimeoutOn stream: HTTP2StreamID) {}
    package func session(_ session: NGHTTP2Session, requestBodyTimedOutOn stream: HTTP2StreamID) -> Bool { false }
    package func session(
        _ session: NGHTTP2Session,
        didReceiveOversizedHeaders headers: HTTP2Headers,
        size: Int,
        stream: HTTP2StreamID,
        endStream: Bool
    ) {
        session.resetStream(stream, errorCode: .internalError)
    }
    package func session(_ session: NGHTTP2Session, streamWritabilityChanged stream: HTTP2StreamID, isWritable: Bool) {}
    package func session(
        _ session: NGHTTP2Session,
        didReceiveGoAway lastStreamID: HTTP2StreamID,
        errorCode: HTTP2ErrorCode
    ) {}
    package func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?) {}
}
