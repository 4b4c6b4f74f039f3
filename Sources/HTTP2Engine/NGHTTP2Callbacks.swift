import CNghttp2

/// The process-wide libnghttp2 callbacks table and session options, built once and never freed.
///
/// libnghttp2 copies both into each session at `nghttp2_session_*_new3`, so sharing read-only pointers
/// across event loops is safe; that is what makes the `@unchecked Sendable` true.
struct NGHTTP2Tables: @unchecked Sendable {
    let callbacks: OpaquePointer
    /// Automatic WINDOW_UPDATE off (we consume explicitly); the client preface is expected (server role).
    let options: OpaquePointer
    /// As ``options``, for a server whose owner already swallowed the 24-byte client preface.
    let optionsWithoutClientMagic: OpaquePointer
    /// The client role's: as ``options`` but with nghttp2's whitespace check of field values kept.
    let clientOptions: OpaquePointer

    static let shared = NGHTTP2Tables()

    private init() {
        var callbacks: OpaquePointer?
        // Returns 0 or NGHTTP2_ERR_NOMEM.
        let rc = nghttp2_session_callbacks_new(&callbacks)
        precondition(rc == 0 && callbacks != nil, "nghttp2_session_callbacks_new failed")
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkRecv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSend)
        nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, onFrameNotSend)
        self.callbacks = callbacks!

        self.options = Self.makeOptions(skipClientMagic: false, server: true)
        self.optionsWithoutClientMagic = Self.makeOptions(skipClientMagic: true, server: true)
        self.clientOptions = Self.makeOptions(skipClientMagic: false, server: false)
    }

    /// New libnghttp2 options (the caller owns them: `nghttp2_option_del`); `backstop`: libnghttp2's own stream reset
    /// limit, for a server (see ``HTTP2StreamResetRateLimit/nghttp2Backstop(for:)``).
    static func makeOptions(
        skipClientMagic: Bool, server: Bool, backstop: HTTP2StreamResetRateLimit = .nghttp2Backstop
    ) -> OpaquePointer {
        var options: OpaquePointer?
        // Returns 0 or NGHTTP2_ERR_NOMEM.
        let rc = nghttp2_option_new(&options)
        precondition(rc == 0 && options != nil, "nghttp2_option_new failed")
        // Back-pressure: WINDOW_UPDATE only when the owner calls consume (STYLE habit 5).
        nghttp2_option_set_no_auto_window_update(options, 1)
        // What a client may assume before the server's SETTINGS arrive (nghttp2's own default is unlimited).
        nghttp2_option_set_peer_max_concurrent_streams(options, 100)
        if skipClientMagic {
            nghttp2_option_set_no_recv_client_magic(options, 1)
        }
        if server {
            // RFC 9113 §8.2.1 makes a field value with leading or trailing whitespace malformed, and nghttp2
            // resets such a stream. Real gRPC servers accept it, and the Instill SDK sends
            // `authorization: Bearer ` (its default empty token): RFC 9110 §5.5 lets a recipient strip that
            // whitespace instead, which `receivedHeader` does. (libnghttp2 ≥ 1.50; the non-`2` API of 1.52.)
            nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(options, 1)
            // A closed stream is freed at once, not kept (up to SETTINGS_MAX_CONCURRENT_STREAMS of them per
            // connection) in case a client's RFC 7540 PRIORITY frame names it later (such a stream then depends on
            // the root, as RFC 9113 §5.3.2 leaves open). Issue 11: ~80 instructions per gRPC call, and the memory.
            // Not SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218), which saved ~400 by dropping the priority tree too:
            // libnghttp2 then sends each stream's DATA to its end before the next stream's (RFC 9218's default,
            // non-incremental), so a small answer waits behind a large one on the same connection, and a client
            // session cannot mark its uploads incremental (bench/README, "Forty-eighth session").
            nghttp2_option_set_no_closed_streams(options, 1)
            // CONTINUATION frames per header block: ours, not libnghttp2's 8 (see the constant for why).
            // (Debian's 1.52.0-1+deb12u3 has the option, with the CVE-2024-28182 fix.)
            nghttp2_option_set_max_continuations(options, HTTP2SessionConfiguration.maxContinuationFrames)
            // The rapid-reset limit (CVE-2023-44487) is the engine's (HTTP2StreamResetRateLimit), which ends the
            // connection with ENHANCE_YOUR_CALM and says why; libnghttp2's own (INTERNAL_ERROR, unexplained)
            // is moved out of its way and stays as a backstop. (Debian's 1.52.0-1+deb12u3 has the option.)
            nghttp2_option_set_stream_reset_rate_limit(
                options,
                UInt64(backstop.burst),
                UInt64(backstop.refillPerSecond)
            )
        }
        return options!
    }
}

