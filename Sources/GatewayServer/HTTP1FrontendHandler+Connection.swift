import NIOCore
import Observability
import TriggerModel
import WireCodecs

/// The connection's part of the HTTP/1.1 frontend: bytes in, one request at a time, timeouts, drain.
extension HTTP1FrontendHandler {
    private static let empty = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After a failure, the last request or a timeout, the connection's bytes are not decoded (nor trusted);
        // they are still read, so that a lingering close drains them.
        guard !inputDone else { return }
        var bytes = unwrapInboundIn(data)
        if pending == nil || pending!.readableBytes == 0 {
            pending = bytes
        } else {
            pending!.writeBuffer(&bytes)
        }
        decode(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        run(timeouts.readCompleted(), context: context)
        context.fireChannelReadComplete()
    }

    /// Takes requests from the bytes read until the decoder needs more, or a request waits for the answer
    /// before it (RFC 9112 §9.3.2: answers go out in the order of the requests; as NIO's
    /// `HTTPServerPipelineHandler`, one request is served at a time and the next one's bytes wait).
    func decode(context: ChannelHandlerContext) {
        guard !decoding else { return }  // an answer written from inside the loop: the loop goes on by itself
        decoding = true
        defer { decoding = false }
        while !inputDone {
            if unanswered && !requestOpen { return }
            // Between requests with answers still queued past the channel's high water mark (the client is not
            // reading them): the next request waits for `channelWritabilityChanged`, so answers never pile up
            // beyond one (review 24, H4: 20 000 pipelined requests read at once queued ~650 MB of answers).
            if outputBlocked && !requestOpen { return }
            // Uniquely referenced while decoding: a slice handed on does not copy what follows.
            var buffer = pending ?? Self.empty
            pending = nil
            let part: HTTP1RequestDecoder.Part
            do {
                part = try decoder.next(&buffer)
            } catch {
                inputDone = true
                decodingFailed(error, context: context)
                return
            }
            pending = buffer.readableBytes > 0 ? buffer : nil
            switch part {
            case .needMoreBytes:
                // Bytes that make no part yet: a header block begun (its timer starts at the read's end).
                if pending != nil { timeouts.receivedBytes() }
                return
            case .head(let head):
                requestOpen = true
                // `timeouts.request` runs from the head's arrival, the upload included (review 24, M4).
                uploadDeadline = context.eventLoop.now + services.requestTimeout
                unanswered = true
                requestKeepAlive = head.keepAlive
                // RFC 9110 §9.3.2; a CONNECT's 2xx would have no body either (§9.3.6), but this gateway answers
                // CONNECT only with errors, which keep theirs.
                answerOmitsBody = head.methodIs("HEAD")
                run(timeouts.receivedHead(), context: context)
                receivedHead(head, context: context)
            case .body(let chunk):
                run(timeouts.receivedBody(), context: context)
                receivedBody(chunk, context: context)
            case .end:
                requestOpen = false
                requestTarget = nil
                run(timeouts.receivedEnd(), context: context)
                // The connection's last request (`Connection: close`, HTTP/1.0, a drain): nothing after it is
                // served, nor answered (RFC 9112 §9.6).
                if !requestKeepAlive || quiescing {
                    inputDone = true
                    pending = nil
                }
                receivedEnd(context: context)
                if quiescing && !unanswered {
                    // Answered early (before its end) while the connection drains: nothing more to send.
                    closeConnection(context: context)
                    return
                }
            }
        }
    }

    /// An answer's last byte was queued: the next request may be taken (and its bytes read).
    func responseEnded(keepAlive: Bool, context: ChannelHandlerContext) {
        timeouts.sentResponseEnd()
        unanswered = false
        answerOmitsBody = false
        guard keepAlive else {
            inputDone = true
            pending = nil
            // A read held for a pipelined request resumes, so the lingering close drains what the client sends
            // rather than resetting the connection under the answer.
            if readHeld {
                readHeld = false
                context.read()
            }
            return
        }
        // The services' clock (the records' own; the loop's under test): `context.eventLoop.now` cost a retain and
        // a release of the loop's existential per answer (callgrind, REST).
        lastAnswerEnded = services.clock()
        guard !decoding else { return }
        resumeHeldRequest(context: context)
    }

    /// Takes the request held while an answer was owed or queued over the high water mark (its bytes are already
    /// read), then resumes the read held with it (see ``read(context:)``).
    private func resumeHeldRequest(context: ChannelHandlerContext) {
        if pending != nil && !inputDone {
            decode(context: context)
            run(timeouts.readCompleted(), context: context)
        }
        if readHeld {
            readHeld = false
            read(context: context)
        }
    }

