import CNghttp2
import NIOCore

/// One HTTP/2 connection's protocol state: owns the `nghttp2_session`, the open streams' book-keeping and
/// the queue of operations waiting for libnghttp2 to return.
///
/// **Who frees what.** The `nghttp2_session*` is created in `init` and deleted in `deinit`, nowhere else.
/// libnghttp2 gets `self` as `user_data` *unretained*: the session cannot outlive this object because only
/// this object holds it. Per-stream state lives in ``streams`` and is never handed to libnghttp2; callbacks
/// look it up by stream id. Borrowed bytes from callbacks (header names, DATA chunks, the send buffer) are
/// copied before the callback returns.
///
/// **Never re-entered.** Every call into libnghttp2 happens from ``drain()`` or ``receive(_:)``. An operation
/// requested while libnghttp2 is on the stack (from a delegate callback, which runs inside `mem_recv` or
/// `mem_send`) is appended to ``pendingOperations`` and executed by the drain loop once libnghttp2 has
/// returned. Read-only bookkeeping in Swift (stream queues) is updated at once.
///
/// **Output.** The drain loop runs `mem_send` until it returns 0, applying queued operations between calls,
/// and hands everything produced to the transport as one buffer (one write + flush). While the transport is
/// not writable it does not call `mem_send`; frames wait inside libnghttp2 until
/// ``transportWritabilityChanged()``.
///
/// Not thread-safe: everything runs on the channel's event loop (checked at the entry points in debug builds;
/// release builds trust the caller, as NIO's channel operations do).
package final class NGHTTP2Session {
    /// What the session is doing with the connection.
    enum Lifecycle {
        /// Created; SETTINGS not sent yet (operations queue up).
        case idle
        /// SETTINGS sent; frames flow.
        case active
        /// The transport is gone; operations are ignored.
        case closed
    }

    /// Where graceful shutdown stands (RFC 9113 §6.8: notice, one round trip, then the real GOAWAY).
    enum Shutdown: Equatable {
        case none
        /// Server: shutdown-notice GOAWAY and a PING sent; the final GOAWAY goes when the PING is acked.
        case awaitingPingAck(UInt64)
        /// The final GOAWAY is queued or sent; the connection closes when no stream is left.
        case goAwaySubmitted
    }

    /// The opaque payload of our shutdown PING, so its ACK is told apart from a keepalive's.
    static let shutdownPingPayload: UInt64 = 0x7472_6967_6765_7221

    package let role: HTTP2SessionRole
    package let configuration: HTTP2SessionConfiguration
    /// Receives stream events; dropped when the connection closes (which breaks any reference cycle).
    package var delegate: (any HTTP2SessionDelegate)? { self.delegateReference.object?.delegate }
    /// Owns ``delegate``, called borrowed by ``withDelegate(_:)``: a call through a `var` retained and released the
    /// delegate around each event, two atomic operations (issue 11: ~8 events per proxied gRPC call).
    private var delegateReference: BorrowedReference<DelegateSlot>

    /// The libnghttp2 session.
    ///
    /// An implicitly unwrapped optional although it is never nil after `init`: libnghttp2 wants our
    /// `user_data` pointer when the session is created, and Swift only lets us form
    /// `Unmanaged.passUnretained(self)` once every stored property is initialized.
    private(set) var nghttp2: OpaquePointer! = nil
    /// libnghttp2's allocator for this session (issue 11: its per-call allocations recycled). Released after
    /// `deinit` has deleted the session, so it outlives every chunk libnghttp2 holds.
    private let memoryPool = NGHTTP2ChunkPool()

    /// The open streams we know about, by id. See ``HTTP2StreamState`` for the lifetime rules.
    var streams = HTTP2StreamTable<HTTP2StreamState>()
    /// The stream whose header block is being decoded, from its `on_begin_headers` to its `on_frame_recv` (or
    /// its close): a block's fields arrive between those two, contiguously (RFC 9113 §4.3), so `on_header`
    /// finds its stream here instead of hashing its id once per field (issue 11).
    var headerStream: HTTP2StreamState? {
        didSet { self.borrowedHeaderStream = self.headerStream.map { Unmanaged.passUnretained($0) } }
    }
    /// ``headerStream``, not retained: `on_header` reads it through `_withUnsafeGuaranteedRef`, without the retain
    /// and release a load of the strong reference costs (issue 11: one pair per header field, ~11 per proxied gRPC
    /// call). Valid exactly as long as ``headerStream`` holds the same object: the `didSet` above is the only
    /// writer, so the two are set and cleared together, and ``headerStream``'s strong reference keeps the object
    /// alive for as long as this one points at it.
    private(set) var borrowedHeaderStream: Unmanaged<HTTP2StreamState>?

    /// `body` with stream `id`'s state borrowed from ``streams``, not retained (nil: no such stream). `body` must
    /// not remove or replace the stream: it may change the state and queue operations, but not call libnghttp2,
    /// the delegate, ``drain()`` or anything that changes ``streams`` (which is why the operations below drain
    /// after it). Each retain and release is an atomic operation (~5 ns here, issue 11): a lookup through the
    /// subscript paid a pair.
    @inline(__always)
    func withStream<R>(_ id: Int32, _ body: (HTTP2StreamState) throws -> R) rethrows -> R? {
        guard let state = self.streams.unretainedValue(for: id) else { return nil }
        return try state._withUnsafeGuaranteedRef(body)
    }
    /// The storage of the last header block delivered, emptied, for the next block to fill: a delegate that
    /// only reads a block (the gRPC paths: the frontend's request head, a backend call's response headers and
    /// trailers) leaves it unshared, so a proxied unary call's three blocks allocate no field array of their own
    /// once the connection has received one (issue 11). A delegate that keeps a block keeps its storage; the
    /// spare is then a fresh array, as the next block would have needed anyway.
    var spareHeaderBlock: HTTP2Headers?
    /// Long field values received lately, reused when a block repeats one (issue 11; see the type).
    var recentFieldValues = RecentFieldValues()
    /// Which never-indexed fields the next blocks sent index, to keep their names in the encoder's table (issue 11;
    /// see the type).
    var hpackNamePriming = HPACKNamePriming()
    /// The most fields a spare block keeps room for: above a typical request's (~10 to 30 fields), below what a
    /// block near ``HTTP2SessionConfiguration/maxHeaderListSize`` grows to (security review, H1).
    static let spareHeaderBlockCapacity = 64
    /// Streams whose ``HTTP2StreamState/resetWhenAnswered`` is set: `frameSent` looks a stream up only while
    /// this is not 0, so the END_STREAM frames of ordinary answers cost one comparison, not a lookup.
    var streamsResettingWhenAnswered = 0
    /// Operations waiting for libnghttp2 to be off the stack; FIFO so stream ids and frame order hold.
    var pendingOperations = PendingOperationQueue()
    /// Stream writability changes to report once the drain has finished.
    var pendingWritabilityChanges: [Int32] = []
    /// True while `mem_recv` or `mem_send` is on the stack.
    var isInsideNghttp2 = false
    private var isDraining = false
    private var batchDepth = 0
    /// The rich error a callback threw; it turned into NGHTTP2_ERR_CALLBACK_FAILURE for libnghttp2 and is
    /// reported once `mem_recv`/`mem_send` has returned.
    var parkedError: (any Error)?
    /// Request header blocks of this connection that went over `maxHeaderListSize`
    /// (``HTTP2SessionConfiguration/maxOversizedHeaderBlocks``).
    var oversizedHeaderBlocks = 0
    /// The id the next `startRequest` gets; libnghttp2 assigns client ids the same way (1, 3, 5, …) at
    /// `nghttp2_submit_request`, and ours are submitted in order, so we can hand the id out before submitting.
    var nextClientStreamID: Int32 = 1
    var lifecycle = Lifecycle.idle
    var shutdown = Shutdown.none
    var goAwayReceived = false
    /// Why the connection ended badly, reported in ``HTTP2SessionDelegate/sessionDidClose(_:error:)``.
    var closeError: (any Error)?

    /// Why the connection is ending badly, once that is known: the error
    /// ``HTTP2SessionDelegate/sessionDidClose(_:error:)`` will report. Set before the streams still open are reported closed, so that the owner can tell, at each
    /// ``HTTP2SessionDelegate/session(_:streamClosed:errorCode:)``, a stream cut because the session ended the
    /// connection for the peer's fault (``HTTP2EngineError/peerFaultCode``) from one the peer itself ended.
    package var closeReason: (any Error)? { self.closeError }

    /// Outbound bytes queued on all streams (the sum of their `outboundBytes`), and whether that sum is over
    /// ``HTTP2SessionConfiguration/connectionOutboundHighWatermark`` (every stream then reports unwritable
    /// until it falls to half).
    var connectionOutboundBytes = 0
    var connectionOutboundBlocked = false
    /// Server: the peer's first SETTINGS frame arrived (its connection preface is complete).
    var receivedPeerSettings = false
    /// The timers of ``HTTP2SessionConfiguration/prefaceTimeout`` and
    /// ``HTTP2SessionConfiguration/writeProgressTimeout``; cancelled when the transport closes.
    var prefaceTimer: Scheduled<Void>?
    var writeProgressTimer: Scheduled<Void>?
    var requestProgressTimer: (deadline: NIODeadline, task: Scheduled<Void>)?
    /// Server: the client's RST_STREAM budget (``HTTP2SessionConfiguration/streamResetRateLimit``), created at
    /// the first reset (on the event loop's clock, so it starts full then).
    var streamResetBucket: HTTP2TokenBucket?

    /// The handler writing for this session. Strong, released by ``detachTransport()`` when the handler leaves
    /// its pipeline (NIO removes every handler of a closed channel): a weak reference gave the handler a side
    /// table, which sent each retain and release of it through the runtime's slow path (issue 11).
    var transport: (any HTTP2SessionTransport)? { self.transportReference.object?.transport }
    /// Owns ``transport``, called borrowed by ``withTransport(_:)``: each read of a `var` was a retain and a
    /// release, atomic operations (issue 11: a drain's write path read it three times, ~9 drains per proxied gRPC
    /// call). NIO removes a handler in a later task; were one removed inside a write, the reference keeps it until
    /// that call returns.
    private var transportReference = BorrowedReference<TransportSlot>()
    private(set) var eventLoop: (any EventLoop)?
    /// Inside ``receive(_:)`` or ``drain()`` (how deep): ``currentTime()`` reads the clock once there.
    private var clockBatchDepth = 0
    /// The clock as first read in the current ``receive(_:)`` or ``drain()``; nil outside them.
    private var batchNow: NIODeadline?

    /// The event loop's clock (nil before the session is attached). Inside one ``receive(_:)`` or ``drain()`` it is
    /// read once, at the first stamp, and reused: a read is a `clock_gettime` (~15 ns here; eight per proxied gRPC
    /// call before, each with a retain and release of the event loop; issue 11). What it stamps (a stream's last
    /// write progress, a request's progress and receipt deadlines, the reset bucket's refill) is then early by as
    /// much as the rest of that read took, its delegate callbacks' work included: a timeout counts from the bytes'
    /// arrival and fires at most that much early, never late. The timeouts are seconds; a read takes microseconds
    /// unless the loop is stalled, when firing early is the safer error. A timer that fires, and an operation
    /// called outside a read or drain, read it afresh (`ProgressLimitsTests.batchClock`, `stampOutsideABatch`).
    func currentTime() -> NIODeadline? {
        if let batchNow = self.batchNow { return batchNow }
        guard let eventLoop = self.eventLoop else { return nil }
        let now = eventLoop.now
        if self.clockBatchDepth > 0 { self.batchNow = now }
        return now
    }

    /// Enters a ``receive(_:)`` or ``drain()``, where ``currentTime()`` reads the clock once.
    @inline(__always)
    private func enterClockBatch() { self.clockBatchDepth &+= 1 }

    /// Leaves it; the outermost forgets the time read.
    @inline(__always)
    private func leaveClockBatch() {
        self.clockBatchDepth &-= 1
        if self.clockBatchDepth == 0 { self.batchNow = nil }
    }
    var allocator = ByteBufferAllocator()
    /// The buffer each drain gathers its output in, kept for the next drain (issue 11: a fresh one per drain,
    /// grown frame by frame, was two to four allocations per drain, two drains per proxied gRPC call and
    /// session). `clear()` reuses its storage once the transport has written and released the last output,
    /// and allocates a new one of the same capacity while that is still queued. Kept only while it is at most
    /// ``retainedOutputCapacity``, so an idle connection does not hold a large answer's buffer.
    private var outputBuffer: ByteBuffer?
    /// What a drain's output buffer starts with (a gRPC answer's HEADERS, DATA and trailers fit), and the most
    /// a session keeps between drains.
    static let initialOutputCapacity = 1024
    static let retainedOutputCapacity = 16 << 10
    /// Output the transport has not taken yet because it writes at its flush (``HTTP2SessionTransport/defersWrites``):
    /// the drains of one tick append here and the connection is written once, when it is flushed
    /// (``takeDeferredOutput()``), as nghttpx fills one buffer per connection and event-loop iteration. Issue 11:
    /// a busy backend connection was written once per drain (each frontend read that started a call), a
    /// `ChannelHandlerContext.write` of ~1.5 k instructions and a new output buffer each, two per proxied gRPC call.
    /// Uniquely referenced while it waits, so appending never copies it (it only moves when the buffer grows).
    private var deferredOutput: ByteBuffer?
    /// The most output waits for the flush: at or past it the drain writes it to the channel at once, so the
    /// channel's pending bytes (its writability, which pauses `mem_send`) see it, as before this wait.
    static let deferredOutputLimit = 64 << 10

    /// Creates the libnghttp2 session. Nothing is sent until the transport is attached and ``start()`` runs
    /// (``HTTP2ConnectionHandler`` does both).
    package init(
        role: HTTP2SessionRole,
        configuration: HTTP2SessionConfiguration = .defaults,
        delegate: (any HTTP2SessionDelegate)? = nil
    ) {
        self.role = role
        self.configuration = configuration
        self.delegateReference = BorrowedReference(delegate.map(DelegateSlot.init))

        let tables = NGHTTP2Tables.shared
        let userData = Unmanaged.passUnretained(self).toOpaque()
        var session: OpaquePointer?
        // libnghttp2 copies the struct; its `mem_user_data` is the pool's state, which lives as long as `self`.
        var memory = self.memoryPool.memory
        let rc: Int32
        switch role {
        case .server:
            let backstop = HTTP2StreamResetRateLimit.nghttp2Backstop(for: configuration.streamResetRateLimit)
            if backstop == .nghttp2Backstop {
                let options = configuration.expectsClientPreface ? tables.options : tables.optionsWithoutClientMagic
                // Returns 0 or NGHTTP2_ERR_NOMEM.
                rc = nghttp2_session_server_new3(&session, tables.callbacks, userData, options, &memory)
            } else {
                // A reset limit above twice the defaults: options of this session's own, so libnghttp2's limit stays
                // above it. libnghttp2 copies the options' values into the session: freed as soon as it is made.
                let options = NGHTTP2Tables.makeOptions(
                    skipClientMagic: !configuration.expectsClientPreface, server: true, backstop: backstop)
                defer { nghttp2_option_del(options) }
                rc = nghttp2_session_server_new3(&session, tables.callbacks, userData, options, &memory)
            }
        case .client:
            // Returns 0 or NGHTTP2_ERR_NOMEM; the client writes its own preface from the first mem_send.
            rc = nghttp2_session_client_new3(&session, tables.callbacks, userData, tables.clientOptions, &memory)
        }
        precondition(rc == 0 && session != nil, "nghttp2_session_*_new3 failed: \(nghttpErrorString(rc))")
        self.nghttp2 = session
    }

    deinit {
        // Frees through ``memoryPool``, which is released only after this body.
        nghttp2_session_del(self.nghttp2)
    }

    // MARK: Transport side (called by HTTP2ConnectionHandler)

    /// Connects the session to its channel.
    func attach(transport: any HTTP2SessionTransport, eventLoop: any EventLoop, allocator: ByteBufferAllocator) {
        self.transportReference.set(TransportSlot(transport))
        self.eventLoop = eventLoop
        self.allocator = allocator
    }

    /// `body` with the transport borrowed, not retained; nil (and `body` not called) when there is none. Safe
    /// because the slot outlives the call: ``detachTransport()`` is the only place that drops it, and
    /// ``BorrowedReference`` keeps it until the outermost call has returned.
    @inline(__always)
    func withTransport<R>(_ body: (any HTTP2SessionTransport) -> R) -> R? {
        guard let slot = self.transportReference.beginCall() else { return nil }
        let result = slot._withUnsafeGuaranteedRef { body($0.transport) }
        // A transport dropped during the call is released here, after the access to `transportReference` ended.
        _ = self.transportReference.endCall()
        return result
    }

    /// Queues our SETTINGS (peers such as gRPC clients wait for them) and the connection window increase,
    /// then writes them together with any operation requested before the start.
    func start() {
        self.assertInEventLoop()
        guard self.lifecycle == .idle else { return }
        self.lifecycle = .active

        var settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: UInt32(clamping: self.configuration.maxConcurrentStreams)
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: UInt32(clamping: min(self.configuration.initialWindowSize, Int(Int32.max)))
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(clamping: self.configuration.maxHeaderListSize)
            ),
        ]
        if self.role == .client {
            settings.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        // Returns 0, NGHTTP2_ERR_INVALID_ARGUMENT (a value out of range: our configuration is wrong) or
        // NGHTTP2_ERR_NOMEM.
        let rc = nghttp2_submit_settings(self.nghttp2, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        precondition(rc == 0, "nghttp2_submit_settings failed: \(nghttpErrorString(rc))")

        let connectionWindow = min(self.configuration.connectionWindowSize, Int(Int32.max))
        if connectionWindow > 65_535 {
            // Returns 0, NGHTTP2_ERR_INVALID_ARGUMENT (negative size), NGHTTP2_ERR_FLOW_CONTROL (overflow) or
            // NGHTTP2_ERR_NOMEM; the size is clamped above, so only NOMEM is possible.
            let rc = nghttp2_session_set_local_window_size(
                self.nghttp2,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                0,
                Int32(connectionWindow)
            )
            precondition(rc == 0, "nghttp2_session_set_local_window_size failed: \(nghttpErrorString(rc))")
        }
        self.armPrefaceTimer()
        self.drain()
    }

    /// Whether libnghttp2 still holds a stream object for `stream`: open, or closed and kept for the RFC 7540
    /// priority tree (which a server session's options turn off: `NGHTTP2Tables.makeOptions`).
    package func libraryHoldsStream(_ stream: HTTP2StreamID) -> Bool {
        nghttp2_session_find_stream(self.nghttp2, stream.rawValue) != nil
    }

    /// Feeds bytes read from the connection to libnghttp2, then drains what that produced.
    ///
    /// A protocol error nghttp2 can express (bad frame, HPACK failure) makes it queue a GOAWAY, which the
    /// drain sends before closing. A fatal error (bad client preface, flooding, a failing callback) fails the
    /// connection: GOAWAY(PROTOCOL_ERROR or INTERNAL_ERROR) best effort, then close; a header block over
    /// ``HTTP2SessionConfiguration/maxContinuationFrames`` or a PING/SETTINGS flood, GOAWAY(ENHANCE_YOUR_CALM).
    func receive(_ buffer: ByteBuffer) {
        self.assertInEventLoop()
        guard self.lifecycle == .active, buffer.readableBytes > 0 else { return }
        self.enterClockBatch()
        defer { self.leaveClockBatch() }
        let rc = buffer.withUnsafeReadableBytes { bytes -> Int in
            self.isInsideNghttp2 = true
            defer { self.isInsideNghttp2 = false }
            // Returns the bytes processed (all of them: no callback of ours returns NGHTTP2_ERR_PAUSE), or
            // NGHTTP2_ERR_NOMEM, NGHTTP2_ERR_CALLBACK_FAILURE, NGHTTP2_ERR_BAD_CLIENT_MAGIC, NGHTTP2_ERR_FLOODED,
            // NGHTTP2_ERR_TOO_MANY_CONTINUATIONS (server: see `maxContinuationFrames`).
            return nghttp2_session_mem_recv(
                self.nghttp2,
                bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                bytes.count
            )
        }
        if rc < 0 {
            let code = Int32(truncatingIfNeeded: rc)
            if let parked = self.parkedError {
                self.parkedError = nil
                // A callback that refused the peer says with which code (ENHANCE_YOUR_CALM for rapid reset).
                let code = (parked as? HTTP2EngineError)?.http2ErrorCode ?? .internalError
                self.failConnection(parked, goAwayCode: code)
            } else if code == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue {
                let error = HTTP2EngineError(
                    .headerBlockTooLarge,
                    "a header block of more than \(HTTP2SessionConfiguration.maxContinuationFrames) CONTINUATION frames",
                    http2ErrorCode: .enhanceYourCalm
                )
                self.failConnection(error, goAwayCode: .enhanceYourCalm)
            } else if code == NGHTTP2_ERR_FLOODED.rawValue {
                // ENHANCE_YOUR_CALM (RFC 9113 §7: "excessive load"), as Envoy and nghttpx answer a PING or
                // SETTINGS flood, not the PROTOCOL_ERROR of a malformed frame.
                let error = HTTP2EngineError(
                    .controlFrameFlood,
                    "control frame flood: the client sent PING/SETTINGS frames faster than it read their "
                        + "acknowledgements (1000 queued)",
                    http2ErrorCode: .enhanceYourCalm
                )
                self.failConnection(error, goAwayCode: .enhanceYourCalm)
            } else {
                let error = HTTP2EngineError(.protocolError, "nghttp2_session_mem_recv: \(nghttpErrorString(code))")
                self.failConnection(error, goAwayCode: .protocolError)
            }
            return
        }
        assert(rc == buffer.readableBytes, "mem_recv stopped early without NGHTTP2_ERR_PAUSE")
        self.drain()
    }

    /// The channel's writability changed; resumes `mem_send` when it is writable again.
    func transportWritabilityChanged() {
        self.assertInEventLoop()
        self.drain()
    }

    /// The handler left its pipeline: the reference cycle between it and the session ends here.
    func detachTransport() {
        // Inside one of its calls (a close during a write): released when that call returns. Outside, released
        // here, after the access to `transportReference` ended.
        _ = self.transportReference.drop()
    }

    /// The channel is gone: every open stream the owner knows is reported closed (`.cancel`), then the
    /// session itself. The delegate is released afterwards.
    func transportClosed() {
        guard self.lifecycle != .closed else { return }
        self.lifecycle = .closed
        self.cancelTimers()
        self.pendingOperations.removeAll()
        self.pendingWritabilityChanges.removeAll()
        self.deferredOutput = nil
        // One array, sorted in place (review 14 F6: `filter` then `sorted` copied the streams twice).
        var open = self.streams.values.filter(\.announced)
        open.sort { $0.id < $1.id }
        self.streams.removeAll()
        let delegate = self.delegate
        for stream in open {
            delegate?.session(self, streamClosed: HTTP2StreamID(stream.id), errorCode: .cancel)
        }
        var error = self.closeError
        if error == nil, !open.isEmpty {
            error = HTTP2EngineError(.connectionClosed, "connection closed with \(open.count) open stream(s)")
        }
        delegate?.sessionDidClose(self, error: error)
        // Inside a delegate call (the delegate closed the connection): released when that call returns. Outside,
        // released here, after the access to `delegateReference` ended.
        _ = self.delegateReference.drop()
    }

    /// Sets the delegate of a session made without one: for an owner that is made after its session, so that it
    /// can hold the session in a constant (a call through a `var` retains and releases it; issue 11). Before the
    /// session has delivered any event; a second delegate is a programming error.
    package func attachDelegate(_ delegate: any HTTP2SessionDelegate) {
        precondition(
            self.delegateReference.object == nil && self.delegateReference.callDepth == 0,
            "the session has a delegate already")
        // A closed session has dropped its delegate for good: one attached now would never be let go (a cycle).
        precondition(self.lifecycle != .closed, "the session is closed")
        self.delegateReference.set(DelegateSlot(delegate))
    }

    /// `body` with the delegate borrowed, not retained (nothing when there is none). Each call's retain and
    /// release of the delegate were two atomic operations (~5 ns each here, issue 11). Safe because the slot
    /// outlives the call: ``transportClosed()`` is the only place that drops it, and ``BorrowedReference`` keeps it
    /// until the outermost call has returned.
    @inline(__always)
    func withDelegate(_ body: (any HTTP2SessionDelegate) -> Void) {
        guard let slot = self.delegateReference.beginCall() else { return }
        slot._withUnsafeGuaranteedRef { body($0.delegate) }
        // A delegate dropped during the call is released here, after the access to `delegateReference` ended.
        _ = self.delegateReference.endCall()
    }

    /// Records `error` as the reason, asks libnghttp2 for a last GOAWAY, sends what it can and closes.
    func failConnection(_ error: any Error, goAwayCode: HTTP2ErrorCode) {
        if self.closeError == nil { self.closeError = error }
        guard self.lifecycle == .active else { return }
        self.pendingOperations.append(.terminate(goAwayCode))
        self.drain()
        self.transport?.sessionClose()
    }

    // MARK: The drain loop

    /// Runs queued operations and `mem_send` until neither has anything left, writes the output once (or keeps it
    /// for the transport's flush), reports stream writability, and closes the connection when libnghttp2 wants
    /// neither to read nor to write.
    ///
    /// Safe to call from anywhere: inside libnghttp2, inside a batch or inside another drain it does nothing,
    /// because the outer caller drains on its way out.
    func drain() {
        guard self.lifecycle == .active, !self.isInsideNghttp2, !self.isDraining, self.batchDepth == 0 else {
            return
        }
        self.isDraining = true
        self.enterClockBatch()
        // Output waiting for the flush is appended to; otherwise the kept buffer is taken out, so that once no write
        // holds it any more it is uniquely referenced and `clear()` reuses it.
        var output = self.deferredOutput.take()
        let appending = output != nil
        if !appending { output = self.outputBuffer.take() }
        var produced = false
        var fatal: (any Error)? = nil
        // Asked once per drain, not once per `mem_send` (issue 11: ~100 instructions each, nine per proxied gRPC
        // call): nothing is written to the channel until the loop ends, and only this session writes to it (a
        // delegate callback that starts a write on this session is queued, `isDraining`), so its writability
        // cannot change inside the loop.
        // The transport borrowed (``withTransport(_:)``): each read of the `var` was a retain and a release.
        let writable = self.withTransport { $0.isWritable } ?? false
        while true {
            if !self.pendingOperations.isEmpty { self.applyPendingOperations() }
            guard writable, self.lifecycle == .active else { break }
            var chunk: UnsafePointer<UInt8>? = nil
            self.isInsideNghttp2 = true
            // Returns the length of the serialized bytes at `chunk` (valid until the next call), 0 when there is
            // nothing to send, or NGHTTP2_ERR_NOMEM / NGHTTP2_ERR_CALLBACK_FAILURE (a callback of ours threw).
            let bytes = nghttp2_session_mem_send(self.nghttp2, &chunk)
            self.isInsideNghttp2 = false
            if bytes < 0 {
                fatal =
                    self.parkedError
                    ?? HTTP2EngineError(
                        .internalError,
                        "nghttp2_session_mem_send: \(nghttpErrorString(Int32(truncatingIfNeeded: bytes)))"
                    )
                self.parkedError = nil
                break
            }
            if bytes == 0 {
                if self.pendingOperations.isEmpty { break }
                continue
            }
            if !produced {
                produced = true
                if output == nil {
                    output = self.allocator.buffer(capacity: Swift.max(bytes, Self.initialOutputCapacity))
                } else if !appending {
                    output!.clear()
                }
            }
            output!.writeBytes(UnsafeRawBufferPointer(start: chunk, count: bytes))
        }
        self.isDraining = false
        self.leaveClockBatch()

        if produced, let written = output {
            if self.withTransport({ $0.defersWrites }) == true, written.readableBytes < Self.deferredOutputLimit {
                self.deferredOutput = written
                self.withTransport { $0.sessionOutputDeferred() }
            } else {
                if written.capacity <= Self.retainedOutputCapacity { self.outputBuffer = written }
                self.withTransport { $0.sessionWrite(written) }
            }
        } else if appending {
            self.deferredOutput = output
        } else {
            self.outputBuffer = output
        }
        if let fatal {
            if self.closeError == nil { self.closeError = fatal }
            self.withTransport { $0.sessionClose() }
            return
        }
        self.deliverWritabilityChanges()
        // Both 0 once a terminating GOAWAY went out, or once a GOAWAY was sent or received and no stream is
        // left (graceful shutdown done): the connection has nothing more to do.
        if self.lifecycle == .active, nghttp2_session_want_read(self.nghttp2) == 0,
            nghttp2_session_want_write(self.nghttp2) == 0
        {
            self.transport?.sessionClose()
        }
    }

    /// The output drains gathered for the transport's flush (``HTTP2SessionTransport/defersWrites``), handed over
    /// once: nil when there is none. Kept for the next drain when it is small, as a written buffer is.
    func takeDeferredOutput() -> ByteBuffer? {
        guard let output = self.deferredOutput.take() else { return nil }
        if output.capacity <= Self.retainedOutputCapacity { self.outputBuffer = output }
        return output
    }

    /// Runs `body` with draining postponed, so operations issued together leave in one write.
    ///
    /// Use it when acting outside a delegate callback (inside one, batching is automatic):
    /// `session.withBatchedWrites { session.sendResponseHeaders(...); session.sendData(...) }`.
    package func withBatchedWrites<T>(_ body: () throws -> T) rethrows -> T {
        self.assertInEventLoop()
        self.batchDepth += 1
        defer {
            self.batchDepth -= 1
            if self.batchDepth == 0 { self.drain() }
        }
        return try body()
    }

    private func deliverWritabilityChanges() {
        while !self.pendingWritabilityChanges.isEmpty {
            let changes = self.pendingWritabilityChanges
            self.pendingWritabilityChanges.removeAll()
            // A stream that went over and back under the watermark within one drain reports nothing.
            for id in changes {
                guard let stream = self.streams[id] else { continue }
                let writable = stream.isWritable && !self.connectionOutboundBlocked
                guard writable != stream.reportedWritable else { continue }
                stream.reportedWritable = writable
                self.withDelegate {
                    $0.session(self, streamWritabilityChanged: HTTP2StreamID(id), isWritable: writable)
                }
            }
        }
    }

    /// Checked in debug builds only, as NIO checks its own channel operations (`assertInEventLoop`): in a release
    /// build the check cost a retain and release of the event loop (atomic operations) and a thread comparison in
    /// every operation, ~8 per proxied gRPC call (issue 11). Tests run debug builds, so a call from another thread
    /// still fails there.
    @inline(__always)
    func assertInEventLoop() {
        assert(self.eventLoop?.inEventLoop ?? true, "an NGHTTP2Session operation off its event loop")
    }
}

/// What ``NGHTTP2Session`` needs from the channel: a place to write, a way to close, and writability.
protocol HTTP2SessionTransport: AnyObject {
    var isWritable: Bool { get }
    /// Writes one coalesced buffer, flushed now or at the flush the transport has planned.
    func sessionWrite(_ bytes: ByteBuffer)
    /// Whether the transport writes at its flush what drains leave in the session: the session then keeps its
    /// output (up to ``NGHTTP2Session/deferredOutputLimit``), calls ``sessionOutputDeferred()``, and the transport
    /// takes it with ``NGHTTP2Session/takeDeferredOutput()`` when it flushes, and before it closes.
    var defersWrites: Bool { get }
    /// The session holds output for the transport's next flush: plan one.
    func sessionOutputDeferred()
    /// Closes the connection (the channel's inactive event then reaches ``NGHTTP2Session/transportClosed()``).
    func sessionClose()
}

/// libnghttp2's message for one of its negative return codes.
func nghttpErrorString(_ code: Int32) -> String {
    String(cString: nghttp2_strerror(code)) + " (\(code))"
}

@available(*, unavailable)
extension NGHTTP2Session: Sendable {}
