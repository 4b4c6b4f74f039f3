import HTTP2Engine
import Logging
import NIOCore
import Observability
import ProtoCodec
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The HTTP/2 frontend of one connection: routes each stream to gRPC or REST and answers it.
///
/// It is the session's delegate (stream events in) and a channel handler placed after the engine (to see
/// quiesce and idle events). Everything runs on the connection's event loop, sync calls and stream relays
/// included (``runSync(_:target:state:stream:deliver:)``, ``EventRelay``); only async-mode work (operations) runs in
/// tasks whose outcomes hop back here. Per-stream state lives in `streams` until the engine reports the stream
/// closed, which is also when its call, relay or task is stopped (client RST_STREAM or connection loss).
final class HTTP2FrontendConnection: HTTP2SessionDelegate, ChannelInboundHandler {
    typealias InboundIn = Never

    /// The services of the stream being started: refreshed from `currentServices` when a stream's headers
    /// arrive, so a reload applies to streams opened after it. Held by reference: a stored
    /// `FrontendServices` was copied whole into each call that takes them. `services` reads a field; to pass the
    /// whole services to a call, lend them from the reference held in a local (`SharedFrontendServices`).
    private(set) var sharedServices: SharedFrontendServices
    var services: FrontendServices {
        _read { yield sharedServices.value }
    }
    private var servicesGeneration: Int
    private let currentServices: CurrentFrontendServices
    let eventLoop: any EventLoop
    /// The connection's engine, made first (this connection is its delegate, attached right after): a constant,
    /// so that calling it retains nothing (issue 11: a retain and a release per call through the `var` it was,
    /// ~5 per proxied gRPC call). The session keeps its delegate until the connection ends.
    let session: NGHTTP2Session
    var streams = StreamStates()
    /// Set when the shutdown grace ran out: the session ends once the last stream's answer is out.
    private var terminating = false
    /// An idle period passed and the graceful shutdown began; a second one closes the connection (a peer
    /// that never answers the shutdown PING must not keep it).
    private var idleShutdownStarted = false
    /// `timeouts.idle` counts from here while no stream is open: the connection's start, then each time its last
    /// open stream closes (``idleTimerFired(_:)``).
    private var idleSince = NIODeadline.uptimeNanoseconds(0)
    /// The idle timer's next check; cancelled when the connection ends.
    private var idleCheck: Scheduled<Void>?
    /// Request-body bytes this connection's streams hold buffered together (each stream's
    /// ``StreamState/bufferedBodyBytes``), against `limits.max_buffered_request_bytes_per_connection`
    /// (HTTP2FrontendConnection+RequestWindow.swift).
    var bufferedRequestBytes = 0
    /// Streams whose received DATA is held unconsumed (``StreamState/heldWindow`` > 0).
    var heldWindowStreams = 0

    /// What one stream is doing.
    final class StreamState {
        ///
        /// Every payload is one reference (or none), so the phase is a word and changing it costs a tag store and
        /// at most one release. With the body collector and the deframer as payloads (~150 bytes) every
        /// assignment destroyed the old phase through the enum's generic value witness, payload-less cases
        /// included, and every match copied it (issue 11: ~1 000 instructions per gRPC call; bench/README.md,
        /// "Branch hotpath9").
        enum Phase {
            /// REST: reading the body.
            case restCollecting(RESTBodyReading)
            /// gRPC: reading the request message into ``StreamState/requestMessage`` (the one message of a unary
            /// call, once complete) through ``StreamState/deframer``; the call itself waits in
            /// ``StreamState/grpcCall``.
            case grpcCollecting
            /// gRPC server reflection: a bidirectional call, each request answered as it arrives
            /// (HTTP2FrontendConnection+Reflection.swift).
            case grpcReflection(GRPCReflectionCall)
            /// The answer is computed in a task.
            case running
            /// Answered, waiting for the engine to report the stream closed.
            case done
        }

        /// How this stream is answered if the shutdown grace runs out before it is done.
        enum Wire {
            /// REST: a whole response (503 when nothing was sent yet).
            case rest
            /// REST SSE: response headers went out; an `error` event ends it.
            case eventStream
            case grpc
        }

        /// A REST body being read, and what it is for: behind one reference, so that ``Phase`` stays a word
        /// and the collector grows in place (`reading.collector.append`), never moved out of the phase and back.
        final class RESTBodyReading {
            var collector: RESTBodyCollector
            let use: RESTBodyUse
            /// The body's bytes in the request-buffer budget, returned when the reading ends (its deinit).
            var bufferClaim = RequestBufferClaim()

            init(collector: consuming RESTBodyCollector, use: consuming RESTBodyUse) {
                self.collector = collector
                self.use = use
            }
        }

