package import NIOCore

/// The engine's book-keeping for one open stream: the inbound header block being decoded, inbound bytes
/// not yet consumed, and the outbound queue the data provider reads from.
///
/// Owned by ``NGHTTP2Session/streams`` (keyed by stream id) and nothing else; libnghttp2 never holds a
/// pointer to it (callbacks look it up by id), and it is removed only in `on_stream_close` (or when a
/// client stream's HEADERS could not be sent), after its leftover inbound bytes are queued for consumption.
final class HTTP2StreamState {
    let id: Int32

    // MARK: Inbound

    /// The owner knows this stream (it started it, or it got its headers); only then is its close reported.
    var announced: Bool
    /// The initial (non-1xx) header block has been delivered; a later block is trailers.
    var receivedHeaders = false
    /// The block being decoded by `on_header` calls.
    var headerBlock = HTTP2Headers()
    /// RFC 9113 §6.5.2 size of `headerBlock` so far.
    var headerBlockSize = 0
    /// Server: this request's header block outgrew the limit; fields past it are counted, not kept (see
    /// ``HTTP2SessionDelegate/session(_:didReceiveOversizedHeaders:size:stream:endStream:)``).
    var headerBlockOverflowed = false
    /// The overflowed block holds a `content-type` (kept before the overflow, or the first one after it): later
    /// ones are only counted, so a block of one indexed field repeated (one byte each, ~1 M of them in 64
    /// CONTINUATIONs) cannot grow the kept block past its limit (security review, H1).
    var overflowKeptContentType = false
    /// DATA payload of the frame being received; delivered whole at its `on_frame_recv`.
    var inboundData: ByteBuffer?
    /// Bytes received on this stream and not yet consumed by the owner (delivered or still in `inboundData`).
    var unconsumedBytes = 0
    /// Of ``unconsumedBytes``, those already returned to the connection's window
    /// (``NGHTTP2Session/releaseConnectionWindow(stream:bytes:)``): only this stream's window still counts them.
    var connectionReleasedBytes = 0
    /// Server: when this request is overdue (its header block unfinished, or its body silent); nil once the
    /// peer ended its side, or without request-progress timeouts.
    var inboundDeadline: NIODeadline?
    /// When the request body must have ended (``HTTP2SessionConfiguration/requestReceiptTimeout``); no
    /// `inboundDeadline` is set past it.
    var receiptDeadline = NIODeadline.distantFuture

    // MARK: Outbound

    /// Our initial HEADERS were submitted (`sendResponseHeaders` / `startRequest`).
    var sentHeaders = false
    /// HEADERS went out with a data provider attached, so DATA/trailers flow through ``readOutbound``.
    var hasDataProvider = false
    /// Bytes waiting for the data provider.
    var outbound = HTTP2OutboundQueue()
    var outboundBytes = 0
    /// The owner ended its side (`endStream: true` on data, or trailers).
    var outboundEnded = false
    /// Trailers to submit once the data provider reports EOF.
    var outboundTrailers: HTTP2Headers?
    /// The data provider returned NGHTTP2_ERR_DEFERRED and needs `nghttp2_session_resume_data`.
    var deferred = false
    /// Whether queued outbound bytes are under the high watermark (see ``NGHTTP2Session/sendData``).
    var isWritable = true
    /// What the owner was last told about its writability (its own watermark and the connection's).
    var reportedWritable = true
    /// When libnghttp2 last took queued bytes, or when bytes were queued on an empty queue; nil while
    /// nothing is queued. The write-progress timeout measures from here.
    var lastOutboundProgress: NIODeadline?
    /// Server: the owner answered this request before it ended, because its body stopped coming (see
    /// ``HTTP2SessionDelegate/session(_:requestBodyTimedOutOn:)``) or early (``NGHTTP2Session/resetWhenAnswered(_:)``):
    /// once the answer's END_STREAM frame is sent, the stream is reset with NO_ERROR (RFC 9113 §8.1) if the
    /// client's side is still open.
    var resetWhenAnswered = false
    /// The owner (or the engine's own timeouts) asked for this stream's RST_STREAM. A reset the server sends
    /// without it is libnghttp2's answer to a stream error the client provoked, and counts against
    /// ``HTTP2SessionConfiguration/streamResetRateLimit`` (MadeYouReset, CVE-2025-8671).
    var resetRequested = false

    init(id: Int32, announced: Bool) {
        self.id = id
        self.announced = announced
    }

    /// Copies up to `capacity` queued bytes into `destination`; returns how many.
    func readOutbound(into destination: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        while written < destination.count, !self.outbound.isEmpty {
            written += self.outbound.readFirst(into: UnsafeMutableRawBufferPointer(rebasing: destination[written...]))
        }
        self.outboundBytes -= written
        return written
    }
}

/// A stream's queued outbound buffers, oldest first: the first held inline, a `CircularBuffer` only from the
/// second on.
///
/// Why (issue 11): most streams queue one buffer (a unary call's request or answer message), and a
/// `CircularBuffer` allocates its storage when it is made: one allocation per stream, two per proxied gRPC call
/// (the frontend's and the backend's stream). Invariant: `rest` is nil or empty whenever `head` is nil.
package struct HTTP2OutboundQueue {
    private var head: ByteBuffer?
    private var rest: CircularBuffer<ByteBuffer>?

    package init() {}

    package var isEmpty: Bool { self.head == nil }

    package mutating func append(_ buffer: ByteBuffer) {
        guard self.head != nil else {
            self.head = buffer
            return
        }
        if self.rest == nil { self.rest = CircularBuffer(initialCapacity: 4) }
        self.rest!.append(buffer)
    }

    /// Copies up to `destination.count` bytes from the oldest buffer into `destination` and drops them from
    /// the queue (the buffer itself once it is used up); returns how many. 0 only when the queue is empty.
    package mutating func readFirst(into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard var first = self.head.take() else { return 0 }
        let n = min(first.readableBytes, destination.count)
        first.withUnsafeReadableBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: destination[..<n])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[..<n]))
        }
        first.moveReaderIndex(forwardBy: n)
        if first.readableBytes > 0 {
            self.head = first
        } else {
            self.head = self.rest?.popFirst()
        }
        return n
    }

    package mutating func removeAll() {
        self.head = nil
        self.rest = nil
    }
}
