import CNghttp2

/// A call into libnghttp2 that waits until libnghttp2 is off the stack (see ``NGHTTP2Session/drain()``).
enum PendingOperation {
    case submitRequest(Int32, HTTP2Headers, endStream: Bool)
    case submitResponse(Int32, HTTP2Headers, endStream: Bool)
    /// A 1xx response's HEADERS (``NGHTTP2Session/sendInformational(stream:headers:)``).
    case submitInformational(Int32, HTTP2Headers)
    /// RST_STREAM(NO_ERROR) after an answer given before its request ended
    /// (``NGHTTP2Session/resetWhenAnswered(_:)``), if the stream is still open and the client's side with it:
    /// checked here, when it is submitted, since a request's END_STREAM read in the same `mem_recv` as the frame
    /// that asked closes the stream first, and libnghttp2 1.52 sends an RST_STREAM for a closed stream (RFC 9113
    /// §5.1 forbids it), which the reset limiter would then count against the client.
    case stopRequestBody(Int32)
    case submitTrailers(Int32, HTTP2Headers)
    case resumeData(Int32)
    case resetStream(Int32, HTTP2ErrorCode)
    case consume(Int32, Int)
    case consumeConnection(Int)
    /// The stream's window only (its bytes' connection share went back earlier).
    case consumeStream(Int32, Int)
    case shutdownNotice
    case ping(UInt64)
    /// The graceful GOAWAY: last stream id is read from libnghttp2 when it runs (the last one it processed).
    case finalGoAway
    /// A GOAWAY with `last_stream_id` 0 from a client: it accepts no server-initiated stream.
    case clientGoAway
    case terminate(HTTP2ErrorCode)
}

/// The session's ``PendingOperation``s in order: each moved in and out, never copied. NIO's `CircularBuffer` copied
/// an operation as `popFirst` took it, a retain and a release of its header block's storage (atomic operations,
/// three blocks per proxied gRPC call; issue 11).
struct PendingOperationQueue {
    private var items: [PendingOperation] = []
    /// The first operation not taken yet.
    private var head = 0

    init() { self.items.reserveCapacity(8) }

    var isEmpty: Bool { self.head == self.items.count }

    mutating func append(_ operation: consuming PendingOperation) {
        self.items.append(operation)
    }

    /// The first operation, moved out (a trivial one left in its slot); the storage is reused once all are taken.
    mutating func popFirst() -> PendingOperation? {
        guard self.head < self.items.count else { return nil }
        var taken = PendingOperation.consumeConnection(0)
        swap(&taken, &self.items[self.head])
        self.head &+= 1
        if self.head == self.items.count {
            self.items.removeAll(keepingCapacity: true)
            self.head = 0
        }
        return taken
    }

    mutating func removeAll() {
        self.items.removeAll(keepingCapacity: true)
        self.head = 0
    }
}

extension NGHTTP2Session {
    /// Executes the queued operations in order. Only ``drain()`` calls this, with libnghttp2 off the stack.
    func applyPendingOperations() {
        precondition(!self.isInsideNghttp2, "re-entered nghttp2")
        while let operation = self.pendingOperations.popFirst() {
            self.apply(consume operation)
        }
    }

