import HTTP2Engine
import NIOCore
import Observability
import ProtoCodec
import TriggerModel
import WireCodecs

/// One `ServerReflectionInfo` call in progress: the requests not yet answered and what the responder has sent.
///
/// A reference type because it lives inside `StreamState.Phase` and is resumed from a writability callback.
final class GRPCReflectionCall {
    /// The two `:path`s of the call; their request and response messages are the same on the wire.
    static let v1Path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    static let v1alphaPath = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

    var deframer: GRPCMessageDeframer
    var responder = GRPCReflectionResponder()
    /// Received bytes not yet handed back to flow control: released once the requests in them are answered,
    /// so a client that sends requests without reading the answers is held by its stream window rather than
    /// queueing answers here without bound.
    var unconsumedBytes = 0
    /// The client half-closed: the call ends with OK once every request is answered.
    var clientFinished = false
    /// A writability callback is registered (at most one at a time).
    var waitingForWritable = false

    init(deframer: GRPCMessageDeframer) {
        self.deframer = deframer
    }
}

/// gRPC server reflection (grpc/grpc doc/server-reflection.md), `grpc.reflection.v1` and `v1alpha`: a
/// bidirectional stream in which every request message gets one response message, in order, as it arrives
/// (grpcurl sends one, reads the answer, sends the next on the same call, then half-closes). The answers
/// are ``GRPCReflectionResponder``'s over the gateway's generated descriptor set.
///
/// Back-pressure: answers are written only while the stream is writable (under its outbound watermark);
/// otherwise the call waits for writability and leaves the received bytes unconsumed meanwhile, so the
/// client's stream window fills and it stops sending.
extension HTTP2FrontendConnection {
    func grpcReflectionReceived(_ data: ByteBuffer, call: GRPCReflectionCall, stream: HTTP2StreamID, endStream: Bool) {
        call.deframer.append(data)
        call.unconsumedBytes += data.readableBytes
        if endStream { call.clientFinished = true }
        grpcReflectionAnswer(call, stream: stream)
    }

    /// The client half-closed with trailers (or an empty DATA frame already handled as end of stream).
    func grpcReflectionReceivedEnd(call: GRPCReflectionCall, stream: HTTP2StreamID) {
        call.clientFinished = true
        grpcReflectionAnswer(call, stream: stream)
    }

    /// Answers every complete request while the stream is writable, then ends the call if the client has.
    private func grpcReflectionAnswer(_ call: GRPCReflectionCall, stream: HTTP2StreamID) {
        guard let state = streams[stream], case .grpcReflection(let current) = state.phase, current === call else {
            return  // finished meanwhile (deadline, error, shutdown grace)
        }
        var failure: GatewayError?
        session.withBatchedWrites {
            while true {
                guard session.isWritable(stream: stream) else {
                    grpcReflectionWaitUntilWritable(call, stream: stream)
                    return
                }
                do {
                    guard let request = try call.deframer.next() else { break }
                    let response = try call.responder.respond(to: request)
                    grpcSendHeaders(stream)
                    sendBody(stream: stream, grpcFramed(response, stream: stream), endStream: false)
                } catch {
                    failure = gatewayError(from: error)
                    if let failure, call.deframer.exceededDecompressedBytes {
                        services.refusedRequestBody(.decompression, error: failure, peer: peer)
                    }
                    break
                }
            }
            session.consume(stream: stream, bytes: call.unconsumedBytes)
            call.unconsumedBytes = 0
            if failure == nil, call.clientFinished, call.deframer.hasPartialMessage {
                failure = GatewayError(.invalidArgument, "truncated gRPC message")
            }
            if let failure {
                grpcFinish(stream, error: failure)
            } else if call.clientFinished, !call.waitingForWritable {
                grpcFinish(stream, error: nil)
            }
        }
    }

    private func grpcReflectionWaitUntilWritable(_ call: GRPCReflectionCall, stream: HTTP2StreamID) {
        guard !call.waitingForWritable else { return }
        call.waitingForWritable = true
        let bound = NIOLoopBound((connection: self, call: call), eventLoop: eventLoop)
        waitUntilWritable(stream).whenSuccess {
            let (connection, call) = bound.value
            call.waitingForWritable = false
            connection.grpcReflectionAnswer(call, stream: stream)
        }
    }
}
