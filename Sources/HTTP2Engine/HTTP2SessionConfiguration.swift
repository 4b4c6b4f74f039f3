package import NIOCore

/// Which end of the connection a session plays.
package enum HTTP2SessionRole: Hashable, Sendable {
    /// Accepts streams (the gateway's frontend).
    case server
    /// Opens streams (the gateway's gRPC backend client).
    case client
}

/// The knobs of one HTTP/2 session; what we announce in our first SETTINGS frame and how we buffer.
package struct HTTP2SessionConfiguration: Hashable, Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we announce: how many streams the peer may open towards us.
    package var maxConcurrentStreams: Int
    /// SETTINGS_INITIAL_WINDOW_SIZE we announce: bytes the peer may send on a stream before the owner
    /// calls ``NGHTTP2Session/consume(stream:bytes:)``.
    package var initialWindowSize: Int
    /// The connection-level receive window, raised from the protocol's 65,535 by a WINDOW_UPDATE at start.
    /// It bounds the unconsumed bytes of all streams together.
    package var connectionWindowSize: Int
    /// SETTINGS_MAX_HEADER_LIST_SIZE we announce and enforce (RFC 9113 §6.5.2: name + value + 32 per field).
    /// libnghttp2 1.52 only advertises it (nghttp2 issue #655), so the engine counts while decoding and
    /// resets the stream (RST_STREAM INTERNAL_ERROR, like nghttpx) when a block exceeds it.
    package var maxHeaderListSize: Int
    /// Server only, fixed (libnghttp2's options are built once per process): the CONTINUATION frames one
    /// request header block may take after its HEADERS frame. A block within it is decoded to its end (HPACK
    /// state stays in step) and, when over ``maxHeaderListSize``, answered on its stream; a block past it ends
    /// the connection with GOAWAY(ENHANCE_YOUR_CALM) and ``HTTP2EngineError/Code/headerBlockTooLarge``.
    /// 64 lets a peer using 16 KiB frames (the SETTINGS_MAX_FRAME_SIZE we keep) send 1040 KiB: any block the
    /// largest `limits.max_header_bytes` (1 MiB) admits, each field at most 65,536 encoded bytes
    /// (NGHTTP2_HD_MAX_NV: a larger one fails HPACK decoding, GOAWAY(COMPRESSION_ERROR)). libnghttp2's default,
    /// 8 (the CVE-2024-28182 fix), ended blocks over ~144 KiB with GOAWAY(PROTOCOL_ERROR), unexplained; the
    /// block's cost stays bounded, and ``requestHeaderTimeout`` bounds its time.
    package static let maxContinuationFrames = 64
    /// Server only: a request header block over ``maxHeaderListSize`` is decoded (for HPACK's state) and answered
    /// on its stream (431 / RESOURCE_EXHAUSTED) while its decoded size, as RFC 9113 §6.5.2 counts it, stays within
    /// ``headerListCeiling``; past it the connection ends (GOAWAY(ENHANCE_YOUR_CALM),
    /// ``HTTP2EngineError/Code/excessiveHeaderLists``). One byte of HPACK names a dynamic-table entry of up to
    /// 4 KB: a 1 MiB block of such references decoded to ~4 GB, 1.6 CPU-seconds on one event loop, before any
    /// authentication (security review 60, M1). Blocks decoding past this many times the limit also count against
    /// their connection (``maxOversizedHeaderBlocks``).
    package static let headerListCeilingFactor = 4

    /// The decoded size past which a request header block ends the connection: the larger of
    /// ``headerListCeilingFactor`` times the limit and what ``maxContinuationFrames`` + 1 frames of 16 KiB hold
    /// (1040 KiB), so that a block of literal fields that size, which decodes to about its own size plus 32 bytes
    /// a field, is answered on its stream.
    package var headerListCeiling: Int {
        max(Self.headerListCeilingFactor * self.maxHeaderListSize, (Self.maxContinuationFrames + 1) * (16 << 10))
    }

    /// Server only: request header blocks decoding past ``headerListCeilingFactor`` times ``maxHeaderListSize``
    /// (64 KiB by default) that one connection may send and have answered on their streams; the next ends the
    /// connection (``HTTP2EngineError/Code/excessiveHeaderLists``). A new connection starts with an empty HPACK
    /// table, so each such block a peer makes the gateway decode costs it a table entry's bytes again. Blocks
    /// over the limit but under that line do not count: a proxy in front that allows 60-64 KiB of headers
    /// multiplexes many clients on one connection, and one client's oversized headers must not end the others'
    /// streams (diff review 60, M-3).
    package static let maxOversizedHeaderBlocks = 4
    /// Server only: whether the session expects the 24-byte client preface at the start of its input.
    /// `true` (the default) fits the gateway's sniffer, which re-fires the preface bytes it buffered; set it to
    /// `false` only when whoever installs the session has already swallowed the preface.
    package var expectsClientPreface: Bool
    /// Per-stream outbound buffering (bytes queued by `sendData` not yet taken by nghttp2) above which the
    /// stream reports itself unwritable; it becomes writable again at half this value.
    package var streamOutboundHighWatermark: Int
    /// Outbound bytes queued on all streams together above which every stream reports itself unwritable;
    /// they become writable again at half this value. With the per-stream watermark it bounds the memory a
    /// peer that stops reading (or keeps its windows shut) can pin on one connection (issue 10, item 4).
    package var connectionOutboundHighWatermark: Int
    /// How long a stream may hold queued outbound bytes that libnghttp2 cannot send (the peer keeps its
    /// flow-control window shut, or does not read) before it is reset with CANCEL. When the connection
    /// itself cannot be written for that long it is closed instead. `nil`: no limit.
    package var writeProgressTimeout: TimeAmount?
    /// Server only: how long after the session starts the peer's first SETTINGS frame (the end of its
    /// connection preface, RFC 9113 §3.4) may take; when it has not arrived the connection is closed with
    /// GOAWAY(SETTINGS_TIMEOUT). `nil`: no limit.
    package var prefaceTimeout: TimeAmount?
    /// Server only: how long a request's header block may take from its first frame to its last
    /// (HEADERS + CONTINUATION), and the longest gap between two DATA frames of a request body that has not
    /// ended. A stream over either is reset with CANCEL; the HTTP/1.1 request-header and body-progress
    /// timeouts for HTTP/2. `nil`: no limit. Fair only to an owner that consumes what it receives: a peer
    /// kept waiting for WINDOW_UPDATE cannot send.
    package var requestHeaderTimeout: TimeAmount?
    package var requestBodyProgressTimeout: TimeAmount?
    /// Server only: how long a request body may take in all, from the end of its header block to END_STREAM,
    /// however steadily it progresses (a body dripping a byte per `requestBodyProgressTimeout`, review 24, M4).
    /// Over it the stream times out as a silent body does (the same delegate call, the same answer). Applies only
    /// with `requestBodyProgressTimeout` set. `nil`: no limit.
    package var requestReceiptTimeout: TimeAmount?
    /// Whether the connection's writes are flushed once per event-loop tick rather than once per drain: the
    /// answers of many streams completed in one tick (say, by one read of a backend connection carrying many
    /// responses) then leave in one `write` system call, as nghttpx batches its writes. A connection carrying at
    /// most one stream is flushed as soon as the HTTP/2 read that wrote to it ends, without waiting for the tick
    /// (``HTTP2FlushList``). Off by default: an `EmbeddedChannel` never runs the tick's flush on its own.
    package var flushesOncePerTick = false
    /// Server only: how fast the client may reset streams (RST_STREAM) before the connection is ended with
    /// GOAWAY(ENHANCE_YOUR_CALM); see ``HTTP2StreamResetRateLimit`` (rapid reset, CVE-2023-44487). libnghttp2's
    /// own limit (INTERNAL_ERROR, unexplained) is set to twice this, at least twice the defaults, so this one
    /// trips first. `nil` leaves only libnghttp2's, at twice the defaults.
    package var streamResetRateLimit: HTTP2StreamResetRateLimit? = .defaults

    /// Defaults: 100 streams, 64 KiB − 1 stream window, 1 MiB connection window, 16 KiB header lists,
    /// preface expected, 256 KiB outbound high watermark per stream and 1 MiB per connection, no
    /// write-progress, preface or request-progress timeout, stream resets limited to burst 1000 and 33/s.
    package static var defaults: HTTP2SessionConfiguration {
        HTTP2SessionConfiguration(
            maxConcurrentStreams: 100,
            initialWindowSize: 65_535,
            connectionWindowSize: 1 << 20,
            maxHeaderListSize: 16 << 10,
            expectsClientPreface: true,
            streamOutboundHighWatermark: 256 << 10,
            connectionOutboundHighWatermark: 1 << 20,
            writeProgressTimeout: nil,
            prefaceTimeout: nil,
            requestHeaderTimeout: nil,
            requestBodyProgressTimeout: nil
        )
    }
}