        var phase: Phase
        var wire = Wire.rest
        /// gRPC: cuts the request body into messages while the phase is `.grpcCollecting` (made from the call's
        /// headers in `grpcReceivedHeaders`); an idle one with no bytes otherwise. A field, not a payload of
        /// ``phase`` (see there), and not an Optional: an Optional of this ~64-byte struct is destroyed through
        /// the runtime's generic witness, even when nil.
        var deframer = GRPCMessageDeframer(maxMessageBytes: 0)
        /// gRPC: the unary call's request message, once the deframer has cut it out.
        var requestMessage: ByteBuffer?
        /// gRPC: the bytes the deframer and ``requestMessage`` hold, in the request-buffer budget; returned when
        /// the message is handed to the call, dropped, or the stream ends (the state's deinit at the latest).
        var bufferClaim = RequestBufferClaim()
        /// What this stream's body holds now (the bytes its claim was last asked for): its share of the
        /// connection's ``HTTP2FrontendConnection/bufferedRequestBytes``; 0 once the body is handed on or dropped.
        var bufferedBodyBytes = 0
        /// Bytes received and not consumed: the stream's WINDOW_UPDATE held back while the connection is over its
        /// bound (their connection-window share went back at once; see ``HTTP2FrontendConnection/admitRequestData``).
        var heldWindow = 0
        var requestID = ""
        /// gRPC: the call decided from the headers, until its request message is complete. Kept here, not in
        /// ``phase``: every match of the phase copied the payload, and the call's context holds a dozen strings
        /// (issue 11: 24 retains and releases per call).
        var grpcCall: GRPCCall?
        var task: Task<Void, Never>?
        /// A sync call running on this loop (``HTTP2FrontendConnection/runSync(_:target:state:stream:deliver:)``).
        var call: TriggerCancellation?
        /// Where that call's outcome goes: set with ``call``, taken by the outcome or dropped by ``stopWork()``.
        /// Kept here so that the call's completion captures this state alone (issue 11: a closure capturing the
        /// connection, the stream, the cancellation, the request id and `deliver` was a context per call). It
        /// holds the connection while the call runs, as that closure did.
        var syncDelivery: SyncDelivery?
        /// A stream's events being relayed (gRPC server streaming, SSE).
        var relay: EventRelay?
        /// gRPC: response headers went out, so errors must go in trailers, not Trailers-Only.
        var sentHeaders = false
        /// gRPC: the message encoding of the answer (nil: identity).
        var responseEncoding: GRPCCompression?
        /// Fulfilled when the stream's outbound queue drains below its watermark.
        var writableWaiters: [EventLoopPromise<Void>] = []
        var deadlineTimer: Scheduled<Void>?
        /// gRPC: when the client's `grpc-timeout` passes (the head's arrival plus it), if it sent one: a
        /// DEADLINE_EXCEEDED answered at or after it is the client's deadline (`RequestRecord.Termination.DT`).
        var clientDeadline: NIODeadline?
        /// gRPC: from when a reset of the unanswered call is the client's deadline rather than its own cancel
        /// (``HTTP2FrontendConnection/deadlineResetSlack(_:)`` before ``clientDeadline``); nil without `grpc-timeout`.
        var clientDeadlineResetFrom: NIODeadline?
        /// The request's record, from its headers until the engine reports the stream closed (`finishRecord`);
        /// `.none` before and after (not an Optional: see ``OpenRequest``). No initial value: a stream made for a
        /// request gets its record at once (``init(phase:open:)``), not a `.none` first that is destroyed when the
        /// record replaces it (a dozen string releases, ~270 instructions per stream; issue 11).
        var open: OpenRequest
        /// The answer's last frame (END_STREAM) was queued: a stream closed after that ended normally.
        var answered = false

        init(phase: Phase, open: consuming OpenRequest) {
            self.phase = phase
            self.open = open
        }

        /// Changes the request's record, if one is open (what `open?.record…` did when `open` was an Optional).
        func updateRecord(_ change: (inout RequestRecord) -> Void) {
            if open.isOpen { change(&open.record) }
        }

        /// gRPC: forgets the request body read so far (the call is answered before its message was complete).
        func dropRequestBody() {
            deframer = GRPCMessageDeframer(maxMessageBytes: 0)
            requestMessage = nil
            bufferClaim.release()
        }

        /// Returns the request-buffer bytes the stream holds (it closed): they need not wait for the state's
        /// deinit, which a call still running may delay.
        func releaseRequestBuffer() {
            bufferClaim.release()
            if case .restCollecting(let reading) = phase { reading.bufferClaim.release() }
        }

        /// The outcome of the sync call ``runSync`` started, on the loop: delivered if this is still the stream's
        /// state and the call was not stopped (``stopWork()`` forgets the call and its delivery first).
        func syncCallEnded(_ result: Result<TriggerResult, any Error>) {
            guard let call, let delivery = syncDelivery.take(),
                delivery.connection.streams.holds(self, at: delivery.stream)
            else { return }
            self.call = nil
            updateRecord { $0.upstream(of: call) }
            // Headers, message and trailers of one answer leave in one write, not one per frame group.
            let outcome = result.mapError { gatewayError(from: $0, requestID: delivery.requestID) }
            if case .failure(let error) = outcome { delivery.connection.services.logFailure(error, of: open) }
            delivery.connection.session.withBatchedWrites {
                delivery.deliver(delivery.connection, self, delivery.stream, delivery.requestID, outcome)
            }
        }

        /// Bytes of this request's body dropped unread (``HTTP2FrontendConnection/droppedBodyAllowance(_:)``).
        var droppedBodyBytes = 0
        /// The client was asked to stop sending (RST_STREAM NO_ERROR after the answer).
        var askedToStop = false
        /// A task or a loop-native call is computing the answer.
        var hasWork: Bool { task != nil || call != nil || relay != nil }

        /// Stops what computes the answer (RST_STREAM from the client, the connection gone, grace over).
        func stopWork() {
            task?.cancel()
            task = nil
            // Forgotten before it is cancelled: a call may complete at once, inside `cancel()`, and its answer
            // must then be dropped, not written next to the one the caller is about to write.
            let call = self.call
            self.call = nil
            syncDelivery = nil
            if let call { updateRecord { $0.upstream(of: call) } }
            call?.cancel()
            let relay = self.relay
            self.relay = nil
            if let endpoint = relay?.endpoint { updateRecord { $0.endpoint = endpoint } }
            relay?.cancel()
        }
    }

    /// The principal the connection's verified client certificate names (see `ListenerTLS.clientPrincipal`).
    private let clientPrincipal: String?
    /// The client's address, for the warning a connection refused for excessive load logs.
    var peerAddress: SocketAddress? {
        didSet { peer = peerAddress?.hostPort }
    }
    /// `peerAddress` as `host:port`, made once for every request's record (the access log's `peer.address`).
    private(set) var peer: String?
    /// Set for an h2c connection on a port that requires TLS (`ProtocolSniffer`'s `.plaintextRefused`): every request is
    /// answered with this error in its protocol and the connection is shut down gracefully, so gRPC and h2c
    /// clients read why (review 10, finding 4) and do not reconnect in a loop, as they do after a bare GOAWAY.
    private let refusal: GatewayError?
    /// ``startRefusalTimer(_:)``'s timer; cancelled when the connection ends.
    private var refusalTimer: Scheduled<Void>?