/// A data provider whose reads go to the owning session's per-stream queue (looked up by stream id, so the
/// source pointer is unused).
func makeDataProvider() -> nghttp2_data_provider {
    nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: dataSourceRead)
}

// MARK: Trampolines
//
// Each checks its pointers, rebuilds buffer pointers, recovers the session from user_data and calls one
// method. A Swift error becomes NGHTTP2_ERR_CALLBACK_FAILURE (fatal to the session); the error itself is
// parked and reported after mem_recv/mem_send returns.

///
/// The session is borrowed (`_withUnsafeGuaranteedRef`), not retained: a callback runs inside one of the session's
/// own calls into libnghttp2 (`mem_recv`, `mem_send`, a submit), which holds it for the callback's whole duration.
/// `takeUnretainedValue()` retained and released it around every callback, one per header field (issue 11:
/// ~60 retain/release pairs per gRPC call over the two sessions; bench/README.md, branch hotpath8).
private func withSession(_ userData: UnsafeMutableRawPointer?, _ body: (NGHTTP2Session) throws -> Int32) -> Int32 {
    guard let userData else { preconditionFailure("nghttp2 callback without user_data") }
    return Unmanaged<NGHTTP2Session>.fromOpaque(userData)._withUnsafeGuaranteedRef { session in
        do {
            return try body(session)
        } catch {
            if session.parkedError == nil { session.parkedError = error }
            return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
        }
    }
}

private func onBeginHeaders(
    session: OpaquePointer?,
    frame: UnsafePointer<nghttp2_frame>?,
    userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { preconditionFailure("on_begin_headers without a frame") }
    return withSession(userData) { session in
        try session.receivedBeginHeaders(frame: frame)
        return 0
    }
}

private func onHeader(
    session: OpaquePointer?,
    frame: UnsafePointer<nghttp2_frame>?,
    name: UnsafePointer<UInt8>?,
    nameLength: Int,
    value: UnsafePointer<UInt8>?,
    valueLength: Int,
    flags: UInt8,
    userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, let name else { preconditionFailure("on_header without a frame or name") }
    // An empty value may come with any pointer; never read it then.
    let valueBuffer = UnsafeBufferPointer(start: valueLength > 0 ? value : nil, count: valueLength)
    return withSession(userData) { session in
        try session.receivedHeader(
            frame: frame,
            name: UnsafeBufferPointer(start: name, count: nameLength),
            value: valueBuffer,
            neverIndexed: flags & UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) != 0
        )
    }
}

private func onFrameRecv(
    session: OpaquePointer?,
    frame: UnsafePointer<nghttp2_frame>?,
    userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { preconditionFailure("on_frame_recv without a frame") }
    return withSession(userData) { session in
        try session.receivedFrame(frame)
        return 0
    }
}

private func onDataChunkRecv(
    session: OpaquePointer?,
    flags: UInt8,
    streamID: Int32,
    data: UnsafePointer<UInt8>?,
    length: Int,
    userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard length == 0 || data != nil else { preconditionFailure("on_data_chunk_recv without data") }
    return withSession(userData) { session in
        try session.receivedDataChunk(streamID: streamID, data: UnsafeBufferPointer(start: data, count: length))
        return 0
    }
}

private func onStreamClose(
    session: OpaquePointer?,
    streamID: Int32,
    errorCode: UInt32,
    userData: UnsafeMutableRawPointer?
) -> Int32 {
    withSession(userData) { session in
        try session.streamClosed(streamID: streamID, errorCode: errorCode)
        return 0
    }
}

private func onFrameSend(
    session: OpaquePointer?,
    frame: UnsafePointer<nghttp2_frame>?,
    userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { preconditionFailure("on_frame_send without a frame") }
    return withSession(userData) { session in
        try session.frameSent(frame)
        return 0
    }
}

private func onFrameNotSend(
    session: OpaquePointer?,
    frame: UnsafePointer<nghttp2_frame>?,
    libraryError: Int32,
    userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { preconditionFailure("on_frame_not_send without a frame") }
    return withSession(userData) { session in
        try session.frameNotSent(frame, libraryError: libraryError)
        return 0
    }
}

private func dataSourceRead(
    session: OpaquePointer?,
    streamID: Int32,
    buffer: UnsafeMutablePointer<UInt8>?,
    length: Int,
    dataFlags: UnsafeMutablePointer<UInt32>?,
    source: UnsafeMutablePointer<nghttp2_data_source>?,
    userData: UnsafeMutableRawPointer?
) -> Int {
    guard let dataFlags, length == 0 || buffer != nil else { preconditionFailure("data source read without buffers") }
    let destination = UnsafeMutableRawBufferPointer(start: buffer, count: length)
    var result = 0
    let rc = withSession(userData) { session in
        result = try session.readOutboundData(streamID: streamID, into: destination, flags: dataFlags)
        return 0
    }
    return rc == 0 ? result : Int(rc)
}
