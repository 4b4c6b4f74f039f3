import NIOCore
import TriggerDispatch
import TriggerModel

/// The one relay from a backend's event stream to a client, for gRPC server streaming and SSE over HTTP/2
/// and HTTP/1.1 alike (DESIGN.md "Threading model"): on the connection's event loop it pulls one event,
/// hands it to the frontend's `deliver` (which encodes and writes it, and says whether the client can take
/// more now or when it can), then pulls the next. A slow client is thereby a slow backend, never a growing
/// buffer.
///
/// The stream *begins* with the backend's first event that is not an error (`begin`, where SSE writes its
/// `200` head): until then the client has been sent nothing, so an error known before any output (a pipeline
/// the runner does not have, a backend that is down or refuses, the idle rule before the first event) ends
/// the relay unbegun and the frontend answers it as sync mode would, with the error's own status (API.md §2:
/// only an error *after the first byte* is an error event). gRPC sends its response HEADERS with the first
/// message anyway and needs no `begin`.
///
/// Streams have no total deadline (issue 5, item 4), only two waits, each while an event is awaited: the
/// backend's *first* event within `firstEvent`'s timeout (the route's pool `request_timeout`: a runner must
/// start answering a stream as soon as a sync call of its pool must finish; past it the client gets that
/// pool's deadline error, 504 / DEADLINE_EXCEEDED, before any byte — review 10 #1: a runner hung on `/run`
/// held its slot until the client gave up), then each next one within `idleTimeout` (`timeouts.stream_idle`).
/// Past either, the stream ends with `.deadlineExceeded` and its run is cancelled. A runner's keep-alives between
/// events (SSE comments, ``TriggerEventSource/lastProgress``) count as activity for the idle rule, not for the
/// first event's. Time spent waiting for the *client* (a slow reader) counts for neither. The timer is lazy: one
/// scheduled task re-arms itself while events keep coming, rather than one per event.
///
/// Loop-bound: built, started and cancelled on `eventLoop`.
final class EventRelay: TriggerEventReceiver {
    /// How many pulls may nest inside one another: a source hands an event it already holds over inside the
    /// `next(to:)` that asks (the loop-native sources do: a read that decoded many events, a gRPC window of
    /// buffered messages), and an event the client can take at once (`deliver` answers nil) is followed by the next
    /// pull right away, so each such event would otherwise add a relay cycle to the stack (a 200-event read nested 200 deep). Past
    /// this depth the next pull starts from a fresh loop task.
    static let maxNestedPulls = 16

    private let source: any TriggerEventSource
    private let eventLoop: any EventLoop
    private let idleTimeout: TimeAmount
    private let firstEvent: FirstEventBound?
    private let begin: () -> Void
    private let deliver: (TriggerEvent) -> EventLoopFuture<Void>?
    private let finish: (GatewayError?) -> Void
    private var stopped = false
    /// `begin` was called: the client has been (or is being) sent the stream's head.
    private(set) var began = false
    /// When the event awaited now was asked for; nil while none is awaited.
    private var waitingSince: NIODeadline?
    private var idleTimer: Scheduled<Void>?
    /// `pull()` calls on the stack now (see ``maxNestedPulls``).
    private var nestedPulls = 0
    /// When `idleTimer` fires.
    private var idleTimerDue = NIODeadline.uptimeNanoseconds(0)
    /// No event has arrived yet: the wait is `firstEvent`'s.
    private var awaitingFirst = true

    /// The wait for a stream's first event (see the type's comment): how long, and the error past it.
    struct FirstEventBound {
        var timeout: TimeAmount
        var error: () -> GatewayError
    }

