package import NIOCore
import CNghttp2

/// The owner's operations. All must be called on the channel's event loop; all may be called from inside a
/// delegate callback (they are queued and run once libnghttp2 returns). Operations on a stream that has
/// already closed are ignored: the owner learns of the close through
/// ``HTTP2SessionDelegate/session(_:streamClosed:errorCode:)``.
extension NGHTTP2Session {
    /// Server role: answers `stream` with a response header block (`:status` first).
    ///
    /// With `endStream: true` the HEADERS frame ends the stream (a gRPC trailers-only response). Otherwise
    /// the body follows through ``sendData(stream:_:endStream:)`` and/or ``sendTrailers(stream:_:)``.
    package func sendResponseHeaders(stream: HTTP2StreamID, headers: consuming HTTP2Headers, endStream: Bool) {
        self.assertInEventLoop()
        precondition(self.role == .server, "sendResponseHeaders is for the server role")
        guard self.lifecycle != .closed else { return }
        let found: Void? = self.withStream(stream.rawValue) { state in
            precondition(!state.sentHeaders, "response headers for stream \(stream) sent twice")
            state.sentHeaders = true
            state.hasDataProvider = !endStream
            state.outboundEnded = endStream
        }
        guard found != nil else { return }
        self.pendingOperations.append(.submitResponse(stream.rawValue, headers, endStream: endStream))
        self.drain()
    }

    /// Server role: an informational (1xx) response on `stream` before its final one (RFC 9110 §15.2): a HEADERS
    /// frame without END_STREAM, `:status` first. `100 Continue` is the one the gateway sends, to a request that
    /// expects it (RFC 9110 §10.1.1). Ignored once the final response was submitted.
    package func sendInformational(stream: HTTP2StreamID, headers: consuming HTTP2Headers) {
        self.assertInEventLoop()
        precondition(self.role == .server, "sendInformational is for the server role")
        guard self.lifecycle != .closed, self.withStream(stream.rawValue, { !$0.sentHeaders }) == true else { return }
        self.pendingOperations.append(.submitInformational(stream.rawValue, headers))
        self.drain()
    }

    /// Client role: opens a new stream with a request header block (`:method`, `:scheme`, `:authority`,
    /// `:path`, then regular fields) and returns its id at once.
    ///
    /// With `endStream: true` the request has no body. Otherwise send it with
    /// ``sendData(stream:_:endStream:)`` / ``sendTrailers(stream:_:)``. When the peer's concurrency limit
    /// is reached, libnghttp2 holds the HEADERS until a stream frees up. A stream refused by a GOAWAY before
    /// it was sent closes with `.refusedStream`.
    ///
    /// - Throws: ``HTTP2EngineError`` `.sessionClosing` after a GOAWAY was sent or received or the
    ///   connection closed, `.streamIDsExhausted` when this connection has used all its ids.
    package func startRequest(headers: consuming HTTP2Headers, endStream: Bool) throws -> HTTP2StreamID {
        self.assertInEventLoop()
        precondition(self.role == .client, "startRequest is for the client role")
        guard self.lifecycle != .closed, !self.goAwayReceived, self.shutdown == .none else {
            throw HTTP2EngineError(.sessionClosing, "the connection is going away; open a new one")
        }
        let id = self.nextClientStreamID
        guard id > 0 else {
            throw HTTP2EngineError(.streamIDsExhausted, "no stream id left on this connection")
        }
        self.nextClientStreamID = id &+ 2
        let state = HTTP2StreamState(id: id, announced: true)
        state.sentHeaders = true
        state.hasDataProvider = !endStream
        state.outboundEnded = endStream
        self.streams[id] = state
        self.pendingOperations.append(.submitRequest(id, headers, endStream: endStream))
        self.drain()
        return HTTP2StreamID(id)
    }

    /// Queues body bytes on `stream` (after its headers) and, with `endStream`, ends our side.
    ///
    /// Bytes leave as the peer's flow-control windows allow; the queue is unbounded, so watch
    /// ``isWritable(stream:)`` / ``HTTP2SessionDelegate/session(_:streamWritabilityChanged:isWritable:)``.
    /// An empty `data` with `endStream: true` just ends the stream.
    package func sendData(stream: HTTP2StreamID, _ data: ByteBuffer, endStream: Bool) {
        self.assertInEventLoop()
        guard self.lifecycle != .closed else { return }
        let found: Void? = self.withStream(stream.rawValue) { state in
            precondition(
                state.hasDataProvider, "sendData on stream \(stream) before headers, or after endStream headers")
            precondition(!state.outboundEnded, "sendData on stream \(stream) after its end")
            if data.readableBytes > 0 {
                state.outbound.append(data)
                state.outboundBytes += data.readableBytes
                if state.isWritable, state.outboundBytes > self.configuration.streamOutboundHighWatermark {
                    state.isWritable = false
                    self.pendingWritabilityChanges.append(state.id)
                }
                self.queuedOutbound(data.readableBytes, on: state)
            }
            if endStream { state.outboundEnded = true }
            self.resumeIfDeferred(state)
        }
        guard found != nil else { return }
        self.drain()
    }

