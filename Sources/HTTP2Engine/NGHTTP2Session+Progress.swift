import NIOCore

/// What a peer that does not progress may hold (issue 10, items 1 and 4): the connection-wide ceiling on
/// queued outbound bytes, the write-progress timeout of streams whose bytes cannot leave, and the server's
/// preface timeout. Time comes from the event loop (`EventLoop.now`), so tests on an `EmbeddedEventLoop`
/// move it with `advanceTime(by:)`.
extension NGHTTP2Session {
    // MARK: Connection ceiling

    /// `count` bytes were queued on `stream` by the owner.
    func queuedOutbound(_ count: Int, on stream: HTTP2StreamState) {
        if stream.lastOutboundProgress == nil, let now = self.currentTime() {
            stream.lastOutboundProgress = now
        }
        self.connectionOutboundBytes += count
        if !self.connectionOutboundBlocked,
            self.connectionOutboundBytes > self.configuration.connectionOutboundHighWatermark
        {
            self.connectionOutboundBlocked = true
            self.pendingWritabilityChanges.append(contentsOf: self.streams.keys.sorted())
        }
        self.armWriteProgressTimer()
    }

    /// libnghttp2 took `count` of `stream`'s queued bytes (called from the data provider).
    func tookOutbound(_ count: Int, from stream: HTTP2StreamState) {
        guard count > 0 else { return }
        stream.lastOutboundProgress = stream.outboundBytes > 0 ? self.currentTime() : nil
        self.connectionOutboundBytes -= count
        self.unblockConnectionIfDrained()
    }

    /// `stream` left the registry: whatever it still had queued will never be sent.
    func releaseOutbound(of stream: HTTP2StreamState) {
        guard stream.outboundBytes > 0 else { return }
        self.connectionOutboundBytes -= stream.outboundBytes
        stream.outboundBytes = 0
        stream.outbound.removeAll()
        stream.lastOutboundProgress = nil
        self.unblockConnectionIfDrained()
    }

    private func unblockConnectionIfDrained() {
        guard self.connectionOutboundBlocked,
            self.connectionOutboundBytes <= self.configuration.connectionOutboundHighWatermark / 2
        else { return }
        self.connectionOutboundBlocked = false
        self.pendingWritabilityChanges.append(contentsOf: self.streams.keys.sorted())
    }

    // MARK: Timers
    //
    // The timers' closures hold the session strongly: ``cancelTimers()`` drops them when the transport closes,
    // and one that still fires finds the session no longer `.active` and does nothing. A weak capture gave every
    // session a side table, which sends each retain and release of it through the runtime's slow path
    // (~75 and ~95 instructions instead of ~5 and ~10, dozens of times per call; issue 11).