    /// `operation` is consumed: its header block is moved out of it, not copied (a copy was a retain and a release of
    /// the block's storage, each an atomic operation; issue 11).
    private func apply(_ operation: consuming PendingOperation) {
        let none = UInt8(NGHTTP2_FLAG_NONE.rawValue)
        switch consume operation {
        case .submitRequest(let id, let headers, let endStream):
            guard self.streams.contains(id) else { return }
            var provider = makeDataProvider()
            let rc = headers.withNGHTTP2NVArray(priming: &self.hpackNamePriming) { nva, count in
                // Returns the assigned stream id, or NGHTTP2_ERR_NOMEM, NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE
                // (ids exhausted), NGHTTP2_ERR_INVALID_ARGUMENT (self-dependency: we pass no priority) or
                // NGHTTP2_ERR_PROTO (server session: ruled out by startRequest's precondition).
                endStream
                    ? nghttp2_submit_request(self.nghttp2, nil, nva, count, nil, nil)
                    : nghttp2_submit_request(self.nghttp2, nil, nva, count, &provider, nil)
            }
            if rc < 0 {
                if let stream = self.streams.removeValue(forKey: id) { self.releaseOutbound(of: stream) }
                self.withDelegate { $0.session(self, streamClosed: HTTP2StreamID(id), errorCode: .refusedStream) }
                return
            }
            precondition(rc == id, "nghttp2 assigned stream \(rc), expected \(id)")

        case .submitResponse(let id, let headers, let endStream):
            guard self.streams.contains(id) else { return }
            var provider = makeDataProvider()
            let rc = headers.withNGHTTP2NVArray(priming: &self.hpackNamePriming) { nva, count in
                // Returns 0, NGHTTP2_ERR_NOMEM, NGHTTP2_ERR_INVALID_ARGUMENT (stream 0), NGHTTP2_ERR_DATA_EXIST
                // (response already submitted: sendResponseHeaders guards against it) or NGHTTP2_ERR_PROTO
                // (client session: ruled out by a precondition).
                endStream
                    ? nghttp2_submit_response(self.nghttp2, id, nva, count, nil)
                    : nghttp2_submit_response(self.nghttp2, id, nva, count, &provider)
            }
            precondition(rc == 0, "nghttp2_submit_response failed: \(nghttpErrorString(rc))")

        case .submitInformational(let id, let headers):
            // Not after the final response: its HEADERS may be queued already (an answer submitted in the same drain).
            guard self.withStream(id, { !$0.sentHeaders }) == true else { return }
            let rc = headers.withNGHTTP2NVArray(priming: &self.hpackNamePriming) { nva, count in
                // Returns 0, NGHTTP2_ERR_NOMEM or NGHTTP2_ERR_INVALID_ARGUMENT (stream 0: ids come from streams). A
                // stream closed meanwhile fails later, as the frame is prepared, and the frame is dropped.
                nghttp2_submit_headers(self.nghttp2, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, nil, nva, count, nil)
            }
            precondition(rc == 0, "nghttp2_submit_headers (1xx) failed: \(nghttpErrorString(rc))")

        case .stopRequestBody(let id):
            guard self.streams.contains(id), nghttp2_session_get_stream_remote_close(self.nghttp2, id) == 0 else {
                return
            }
            self.submitOwnReset(id, .noError)

        case .submitTrailers(let id, let trailers):
            guard self.streams.contains(id) else { return }
            let rc = trailers.withNGHTTP2NVArray(priming: &self.hpackNamePriming) { nva, count in
                // Returns 0, NGHTTP2_ERR_NOMEM or NGHTTP2_ERR_INVALID_ARGUMENT (stream 0).
                nghttp2_submit_trailer(self.nghttp2, id, nva, count)
            }
            precondition(rc == 0, "nghttp2_submit_trailer failed: \(nghttpErrorString(rc))")

        case .resumeData(let id):
            let resumes = self.withStream(id) { stream -> Bool in
                guard stream.deferred else { return false }
                stream.deferred = false
                return true
            }
            guard resumes == true else { return }
            // Returns 0, NGHTTP2_ERR_NOMEM, or NGHTTP2_ERR_INVALID_ARGUMENT when the stream is gone or has no
            // deferred DATA (a race with its closing inside this drain: nothing to resume then).
            _ = nghttp2_session_resume_data(self.nghttp2, id)

        case .resetStream(let id, let code):
            self.submitOwnReset(id, code)

        case .consume(let id, let bytes):
            // Returns 0, NGHTTP2_ERR_NOMEM, NGHTTP2_ERR_INVALID_ARGUMENT (stream 0) or NGHTTP2_ERR_INVALID_STATE
            // (automatic WINDOW_UPDATE on: our options turn it off). A closed stream only updates the
            // connection window, which is what we want.
            let rc = nghttp2_session_consume(self.nghttp2, id, bytes)
            precondition(rc == 0, "nghttp2_session_consume failed: \(nghttpErrorString(rc))")

        case .consumeStream(let id, let bytes):
            // Returns 0 (also for a closed stream: nothing to reopen then), NGHTTP2_ERR_NOMEM,
            // NGHTTP2_ERR_INVALID_ARGUMENT (stream 0) or NGHTTP2_ERR_INVALID_STATE (automatic WINDOW_UPDATE on).
            let rc = nghttp2_session_consume_stream(self.nghttp2, id, bytes)
            precondition(rc == 0, "nghttp2_session_consume_stream failed: \(nghttpErrorString(rc))")

        case .consumeConnection(let bytes):
            // Returns 0, NGHTTP2_ERR_NOMEM or NGHTTP2_ERR_INVALID_STATE (automatic WINDOW_UPDATE on: it is off).
            let rc = nghttp2_session_consume_connection(self.nghttp2, bytes)
            precondition(rc == 0, "nghttp2_session_consume_connection failed: \(nghttpErrorString(rc))")

        case .shutdownNotice:
            // Returns 0, NGHTTP2_ERR_NOMEM or NGHTTP2_ERR_INVALID_STATE (client session: only servers queue it).
            let rc = nghttp2_submit_shutdown_notice(self.nghttp2)
            precondition(rc == 0, "nghttp2_submit_shutdown_notice failed: \(nghttpErrorString(rc))")

        case .ping(let payload):
            var opaque = payload.bigEndian
            let rc = withUnsafeBytes(of: &opaque) { bytes in
                // Returns 0 or NGHTTP2_ERR_NOMEM.
                nghttp2_submit_ping(self.nghttp2, none, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            precondition(rc == 0, "nghttp2_submit_ping failed: \(nghttpErrorString(rc))")

        case .finalGoAway:
            // The highest peer stream we handed to the owner (or refused); streams above it never started.
            let lastStreamID = nghttp2_session_get_last_proc_stream_id(self.nghttp2)
            // Returns 0, NGHTTP2_ERR_NOMEM or NGHTTP2_ERR_INVALID_ARGUMENT (last_stream_id not a peer id).
            let rc = nghttp2_submit_goaway(self.nghttp2, none, lastStreamID, HTTP2ErrorCode.noError.rawValue, nil, 0)
            precondition(rc == 0, "nghttp2_submit_goaway failed: \(nghttpErrorString(rc))")

        case .clientGoAway:
            // Returns 0, NGHTTP2_ERR_NOMEM or NGHTTP2_ERR_INVALID_ARGUMENT (0 is always valid).
            let rc = nghttp2_submit_goaway(self.nghttp2, none, 0, HTTP2ErrorCode.noError.rawValue, nil, 0)
            precondition(rc == 0, "nghttp2_submit_goaway failed: \(nghttpErrorString(rc))")

        case .terminate(let code):
            // Returns 0 or NGHTTP2_ERR_NOMEM. Queues GOAWAY(last processed stream, code); afterwards both
            // want_read and want_write report 0, which closes the connection once it is written.
            _ = nghttp2_session_terminate_session(self.nghttp2, code.rawValue)
        }
    }

    /// RST_STREAM(`code`) on `id`, marked ours so it is not counted as a reset the client provoked when the stream
    /// leaves (`frameSent`): `.resetStream`, and `.stopRequestBody`'s NO_ERROR (RFC 9113 §8.1).
    private func submitOwnReset(_ id: Int32, _ code: HTTP2ErrorCode) {
        self.withStream(id) { $0.resetRequested = true }
        // Returns 0, NGHTTP2_ERR_NOMEM or NGHTTP2_ERR_INVALID_ARGUMENT (stream 0: ids come from streams).
        let rc = nghttp2_submit_rst_stream(self.nghttp2, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, code.rawValue)
        precondition(rc == 0, "nghttp2_submit_rst_stream failed: \(nghttpErrorString(rc))")
    }
}
