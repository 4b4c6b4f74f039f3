import HTTP2Engine
import NIOCore
import ProtoCodec
import TriggerModel
import WireCodecs

/// `grpc.health.v1.Health` (grpc/grpc `doc/health-checking.md`): service "" is the whole gateway,
/// "trigger.async" the async component; any other name is unknown.
extension HTTP2FrontendConnection {
    /// `Check`: the status now, or NOT_FOUND for an unknown service.
    func grpcHealthCheck(_ message: ByteBuffer, stream: HTTP2StreamID) {
        let service = InstillCodec.decodeGRPCHealthRequest(message)
        guard let component = HealthRegistry.Component(grpcService: service),
            let status = services.health.status(component)
        else {
            grpcFinish(stream, error: GatewayError(.notFound, "unknown health service \"\(service)\""))
            return
        }
        grpcRespond(stream, message: InstillCodec.encodeGRPCHealthResponse(status: status.grpcStatus))
    }

    /// `Watch`: the status at once, then one message per change (SERVICE_UNKNOWN once for an unknown
    /// service), until the client cancels (the stream's task is cancelled on RST_STREAM) or the gateway
    /// drains (the registry ends the watch, and the call ends with OK).
    func grpcHealthWatch(_ message: ByteBuffer, stream: HTTP2StreamID) {
        let service = InstillCodec.decodeGRPCHealthRequest(message)
        let component = HealthRegistry.Component(grpcService: service)
        let updates = services.health.watch(component)
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let eventLoop = self.eventLoop
        let task = Task {
            for await status in updates {
                let framed = GRPCMessageFramer.frame(InstillCodec.encodeGRPCHealthResponse(status: status.grpcStatus))
                let sent: Void? = try? await eventLoop.flatSubmit {
                    let connection = bound.value
                    guard connection.streams[stream] != nil else {
                        return eventLoop.makeFailedFuture(CancellationError())
                    }
                    connection.grpcSendHeaders(stream)
                    connection.sendBody(stream: stream, framed, endStream: false)
                    return connection.waitUntilWritable(stream)
                }.get()
                if sent == nil { return }
            }
            if Task.isCancelled { return }
            eventLoop.execute { bound.value.grpcFinish(stream, error: nil) }
        }
        streams[stream]?.task = task
    }
}

extension HealthRegistry.Status {
    var grpcStatus: InstillCodec.GRPCServingStatus {
        switch self {
        case .serving: .serving
        case .notServing: .notServing
        case .serviceUnknown: .serviceUnknown
        }
    }
}