    /// Server: closes the connection when the peer's first SETTINGS has not arrived in time.
    func armPrefaceTimer() {
        guard self.role == .server, !self.receivedPeerSettings, self.prefaceTimer == nil,
            let timeout = self.configuration.prefaceTimeout, let eventLoop = self.eventLoop
        else { return }
        self.prefaceTimer = eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.prefaceTimeoutFired(timeout)
        }
    }

    private func prefaceTimeoutFired(_ timeout: TimeAmount) {
        self.prefaceTimer = nil
        guard !self.receivedPeerSettings, self.lifecycle == .active else { return }
        let error = HTTP2EngineError(
            .timedOut,
            "no client preface within \(timeout.milliseconds) ms",
            http2ErrorCode: .settingsTimeout
        )
        self.failConnection(error, goAwayCode: .settingsTimeout)
    }

    /// Schedules the write-progress check at the earliest moment a queued stream could be overdue.
    func armWriteProgressTimer() {
        guard self.writeProgressTimer == nil, let timeout = self.configuration.writeProgressTimeout,
            let eventLoop = self.eventLoop, self.lifecycle == .active
        else { return }
        guard let oldest = self.streams.values.compactMap(\.lastOutboundProgress).min() else { return }
        self.writeProgressTimer = eventLoop.assumeIsolated().scheduleTask(deadline: oldest + timeout) {
            self.writeProgressTimerFired(timeout)
        }
    }

    /// Resets each stream whose queued bytes have not moved for the timeout (RST_STREAM CANCEL, which gRPC
    /// clients report as CANCELLED); closes the connection instead when it is the transport that has not
    /// taken anything (a peer that stopped reading altogether cannot be sent an RST_STREAM either).
    private func writeProgressTimerFired(_ timeout: TimeAmount) {
        self.writeProgressTimer = nil
        guard self.lifecycle == .active, let now = self.eventLoop?.now else { return }
        let stalled = self.streams.values.filter { stream in
            guard let since = stream.lastOutboundProgress else { return false }
            return now - since >= timeout
        }.map(\.id).sorted()
        if !stalled.isEmpty {
            for id in stalled { self.withDelegate { $0.session(self, idleTimeoutOn: HTTP2StreamID(id)) } }
            if let transport = self.transport, !transport.isWritable {
                if self.closeError == nil {
                    self.closeError = HTTP2EngineError(
                        .timedOut,
                        "the peer read nothing for \(timeout.milliseconds) ms"
                    )
                }
                transport.sessionClose()
                return
            }
            for id in stalled {
                // Forget the queued bytes now: the stream is going, and they must not hold the ceiling.
                if let stream = self.streams[id] { self.releaseOutbound(of: stream) }
                self.pendingOperations.append(.resetStream(id, .cancel))
            }
        }
        self.armWriteProgressTimer()
        self.drain()
    }

    /// Server: `stream`'s request moved (a header block began or ended, body bytes came); it is overdue if
    /// nothing more comes within `timeout`.
    func requestProgressed(_ stream: HTTP2StreamState, within timeout: TimeAmount?) {
        // The event loop is taken (a retain) only when a timer is to be armed, not for each progress.
        guard let timeout, let now = self.currentTime() else {
            stream.inboundDeadline = nil
            return
        }
        let deadline = min(now + timeout, stream.receiptDeadline)
        stream.inboundDeadline = deadline
        if let scheduled = self.requestProgressTimer {
            guard deadline < scheduled.deadline else { return }
            scheduled.task.cancel()
        }
        guard let eventLoop = self.eventLoop else { return }
        let task = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.requestProgressTimerFired()
        }
        self.requestProgressTimer = (deadline, task)
    }

    /// Ends each request stream that is overdue and re-arms for the next deadline. A body that stopped after its
    /// header block was delivered is the owner's to answer first (``HTTP2SessionDelegate/session(_:requestBodyTimedOutOn:)``:
    /// a 408 or DEADLINE_EXCEEDED, then RST_STREAM NO_ERROR once it is sent, review 18 F11: a bare CANCEL told
    /// the client nothing); a header block never finished, or a body the owner does not answer, is reset with
    /// CANCEL.
    private func requestProgressTimerFired() {
        self.requestProgressTimer = nil
        guard self.lifecycle == .active, let eventLoop = self.eventLoop else { return }
        let now = eventLoop.now
        var next: NIODeadline?
        // One drain, one write, for every answer and reset of this round (``withBatchedWrites`` drains on its way
        // out, as the plain `drain()` here did before answers were asked for).
        self.withBatchedWrites {
            for id in self.streams.keys.sorted() {
                guard let stream = self.streams[id], let deadline = stream.inboundDeadline else { continue }
                guard deadline <= now else {
                    next = min(next ?? deadline, deadline)
                    continue
                }
                // A body the owner holds unconsumed (its window held back: the frontend's per-connection bound on
                // buffered bodies) is waiting for us, not silent: its body-progress deadline moves on, and only the
                // request's whole-receipt deadline (`receiptDeadline`, `timeouts.request`) still ends it.
                if stream.unconsumedBytes > 0, deadline < stream.receiptDeadline,
                    let timeout = self.configuration.requestBodyProgressTimeout
                {
                    let later = min(now + timeout, stream.receiptDeadline)
                    stream.inboundDeadline = later
                    next = min(next ?? later, later)
                    continue
                }
                stream.inboundDeadline = nil
                if stream.announced, stream.receivedHeaders, let delegate = self.delegate {
                    // Set before asking, so that it holds whenever the answer's END_STREAM leaves; it may be set
                    // already (``resetWhenAnswered(_:)``), and is then counted once and left set.
                    let wasSet = stream.resetWhenAnswered
                    if !wasSet {
                        stream.resetWhenAnswered = true
                        self.streamsResettingWhenAnswered += 1
                    }
                    if delegate.session(self, requestBodyTimedOutOn: HTTP2StreamID(id)) { continue }
                    if !wasSet, stream.resetWhenAnswered {
                        stream.resetWhenAnswered = false
                        self.streamsResettingWhenAnswered -= 1
                    }
                }
                self.withDelegate { $0.session(self, idleTimeoutOn: HTTP2StreamID(id)) }
                self.pendingOperations.append(.resetStream(id, .cancel))
            }
            if let next {
                let task = eventLoop.assumeIsolated().scheduleTask(deadline: next) {
                    self.requestProgressTimerFired()
                }
                self.requestProgressTimer = (next, task)
            }
        }
    }

    func cancelTimers() {
        self.requestProgressTimer?.task.cancel()
        self.requestProgressTimer = nil
        self.prefaceTimer?.cancel()
        self.prefaceTimer = nil
        self.writeProgressTimer?.cancel()
        self.writeProgressTimer = nil
    }
}

extension TimeAmount {
    fileprivate var milliseconds: Int64 { self.nanoseconds / 1_000_000 }
}
