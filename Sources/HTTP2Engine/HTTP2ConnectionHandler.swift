package import NIOCore

/// The NIO end of an HTTP/2 connection: feeds every inbound `ByteBuffer` to its ``NGHTTP2Session`` and
/// writes what the session produces: one coalesced write + flush per drain; with
/// ``HTTP2SessionConfiguration/flushesOncePerTick`` and the event loop's flush list, one write + flush per connection
/// when the list flushes it, the drains of that read or tick together (a drain that takes what waits to 64 KiB or
/// more writes it at once, flushed with the rest); with that setting but no list (a loop sharing its thread: tests),
/// a write per drain and one flush per tick.
///
/// It owns the session (the owner may keep a reference too, via ``session``). It sits last in the
/// pipeline, after any TLS or sniffer handler: nothing is passed further inbound, and nothing is written
/// through it by other handlers. The session starts (sends SETTINGS) as soon as the handler is in an active
/// channel. `mem_send` pauses while the channel is not writable and resumes on `channelWritabilityChanged`.
/// When the channel goes inactive (or the handler is removed), every open stream is reported closed and then
/// the session.
///
/// Server behind the protocol sniffer: add this handler, then let the sniffer re-fire the buffered bytes,
/// *including* the 24-byte preface; the default ``HTTP2SessionConfiguration/expectsClientPreface`` (true)
/// makes the session check it. Set it to false only if the preface was dropped before re-firing.
package final class HTTP2ConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = Never
    package typealias OutboundIn = Never
    package typealias OutboundOut = ByteBuffer

    /// The session this handler drives; call its operations on the channel's event loop.
    package let session: NGHTTP2Session
    private var context: ChannelHandlerContext?
    /// With ``HTTP2SessionConfiguration/flushesOncePerTick``: the event loop's list of connections waiting for a
    /// flush, taken when the handler is added; and where this connection waits in it.
    private let flushesOncePerTick: Bool
    private var flushList: HTTP2FlushList?
    /// Without a list (a loop that shares its thread with another's: tests), whether this connection's own tick
    /// flush is scheduled.
    private var flushScheduled = false
    package var flushListing = HTTP2FlushList.Listing.none
    /// Between the first `channelRead` of a readable event and its `channelReadComplete`: NIO reads a socket up to
    /// `maxMessagesPerRead` times per event, and what those reads write is flushed once, at the event's end.
    private var isInReadEvent = false
    /// ``sessionClose()`` has begun: a close it causes (through a writability event) is the same close.
    private var isClosing = false
    /// The channel's writability, as of its last writability event: the session asks at each drain (nine per
    /// proxied gRPC call), and `context.channel.isWritable` cost three retains and releases of the context and
    /// channel, each an atomic operation (issue 11). NIO fires the event inside the write that makes the channel
    /// unwritable; the change back is fired after its write loop, so a drain in between (a write promise's callback)
    /// still sees unwritable and leaves its output to the next drain, which that event starts. Each event reads the
    /// channel again rather than toggling. A test that sets an `EmbeddedChannel`'s `isWritable` must fire the event,
    /// as a socket channel does.
    private var channelIsWritable = false

    package init(
        role: HTTP2SessionRole,
        configuration: HTTP2SessionConfiguration = .defaults,
        delegate: (any HTTP2SessionDelegate)?
    ) {
        self.session = NGHTTP2Session(role: role, configuration: configuration, delegate: delegate)
        self.flushesOncePerTick = configuration.flushesOncePerTick
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.channelIsWritable = context.channel.isWritable
        if self.flushesOncePerTick { self.flushList = HTTP2FlushList.forLoop(context.eventLoop) }
        self.session.attach(transport: self, eventLoop: context.eventLoop, allocator: context.channel.allocator)
        if context.channel.isActive {
            self.session.start()
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        // Output a drain left for the flush leaves now: once the handler is gone nothing else would write it (a
        // channel that is closing fails the write, as it would have failed it in its outbound buffer).
        if let output = self.session.takeDeferredOutput(), context.channel.isActive {
            context.writeAndFlush(NIOAny(output), promise: nil)
        }
        self.session.transportClosed()
        self.session.detachTransport()
        self.flushList?.remove(self)
        if self.isInReadEvent {
            self.isInReadEvent = false
            self.flushList?.readEnded(on: context.eventLoop)
        }
        self.flushList = nil
        self.context = nil
        self.channelIsWritable = false
    }

    package func channelActive(context: ChannelHandlerContext) {
        self.session.start()
        context.fireChannelActive()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.session.transportClosed()
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let flushList = self.flushList else {
            self.session.receive(Self.unwrapInboundIn(data))
            return
        }
        // What this readable event's reads write, to this connection or to others of the loop, is flushed when it
        // ends (or, for a busy connection, at the end of the tick): see ``HTTP2FlushList``.
        if !self.isInReadEvent {
            self.isInReadEvent = true
            flushList.readStarted()
        }
        self.session.receive(Self.unwrapInboundIn(data))
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        if self.isInReadEvent {
            self.isInReadEvent = false
            self.flushList?.readEnded(on: context.eventLoop)
        }
        context.fireChannelReadComplete()
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.channelIsWritable = context.channel.isWritable
        self.session.transportWritabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    /// A transport error (reset, TLS failure) ends the connection; it becomes the session's close reason.
    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.session.closeError == nil { self.session.closeError = error }
        context.close(promise: nil)
    }
}