    init(
        services current: CurrentFrontendServices, session: NGHTTP2Session, eventLoop: any EventLoop,
        clientPrincipal: String? = nil, refusal: GatewayError? = nil
    ) {
        self.session = session
        self.currentServices = current
        self.servicesGeneration = current.generation
        self.clientPrincipal = clientPrincipal
        self.refusal = refusal
        self.sharedServices = current.shared(clientPrincipal: clientPrincipal)
        self.eventLoop = eventLoop
    }

    // MARK: Session events

    func session(
        _ session: NGHTTP2Session, didReceiveHeaders headers: HTTP2Headers, stream: HTTP2StreamID, endStream: Bool
    ) {
        if let refusal {
            refuseForTLS(headers, stream: stream, error: refusal)
            return
        }
        currentServices.refresh(&sharedServices, generation: &servicesGeneration, clientPrincipal: clientPrincipal)
        // Only application/grpc[+codec] is gRPC; look-alikes (gRPC-Web) are answered 415 as REST.
        if case .grpc(let codec) = GRPCContentType(header: headers.first(name: "content-type")) {
            grpcReceivedHeaders(headers, codec: codec, stream: stream, endStream: endStream)
        } else {
            restReceivedHeaders(headers, stream: stream, endStream: endStream)
        }
    }

    /// A request whose header block outgrew `limits.max_header_bytes`: answered in the client's protocol and
    /// logged like any refused request. gRPC: RESOURCE_EXHAUSTED, as gRPC core (grpcio, C++) answers metadata
    /// over its hard limit (a reset would read as INTERNAL); otherwise 431 (RFC 6585 §5), as HTTP/1.1 does.
    func session(
        _ session: NGHTTP2Session,
        didReceiveOversizedHeaders headers: HTTP2Headers,
        size: Int,
        stream: HTTP2StreamID,
        endStream: Bool
    ) {
        if let refusal {
            refuseForTLS(headers, stream: stream, error: refusal)
            return
        }
        currentServices.refresh(&sharedServices, generation: &servicesGeneration, clientPrincipal: clientPrincipal)
        let limit = services.maxHeaderBytes
        let isGRPC = Self.isGRPC(headers)
        services.metrics?.connections.refusedHeaderBlock(.maxHeaderBytes)
        // gRPC: gRPC core's wording, which clients and their users search for.
        let error = GatewayError(
            .headersTooLarge,
            isGRPC
                ? "received metadata size exceeds hard limit (\(size) vs. \(limit))"
                : "request headers exceed limits.max_header_bytes (\(size) vs. \(limit) bytes)")
        refuse(headers, stream: stream, error: error)
    }

    /// A request on an h2c connection to a TLS-only port: answered with `error`, and the graceful GOAWAY begins
    /// (the first request; later ones find it begun), so the client's next call opens a new connection. A body
    /// still coming is read and dropped as for any refused request; ``refusalTimer`` bounds how long. (Not
    /// RST_STREAM(NO_ERROR) after the answer, RFC 9113 §8.1: libnghttp2 drops a stream's queued DATA at the
    /// reset, so the answer would be lost unless the reset waited for its last frame to be written.)
    private func refuseForTLS(_ headers: HTTP2Headers, stream: HTTP2StreamID, error: GatewayError) {
        refuse(headers, stream: stream, error: error)
        session.initiateGracefulShutdown()
    }

    /// In refusal mode, the connection's whole life is bounded by the preface timeout (from when the frontend is
    /// installed): a client that sends the preface and no request, or never reads its answer, is cut then, as the
    /// sniffer cut every cleartext connection at once before refusals were answered in HTTP/2.
    func startRefusalTimer(_ timeout: TimeAmount) {
        guard refusal != nil else { return }
        // Strong on purpose: cancelled when the session closes (sessionDidClose), so it never outlives the connection.
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        refusalTimer = eventLoop.scheduleTask(in: timeout) { bound.value.session.terminate() }
    }

    private static func isGRPC(_ headers: HTTP2Headers) -> Bool {
        if case .grpc = GRPCContentType(header: headers.first(name: "content-type")) { return true }
        return false
    }

    /// How much of a body no one reads (an early answer's, or a route's that reads none) is taken and dropped
    /// before the client is asked to stop with RST_STREAM(NO_ERROR) after the answer (RFC 9113 §8.1; nginx and
    /// nghttpx ask at once): twice `limits.max_body_bytes`. Not at once: curl 7.88 (Debian 12's) discards an answer
    /// its upload is reset after ("Stream error in the HTTP/2 framing layer", against §8.1's MUST NOT), so an
    /// upload up to twice what the gateway takes (a body a little over the cap among them) is read to its end and
    /// its 413 shown; past that no more window is granted, and the reset follows the answer. Before, window was granted for them without end, until
    /// `timeouts.request` (the fifty-third session's protocol review: 2.2 MB in 8 s after a 413).
    static func droppedBodyAllowance(_ limits: CodecLimits) -> Int {
        let (twice, overflow) = limits.maxBodyBytes.multipliedReportingOverflow(by: 2)
        return overflow ? .max : twice
    }

    /// Answers a request refused before any routing with `error` in its protocol (gRPC status, or a REST error
    /// body), logged like any refused request; a body that follows is consumed and dropped.
    private func refuse(_ headers: HTTP2Headers, stream: HTTP2StreamID, error: GatewayError) {
        let isGRPC = Self.isGRPC(headers)
        let requestID = RequestContext.requestID(headers.first(name: "request-id"))
        // `.done`: any body that follows is consumed and dropped.
        let state = StreamState(
            phase: .done,
            open: services.openRequest(
                requestID: requestID, frontend: isGRPC ? .grpc : .rest, httpVersion: "HTTP/2",
                method: headers.first(name: ":method") ?? "",
                path: HTTP1FrontendHandler.pathOnly(headers.first(name: ":path") ?? ""), peer: peer))
        state.requestID = requestID
        streams[stream] = state
        if isGRPC {
            state.wire = .grpc
            grpcFinish(stream, error: error)
        } else {
            restRespond(RESTResponse.error(error, requestID: requestID), stream: stream)
        }
    }

