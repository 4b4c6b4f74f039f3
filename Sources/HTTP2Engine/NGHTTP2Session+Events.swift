import CNghttp2
import NIOCore

/// What libnghttp2 reports, one method per callback (the trampolines in `NGHTTP2Callbacks.swift` call
/// exactly one of these). They run with libnghttp2 on the stack: they may update Swift state and call the
/// delegate, but anything that needs libnghttp2 goes to ``pendingOperations``.
extension NGHTTP2Session {
    /// A HEADERS frame starts: a new peer stream (server) or a response/trailer block (client).
    func receivedBeginHeaders(frame: UnsafePointer<nghttp2_frame>) throws {
        let id = frame.pointee.hd.stream_id
        if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST, self.role == .server, self.streams[id] == nil {
            self.streams[id] = HTTP2StreamState(id: id, announced: false)
        }
        guard let stream = self.streams[id] else {
            self.headerStream = nil
            return
        }
        self.headerStream = stream
        // Room for a typical block at once, not grown field by field (a request's ~10 fields took 5 allocations):
        // the spare block's storage when it has that room.
        let capacity = self.role == .server && !stream.receivedHeaders ? 16 : 4
        if let spare = self.spareHeaderBlock.take(), spare.capacity >= capacity {
            stream.headerBlock = spare
        } else {
            stream.headerBlock = HTTP2Headers(capacity: capacity)
        }
        stream.headerBlockSize = 0
        if self.role == .server, !stream.receivedHeaders {
            self.requestProgressed(stream, within: self.configuration.requestHeaderTimeout)
        }
    }

    /// One decoded header field (nghttp2 has validated it against RFC 9113 §8.2 already); `neverIndexed` when it
    /// came as a "literal never indexed" (RFC 7541 §6.2.3), kept with the field (``HTTP2Headers/Field/neverIndexed``).
    ///
    /// - Returns: 0, or NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE when a response or trailer block outgrows
    ///   ``HTTP2SessionConfiguration/maxHeaderListSize``: libnghttp2 then resets the stream (INTERNAL_ERROR)
    ///   and keeps decoding the block for HPACK's sake, the way nghttpx rejects oversized blocks. An oversized
    ///   request block (server) is counted to its end and reported to the delegate instead, which answers
    ///   it in the client's protocol: a reset reads as INTERNAL to gRPC clients, and as a network error to
    ///   HTTP ones.
    func receivedHeader(
        frame: UnsafePointer<nghttp2_frame>,
        name: UnsafeBufferPointer<UInt8>,
        value: UnsafeBufferPointer<UInt8>,
        neverIndexed: Bool
    ) throws -> Int32 {
        let id = frame.pointee.hd.stream_id
        // Borrowed (see ``borrowedHeaderStream``): nothing below sets ``headerStream``, so the strong reference it
        // keeps holds the stream for the whole call.
        if let borrowed = self.borrowedHeaderStream {
            let result = borrowed._withUnsafeGuaranteedRef { stream -> Int32? in
                stream.id == id
                    ? self.receivedHeader(name: name, value: value, neverIndexed: neverIndexed, on: stream) : nil
            }
            if let result { return result }
        }
        guard let stream = self.streams[id] else { return 0 }
        return self.receivedHeader(name: name, value: value, neverIndexed: neverIndexed, on: stream)
    }

