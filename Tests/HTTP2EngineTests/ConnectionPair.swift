import HTTP2Engine
import NIOCore
import NIOEmbedded

/// What a ``RecordingDelegate`` saw, in order.
enum RecordedEvent: Equatable, CustomStringConvertible {
    case headers(Int32, HTTP2Headers, endStream: Bool)
    case data(Int32, String, endStream: Bool)
    case trailers(Int32, HTTP2Headers)
    case closed(Int32, HTTP2ErrorCode)
    case writable(Int32, Bool)
    case goAway(Int32, HTTP2ErrorCode)
    case sessionClosed(failed: Bool)

    var description: String {
        switch self {
        case .headers(let id, let h, let end): "headers(\(id), \(h), end: \(end))"
        case .data(let id, let s, let end): "data(\(id), \(s.count) bytes, end: \(end))"
        case .trailers(let id, let h): "trailers(\(id), \(h))"
        case .closed(let id, let code): "closed(\(id), \(code))"
        case .writable(let id, let w): "writable(\(id), \(w))"
        case .goAway(let id, let code): "goAway(\(id), \(code))"
        case .sessionClosed(let failed): "sessionClosed(failed: \(failed))"
        }
    }
}

/// A delegate that records every event, consumes data at once unless told not to, and runs optional hooks
/// from inside the callbacks (which is how the tests exercise re-entrancy).
final class RecordingDelegate: HTTP2SessionDelegate {
    var events: [RecordedEvent] = []
    var closeError: (any Error)?
    var autoConsume = true
    /// Records copies of received header blocks instead of the blocks themselves, so the session's storage is
    /// not held (the engine then reuses it for its next block).
    var copiesHeaderBlocks = false
    /// Bytes received per stream (concatenated), and bytes not yet consumed.
    var bodies: [Int32: ByteBuffer] = [:]
    var unconsumed: [Int32: Int] = [:]

    var onHeaders: ((NGHTTP2Session, HTTP2StreamID, HTTP2Headers, Bool) -> Void)?
    var onData: ((NGHTTP2Session, HTTP2StreamID, ByteBuffer, Bool) -> Void)?
    var onTrailers: ((NGHTTP2Session, HTTP2StreamID, HTTP2Headers) -> Void)?
    var onClosed: ((NGHTTP2Session, HTTP2StreamID, HTTP2ErrorCode) -> Void)?
    var onSessionClosed: ((NGHTTP2Session) -> Void)?
    /// Server: a request body stayed silent for the body-progress timeout; returns whether it answered.
    var onRequestBodyTimedOut: ((NGHTTP2Session, HTTP2StreamID) -> Bool)?

    func session(_ session: NGHTTP2Session, requestBodyTimedOutOn stream: HTTP2StreamID) -> Bool {
        self.onRequestBodyTimedOut?(session, stream) ?? false
    }

    func session(
        _ session: NGHTTP2Session,
        didReceiveHeaders headers: HTTP2Headers,
        stream: HTTP2StreamID,
        endStream: Bool
    ) {
        self.events.append(.headers(stream.rawValue, self.recorded(headers), endStream: endStream))
        self.onHeaders?(session, stream, headers, endStream)
    }

