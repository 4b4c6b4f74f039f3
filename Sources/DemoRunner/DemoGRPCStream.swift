import HTTP2Engine
import NIOCore
import TriggerModel
import WireCodecs

/// The server's book-keeping for one `Runner` call: the request as it arrives, the run's task, and how far
/// the answer has gone. Owned by ``DemoGRPCConnection/streams`` on the connection's event loop.
final class DemoGRPCStream {
    enum Method {
        case run
        case runStream
        /// `grpc.health.v1.Health/Check`: what a grpc pool's active health check calls.
        case healthCheck
        /// `Runner/Describe`: the pipeline's declared inputs and outputs.
        case describe
    }

    let id: HTTP2StreamID
    let method: Method
    /// The request's metadata, applied to the decoded message.
    let metadata: HTTP2Headers
    let deadline: NIODeadline?
    var deframer: GRPCMessageDeframer
    var message: ByteBuffer?
    /// The run, once the request is complete, as a task (streams, `Describe`) or as a loop-native call
    /// stopped through `cancellation` (`Run`); cancelled when the client resets the stream or the deadline
    /// passes (``cancelRun()``).
    var task: Task<Void, Never>?
    var cancellation: TriggerCancellation?
    var deadlineTimer: Scheduled<Void>?
    /// Response HEADERS sent (so an error becomes trailers, not Trailers-Only).
    var sentHeaders = false
    /// The status went out (trailers or Trailers-Only); later results of the run are dropped.
    var answered = false
    /// A streaming run waiting for the stream to drain below its high watermark.
    var writabilityWaiter: EventLoopPromise<Void>?

    init(id: HTTP2StreamID, method: Method, metadata: HTTP2Headers, deadline: NIODeadline?, maxMessageBytes: Int) {
        self.id = id
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.deframer = GRPCMessageDeframer(maxMessageBytes: maxMessageBytes)
    }

    /// A run was started (request frames after it are ignored).
    var runStarted: Bool { task != nil || cancellation != nil }

    /// Stops the run, whichever form it has.
    func cancelRun() {
        task?.cancel()
        cancellation?.cancel()
    }

    /// Fills the transport-level fields of `request` from the call's metadata (runner.proto's header).
    func applyMetadata(to request: inout TriggerRequest) {
        request.mode = method == .run ? .sync : .stream
        request.deadline = deadline
        if let requestID = metadata.first(name: "request-id"), !requestID.isEmpty { request.requestID = requestID }
        request.traceParent = metadata.first(name: "traceparent")
        request.traceState = metadata.first(name: "tracestate")
        request.principal = metadata.first(name: "x-trigger-principal")
        request.idempotencyKey = metadata.first(name: "idempotency-key")
        request.requesterUID = metadata.first(name: "instill-requester-uid")
    }
}

@available(*, unavailable)
extension DemoGRPCStream: Sendable {}