    /// ``receivedHeader(frame:name:value:neverIndexed:)`` for the field's stream.
    @inline(__always)
    private func receivedHeader(
        name: UnsafeBufferPointer<UInt8>,
        value: UnsafeBufferPointer<UInt8>,
        neverIndexed: Bool,
        on stream: HTTP2StreamState
    ) -> Int32 {
        // RFC 9113 §6.5.2: the uncompressed size plus 32 bytes of overhead per field.
        stream.headerBlockSize += name.count + value.count + 32
        if stream.headerBlockSize > self.configuration.maxHeaderListSize {
            guard self.role == .server, !stream.receivedHeaders else {
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
            }
            // Kept past the limit: only one short content-type (which protocol to answer in); the rest is counted.
            // One: a block that repeats an indexed field costs the sender one byte per field, and kept fields
            // would cost the gateway ~50 (security review, H1).
            if !stream.headerBlockOverflowed {
                stream.headerBlockOverflowed = true
                stream.overflowKeptContentType = stream.headerBlock.first(name: "content-type") != nil
            }
            // A block that decodes far past the limit counts against the connection when it crosses the line (the
            // field's own size is what it crossed with); blocks a proxy in front allows (60-64 KiB against our
            // 16 KiB) never reach it, so clients multiplexed on one upstream connection are not cut for them
            // (diff review 60, M-3).
            let expanded = HTTP2SessionConfiguration.headerListCeilingFactor * self.configuration.maxHeaderListSize
            if stream.headerBlockSize > expanded, stream.headerBlockSize - (name.count + value.count + 32) <= expanded {
                self.oversizedHeaderBlocks += 1
                if self.oversizedHeaderBlocks > HTTP2SessionConfiguration.maxOversizedHeaderBlocks {
                    return self.refuseHeaderLists(
                        "more than \(HTTP2SessionConfiguration.maxOversizedHeaderBlocks) request header blocks "
                            + "decoding past \(expanded) bytes on one connection")
                }
            }
            if stream.headerBlockSize > self.configuration.headerListCeiling {
                return self.refuseHeaderLists(
                    "a request header block that decodes to more than \(self.configuration.headerListCeiling) bytes")
            }
            if !stream.overflowKeptContentType, value.count <= 128, name.elementsEqual("content-type".utf8) {
                stream.overflowKeptContentType = true
                stream.headerBlock.appendReceived(name: "content-type", value: String(decoding: value, as: UTF8.self))
            }
            return 0
        }
        // RFC 9110 §5.5: leading and trailing whitespace is not part of a field value. The server role lets
        // such values through (see `NGHTTP2Tables.makeOptions`), so they are trimmed here, for every field.
        var trimmed = value[...]
        while let first = trimmed.first, first == 0x20 || first == 0x09 { trimmed = trimmed.dropFirst() }
        while let last = trimmed.last, last == 0x20 || last == 0x09 { trimmed = trimmed.dropLast() }
        // Common names and values are literals, not decoded (``HTTP2CommonFields``); a long value of a field that
        // repeats, received lately on this connection, is that string again (``RecentFieldValues``).
        let value = UnsafeBufferPointer(rebasing: trimmed)
        let commonName = HTTP2CommonFields.name(name)
        stream.headerBlock.append(
            name: commonName ?? String(decoding: name, as: UTF8.self),
            value: HTTP2CommonFields.value(value) ?? self.recentFieldValues.string(value, name: commonName),
            isPseudo: name.first == UInt8(ascii: ":"),
            neverIndexed: neverIndexed
        )
        return 0
    }

    /// Ends the connection for request header blocks that cost too much to decode for a refusal
    /// (``HTTP2EngineError/Code/excessiveHeaderLists``): the error is parked and the callback fails, so `mem_recv`
    /// stops at once and ``receive(_:)`` sends GOAWAY(ENHANCE_YOUR_CALM).
    private func refuseHeaderLists(_ why: String) -> Int32 {
        if self.parkedError == nil {
            self.parkedError = HTTP2EngineError(.excessiveHeaderLists, why, http2ErrorCode: .enhanceYourCalm)
        }
        return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
    }

    /// A DATA payload chunk; kept until its frame completes so the owner gets the END_STREAM flag with it.
    func receivedDataChunk(streamID: Int32, data: UnsafeBufferPointer<UInt8>) throws {
        let found: Void? = self.withStream(streamID) { stream in
            if stream.inboundData == nil {
                stream.inboundData = self.allocator.buffer(capacity: data.count)
            }
            stream.inboundData!.writeBytes(UnsafeRawBufferPointer(data))
            stream.unconsumedBytes += data.count
            if stream.inboundDeadline != nil {
                self.requestProgressed(stream, within: self.configuration.requestBodyProgressTimeout)
            }
        }
        if found == nil {
            // Not a stream we track (it is closing): give the window back at once so it is not leaked.
            self.pendingOperations.append(.consume(streamID, data.count))
        }
    }

