import NIOCore
import NIOHTTP1
import WireCodecs

/// The HTTP/1.1 frontend's wire codec: the connection's bytes decoded by our own ``HTTP1RequestDecoder`` into
/// request parts, and response parts encoded into bytes, a response whose body is known leaving in one buffer
/// (status line, fields, body) rather than three writes. It takes the place of NIO's
/// `ByteToMessageHandler(HTTPRequestDecoder)` (llhttp) and `HTTPResponseEncoder`, and keeps their behaviour as
/// the handlers behind it see it: the same parts in the same order, a decoding failure fired as an
/// `HTTPParserError` (the type `HTTPServerPipelineHandler` recognises, so that the error answer is allowed; the
/// exact ``HTTP1RequestDecoder/Failure`` is left in ``FailureNote`` for the frontend's answer), the end of the
/// input inside a request fired as `.invalidEOFState`, and the response framing rules of NIO's encoder
/// (`content-length` kept, else `transfer-encoding: chunked` on HTTP/1.1; no body for 1xx, 204, 304 or a HEAD
/// request's answer).
///
/// Why our own code (issue 11): NIO's decoder hands every request through `ByteToMessageHandler` and llhttp's
/// callbacks, and its encoder writes head, body and end as three buffers. Measured with `bench/callgrind --only
/// rest` (REST JSON over HTTP/1.1, one call at a time): 221 900 instructions per call before, 218 800 after
/// (−3.1 k); llhttp's share of the frontend (~2.5 k) is now `HeadParser` (~2.4 k). The larger costs issue 11
/// names (the `NIOAny` casts of the parts, a `String` per header field, the pipeline handler) are in the
/// handlers behind this one and stay until they are one connection handler (bench/README.md "Branch h1wire").
final class HTTP1ServerCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    /// The last decoding failure, for the frontend handler: the pipeline handler in between passes on only an
    /// `HTTPParserError`, which cannot say every failure (a transfer coding we do not implement is a 501).
    final class FailureNote {
        var failure: HTTP1RequestDecoder.Failure?
    }

    private var decoder = HTTP1RequestDecoder()
    /// Bytes read and not yet decoded (nil when none: the next read is taken as it is, without a copy).
    private var pending: ByteBuffer?
    private var failed = false
    /// The close came from the handlers behind (not the client leaving).
    private var closedHere = false
    private let note: FailureNote
    private static let empty = ByteBuffer()

    /// Per request decoded and not answered yet, in order: whether its answer has no body (HEAD, CONNECT).
    private var answersWithoutBody: [Bool] = []
    /// The response being written is chunked (HTTP/1.1 without a Content-Length).
    private var chunked = false
    /// The response being written must not carry a body (a HEAD request's).
    private var suppressBody = false
    /// A response's head (and body) kept back so that it leaves in one write with what follows; written at the
    /// response's end, at a flush, or before any write that carries a promise.
    private var held: ByteBuffer?

    init(note: FailureNote) {
        self.note = note
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }  // after a failure the connection's bytes are not trusted (see the decoder)
        var bytes = unwrapInboundIn(data)
        if pending == nil || pending!.readableBytes == 0 {
            pending = bytes
        } else {
            pending!.writeBuffer(&bytes)
        }
        decode(context: context)
    }

    private func decode(context: ChannelHandlerContext) {
        // Until the decoder needs more bytes: a request's end may need none (the last body byte, or no body).
        while !failed {
            // Uniquely referenced while decoding: a slice handed on does not copy what follows.
            var buffer = pending ?? Self.empty
            pending = nil
            let part: HTTP1RequestDecoder.Part?
            do {
                part = try decoder.next(&buffer)
            } catch {
                failed = true
                note.failure = error
                context.fireErrorCaught(Self.parserError(for: error))
                return
            }
            pending = buffer.readableBytes > 0 ? buffer : nil
            guard let part else { return }
            switch part {
            case .head(let head):
                let method = HTTPMethod(rawValue: head.method)
                answersWithoutBody.append(method == .HEAD || method == .CONNECT)
                var requestHead = HTTPRequestHead(
                    version: HTTPVersion(major: 1, minor: head.minorVersion), method: method, uri: head.target,
                    headers: HTTPHeaders(head.fieldPairs))
                // The decoder's persistence decision wins where the head alone would keep the connection: an
                // HTTP/1.0 request framed by Transfer-Encoding closes after its answer (RFC 9112 §6.1).
                if !head.keepAlive && requestHead.isKeepAlive {
                    requestHead.headers.replaceOrAdd(name: "connection", value: "close")
                }
                context.fireChannelRead(wrapInboundOut(.head(requestHead)))
            case .body(let slice):
                context.fireChannelRead(wrapInboundOut(.body(slice)))
            case .end:
                context.fireChannelRead(wrapInboundOut(.end(nil)))
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent { endOfInput(context: context) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if closedHere {
            // The gateway closed (an answer with `Connection: close`, a drained connection, a timeout): whatever
            // request was open was dealt with by whoever closed; an error now would ask for a second answer.
            failed = true
        } else {
            endOfInput(context: context)
        }
        context.fireChannelInactive()
    }

    /// The input ended: inside a request, that is an error (as llhttp's `invalidEOFState` was), which lets the
    /// frontend cut a relayed runner request short; between requests it is a clean end.
    private func endOfInput(context: ChannelHandlerContext) {
        guard !failed else { return }
        failed = true
        if !decoder.isBetweenRequests || (pending?.readableBytes ?? 0) > 0 {
            context.fireErrorCaught(HTTPParserError.invalidEOFState)
        }
    }

    /// The llhttp error nearest to a failure: what `HTTPServerPipelineHandler` and the frontend expect.
    static func parserError(for failure: HTTP1RequestDecoder.Failure) -> HTTPParserError {
        switch failure {
        case .headTooLarge, .tooManyFields, .trailerTooLarge: .headerOverflow
        case .invalidMethod: .invalidMethod
        case .invalidTarget: .invalidURL
        case .invalidVersion: .invalidVersion
        case .lineEnding, .invalidChunkEnd: .lfExpected
        case .invalidFieldName, .obsoleteLineFolding, .invalidTrailer: .invalidHeaderToken
        case .invalidFieldValue: .invalidCharactersUsed
        case .invalidContentLength, .duplicateContentLength: .invalidContentLength
        case .contentLengthWithTransferEncoding: .unexpectedContentLength
        case .chunkedNotFinal, .unsupportedTransferCoding: .invalidConstant
        case .invalidChunkSize, .invalidChunkExtension, .chunkLineTooLong: .invalidChunkSize
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            let code = head.status.code
            let informational = code >= 100 && code < 200 && code != 101
            if !informational {
                suppressBody = answersWithoutBody.isEmpty ? false : answersWithoutBody.removeFirst()
            }
            // NIO's `HTTPResponseEncoder` framing (`correctlyFrameTransportHeaders`).
            var isChunked = false
            if !head.status.mayHaveResponseBody {
                head.headers.remove(name: "content-length")
                head.headers.remove(name: "transfer-encoding")
            } else if head.headers.contains(name: "content-length") {
                head.headers.remove(name: "transfer-encoding")
            } else if head.version.major == 1 && head.version.minor >= 1 {
                head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
                isChunked = true
            }
            if !informational { chunked = suppressBody ? false : isChunked }
            writeHeld(context: context)
            // Sized for the head and, where it is known, the body that will join it: no growth on the way.
            var size = 64 + head.status.reasonPhrase.utf8.count
            var bodyBytes = 0
            for field in head.headers {
                size += field.name.utf8.count + field.value.utf8.count + 4
                if field.name.utf8.count == 14, field.name.lowercased() == "content-length" {
                    bodyBytes = Int(field.value) ?? 0
                }
            }
            if isChunked { bodyBytes = 0 }
            var buffer = context.channel.allocator.buffer(capacity: size + (suppressBody ? 0 : bodyBytes))
            Self.write(head, into: &buffer)
            if promise == nil && !informational {
                held = buffer
            } else {
                context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
            }
        case .body(let part):
            if suppressBody {
                promise?.fail(ChannelError.operationUnsupported)
                return
            }
            guard case .byteBuffer(var body) = part else {
                writeHeld(context: context)
                writeBody(part, context: context, promise: promise)
                return
            }
            if promise == nil, held != nil {
                if chunked && body.readableBytes > 0 {
                    Self.writeChunkSize(body.readableBytes, into: &held!)
                    held!.writeBuffer(&body)
                    held!.writeStaticString("\r\n")
                } else {
                    held!.writeBuffer(&body)
                }
                return
            }
            writeHeld(context: context)
            writeBody(part, context: context, promise: promise)
        case .end:
            let isChunked = chunked
            suppressBody = false
            chunked = false
            if held != nil {
                if isChunked { held!.writeStaticString("0\r\n\r\n") }
                let buffer = held!
                held = nil
                context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
            } else if isChunked {
                var buffer = context.channel.allocator.buffer(capacity: 8)
                buffer.writeStaticString("0\r\n\r\n")
                context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
            } else if let promise {
                context.write(
                    wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
            }
        }
    }

    func flush(context: ChannelHandlerContext) {
        writeHeld(context: context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { closedHere = true }
        writeHeld(context: context)
        context.close(mode: mode, promise: promise)
    }

    private func writeHeld(context: ChannelHandlerContext) {
        guard let buffer = held else { return }
        held = nil
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
    }

    private func writeBody(_ part: IOData, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard chunked, part.readableBytes > 0 else {
            context.write(wrapOutboundOut(part), promise: promise)
            return
        }
        var size = context.channel.allocator.buffer(capacity: 20)
        Self.writeChunkSize(part.readableBytes, into: &size)
        context.write(wrapOutboundOut(.byteBuffer(size)), promise: nil)
        context.write(wrapOutboundOut(part), promise: nil)
        var crlf = context.channel.allocator.buffer(capacity: 2)
        crlf.writeStaticString("\r\n")
        context.write(wrapOutboundOut(.byteBuffer(crlf)), promise: promise)
    }

    private static func writeChunkSize(_ size: Int, into buffer: inout ByteBuffer) {
        buffer.writeString(String(size, radix: 16))
        buffer.writeStaticString("\r\n")
    }

    /// The status line and field lines, as NIO's encoder writes them.
    static func write(_ head: HTTPResponseHead, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("HTTP/")
        buffer.writeString(String(head.version.major))
        buffer.writeStaticString(".")
        buffer.writeString(String(head.version.minor))
        buffer.writeStaticString(" ")
        buffer.writeString(String(head.status.code))
        buffer.writeStaticString(" ")
        buffer.writeString(head.status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        for field in head.headers {
            buffer.writeString(field.name)
            buffer.writeStaticString(": ")
            buffer.writeString(field.value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
    }
}

@available(*, unavailable)
extension HTTP1ServerCodec: Sendable {}