    /// `begin` is called once, right before the first event is delivered (or before `finish(nil)` of a stream
    /// that ended with no event at all). `deliver` writes one event (`.status`, `.output`, `.end` or `.error`:
    /// what to send is the frontend's choice) and returns nil when the client can take the next one now (its
    /// connection's queued output under the high water mark, the stream's window open), else a future that
    /// completes when it can and fails when the client went away (issue 11: a future, a scheduled timer and a
    /// callback per event were a quarter of an SSE event's relay cost; now only a client that lags makes one).
    /// `finish` ends the client's stream: nil after the backend's last event, or the error that cut it (transport failure, idle
    /// timeout, or an `.error` event that came first). When ``began`` is still false at `finish`, nothing was
    /// delivered: the frontend answers the error as a plain error response.
    init(
        source: any TriggerEventSource,
        eventLoop: any EventLoop,
        idleTimeout: TimeAmount,
        firstEvent: FirstEventBound? = nil,
        begin: @escaping () -> Void = {},
        deliver: @escaping (TriggerEvent) -> EventLoopFuture<Void>?,
        finish: @escaping (GatewayError?) -> Void
    ) {
        self.source = source
        self.eventLoop = eventLoop
        self.idleTimeout = idleTimeout
        self.firstEvent = firstEvent
        self.begin = begin
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
        guard nestedPulls < Self.maxNestedPulls else {
            eventLoop.assumeIsolatedUnsafeUnchecked().execute { self.pull() }
            return
        }
        nestedPulls += 1
        defer { nestedPulls -= 1 }
        // The loop's clock (virtual under test), which the idle timer is scheduled on too.
        let since = eventLoop.now
        waitingSince = since
        let due = since + currentWait
        // Armed for a later instant by the first event's longer wait: brought forward (once per stream at most).
        if let armed = idleTimer, idleTimerDue > due {
            armed.cancel()
            idleTimer = nil
        }
        if idleTimer == nil { armIdleTimer(at: due) }
        source.next(to: self)
    }

    /// The source's answer to `pull()`'s `next(to:)`.
    func receive(_ result: Result<TriggerEvent?, any Error>) {
        waitingSince = nil
        guard !stopped else { return }
        switch result {
        case .success(let event?):
            awaitingFirst = false
            if !began {
                // An error before any output is the answer itself, not an event of a stream.
                if case .error(let error) = event {
                    end(error)
                    return
                }
                began = true
                begin()
                guard !stopped else { return }  // writing the head found the client gone
            }
            guard let clientLags = deliver(event) else { return pull() }
            clientLags.assumeIsolated().whenComplete { written in
                switch written {
                case .success: self.pull()
                case .failure: self.cancel()  // the client is gone
                }
            }
        case .success(nil):
            if !began {
                began = true
                begin()
            }
            end(nil)
        case .failure(let error):
            end(gatewayError(from: error))
        }
    }

    private func end(_ error: GatewayError?) {
        guard !stopped else { return }
        stopped = true
        idleTimer?.cancel()
        idleTimer = nil
        finish(error)
    }

    /// The bound of the wait in progress: the first event's, then the idle rule's.
    private var currentWait: TimeAmount {
        awaitingFirst ? (firstEvent?.timeout ?? idleTimeout) : idleTimeout
    }

    private func armIdleTimer(at deadline: NIODeadline) {
        idleTimerDue = deadline
        idleTimer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.idleTimer = nil
            guard !self.stopped, var since = self.waitingSince else { return }
            // The runner's keep-alives (SSE comments) since the pull count as its activity for the idle rule; the
            // first event's bound is the pool's deadline for an answer to begin, which they do not meet.
            if !self.awaitingFirst, let progress = self.source.lastProgress, progress > since { since = progress }
            let due = since + self.currentWait
            if due > self.eventLoop.now {
                self.armIdleTimer(at: due)
                return
            }
            let error =
                if self.awaitingFirst, let firstEvent = self.firstEvent {
                    firstEvent.error()
                } else {
                    GatewayError(
                        .deadlineExceeded, "the backend sent no event for \(Self.describe(self.idleTimeout))")
                }
            // Ended first: cancelling may fail the pull at once, which must not answer in its place.
            self.end(error)
            self.source.cancel()
        }
    }

    /// `30s`, `501ms`: a duration as error messages say it (whole seconds, else milliseconds).
    static func describe(_ amount: TimeAmount) -> String {
        let ms = amount.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }
}

@available(*, unavailable)
extension EventRelay: Sendable {}

extension TriggerDispatcher.Target {
    /// A stream's wait for its first event: what a sync call of the pool may take (the shorter of the pool's
    /// `request_timeout` and `timeouts.request`, `requestTimeout`), past which the client is told what that
    /// sync call would be (review 10 #1).
    func firstEventBound(cappedAt requestTimeout: TimeAmount) -> EventRelay.FirstEventBound {
        let timeout = min(self.requestTimeout, requestTimeout)
        return EventRelay.FirstEventBound(timeout: timeout, error: { [self] in deadlineExceeded(after: timeout) })
    }
}