    private func recorded(_ block: HTTP2Headers) -> HTTP2Headers {
        self.copiesHeaderBlocks ? HTTP2Headers(block.map { ($0.name, $0.value) }) : block
    }

    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool) {
        self.events.append(.data(stream.rawValue, String(buffer: data), endStream: endStream))
        self.bodies[stream.rawValue, default: ByteBuffer()].writeImmutableBuffer(data)
        if self.autoConsume {
            session.consume(stream: stream, bytes: data.readableBytes)
        } else {
            self.unconsumed[stream.rawValue, default: 0] += data.readableBytes
        }
        self.onData?(session, stream, data, endStream)
    }

    /// Oversized request blocks reported: the stream, the fields kept and the RFC 9113 §6.5.2 size counted.
    var oversized: [(stream: Int32, headers: HTTP2Headers, size: Int)] = []

    /// Records the block, then answers as the protocol's default does: RST_STREAM(INTERNAL_ERROR).
    func session(
        _ session: NGHTTP2Session,
        didReceiveOversizedHeaders headers: HTTP2Headers,
        size: Int,
        stream: HTTP2StreamID,
        endStream: Bool
    ) {
        self.oversized.append((stream.rawValue, HTTP2Headers(headers.map { ($0.name, $0.value) }), size))
        session.resetStream(stream, errorCode: .internalError)
    }

    func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {
        self.events.append(.trailers(stream.rawValue, self.recorded(trailers)))
        self.onTrailers?(session, stream, trailers)
    }

    func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        self.events.append(.closed(stream.rawValue, errorCode))
        self.onClosed?(session, stream, errorCode)
    }

    func session(_ session: NGHTTP2Session, streamWritabilityChanged stream: HTTP2StreamID, isWritable: Bool) {
        self.events.append(.writable(stream.rawValue, isWritable))
    }

    func session(_ session: NGHTTP2Session, didReceiveGoAway lastStreamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        self.events.append(.goAway(lastStreamID.rawValue, errorCode))
    }

    func sessionDidClose(_ session: NGHTTP2Session, error: (any Error)?) {
        self.events.append(.sessionClosed(failed: error != nil))
        self.closeError = error
        self.onSessionClosed?(session)
    }

    /// Consumes everything received and not yet consumed (manual flow-control tests).
    func consumeAll(_ session: NGHTTP2Session) {
        for (id, bytes) in self.unconsumed where bytes > 0 {
            session.consume(stream: HTTP2StreamID(id), bytes: bytes)
        }
        self.unconsumed.removeAll()
    }

    func events(for stream: Int32) -> [RecordedEvent] {
        self.events.filter {
            switch $0 {
            case .headers(let id, _, _), .data(let id, _, _), .trailers(let id, _), .closed(let id, _),
                .writable(let id, _):
                id == stream
            default: false
            }
        }
    }

    func body(_ stream: Int32) -> String {
        self.bodies[stream].map { String(buffer: $0) } ?? ""
    }
}

/// An HTTP/2 client and server connected in memory: two `EmbeddedChannel`s, each with an
/// `HTTP2ConnectionHandler`, and a shuttle that moves written bytes to the other side's inbound. It owns the
/// channels and finishes them when it goes away.
final class ConnectionPair {
    let client = EmbeddedChannel()
    let server = EmbeddedChannel()
    let clientDelegate = RecordingDelegate()
    let serverDelegate = RecordingDelegate()
    let clientSession: NGHTTP2Session
    let serverSession: NGHTTP2Session

    init(
        client clientConfiguration: HTTP2SessionConfiguration = .defaults,
        server serverConfiguration: HTTP2SessionConfiguration = .defaults
    ) throws {
        self.serverSession = try self.server.pipeline.syncOperations.configureHTTP2Session(
            role: .server,
            configuration: serverConfiguration,
            delegate: self.serverDelegate
        )
        self.clientSession = try self.client.pipeline.syncOperations.configureHTTP2Session(
            role: .client,
            configuration: clientConfiguration,
            delegate: self.clientDelegate
        )
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try self.server.connect(to: address).wait()
        try self.client.connect(to: address).wait()
    }

    /// Tears the pair down: a test may also call this to end both connections early.
    deinit {
        self.finish()
    }

    /// Drops the delegates' hooks (closures a test stored in them may capture the delegate or the sessions) and
    /// finishes both channels. An `EmbeddedChannel` that is never closed keeps its pipeline, and with it the
    /// handler, session and delegate, alive: that is what ASan's leak check reported. Safe to call twice.
    func finish() {
        for delegate in [self.clientDelegate, self.serverDelegate] {
            delegate.onHeaders = nil
            delegate.onData = nil
            delegate.onTrailers = nil
            delegate.onClosed = nil
            delegate.onSessionClosed = nil
        }
        _ = try? self.client.finish(acceptAlreadyClosed: true)
        _ = try? self.server.finish(acceptAlreadyClosed: true)
    }