    /// A complete frame arrived.
    func receivedFrame(_ frame: UnsafePointer<nghttp2_frame>) throws {
        let header = frame.pointee.hd
        let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(header.type) {
        case NGHTTP2_HEADERS.rawValue:
            // The stream is read borrowed, and what goes to the delegate taken out of it first: the delegate may
            // close the stream (issue 11: the strong lookup was a retain and a release, atomic operations).
            let received = self.withFrameStream(header.stream_id) { stream in
                self.receivedHeaderBlock(on: stream, endStream: endStream)
            }
            self.headerStream = nil
            guard case .some((let event, var block)) = received else { return }
            let id = HTTP2StreamID(header.stream_id)
            switch event {
            case .informational:
                break  // RFC 9110 §15.2: wait for the final response
            case .headers:
                self.withDelegate { $0.session(self, didReceiveHeaders: block, stream: id, endStream: endStream) }
            case .oversizedHeaders(let size):
                self.withDelegate {
                    $0.session(
                        self, didReceiveOversizedHeaders: block, size: size, stream: id, endStream: endStream)
                }
            case .trailers:
                self.withDelegate { $0.session(self, didReceiveTrailers: block, stream: id) }
            }
            // After the delegate: its storage is unshared unless the delegate kept the block. A large block's
            // storage is let go: kept, every connection would hold its largest block's array for its life.
            if block.capacity <= Self.spareHeaderBlockCapacity {
                block.removeAllKeepingCapacity()
                self.spareHeaderBlock = consume block
            }

        case NGHTTP2_DATA.rawValue:
            // Taken out of the borrowed stream before the delegate runs (see HEADERS).
            let received = self.withStream(header.stream_id) { stream -> ByteBuffer? in
                if endStream, self.role == .server { stream.inboundDeadline = nil }
                return stream.inboundData.take()
            }
            guard case .some(let taken) = received else { return }
            let data = taken ?? self.allocator.buffer(capacity: 0)
            guard data.readableBytes > 0 || endStream else { return }
            self.withDelegate {
                $0.session(
                    self,
                    didReceiveData: data,
                    stream: HTTP2StreamID(header.stream_id),
                    endStream: endStream
                )
            }

        case NGHTTP2_RST_STREAM.rawValue:
            try self.receivedReset()

        case NGHTTP2_GOAWAY.rawValue:
            self.goAwayReceived = true
            self.withDelegate {
                $0.session(
                    self,
                    didReceiveGoAway: HTTP2StreamID(frame.pointee.goaway.last_stream_id),
                    errorCode: HTTP2ErrorCode(frame.pointee.goaway.error_code)
                )
            }

        case NGHTTP2_SETTINGS.rawValue:
            if header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0, !self.receivedPeerSettings {
                self.receivedPeerSettings = true
                self.prefaceTimer?.cancel()
                self.prefaceTimer = nil
            }

        case NGHTTP2_PING.rawValue:
            guard header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0,
                case .awaitingPingAck(let payload) = self.shutdown
            else { return }
            if Self.pingPayload(of: frame) == payload {
                self.shutdown = .goAwaySubmitted
                self.pendingOperations.append(.finalGoAway)
            }

        default:
            break
        }
    }

    /// What a complete header block is, for its delegate call.
    enum HeaderBlockEvent {
        /// Client: a 1xx response (RFC 9110 §15.2), not delivered.
        case informational
        case headers
        /// The block exceeded the header list limit (its size in bytes, as libnghttp2 counts it).
        case oversizedHeaders(Int)
        /// A second block (nghttp2's HTTP messaging checks make it carry END_STREAM).
        case trailers
    }

    /// `body` with the state of the stream a HEADERS frame completed, borrowed: ``headerStream`` when it is that
    /// stream (the block's fields were decoded for it: no hash), else from ``streams``; nil when neither has it.
    /// Same contract as ``withStream(_:_:)``.
    @inline(__always)
    private func withFrameStream<R>(_ id: Int32, _ body: (HTTP2StreamState) -> R) -> R? {
        if let current = self.borrowedHeaderStream, current._withUnsafeGuaranteedRef({ $0.id }) == id {
            return current._withUnsafeGuaranteedRef(body)
        }
        return self.withStream(id, body)
    }

    /// A HEADERS frame completed `stream`'s header block: the request deadlines (server), the stream's flags, and
    /// the block taken out of the stream (swapped: a copy was a retain and a release of its storage, issue 11),
    /// with what it is. Runs with `stream` borrowed (``withStream(_:_:)``): it calls nothing out.
    private func receivedHeaderBlock(
        on stream: HTTP2StreamState, endStream: Bool
    ) -> (HeaderBlockEvent, HTTP2Headers) {
        if self.role == .server {
            if endStream {
                stream.inboundDeadline = nil
            } else if !stream.receivedHeaders {
                // The request's header block is complete; from here its body must keep coming, and end in time.
                if let total = self.configuration.requestReceiptTimeout, let now = self.currentTime() {
                    stream.receiptDeadline = now + total
                }
                self.requestProgressed(stream, within: self.configuration.requestBodyProgressTimeout)
            }
        }
        var block = HTTP2Headers()
        swap(&block, &stream.headerBlock)
        if self.role == .client, !stream.receivedHeaders, let status = block.first(name: ":status"),
            status.utf8.first == UInt8(ascii: "1")
        {
            return (.informational, block)
        }
        if stream.headerBlockOverflowed {
            stream.headerBlockOverflowed = false
            stream.receivedHeaders = true
            stream.announced = true
            return (.oversizedHeaders(stream.headerBlockSize), block)
        }
        if !stream.receivedHeaders {
            stream.receivedHeaders = true
            stream.announced = true
            return (.headers, block)
        }
        return (.trailers, block)
    }