    /// Ends `stream` with a trailing header block (no pseudo-headers), e.g. gRPC's `grpc-status`.
    ///
    /// Sent after every queued byte: the data provider reports EOF with NGHTTP2_DATA_FLAG_NO_END_STREAM,
    /// then the trailers go out with END_STREAM.
    package func sendTrailers(stream: HTTP2StreamID, _ trailers: consuming HTTP2Headers) {
        self.assertInEventLoop()
        guard self.lifecycle != .closed else { return }
        // Moved into the stream through this var (the closure could only copy a captured parameter).
        var trailers = Optional(trailers)
        let found: Void? = self.withStream(stream.rawValue) { state in
            precondition(state.hasDataProvider, "sendTrailers on stream \(stream) before headers, or after endStream")
            precondition(!state.outboundEnded, "sendTrailers on stream \(stream) after its end")
            state.outboundTrailers = trailers.take()
            state.outboundEnded = true
            self.resumeIfDeferred(state)
        }
        guard found != nil else { return }
        self.drain()
    }

    /// Sends RST_STREAM with `errorCode` (`.cancel` to abandon, `.refusedStream` to ask for a retry). The
    /// stream then closes with that code; its unconsumed bytes are released.
    package func resetStream(_ stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        self.assertInEventLoop()
        guard self.lifecycle != .closed, self.streams.contains(stream.rawValue) else { return }
        self.pendingOperations.append(.resetStream(stream.rawValue, errorCode))
        self.drain()
    }

    /// Server: the owner does not want the rest of `stream`'s request body. RST_STREAM(NO_ERROR) asks the client
    /// to stop sending it (RFC 9113 §8.1) once the answer's last frame (END_STREAM) is sent: at once if it was,
    /// after it otherwise (a reset submitted before would overtake the answer); not if the request ends first, which
    /// is checked when the reset is submitted (``PendingOperation/stopRequestBody``: a request's END_STREAM read in
    /// the same `mem_recv` closes the stream before the queue runs). Again is a no-op.
    package func resetWhenAnswered(_ stream: HTTP2StreamID) {
        self.assertInEventLoop()
        guard self.role == .server, self.lifecycle != .closed else { return }
        let id = stream.rawValue
        let answered = nghttp2_session_get_stream_local_close(self.nghttp2, id) == 1
        let found: Void? = self.withStream(id) { state in
            guard !state.resetWhenAnswered else { return }
            if answered {
                self.pendingOperations.append(.stopRequestBody(id))
            } else {
                state.resetWhenAnswered = true
                self.streamsResettingWhenAnswered += 1
            }
        }
        if found != nil, answered { self.drain() }
    }

    /// Tells the peer that `bytes` of `stream`'s received DATA have been processed (forwarded to a backend,
    /// decoded, stored): the stream and connection windows reopen by that much. Call it with the sizes
    /// from ``HTTP2SessionDelegate/session(_:didReceiveData:stream:endStream:)``, as the bytes go, not
    /// before; not consuming is how the peer is slowed down. Bytes left unconsumed when a stream closes are
    /// released by the session.
    package func consume(stream: HTTP2StreamID, bytes: Int) {
        self.assertInEventLoop()
        guard bytes > 0, self.lifecycle != .closed else { return }
        let queued = self.withStream(stream.rawValue) { state -> Bool in
            let bytes = min(bytes, state.unconsumedBytes)
            guard bytes > 0 else { return false }
            state.unconsumedBytes -= bytes
            if state.connectionReleasedBytes == 0 {
                self.pendingOperations.append(.consume(stream.rawValue, bytes))
            } else {
                // Bytes whose connection share went back already reopen the stream's window only.
                let streamOnly = min(bytes, state.connectionReleasedBytes)
                state.connectionReleasedBytes -= streamOnly
                self.pendingOperations.append(.consumeStream(stream.rawValue, streamOnly))
                if bytes > streamOnly { self.pendingOperations.append(.consume(stream.rawValue, bytes - streamOnly)) }
            }
            return true
        }
        guard queued == true else { return }
        self.drain()
    }

