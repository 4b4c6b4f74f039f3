import NIOCore
import TriggerModel

/// The one relay from a backend's event stream to a client, for gRPC server streaming and SSE over HTTP/2
/// and HTTP/1.1 alike (DESIGN.md "Threading model"): on the connection's event loop it pulls one event,
/// hands it to the frontend's `deliver` (which encodes and writes it, and completes when the client can take
/// more), then pulls the next. A slow client is thereby a slow backend, never a growing buffer.
///
/// Streams have no total deadline, only the idle rule (issue 5, item 4): a backend silent for `idleTimeout`
/// while an event is awaited ends the stream with `.deadlineExceeded`, and its run is cancelled. The timer
/// is lazy: one scheduled task re-arms itself while events keep coming, rather than one per event.
///
/// Loop-bound: built, started and cancelled on `eventLoop`.
final class EventRelay {
    private let source: any TriggerEventSource
    private let eventLoop: any EventLoop
    private let idleTimeout: TimeAmount
    private let deliver: (TriggerEvent) -> EventLoopFuture<Void>
    private let finish: (GatewayError?) -> Void
    private var stopped = false
    /// When the event awaited now was asked for; nil while none is awaited.
    private var waitingSince: NIODeadline?
    private var idleTimer: Scheduled<Void>?

    /// `deliver` writes one event (`.status`, `.output`, `.end` or `.error`: what to send is the frontend's
    /// choice); its future fails when the client went away. `finish` ends the client's stream: nil after the
    /// backend's last event, or the error that cut it (transport failure, idle timeout).
    init(
        source: any TriggerEventSource,
        eventLoop: any EventLoop,
        idleTimeout: TimeAmount,
        deliver: @escaping (TriggerEvent) -> EventLoopFuture<Void>,
        finish: @escaping (GatewayError?) -> Void
    ) {
        self.source = source
        self.eventLoop = eventLoop
        self.idleTimeout = idleTimeout
        self.deliver = deliver
        self.finish = finish
    }

    func start() {
        pull()
    }

    /// The endpoint the backend call went to (`TriggerEventSource.endpoint`), for the request's record.
    var endpoint: String? { source.endpoint }

    /// The client is gone or the stream is being answered otherwise (deadline, shutdown): nothing more is
    /// delivered, and the backend's run is stopped.
    func cancel() {
        guard !stopped else { return }
        stopped = true
        idleTimer?.cancel()
        idleTimer = nil
        source.cancel()
    }

    private func pull() {
        guard !stopped else { return }
        // The loop's clock (virtual under test), which the idle timer is scheduled on too.
        waitingSince = eventLoop.now
        if idleTimer == nil { armIdleTimer(at: waitingSince! + idleTimeout) }
        source.next().assumeIsolated().whenComplete { result in
            self.waitingSince = nil
            guard !self.stopped else { return }
            switch result {
            case .success(let event?):
                self.deliver(event).assumeIsolated().whenComplete { written in
                    switch written {
                    case .success: self.pull()
                    case .failure: self.cancel()  // the client is gone
                    }
                }
            case .success(nil):
                self.end(nil)
            case .failure(let error):
                self.end(gatewayError(from: error))
            }
        }
    }

    private func end(_ error: GatewayError?) {
        guard !stopped else { return }
        stopped = true
        idleTimer?.cancel()
        idleTimer = nil
        finish(error)
    }

    private func armIdleTimer(at deadline: NIODeadline) {
        idleTimer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.idleTimer = nil
            guard !self.stopped, let since = self.waitingSince else { return }
            let due = since + self.idleTimeout
            if due > self.eventLoop.now {
                self.armIdleTimer(at: due)
                return
            }
            let error = GatewayError(
                .deadlineExceeded, "the backend sent no event for \(Self.describe(self.idleTimeout))")
            // Ended first: cancelling may fail the pull at once, which must not answer in its place.
            self.end(error)
            self.source.cancel()
        }
    }

    private static func describe(_ amount: TimeAmount) -> String {
        let ms = amount.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }
}

@available(*, unavailable)
extension EventRelay: Sendable {}