extension HTTP2ConnectionHandler: HTTP2SessionTransport {
    var isWritable: Bool {
        self.context != nil && self.channelIsWritable
    }

    func sessionWrite(_ bytes: ByteBuffer) {
        guard let context = self.context else { return }
        // `NIOAny(bytes)`, not `Self.wrapOutboundOut(bytes)`: the latter was called unspecialised, through
        // NIOCore's generic extension (~500 instructions a write, two writes per proxied gRPC call; issue 11).
        if let flushList = self.flushList {
            context.write(NIOAny(bytes), promise: nil)
            flushList.written(self, on: context.eventLoop)
        } else if self.flushesOncePerTick {
            context.write(NIOAny(bytes), promise: nil)
            guard !self.flushScheduled else { return }
            self.flushScheduled = true
            // Tasks run after the tick's I/O: every drain of this tick is written by one flush.
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                self.context?.flush()
            }
        } else {
            context.writeAndFlush(NIOAny(bytes), promise: nil)
        }
    }

    /// With the event loop's flush list: a drain's output waits in the session for this connection's flush
    /// (``flushListedWrites()``), so all the drains of a read or a tick leave in one write.
    var defersWrites: Bool { self.flushList != nil }

    func sessionOutputDeferred() {
        // Listed already (the read's or the tick's earlier drains): nothing to do, and no retain of the context and
        // list to find that out (`written` checks the same first).
        guard self.flushListing == .none, let context = self.context, let flushList = self.flushList else { return }
        flushList.written(self, on: context.eventLoop)
    }

    func sessionClose() {
        // Once: the write below may cross the channel's high watermark, whose writability event drains the session,
        // which finds nothing left to do and closes again; that inner close, unlisted already, closed at once and
        // the channel failed the write before this one flushed it: the GOAWAY was lost (review of 60b5bc2).
        // Later calls are the same close too: the channel is closing, and the flush list or this flush sends what is
        // left before it goes.
        guard !self.isClosing else { return }
        self.isClosing = true
        // What the last drains wrote or left for the flush (a GOAWAY) must not be dropped by the close.
        if self.flushListing != .none || self.flushScheduled {
            self.flushList?.remove(self)
            self.writeDeferredOutput()
            self.context?.flush()
        }
        guard let channel = self.context?.channel else { return }
        if self.session.closeError == nil, let timeout = self.session.configuration.writeProgressTimeout {
            let queued = (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            Self.closeAfterQueuedOutput(channel, queued: queued, writeProgressTimeout: timeout)
            return
        }
        channel.close(promise: nil)
    }

    /// How long a graceful close with nothing queued in the channel waits for the peer's EOF after our FIN: what the
    /// kernel still holds (up to its send buffer, a few MB) leaves meanwhile (``closeAfterQueuedOutput``).
    static let lingerBound: TimeAmount = .seconds(2)

    /// A graceful end (the last stream closed after a GOAWAY, no error): the FIN follows the last byte of what is
    /// still queued in the channel (NIO closes the output once its pending writes are written), and the full close
    /// comes at the peer's EOF, which a client sends once it has read to our FIN. Closed at once, a stop's drain cut
    /// every answer still leaving (operator review 58, F1: a 20 MB answer never reached the client, logged as sent);
    /// closed a moment after the FIN, the frames the client sends while it reads what the kernel still holds
    /// (WINDOW_UPDATE, PING) drew an RST, which drops what it has not read (curl: 17.7 of 20 MB, "connection
    /// reset"). So the wait for the EOF is `writeProgressTimeout` when bytes were queued (nginx's `lingering_time`,
    /// 30 s, bounds the same wait), and ``lingerBound`` when only the kernel may hold some (diff review 58b, M1: a
    /// client with a small window leaves nothing in the channel); a peer that takes none of the queued bytes for
    /// `writeProgressTimeout` is cut, as a stream is (``HTTP2SessionConfiguration/writeProgressTimeout``). Without
    /// that setting (backend connections) the close is immediate, as before. A stop's grace bounds it too.
    private static func closeAfterQueuedOutput(_ channel: any Channel, queued: Int, writeProgressTimeout: TimeAmount) {
        let outputClosed = channel.eventLoop.makePromise(of: Void.self)
        channel.close(mode: .output, promise: outputClosed)
        let bound = queued > 0 ? writeProgressTimeout : lingerBound
        outputClosed.futureResult.whenComplete { _ in
            guard channel.isActive else { return }
            let linger = channel.eventLoop.scheduleTask(in: bound) { channel.close(promise: nil) }
            // Not held for the bound once the channel is gone (it would keep the channel alive that long).
            channel.closeFuture.whenComplete { _ in linger.cancel() }
        }
        if queued > 0 { watchQueuedOutput(channel, last: queued, timeout: writeProgressTimeout) }
    }

    /// Closes `channel` when its queued output did not shrink below `last` within `timeout`; again while it does.
    private static func watchQueuedOutput(_ channel: any Channel, last: Int, timeout: TimeAmount) {
        let watch = channel.eventLoop.scheduleTask(in: timeout) {
            guard channel.isActive, let queued = try? channel.syncOptions?.getOption(.bufferedWritableBytes),
                queued > 0
            else { return }
            if queued < last {
                watchQueuedOutput(channel, last: queued, timeout: timeout)
            } else {
                channel.close(promise: nil)
            }
        }
        channel.closeFuture.whenComplete { _ in watch.cancel() }
    }

    private func writeDeferredOutput() {
        guard let context = self.context, let output = self.session.takeDeferredOutput() else { return }
        context.write(NIOAny(output), promise: nil)
    }
}

extension HTTP2ConnectionHandler: HTTP2FlushListMember {
    /// At most one stream: the frontend of a call whose answer this read completed, the backend connection of the
    /// one call a read started.
    package var flushesAtReadEnd: Bool { self.session.streams.count <= 1 }

    package func flushListedWrites() {
        self.writeDeferredOutput()
        self.context?.flush()
    }
}

@available(*, unavailable)
extension HTTP2ConnectionHandler: Sendable {}

extension ChannelPipeline.SynchronousOperations {
    /// Adds an ``HTTP2ConnectionHandler`` and returns its session, for the owner to keep.
    ///
    /// ```swift
    /// let session = try channel.pipeline.syncOperations.configureHTTP2Session(role: .client, delegate: client)
    /// ```
    package func configureHTTP2Session(
        role: HTTP2SessionRole,
        configuration: HTTP2SessionConfiguration = .defaults,
        delegate: (any HTTP2SessionDelegate)?
    ) throws -> NGHTTP2Session {
        let handler = HTTP2ConnectionHandler(role: role, configuration: configuration, delegate: delegate)
        try self.addHandler(handler)
        return handler.session
    }
}
