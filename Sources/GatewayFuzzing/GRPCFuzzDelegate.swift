import HTTP2Engine
import NIOCore
import ProtoCodec
import TriggerModel
import WireCodecs

/// A stand-in for the gateway's HTTP/2 frontend while that is being written: per request stream it deframes
/// DATA with the real ``GRPCMessageDeframer``, decodes each message as an Instill trigger request and as a
/// runner `RunRequest`, and answers like a gRPC server (response headers, one echoed message per decoded
/// request, trailers with `grpc-status` and a percent-encoded `grpc-message`), so the engine's send path runs
/// on fuzzed input too. It owns the per-stream decoding state.
///
/// Flow control is exercised both ways: most streams consume each DATA frame at once, every fourth stream only
/// when its request ends, so a fuzzed peer can run into a full window.
final class GRPCFuzzDelegate: HTTP2SessionDelegate {
    /// The gateway's default caps, shrunk so short inputs reach them.
    static let maxMessageBytes = 1 << 16
    static let maxBatch = 32

    private struct StreamState {
        var release: Bool
        var contentType: String
        var isGRPC: Bool { self.contentType.hasPrefix("application/grpc") }
        var deframer = GRPCMessageDeframer(maxMessageBytes: GRPCFuzzDelegate.maxMessageBytes)
        /// A REST request's body, collected for ``RESTFuzzing`` when the request ends.
        var restBody = ByteBuffer()
        var unconsumed = 0
        var sentHeaders = false
        var finished = false
    }

    private var streams: [HTTP2StreamID: StreamState] = [:]

    func session(
        _ session: NGHTTP2Session,
        didReceiveHeaders headers: HTTP2Headers,
        stream: HTTP2StreamID,
        endStream: Bool
    ) {
        let path = headers.first(name: ":path") ?? ""
        let contentType = headers.first(name: "content-type") ?? ""
        // Parsed and dropped: the frontend passes them on; here they only need to not trap.
        if let timeout = headers.first(name: "grpc-timeout") { _ = GRPCTimeout.parse(timeout) }
        if let message = headers.first(name: "grpc-message") { _ = GRPCStatusMessage.percentDecode(message) }
        self.streams[stream] = StreamState(release: path.hasSuffix("Release"), contentType: contentType)
        if endStream { self.finish(session, stream: stream, error: nil) }
    }

    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool) {
        guard var state = self.streams[stream], !state.finished else {
            session.consume(stream: stream, bytes: data.readableBytes)
            return
        }
        if stream.rawValue % 4 == 3 {
            state.unconsumed += data.readableBytes
        } else {
            session.consume(stream: stream, bytes: data.readableBytes)
        }
        var failure: GatewayError?
        if !state.isGRPC {
            if state.restBody.readableBytes + data.readableBytes <= Self.maxMessageBytes {
                state.restBody.writeImmutableBuffer(data)
            } else {
                failure = GatewayError(.payloadTooLarge, "body over \(Self.maxMessageBytes) bytes")
            }
            self.streams[stream] = state
            if endStream || failure != nil { self.finish(session, stream: stream, error: failure) }
            return
        }
        state.deframer.append(data)
        do {
            while let message = try state.deframer.next() {
                let reply = Self.handle(message, release: state.release)
                if !state.sentHeaders {
                    state.sentHeaders = true
                    session.sendResponseHeaders(stream: stream, headers: Self.responseHeaders, endStream: false)
                }
                session.sendData(stream: stream, GRPCMessageFramer.frame(reply), endStream: false)
            }
        } catch {
            failure = error as? GatewayError ?? GatewayError(.internalError, "\(error)")
        }
        self.streams[stream] = state
        if endStream || failure != nil { self.finish(session, stream: stream, error: failure) }
    }

    func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {
        if let status = trailers.first(name: "grpc-status") { _ = Int(status) }
        self.finish(session, stream: stream, error: nil)
    }

    func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        self.streams[stream] = nil
    }

    /// Decodes one request message both ways; the reply is the Instill response echoing the variables (what
    /// the `echo` demo pipeline answers), or the runner response when only the runner decoder accepted it.
    private static func handle(_ message: ByteBuffer, release: Bool) -> ByteBuffer {
        let instill = try? InstillCodec.decodeTriggerRequest(message, release: release, maxBatch: maxBatch)
        let runner = try? RunnerCodec.decodeRunRequest(message)
        if let instill {
            return InstillCodec.encodeTriggerResponse(TriggerResult(outputs: instill.inputs.map(\.variables)))
        }
        if let runner {
            return RunnerCodec.encodeRunResponse(TriggerResult(outputs: runner.inputs.map(\.variables)))
        }
        return ByteBuffer()
    }

    private static let responseHeaders: HTTP2Headers = [":status": "200", "content-type": "application/grpc"]

    /// Ends our side once: trailers after a normal end, Trailers-Only or trailers carrying the error otherwise.
    private func finish(_ session: NGHTTP2Session, stream: HTTP2StreamID, error: GatewayError?) {
        guard var state = self.streams[stream], !state.finished else { return }
        state.finished = true
        if state.unconsumed > 0 {
            session.consume(stream: stream, bytes: state.unconsumed)
            state.unconsumed = 0
        }
        var error = error
        if error == nil, state.deframer.hasPartialMessage {
            error = GatewayError(.invalidArgument, "request ended inside a message")
        }
        if error == nil, !state.isGRPC {
            // What the REST frontend will answer is not modelled; the body goes to the REST decoders, and the
            // error carries bytes that need percent-encoding, so the trailer path is exercised too.
            RESTFuzzing.decode(contentType: state.contentType, body: state.restBody)
            error = GatewayError(.unsupportedMediaType, "not gRPC: café % \u{1}")
        }
        var trailers: HTTP2Headers = ["grpc-status": String(error?.code.rpcCode ?? 0)]
        if let error {
            trailers.add(name: "grpc-message", value: GRPCStatusMessage.percentEncode(error.message))
        }
        if state.sentHeaders {
            session.sendTrailers(stream: stream, trailers)
        } else {
            var headers = Self.responseHeaders
            for field in trailers { headers.add(name: field.name, value: field.value) }
            session.sendResponseHeaders(stream: stream, headers: headers, endStream: true)
        }
        self.streams[stream] = state
        // The request may still be open (an error before the client finished): gRPC servers then reset it.
        if error != nil { session.resetStream(stream, errorCode: .noError) }
    }
}