    /// The session is about to cut `stream` (or the connection) for a client that read nothing, or whose
    /// request body stopped: its record says the gateway ended it (`SI`), not the client (`DC`).
    func session(_ session: NGHTTP2Session, idleTimeoutOn stream: HTTP2StreamID) {
        streams[stream]?.updateRecord { $0.termination = .streamIdleTimeout }
    }

    /// `stream`'s request body stopped for `timeouts.body_progress`: answered as HTTP/1.1 answers it (review 18,
    /// F11), REST with 408 in the route's error shape, gRPC with Trailers-Only DEADLINE_EXCEEDED, both saying
    /// "the request was not received in time"; the session then resets the stream with NO_ERROR (RFC 9113
    /// §8.1) and the connection goes on. The record says what the HTTP/1.1 408 says (the status, no `SI`: the
    /// answer is the gateway's, given in the client's protocol). A stream already answered (an early error
    /// whose remaining body is being dropped) or not reading a body is left to the session's CANCEL.
    func session(_ session: NGHTTP2Session, requestBodyTimedOutOn stream: HTTP2StreamID) -> Bool {
        guard let state = streams[stream] else { return false }
        switch state.phase {
        case .restCollecting(let reading):
            // `restRespond` makes the stream `.done`: what body still comes is dropped.
            restRespond(.requestTimeout(reading.use.errorResponse(.requestNotReceivedInTime)), stream: stream)
            return true
        case .grpcCollecting:
            state.grpcCall = nil
            grpcFinish(stream, error: .requestNotReceivedInTime)
            return true
        case .grpcReflection, .running, .done:
            return false
        }
    }

    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool) {
        guard let state = streams[stream] else {
            session.consume(stream: stream, bytes: data.readableBytes)
            return
        }
        state.updateRecord { $0.bytesIn += data.readableBytes }
        // Bodies are gathered (JSON needs the whole document; the cap bounds it), so bytes are released to
        // the peer as they are appended: that is when they have left the connection's buffers.
        let size = data.readableBytes
        // The collector and the deframer grow in place (a class's field, the state's field): uniquely referenced.
        switch state.phase {
        case .restCollecting(let reading):
            do {
                let received = try reading.collector.append(data)
                // The budget: at the first bytes, the declared length at once (one step), else in steps.
                let unauthenticated = reading.collector.unauthenticated
                if !reading.bufferClaim.hold(received, from: services.bodyBudget(unauthenticated: unauthenticated)) {
                    throw services.refusedForBudget(unauthenticated: unauthenticated, peer: peer)
                }
                requestBodyHolds(received, state)
            } catch {
                state.phase = .done
                reading.bufferClaim.release()
                restRespond(reading.use.errorResponse(gatewayError(from: error)), stream: stream)
            }
        case .grpcCollecting:
            state.deframer.append(data)
            // Pull complete messages as they arrive: an oversized one is refused from its 5-byte prefix,
            // before its body is buffered.
            do {
                while let next = try state.deframer.next() {
                    guard state.requestMessage == nil else {
                        throw GatewayError(.invalidArgument, "a unary call carries exactly one request message")
                    }
                    state.requestMessage = next
                }
                // The budget: the message being received at its declared length (reserved at its prefix), the
                // complete one at its (decompressed) size.
                let budget = services.requestBuffer
                let held = state.deframer.heldBytes + (state.requestMessage?.readableBytes ?? 0)
                if !state.bufferClaim.hold(held, from: budget) {
                    let error = FrontendServices.requestBufferFullError(limit: budget.limit)
                    services.refusedRequestBody(.requestBuffer, error: error, peer: peer)
                    throw error
                }
                requestBodyHolds(held, state)
            } catch {
                session.consume(stream: stream, bytes: size)
                let error = gatewayError(from: error)
                if state.deframer.exceededDecompressedBytes {
                    services.refusedRequestBody(.decompression, error: error, peer: peer)
                }
                grpcFinish(stream, error: error)
                return
            }
        case .grpcReflection(let call):
            // It consumes the bytes itself, as their requests are answered.
            grpcReflectionReceived(data, call: call, stream: stream, endStream: endStream)
            return
        case .running, .done:
            // A body no one reads (answered early, or a route that reads none): dropped, up to an allowance. Past
            // it the client is asked to stop (after the answer, if that has not left), and the stream's window
            // stays shut meanwhile: its bytes go back to the connection's window only (a client held to one stream
            // window while the answer waits, not granted more). A frame that ends the request needs no ask.
            state.droppedBodyBytes += size
            if !endStream, state.droppedBodyBytes > Self.droppedBodyAllowance(services.limits) {
                if !state.askedToStop {
                    state.askedToStop = true
                    session.resetWhenAnswered(stream)
                }
                session.releaseConnectionWindow(stream: stream, bytes: size)
                return
            }
        }
        admitRequestData(size, of: state, stream: stream)
        if endStream { receivedEndStream(state, stream: stream) }
    }

    func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {
        receivedEndStream(stream)
    }

    func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        guard let state = streams.removeValue(forKey: stream) else { return }
        state.releaseRequestBuffer()
        // Its held window, if any, the engine gave back to the connection; others may be granted now.
        requestBodyEnded(state, stream: stream)
        state.stopWork()  // RST_STREAM from the client, or the connection went away: stop the backend call
        state.deadlineTimer?.cancel()
        for waiter in state.writableWaiters { waiter.fail(CancellationError()) }
        state.writableWaiters = []
        finishRecord(state)
        if streams.isEmpty {
            // The idle period starts now (the check scheduled meanwhile reads it; no timer is touched per call).
            idleSince = eventLoop.now
            if terminating { session.terminate() }
        }
    }

    func session(_ session: NGHTTP2Session, streamWritabilityChanged stream: HTTP2StreamID, isWritable: Bool) {
        guard isWritable, let state = streams[stream] else { return }
        let waiters = state.writableWaiters
        state.writableWaiters = []
        for waiter in waiters { waiter.succeed() }
    }

    func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?) {
        if let error = error as? HTTP2EngineError { connectionEnded(by: error) }
        refusalTimer?.cancel()
        refusalTimer = nil
        for (_, state) in streams {
            state.releaseRequestBuffer()
            state.stopWork()
            state.deadlineTimer?.cancel()
            for waiter in state.writableWaiters { waiter.fail(CancellationError()) }
            finishRecord(state)
        }
        streams.removeAll()
    }

    /// The engine ended the connection with `error`: a warning saying why, and a count. The client may be broken
    /// or hostile and reconnect in a loop, so each kind of warning is held back as `request body refused` is
    /// (``FrontendServices/connectionErrorLog``): the first at once, then at most one per 10 s carrying
    /// `connections.held_back`, the connections ended alike meanwhile, and `connections.held_back_since`; each
    /// one held back is a debug line, and every one is counted (review 26, M3: one warning per connection, no
    /// counter). Each stream still open gets its access-log line, flagged `DPE` when the client's fault ended the
    /// connection (``cutTermination``). Counted before the warning is written: whoever reads the warning (an
    /// operator, a test that waits for the line) then finds it in the counter too (the warning first was a CI
    /// failure, 2026-12-06: a scrape right after the line read 0).
    private func connectionEnded(by error: HTTP2EngineError) {
        let peer: Logger.MetadataValue = "\(peerAddress?.hostPort ?? "unknown")"
        if error.code == .excessiveLoad {
            services.metrics?.connections.endedForExcessiveLoad(.rapidReset)
            warnConnectionEnded(
                "HTTP/2 connection ended with GOAWAY ENHANCE_YOUR_CALM: rapid reset (stream reset rate over the limit)",
                key: "rapid_reset", metadata: ["peer.address": peer, "reason": "\(error.message)"])
        } else if error.code == .controlFrameFlood {
            services.metrics?.connections.endedForExcessiveLoad(.controlFrameFlood)
            warnConnectionEnded(
                "HTTP/2 connection ended with GOAWAY ENHANCE_YOUR_CALM: control frame flood (PING/SETTINGS)",
                key: "control_frame_flood", metadata: ["peer.address": peer, "reason": "\(error.message)"])
        } else if Self.isProtocolError(error) {
            // A connection error the client caused (malformed frame, too many streams): a warning naming it, as
            // nghttpx logs it, held back per GOAWAY code (a client that changes its fault is told of at once);
            // COMPRESSION_ERROR has its own warning below (and is counted here too).
            let code = error.peerFaultCode ?? .protocolError
            Self.countProtocolError(code, services: services)
            warnConnectionEnded(
                "HTTP/2 connection ended for a protocol error", key: "protocol_error/\(code)",
                metadata: ["peer.address": peer, "reason": "\(error.message)"])
        } else if let reason = Self.headerBlockRefusal(error) {
            // The block could not be answered on its stream (it was never decoded to its end): say why, and count
            // it, as its stream gets no access-log line.
            let message =
                switch reason {
                case .tooManyContinuations:
                    "HTTP/2 connection ended with GOAWAY ENHANCE_YOUR_CALM: request header block over the ceiling "
                        + "(more than \(HTTP2SessionConfiguration.maxContinuationFrames) CONTINUATION frames)"
                case .excessiveHeaderLists:
                    "HTTP/2 connection ended with GOAWAY ENHANCE_YOUR_CALM: request header blocks over "
                        + "limits.max_header_bytes past what is decoded to refuse them (\(error.message))"
                default:
                    "HTTP/2 connection ended with GOAWAY COMPRESSION_ERROR: request header block not decodable "
                        + "(a field over 65536 encoded bytes, or malformed HPACK)"
                }
            services.metrics?.connections.refusedHeaderBlock(reason)
            if reason == .compressionError { Self.countProtocolError(.compressionError, services: services) }
            warnConnectionEnded(message, key: reason.rawValue, metadata: ["peer.address": peer])
        }
    }

    /// `trigger_gateway_http2_protocol_errors_total{reason}` + 1, for a GOAWAY with `code`.
    private static func countProtocolError(_ code: HTTP2ErrorCode, services: FrontendServices) {
        guard let reason = ConnectionMetrics.HTTP2ProtocolError(code: code.rawValue) else { return }
        services.metrics?.connections.endedForProtocolError(reason)
    }

    /// Logs `message` as a warning unless ``FrontendServices/connectionErrorLog`` holds it back under `key` (one
    /// of a closed set: a kind of ending, never a peer), in which case it is a debug line.
    private func warnConnectionEnded(_ message: String, key: String, metadata: Logger.Metadata) {
        guard let heldBack = services.connectionErrorLog.admitLine(key) else {
            services.logger.debug("\(message)", metadata: metadata)
            return
        }
        var metadata = metadata
        heldBack.annotate(&metadata, countKey: "connections.held_back")
        services.logger.warning("\(message)", metadata: metadata)
    }

    /// A connection error the peer caused that no other warning covers: nghttp2's own GOAWAY with an error code
    /// (its debug data in the message), or a fatal `mem_recv` error (bad client preface).
    private static func isProtocolError(_ error: HTTP2EngineError) -> Bool {
        if error.code == .protocolError { return true }
        return error.code == .goAwaySent && error.http2ErrorCode != .compressionError
    }

    /// The header-block refusal an engine error stands for: ours (too many CONTINUATION frames, blocks over the
    /// limit past what is decoded to refuse them), or the
    /// GOAWAY(COMPRESSION_ERROR) libnghttp2 sends when HPACK decoding fails (RFC 9113 §4.3). nil otherwise.
    private static func headerBlockRefusal(_ error: HTTP2EngineError) -> ConnectionMetrics.HeaderBlockRefusal? {
        if error.code == .headerBlockTooLarge { return .tooManyContinuations }
        if error.code == .excessiveHeaderLists { return .excessiveHeaderLists }
        if error.code == .goAwaySent, error.http2ErrorCode == .compressionError { return .compressionError }
        return nil
    }

    private func receivedEndStream(_ stream: HTTP2StreamID) {
        guard let state = streams[stream] else { return }
        receivedEndStream(state, stream: stream)
    }

    /// `state`: `stream`'s current state, in the caller's hand (issue 11: each lookup a retain and a release).
    private func receivedEndStream(_ state: StreamState, stream: HTTP2StreamID) {
        // The body is complete: handed on below (or refused), it no longer counts against the connection's bound.
        defer { requestBodyEnded(state, stream: stream) }
        switch state.phase {
        case .restCollecting(let reading):
            state.phase = .running
            let body: RESTBody
            do {
                body = try reading.collector.finishBody()
            } catch {
                state.phase = .done
                restRespond(reading.use.errorResponse(gatewayError(from: error)), stream: stream)
                return
            }
            switch (reading.use, body) {
            case (.trigger(let plan), .batch(let batch)):
                restRun(
                    plan.makeRequest(batch: batch, now: services.clock()), target: plan.target, state: state,
                    stream: stream)
            case (.work(let work), _):
                startTask(stream: stream) {
                    await work.run(body)
                } deliver: { connection, response in
                    connection.restRespond(response, stream: stream)
                }
            case (.trigger, .bytes), (.trigger, .parts):
                // A trigger's collector is never `raw` (see `RESTRequestHead.route`).
                preconditionFailure("a trigger body was collected raw")
            }
        case .grpcCollecting:
            let partial = state.deframer.hasPartialMessage
            guard !partial, let message = state.requestMessage.take(), let call = state.grpcCall.take() else {
                let reason = partial ? "truncated gRPC message" : "missing request message"
                grpcFinish(stream, error: GatewayError(.invalidArgument, reason))
                return
            }
            state.phase = .running
            grpcReceivedRequest(message, call: call, state: state, stream: stream)
            // Handed on: the call holds what it decoded from the message, not the message.
            state.bufferClaim.release()
        case .grpcReflection(let call):
            grpcReflectionReceivedEnd(call: call, stream: stream)
        case .running, .done:
            break
        }
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startIdleTimer(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopIdleTimer()
    }

    func channelActive(context: ChannelHandlerContext) {
        startIdleTimer(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopIdleTimer()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // Graceful shutdown: GOAWAY after a notice; open streams finish, new ones are refused.
            session.initiateGracefulShutdown()
        case let expired as ShutdownGraceExpiredEvent:
            shutdownGraceExpired(expired, channel: context.channel)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: timeouts.idle

    /// `timeouts.idle` on HTTP/2 (review 24, M3): the time with no stream open, as Envoy's `idle_timeout` ("no
    /// active requests"). It starts with the connection and again when the last open stream closes; it is not
    /// pushed back by connection-level frames (PING, SETTINGS, WINDOW_UPDATE, RFC 9113 §6.7: a PING measures
    /// liveness, it is not a request), which a read-based timer (`ReadIdleHandler`, HTTP/1.1's) counted as
    /// activity, so a client sending one now and then held the connection, and its `max_connections` slot,
    /// forever. Once it passes: the graceful GOAWAY; a second idle period closes the connection (a peer that
    /// never answers the shutdown PING must not keep it).
    ///
    /// One check at a time, scheduled lazily as `ReadIdleHandler` does: a stream's open and close touch no timer
    /// (the close stores ``idleSince``); a check that finds a stream open comes back one whole timeout later,
    /// and one that finds the connection idle for less than the timeout comes back when it would be reached.
    /// Times are the event loop's (`EventLoop.now`), so a testing loop moves them by hand.
    private func startIdleTimer(_ context: ChannelHandlerContext) {
        guard idleCheck == nil else { return }
        idleSince = context.eventLoop.now
        scheduleIdleCheck(context, in: services.idleTimeout)
    }

    private func stopIdleTimer() {
        idleCheck?.cancel()
        idleCheck = nil
    }

    private func scheduleIdleCheck(_ context: ChannelHandlerContext, in amount: TimeAmount) {
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { [self] in
            idleTimerFired(context)
        }
    }

    private func idleTimerFired(_ context: ChannelHandlerContext) {
        idleCheck = nil
        guard context.channel.isActive else { return }
        let timeout = services.idleTimeout
        guard streams.isEmpty else {
            scheduleIdleCheck(context, in: timeout)
            return
        }
        let idle = context.eventLoop.now - idleSince
        guard idle >= timeout else {
            scheduleIdleCheck(context, in: timeout - idle)
            return
        }
        if idleShutdownStarted {
            context.close(promise: nil)
            return
        }
        idleShutdownStarted = true
        // The second period counts from now (or from the close of a stream opened before the final GOAWAY).
        idleSince = context.eventLoop.now
        scheduleIdleCheck(context, in: timeout)
        session.initiateGracefulShutdown()
    }

    /// The grace period ran out with streams unfinished: each gets an answer in its protocol (gRPC
    /// `UNAVAILABLE` in trailers or Trailers-Only, REST 503 with `Retry-After`, SSE an `error` event and the
    /// end of the stream), then GOAWAY with the last processed stream id (RFC 9113 §6.8) once they are out.
    private func shutdownGraceExpired(_ expired: ShutdownGraceExpiredEvent, channel: any Channel) {
        // Answers still leaving at the grace's end (handed over whole, queued in the session or the channel, which
        // the graceful close waits for) are cut now or by the drain's final close: each counted in the drain's
        // `requests.cut`, its record flagged, and the connection said in the log (operator review 58, F1: they were
        // cut a second later, uncounted, logged as sent whole). With nothing else to answer, the cut is now.
        var leaving = 0
        var working = false
        for (id, state) in streams {
            guard case .done = state.phase, !state.hasWork else {
                working = true
                continue
            }
            // An early answer (a 413 while the client still uploads) that has left is not cut by the close.
            guard session.bufferedOutboundBytes(stream: id) > 0 else { continue }
            leaving += 1
            if state.open.isOpen { state.updateRecord { $0.cutAtShutdown = true } }
        }
        let unsent = channel.isActive ? (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0 : 0
        if leaving > 0 || (unsent > 0 && !working) {
            for _ in 0..<max(leaving, 1) { expired.cuts.cut() }
            logAnswersCut(streams: leaving, unsent: unsent)
            if !working {
                channel.close(promise: nil)
                return
            }
        }
        terminating = true
        let error = GatewayError(.unavailable, "the gateway is shutting down; retry the request")
        session.withBatchedWrites {
            for (id, state) in streams {
                if case .done = state.phase, !state.hasWork { continue }
                // Keeps the endpoint of the call it stops (review 26 L3: a cut request looked like a runner's 503).
                state.stopWork()
                if state.open.isOpen {
                    state.updateRecord { $0.cutAtShutdown = true }
                    expired.cuts.cut()
                }
                switch state.wire {
                case .grpc:
                    grpcFinish(id, error: error)
                case .eventStream:
                    state.phase = .done
                    var encoded = ByteBuffer()
                    SSEEncoder.encode(.error(error), into: &encoded)
                    sendBody(stream: id, encoded, endStream: true)
                case .rest:
                    let format = RESTErrorFormat(path: state.open.isOpen ? state.open.record.path : "")
                    restRespond(format.response(error, requestID: state.requestID), stream: id)
                }
            }
        }
        if streams.isEmpty { session.terminate() }
    }

    /// The stop's cut of answers still leaving at `shutdown_grace` (``shutdownGraceExpired(_:channel:)``): at most
    /// one line per 10 s, the others at debug, as HTTP/1.1's (a stop may cut many connections).
    private func logAnswersCut(streams: Int, unsent: Int) {
        let message = "HTTP/2 answers cut: timeouts.shutdown_grace ended before the client took them"
        var metadata: Logger.Metadata = [
            "peer.address": .string(peer ?? "unknown"), "streams.open": .stringConvertible(streams),
            "bytes.unsent": .stringConvertible(unsent),
        ]
        guard let heldBack = services.connectionErrorLog.admitLine("http2.shutdown_cut") else {
            services.logger.debug("\(message)", metadata: metadata)
            return
        }
        heldBack.annotate(&metadata, countKey: "connections.held_back")
        services.logger.info("\(message)", metadata: metadata)
    }

    // MARK: Helpers shared by REST and gRPC

    /// Queues response body bytes (REST body, SSE events, gRPC messages), counted for the request's record.
    func sendBody(stream: HTTP2StreamID, _ data: ByteBuffer, endStream: Bool) {
        if let state = streams[stream] {
            sendBody(state, stream: stream, data, endStream: endStream)
        } else {
            session.sendData(stream: stream, data, endStream: endStream)
        }
    }

    /// ``sendBody(stream:_:endStream:)`` for `stream`'s current state, already in hand (no lookup: issue 11).
    func sendBody(_ state: StreamState, stream: HTTP2StreamID, _ data: ByteBuffer, endStream: Bool) {
        state.updateRecord { $0.bytesOut += data.readableBytes }
        if endStream { state.answered = true }
        session.sendData(stream: stream, data, endStream: endStream)
    }

    /// Who cut a stream closed before its answer's end: the client (`DC`: its RST_STREAM, or its connection
    /// closed), unless the session ended the connection for the client's fault, a GOAWAY with an error code
    /// (`DPE`, review 26 M3: those streams were counted as clients giving up). Asked only for such a stream.
    private var cutTermination: RequestRecord.Termination {
        guard let error = session.closeReason as? HTTP2EngineError, error.peerFaultCode != nil else {
            return .downstreamDisconnected
        }
        return .downstreamProtocolError
    }

    /// The stream is closed: its record goes to the observers, once. A stream closed before its answer's
    /// end (RST_STREAM from the client, the connection gone) is recorded as the client's cancellation: 499
    /// when no REST response head went out, gRPC CANCELLED when no status did, and flagged with who ended it
    /// whatever had been sent: Envoy's `DC` (the client), `DPE` when the session ended the connection for the
    /// client's fault (``cutTermination``), or `SI` when the session cut a client that read nothing
    /// (``session(_:idleTimeoutOn:)``). A gRPC call reset from ``StreamState/clientDeadlineResetFrom``
    /// on is the client's own deadline (review 21, I1): `DT` and DEADLINE_EXCEEDED, what the client's library
    /// reported, as when the gateway's own timer wins that race.
    private func finishRecord(_ state: StreamState) {
        // Moved out, not copied and then cleared: a copy retained each of the record's strings once more.
        var request = state.open.take()
        guard request.isOpen else { return }
        if !state.answered {
            if request.record.frontend == .grpc, let from = state.clientDeadlineResetFrom, services.clock() >= from {
                if request.record.termination == nil { request.record.termination = .downstreamDeadline }
                request.record.grpcStatus = GatewayError.Code.deadlineExceeded.rpcCode
            } else if request.record.frontend == .grpc {
                if request.record.termination == nil { request.record.termination = cutTermination }
                request.record.grpcStatus = RequestRecord.grpcCancelled
            } else {
                if request.record.termination == nil { request.record.termination = cutTermination }
                if !request.sentHead { request.record.status = RequestRecord.clientClosedRequest }
            }
        }
        FrontendServices.finish(consume request, observers: services.requestObservers, clock: services.clock)
    }

    /// Completes when `stream` can take more bytes: how a slow reader slows the producer (no unbounded
    /// queue between the backend and the client).
    func waitUntilWritable(_ stream: HTTP2StreamID) -> EventLoopFuture<Void> {
        lagWait(stream) ?? eventLoop.makeSucceededVoidFuture()
    }

    /// ``waitUntilWritable(_:)`` as `EventRelay`'s `deliver` answers: nil when `stream` can take more bytes now
    /// (no future, no callback: the common case, once per relayed event), else the wait; failed when the stream
    /// is gone.
    func lagWait(_ stream: HTTP2StreamID) -> EventLoopFuture<Void>? {
        guard let state = streams[stream] else { return eventLoop.makeFailedFuture(CancellationError()) }
        if session.isWritable(stream: stream) { return nil }
        let promise = eventLoop.makePromise(of: Void.self)
        state.writableWaiters.append(promise)
        return promise.futureResult
    }

    /// Runs a sync trigger on this loop (no task, no hop: DESIGN.md "Threading model") and hands its outcome
    /// to `deliver` if the stream is still open by then. Closing the stream cancels the call.
    /// `target`: the request's route as the frontend resolved it (``TriggerDispatcher/target(for:)``).
    /// `deliver` gets the stream, its state (still the stream's, on this loop) and the request's id with the
    /// outcome, so it need capture nothing (issue 11: a closure that captured the stream, or the whole request, was
    /// a context allocated per call) and look nothing up (each lookup a retain and a release, atomic operations).
    /// `state`: `stream`'s current state (the caller's, not looked up again).
    func runSync(
        _ request: consuming TriggerRequest,
        target: TriggerDispatcher.Target?,
        state: StreamState,
        stream: HTTP2StreamID,
        deliver:
            @escaping (
                _ connection: HTTP2FrontendConnection, _ state: StreamState, _ stream: HTTP2StreamID,
                _ requestID: String, _ outcome: Result<TriggerResult, GatewayError>
            ) -> Void
    ) {
        let cancellation = TriggerCancellation()
        state.call = cancellation
        // Only the id is needed afterwards: keeping the request copied its dozen strings (issue 11).
        state.syncDelivery = SyncDelivery(
            connection: self, stream: stream, requestID: request.requestID, deliver: deliver)
        // Reported on this loop, with no future (issue 11).
        services.dispatcher.runSync(request, target: target, on: eventLoop, cancellation: cancellation) {
            [state] result in state.syncCallEnded(result)
        }
    }

    /// A sync call's delivery: see ``StreamState/syncDelivery``.
    struct SyncDelivery {
        let connection: HTTP2FrontendConnection
        let stream: HTTP2StreamID
        let requestID: String
        let deliver:
            (
                _ connection: HTTP2FrontendConnection, _ state: StreamState, _ stream: HTTP2StreamID,
                _ requestID: String, _ outcome: Result<TriggerResult, GatewayError>
            ) -> Void
    }

    /// Runs `work` off the loop and hands its result back to `deliver` on the loop, if the stream is still
    /// open by then.
    func startTask<T: Sendable>(
        stream: HTTP2StreamID,
        _ work: @escaping @Sendable () async -> T,
        deliver: @escaping (HTTP2FrontendConnection, T) -> Void
    ) {
        // `deliver` is not Sendable: it only ever runs on this loop, so it travels loop-bound.
        let bound = NIOLoopBound((connection: self, deliver: deliver), eventLoop: eventLoop)
        let eventLoop = self.eventLoop
        let task = Task {
            let value = await work()
            eventLoop.execute {
                let (connection, deliver) = bound.value
                guard connection.streams[stream] != nil else { return }
                // Headers, message and trailers of one answer leave in one write, not one per frame group
                // (bench/README.md "where the time goes": writes were the top cost of a unary call).
                connection.session.withBatchedWrites { deliver(connection, value) }
            }
        }
        streams[stream]?.task = task
    }
}

@available(*, unavailable)
extension HTTP2FrontendConnection: Sendable {}

extension HTTP2FrontendConnection {
    /// The open streams' states by id: an `HTTP2StreamObjectTable` (a hash table keyed by stream id, cheaper
    /// per lookup than a `Dictionary`, issue 11), typed.
    ///
    /// The lookups are `mutating` though they change nothing: the table is a stored property of a class, and a
    /// non-mutating member read it through a copy of the whole table (its slot array's and newest value's
    /// retains and releases, each copy through the runtime's generic value witnesses: ~500 instructions per
    /// gRPC call in `syncCallEnded` and `streamClosed`; issue 11, fiftieth session); a mutating one gets the
    /// property's storage in place.
    struct StreamStates: Sequence {
        private var table = HTTP2StreamObjectTable()

        subscript(id: HTTP2StreamID) -> StreamState? {
            mutating get { table[id].map { unsafeDowncast($0, to: StreamState.self) } }
            set { table[id] = newValue }
        }

        @discardableResult
        mutating func removeValue(forKey id: HTTP2StreamID) -> StreamState? {
            table.removeValue(forKey: id).map { unsafeDowncast($0, to: StreamState.self) }
        }

        mutating func removeAll() { table.removeAll() }

        /// Whether `state` is still `id`'s state: `self[id] === state` without a retain and release.
        mutating func holds(_ state: StreamState, at id: HTTP2StreamID) -> Bool { table.holds(state, at: id) }

        var isEmpty: Bool { mutating get { table.isEmpty } }

        /// For the rare walks over every stream (shutdown, connection loss): a copy of the entries.
        func makeIterator() -> IndexingIterator<[(key: HTTP2StreamID, value: StreamState)]> {
            table.map { (key: $0.key, value: unsafeDowncast($0.value, to: StreamState.self)) }.makeIterator()
        }
    }
}

extension HTTP2Headers {
    /// The forwarded fields (`SensitiveFields(fieldName:)`) of which some copy came never indexed
    /// (RFC 7541 §6.2.3): the stricter reading when a name repeats. For gRPC metadata and REST over h2 alike;
    /// callers ask only when ``containsNeverIndexed`` says there is a marked field at all.
    var sensitiveForwardedFields: SensitiveFields {
        var marks = SensitiveFields()
        for field in self where field.neverIndexed {
            if let bit = SensitiveFields(fieldName: field.name) { marks.insert(bit) }
        }
        return marks
    }
}