    /// Returns `bytes` of `stream`'s received, unconsumed DATA to the connection's window only: the stream's own
    /// window stays shut until ``consume(stream:bytes:)`` takes them (which then reopens only the stream's).
    /// How an owner holds one stream back without holding the others: if its unconsumed bytes kept the
    /// connection window too, a few held streams (64 KiB each) would shut it (1 MiB) for every stream, the one
    /// the owner waits on included. At most the stream's unconsumed bytes not yet released.
    package func releaseConnectionWindow(stream: HTTP2StreamID, bytes: Int) {
        self.assertInEventLoop()
        guard bytes > 0, self.lifecycle != .closed else { return }
        let queued = self.withStream(stream.rawValue) { state -> Bool in
            let bytes = min(bytes, state.unconsumedBytes - state.connectionReleasedBytes)
            guard bytes > 0 else { return false }
            state.connectionReleasedBytes += bytes
            self.pendingOperations.append(.consumeConnection(bytes))
            return true
        }
        guard queued == true else { return }
        self.drain()
    }

    /// Starts an orderly close; the connection closes by itself once no stream is left.
    ///
    /// Server: a shutdown-notice GOAWAY (last stream id 2^31−1, so in-flight requests still count) and a
    /// PING; when the PING is acknowledged (one round trip later) the real GOAWAY with the last processed
    /// stream id. Streams the peer opened before it still complete. Client: GOAWAY(0) at once; no new
    /// request can start, open ones complete. A grace period, if any, is the owner's: close the channel.
    /// A server whose peer has not finished its preface (no SETTINGS yet) has nothing to finish: it sends
    /// GOAWAY(NO_ERROR) and closes at once, so a silent socket does not hold a shutdown for its grace.
    package func initiateGracefulShutdown() {
        self.assertInEventLoop()
        guard self.lifecycle != .closed, self.shutdown == .none else { return }
        switch self.role {
        case .server where !self.receivedPeerSettings && self.streams.isEmpty:
            self.shutdown = .goAwaySubmitted
            self.pendingOperations.append(.terminate(.noError))
        case .server:
            self.shutdown = .awaitingPingAck(Self.shutdownPingPayload)
            self.pendingOperations.append(.shutdownNotice)
            self.pendingOperations.append(.ping(Self.shutdownPingPayload))
        case .client:
            self.shutdown = .goAwaySubmitted
            self.pendingOperations.append(.clientGoAway)
        }
        self.drain()
    }

    /// Ends the session now: GOAWAY with the last processed stream id and `errorCode` (RFC 9113 §6.8),
    /// then the connection closes once that is written. For a server whose shutdown grace ran out; what
    /// was queued before is sent first.
    package func terminate(errorCode: HTTP2ErrorCode = .noError) {
        self.assertInEventLoop()
        guard self.lifecycle != .closed else { return }
        self.pendingOperations.append(.terminate(errorCode))
        self.drain()
    }

    /// False while `stream`'s queued outbound bytes are above the high watermark (see
    /// ``HTTP2SessionConfiguration/streamOutboundHighWatermark``); true for unknown streams.
    ///
    /// Also false for every stream while the connection's queued bytes are above
    /// ``HTTP2SessionConfiguration/connectionOutboundHighWatermark``.
    package func isWritable(stream: HTTP2StreamID) -> Bool {
        guard let isWritable = self.withStream(stream.rawValue, { $0.isWritable }) else { return true }
        return isWritable && !self.connectionOutboundBlocked
    }

    /// Bytes queued on all streams that libnghttp2 has not taken yet.
    package var bufferedOutboundBytes: Int { self.connectionOutboundBytes }

    /// Bytes queued on `stream` that libnghttp2 has not taken yet.
    package func bufferedOutboundBytes(stream: HTTP2StreamID) -> Int {
        self.withStream(stream.rawValue) { $0.outboundBytes } ?? 0
    }

    /// Streams currently open (including client streams whose HEADERS are still queued).
    package var openStreamCount: Int { self.streams.count }

    /// Whether a new request may be started (client role): false after GOAWAY either way or once closed.
    package var canStartRequests: Bool {
        self.role == .client && self.lifecycle != .closed && !self.goAwayReceived && self.shutdown == .none
            && self.nextClientStreamID > 0
    }

    private func resumeIfDeferred(_ state: HTTP2StreamState) {
        if state.deferred {
            self.pendingOperations.append(.resumeData(state.id))
        }
    }
}