    /// Server: a client RST_STREAM takes a token of ``HTTP2SessionConfiguration/streamResetRateLimit``.
    /// When the bucket runs dry this throws `.excessiveLoad`, which stops `mem_recv` at this frame (before
    /// libnghttp2 closes the stream or counts it against its own, higher limit) and makes ``receive(_:)`` end
    /// the connection with GOAWAY(ENHANCE_YOUR_CALM).
    private func receivedReset() throws {
        guard let limit = self.takeStreamResetToken() else { return }
        throw HTTP2EngineError(
            .excessiveLoad,
            "rapid reset: the client reset streams faster than the limit (burst \(limit.burst), "
                + "\(limit.refillPerSecond)/s)",
            http2ErrorCode: .enhanceYourCalm
        )
    }

    /// Server: an RST_STREAM the server sent that the owner did not ask for (``HTTP2StreamState/resetRequested``)
    /// is libnghttp2's answer to a stream error the client provoked (a WINDOW_UPDATE overflowing a stream's
    /// window, a content-length mismatch, a malformed field, DATA over the window, a stream over
    /// SETTINGS_MAX_CONCURRENT_STREAMS): "MadeYouReset" (CVE-2025-8671) cancels a started request as cheaply
    /// as the client's own RST_STREAM, so it takes a token of the same bucket. When the bucket runs dry the
    /// connection ends with GOAWAY(ENHANCE_YOUR_CALM) and `.excessiveLoad`, as for ``receivedReset()``
    /// (nghttp2 ≥ 1.66 and nghttpx count these too). Counted as the reset leaves, the one place every such
    /// reset passes (libnghttp2 1.52 reports only some stream errors to `on_invalid_frame_recv`).
    private func sentReset(_ frame: UnsafePointer<nghttp2_frame>) {
        let id = frame.pointee.hd.stream_id
        guard self.role == .server, self.closeError == nil, self.withStream(id, { $0.resetRequested }) != true,
            let limit = self.takeStreamResetToken()
        else { return }
        let code = HTTP2ErrorCode(frame.pointee.rst_stream.error_code)
        self.closeError = HTTP2EngineError(
            .excessiveLoad,
            "rapid reset: the client's stream errors made the server reset streams faster than the limit "
                + "(burst \(limit.burst), \(limit.refillPerSecond)/s; last RST_STREAM \(code))",
            http2ErrorCode: .enhanceYourCalm
        )
        // Applied by the drain loop this runs in: GOAWAY, then want_read and want_write are 0 and it closes.
        self.pendingOperations.append(.terminate(.enhanceYourCalm))
    }

    /// Takes a token of the server's stream reset bucket (client resets and the resets its stream errors
    /// provoke share it). Returns the limit when the bucket ran dry (the connection must end), nil otherwise
    /// (a token was left, or there is no limit, or this is a client session).
    private func takeStreamResetToken() -> HTTP2StreamResetRateLimit? {
        guard self.role == .server, let limit = self.configuration.streamResetRateLimit,
            let now = self.currentTime()
        else { return nil }
        if self.streamResetBucket == nil {
            self.streamResetBucket = HTTP2TokenBucket(limit: limit, now: now)
        }
        return self.streamResetBucket!.take(now: now) ? nil : limit
    }

    /// The 8 opaque bytes of a PING frame, big-endian, read in place from the frame libnghttp2 lent us.
    ///
    /// `nghttp2_frame` is a C union, so `frame.pointee.ping.opaque_data` copies a union member (a tuple)
    /// out of a temporary; issue 10 saw the comparison that followed it lost in `-O` builds. Here the bytes
    /// are read through `frame` itself, which libnghttp2 keeps valid for the whole callback: every union
    /// member starts at offset 0 (C11 §6.7.2.1), so the frame's address is the `nghttp2_ping`'s address.
    static func pingPayload(of frame: UnsafePointer<nghttp2_frame>) -> UInt64 {
        let offset = MemoryLayout<nghttp2_ping>.offset(of: \nghttp2_ping.opaque_data)!
        let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(frame) + offset, count: 8)
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// A stream closed (both sides ended, or RST_STREAM either way, or GOAWAY cut it off).
    func streamClosed(streamID: Int32, errorCode: UInt32) throws {
        if self.headerStream?.id == streamID { self.headerStream = nil }
        guard let stream = self.streams.removeValue(forKey: streamID) else { return }
        if stream.resetWhenAnswered { self.streamsResettingWhenAnswered -= 1 }
        self.releaseOutbound(of: stream)
        // Bytes the owner will never consume now; without this the connection window would shrink for good.
        // (Less those whose connection share went back already: `releaseConnectionWindow`.)
        let unreleased = stream.unconsumedBytes - stream.connectionReleasedBytes
        if unreleased > 0 {
            self.pendingOperations.append(.consumeConnection(unreleased))
        }
        if stream.announced {
            self.withDelegate {
                $0.session(self, streamClosed: HTTP2StreamID(streamID), errorCode: HTTP2ErrorCode(errorCode))
            }
        }
    }