    /// Reads go on while a request is answered, unless the next request has begun arriving (a client that
    /// pipelines is held to one read beyond the request being answered) or the connection drains. Holding
    /// every read until the answer, as NIO's pipeline handler does, costs two `epoll_ctl` per request (issue 11).
    func read(context: ChannelHandlerContext) {
        // Nor while, between requests, earlier answers wait in the channel over its high water mark (NIO's
        // default, 64 KiB): reading would only take requests whose answers cannot be sent (review 24, H4; as
        // nginx reads the next request once the answer is handed to the socket, Envoy stops reading over its
        // connection buffer limit).
        let pipelinedWaits = unanswered && !requestOpen && (quiescing || pending != nil)
        if pipelinedWaits || (outputBlocked && !unanswered && !requestOpen) {
            readHeld = true
            return
        }
        context.read()
    }

    /// The channel's queued answers fell under its low water mark: the requests held for it are taken, and reads
    /// held for it resume (see ``read(context:)``).
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        outputBlocked = !context.channel.isWritable
        if !outputBlocked { endClientLag(clientGone: false) }
        if !outputBlocked, !unanswered, !decoding {
            resumeHeldRequest(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Closes the connection from here (the gateway's decision: no end-of-input error follows).
    func closeConnection(context: ChannelHandlerContext) {
        closedHere = true
        context.close(promise: nil)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { closedHere = true }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
        endClientLag(clientGone: true)
        stopWriteProgress()
        drainTimer?.cancel()
        drainTimer = nil
    }

    /// The client went away. Inside a request that is an error (a relayed runner request is cut short); between
    /// requests, behind an answer still pending, or when the gateway closed, it is a clean end.
    func endOfInput(context: ChannelHandlerContext) {
        guard !inputDone else { return }
        inputDone = true
        guard !closedHere, !(unanswered && !requestOpen) else { return }
        if !decoder.isBetweenRequests || pending != nil {
            decodingFailed(nil, context: context)
        }
    }

    /// How long a drain keeps an idle keep-alive connection open for a request already on its way: one that
    /// arrives within it is served, with `Connection: close`. See ``quiesce(context:)``.
    static let drainIdleGrace: TimeAmount = .seconds(1)
    /// How long an idle connection's staged close waits for the client's EOF after our FIN (see
    /// ``closeIdleInStages(context:)``): a request that crossed the FIN needs one round trip to arrive.
    static let drainLingerBound: TimeAmount = .milliseconds(500)

    /// A graceful stop (`ChannelShouldQuiesceEvent`, SIGTERM): every answer from now on says `Connection:
    /// close` and the connection closes after it (RFC 9112 §9.6); a request in progress is served first.
    ///
    /// An idle keep-alive connection is not closed at once (review 18, F10): a proxy reusing it (nginx's
    /// upstream `keepalive`) may have sent a request that is already in our receive buffer or on the wire, and
    /// `close()` with unread input makes the kernel answer RST, which the proxy reports as a 502 for a POST it
    /// does not retry. So, as Envoy's HTTP/1.1 drain does (`Connection: close` on the next response of each
    /// connection during the drain period, then a delayed close), it gets ``drainIdleGrace`` (or the
    /// `shutdown_grace`, if shorter: its expiry closes it the same way) in which a request that arrives is
    /// served with `Connection: close`; then it closes in stages, as RFC 9112 §9.6 asks of a server closing a
    /// connection: FIN first, input read and dropped until the client's EOF or ``drainLingerBound``, then the
    /// close, so that a request crossing our FIN is not answered with RST. Serving rather than only closing in
    /// stages is the choice because a request cut by a FIN is lost all the same for a POST the proxy will not
    /// retry; the staged close only covers the last round trip.
    func quiesce(context: ChannelHandlerContext) {
        quiescing = true
        if unanswered || requestOpen {
            if !requestOpen {
                inputDone = true
                pending = nil
            }
            return
        }
        // Between requests. A head begun by then (or within the grace) is served as any request, bounded by
        // `request_header`; its answer ends the connection.
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        drainTimer = context.eventLoop.scheduleTask(in: Self.drainIdleGrace) {
            let (handler, context) = loopBound.value
            handler.drainTimer = nil
            handler.closeIdleInStages(context: context)
        }
    }

    /// Ends a connection that has no request in progress, in stages (see ``quiesce(context:)``); nothing if a
    /// request has begun since (its answer closes the connection).
    func closeIdleInStages(context: ChannelHandlerContext) {
        guard !unanswered, !requestOpen, !inputDone, decoder.isBetweenRequests, pending == nil,
            context.channel.isActive
        else { return }
        inputDone = true
        state = .closed
        closedHere = true
        stopTimer()
        // An answer still leaving: a client that takes none of it is cut at `write_progress` (under 64 KiB queued
        // the answer's write armed no watch), not held until the grace's end (diff review 58b, L3).
        let queued = Self.queuedOutput(context.channel) > 0
        if queued, writeProgress == nil { watchWriteProgress(context: context) }
        Self.lingeringClose(context.channel, bound: Self.drainLingerBound, afterQueuedOutput: queued)
    }

    /// Closes our side first and lets the client's unread input drain for up to `bound` (or until its EOF)
    /// before closing fully: closing a socket with unread input makes the kernel send RST, and a client still
    /// uploading would lose the error response we just wrote (the reason nginx has `lingering_close`), a
    /// client whose request crossed our FIN would see a reset rather than an end.
    ///
    /// `afterQueuedOutput` (a drain's staged close of a kept-alive connection): the FIN follows the last byte of
    /// an answer still queued (NIO closes the output once its pending writes are written), and `bound` counts from
    /// then: counted from the call, a drain cut a kept-alive answer still leaving for a client that reads at an
    /// ordinary pace (operator review 58, F1: 8 MB of 20 at 1 MB/s, logged as sent whole). A client that stops
    /// reading is cut by the write-progress watch, and by a stop's grace. Otherwise the bound counts from the call:
    /// a caller that closes after its answer's write has nothing queued, and a TLS handshake under way would hold
    /// the output close until it ends.
    static func lingeringClose(_ channel: any Channel, bound: TimeAmount = .seconds(2), afterQueuedOutput: Bool = false)
    {
        guard afterQueuedOutput else {
            channel.close(mode: .output, promise: nil)
            let close = channel.eventLoop.scheduleTask(in: bound) { channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in close.cancel() }
            return
        }
        let outputClosed = channel.eventLoop.makePromise(of: Void.self)
        channel.close(mode: .output, promise: outputClosed)
        outputClosed.futureResult.whenComplete { _ in
            guard channel.isActive else { return }
            let close = channel.eventLoop.scheduleTask(in: bound) { channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in close.cancel() }
        }
    }

    // MARK: Request timeouts

    func stopTimer() {
        timer?.cancel()
        timer = nil
        timerFiresAt = nil
        due = nil
    }

    func run(_ action: HTTP1RequestTimeouts.StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .cancel:
            due = nil
        case .arm(let amount):
            // The loop's clock, not the wall clock: the same on a real loop, virtual under test (advanceTime).
            var due = context.eventLoop.now + amount
            // A body's pieces each within `body_progress`, and the whole upload within `timeouts.request` of
            // the head: a byte per gap does not hold the request open past its deadline (review 24, M4; Envoy's
            // `request_timeout` bounds the whole request's receipt the same way). Past it: the same 408.
            if timeouts.state == .readingBody, uploadDeadline < due { due = uploadDeadline }
            self.due = due
            if let firesAt = timerFiresAt, firesAt <= due { return }
            timer?.cancel()
            schedule(at: due, context: context)
        }
    }

    private func schedule(at deadline: NIODeadline, context: ChannelHandlerContext) {
        timerFiresAt = deadline
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            handler.timerFiresAt = nil
            handler.timerFired(context: context)
        }
    }

    /// The scheduled timer fired: the armed timeout is over, or was moved later (re-arm), or was cancelled.
    private func timerFired(context: ChannelHandlerContext) {
        guard let due else { return }
        if due > context.eventLoop.now {
            schedule(at: due, context: context)
            return
        }
        self.due = nil
        timeoutFired(context: context)
    }

    private func timeoutFired(context: ChannelHandlerContext) {
        switch timeouts.timeoutFired() {
        case .none:
            return
        case .close:
            inputDone = true
            pending = nil
            closeConnection(context: context)
        case .respondAndClose:
            // RFC 9110 §15.5.9: 408 when the server would not wait any longer; the connection is not reused.
            // That is this request's end (its record says 408), and the connection's: nothing read after it is
            // served or answered, the rest of a head or body arriving late or bytes the decoder fails on.
            // A head cut short: its request line, when whole, names what was asked for in the access line and
            // picks the error's shape.
            let line = !open.isOpen ? pending.flatMap { HTTP1RequestDecoder.requestLine(in: $0) } : nil
            inputDone = true
            pending = nil
            let requestID = RequestID.make()
            let target = requestTarget ?? line?.target ?? ""
            let response = RESTResponse.requestTimeout(
                RESTErrorFormat(path: target).response(.requestNotReceivedInTime, requestID: requestID))
            state = .closed
            relay?.abort()
            relay = nil
            collector = .idle
            bufferClaim.release()
            bodyUse = .none
            if !open.isOpen {
                open = services.openRequest(
                    requestID: requestID, frontend: .rest, httpVersion: "HTTP/1.1", method: line?.method ?? "",
                    path: HTTP1FrontendHandler.pathOnly(target), peer: peer)
            }
            write(response, keepAlive: false, lingering: false, context: context)
        }
    }
}