    /// Shuttles bytes both ways until neither side writes anything, `chunkSize` bytes per read
    /// (nil: each written buffer as one read). Returns the number of writes each side made.
    @discardableResult
    func interact(chunkSize: Int? = nil) throws -> (client: Int, server: Int) {
        var writes = (client: 0, server: 0)
        var moved = true
        while moved {
            moved = false
            while let bytes = try self.client.readOutbound(as: ByteBuffer.self) {
                moved = true
                writes.client += 1
                try Self.deliver(bytes, to: self.server, chunkSize: chunkSize)
            }
            while let bytes = try self.server.readOutbound(as: ByteBuffer.self) {
                moved = true
                writes.server += 1
                try Self.deliver(bytes, to: self.client, chunkSize: chunkSize)
            }
            // A side that closed is an EOF for the other, as a TCP FIN would be.
            if self.client.isActive != self.server.isActive {
                try (self.client.isActive ? self.client : self.server).close().wait()
                moved = true
            }
        }
        return writes
    }

    static func deliver(_ bytes: ByteBuffer, to channel: EmbeddedChannel, chunkSize: Int?) throws {
        var bytes = bytes
        let step = chunkSize ?? max(bytes.readableBytes, 1)
        while bytes.readableBytes > 0, channel.isActive {
            let chunk = bytes.readSlice(length: min(step, bytes.readableBytes))!
            try channel.writeInbound(chunk)
        }
    }

    /// A gRPC-style request header block.
    static func requestHeaders(path: String = "/pkg.Service/Method", extra: [(String, String)] = []) -> HTTP2Headers {
        var headers: HTTP2Headers = [
            ":method": "POST", ":scheme": "http", ":authority": "backend", ":path": path,
            "content-type": "application/grpc",
        ]
        for (name, value) in extra { headers.add(name: name, value: value) }
        return headers
    }
}

/// A decoded frame header, enough to assert which frames a side wrote.
struct FrameHeader: Equatable {
    var length: Int
    var type: UInt8
    var flags: UInt8
    var streamID: Int32
    var payload: ByteBuffer

    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let goAway: UInt8 = 0x7
    static let rstStream: UInt8 = 0x3

    /// Splits `bytes` into frames, skipping a leading client preface.
    static func parse(_ bytes: ByteBuffer) -> [FrameHeader] {
        var bytes = bytes
        if bytes.readableBytesView.starts(with: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)) {
            bytes.moveReaderIndex(forwardBy: 24)
        }
        var frames: [FrameHeader] = []
        while bytes.readableBytes >= 9 {
            let length = Int(bytes.readInteger(as: UInt16.self)!) << 8 | Int(bytes.readInteger(as: UInt8.self)!)
            let type = bytes.readInteger(as: UInt8.self)!
            let flags = bytes.readInteger(as: UInt8.self)!
            let streamID = Int32(bitPattern: bytes.readInteger(as: UInt32.self)! & 0x7fff_ffff)
            guard let payload = bytes.readSlice(length: length) else { break }
            frames.append(FrameHeader(length: length, type: type, flags: flags, streamID: streamID, payload: payload))
        }
        return frames
    }

    /// GOAWAY's (last stream id, error code).
    var goAwayFields: (Int32, HTTP2ErrorCode)? {
        guard self.type == Self.goAway, self.payload.readableBytes >= 8 else { return nil }
        let last = self.payload.getInteger(at: self.payload.readerIndex, as: UInt32.self)! & 0x7fff_ffff
        let code = self.payload.getInteger(at: self.payload.readerIndex + 4, as: UInt32.self)!
        return (Int32(last), HTTP2ErrorCode(code))
    }
}

extension EmbeddedChannel {
    /// Everything written so far, concatenated.
    func readAllOutbound() throws -> ByteBuffer {
        var all = ByteBuffer()
        while var bytes = try self.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&bytes) }
        return all
    }
}