    /// A frame we queued will never be sent. For a request's HEADERS that means its stream never opened
    /// (GOAWAY arrived, or it was reset while queued), so no `on_stream_close` follows: report it here.
    func frameNotSent(_ frame: UnsafePointer<nghttp2_frame>, libraryError: Int32) throws {
        let header = frame.pointee.hd
        guard UInt32(header.type) == NGHTTP2_HEADERS.rawValue, frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST,
            let stream = self.streams.removeValue(forKey: header.stream_id)
        else { return }
        self.releaseOutbound(of: stream)
        if stream.announced {
            self.withDelegate {
                $0.session(self, streamClosed: HTTP2StreamID(header.stream_id), errorCode: .refusedStream)
            }
        }
    }

    /// A frame left; a GOAWAY with an error code is why the connection is about to close. The last frame of an
    /// answer given before its request ended (``HTTP2StreamState/resetWhenAnswered``: the body stopped, or an
    /// early answer) is followed by RST_STREAM NO_ERROR while the client's side is still open: queued only now,
    /// since a reset submitted with the answer could leave before it.
    func frameSent(_ frame: UnsafePointer<nghttp2_frame>) throws {
        let header = frame.pointee.hd
        if self.streamsResettingWhenAnswered > 0, header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0,
            header.stream_id != 0, let stream = self.streams[header.stream_id], stream.resetWhenAnswered
        {
            stream.resetWhenAnswered = false
            self.streamsResettingWhenAnswered -= 1
            // Not if the request ended meanwhile (checked as it is submitted): the stream closes with this frame.
            self.pendingOperations.append(.stopRequestBody(header.stream_id))
            return
        }
        if UInt32(header.type) == NGHTTP2_RST_STREAM.rawValue {
            self.sentReset(frame)
            return
        }
        guard UInt32(header.type) == NGHTTP2_GOAWAY.rawValue else { return }
        let code = HTTP2ErrorCode(frame.pointee.goaway.error_code)
        if code != .noError, self.closeError == nil {
            // libnghttp2 puts why in the debug data ("request HEADERS: max concurrent streams exceeded").
            let goAway = frame.pointee.goaway
            var message = "sent GOAWAY \(code)"
            if let debug = goAway.opaque_data, goAway.opaque_data_len > 0 {
                let bytes = UnsafeBufferPointer(start: debug, count: goAway.opaque_data_len)
                message += ": " + String(decoding: bytes, as: UTF8.self)
            }
            self.closeError = HTTP2EngineError(.goAwaySent, message, http2ErrorCode: code)
        }
    }

    /// The data provider of `streamID` asks for up to `buffer.count` bytes.
    ///
    /// - Returns: the bytes written, or NGHTTP2_ERR_DEFERRED when the queue is empty and the owner has not
    ///   ended the stream (``resumeIfDeferred`` resumes it); NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE (reset
    ///   the stream) for a stream we no longer track.
    func readOutboundData(
        streamID: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        flags: UnsafeMutablePointer<UInt32>
    ) throws -> Int {
        self.withStream(streamID) { stream -> Int in
            let written = stream.readOutbound(into: buffer)
            self.tookOutbound(written, from: stream)
            if !stream.isWritable, stream.outboundBytes <= self.configuration.streamOutboundHighWatermark / 2 {
                stream.isWritable = true
                self.pendingWritabilityChanges.append(streamID)
            }
            if stream.outbound.isEmpty, stream.outboundEnded {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = stream.outboundTrailers.take() {
                    // END_STREAM rides on the trailers' HEADERS instead (RFC 9113 §8.1).
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    self.pendingOperations.append(.submitTrailers(streamID, trailers))
                }
                return written
            }
            if written == 0 {
                stream.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
            return written
        } ?? Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
}
