package import NIOCore

/// A backend's event stream as an event-loop frontend reads it: one event at a time, each pulled when the
/// previous one has been written to the client, so a slow client is a slow backend (the transports only take
/// more bytes from a backend when an event is pulled), with no task or executor hop per event when the
/// runner is loop-native.
///
/// Bound to the loop it was opened on: call it only there, one `next()` at a time.
package protocol TriggerEventSource: AnyObject {
    /// The next event, completed on the source's loop; nil after the end (the last event was `.end` or
    /// `.error`); a failure is a transport failure, after which the source is done.
    func next() -> EventLoopFuture<TriggerEvent?>

    /// `next()` without a future: `receiver.receive` is called once, on the source's loop (at once when an
    /// event is ready), with what the future would have completed with. Sources on a loop-native transport
    /// implement it directly (issue 11: the stream relay made a future per layer per event, then a closure
    /// context per layer per event); the default waits on `next()`.
    func next(to receiver: any TriggerEventReceiver)

    /// The consumer is gone (client reset, deadline, shutdown): stop the backend's run. A pending `next()`
    /// may then fail or end; later ones return nil. Idempotent.
    func cancel()

    /// The endpoint (as configured) the stream's backend call went to, once one was picked; nil for runners
    /// without endpoints. For the request's record (`RequestRecord.endpoint`).
    var endpoint: String? { get }

    /// When the backend last showed it is alive without sending an event (an SSE comment such as sse-starlette's
    /// `: ping`), on the uptime clock (`NIODeadline.now()`); nil when it never did or the source cannot tell. The
    /// relay's idle rule (`timeouts.stream_idle`, "a runner that sends nothing this long") counts from the later
    /// of this and the event asked for, as Envoy's stream idle timeout counts any bytes (review 17, finding 9).
    /// Readable from any thread.
    var lastProgress: NIODeadline? { get }
}

extension TriggerEventSource {
    package var endpoint: String? { nil }
    package var lastProgress: NIODeadline? { nil }

    package func next(to receiver: any TriggerEventReceiver) {
        next().assumeIsolatedUnsafeUnchecked().whenComplete { receiver.receive($0) }
    }
}

/// Who a ``TriggerEventSource`` hands its next event to (``TriggerEventSource/next(to:)``): an object the
/// consumer already is (the stream relay, a pool's slot-holding source), so a pull allocates nothing. Issue 11:
/// a closure per layer per relayed event was three allocations per event on a gRPC stream through a pool
/// (bench/callgrind `--only stream`, twenty-first session).
///
/// A source holds its receiver only while a pull is pending and lets it go before calling it.
package protocol TriggerEventReceiver: AnyObject {
    /// Called once per `next(to:)`, on the source's loop, with what `next()` would have completed with: an
    /// event, nil after the end, or the transport failure.
    func receive(_ result: Result<TriggerEvent?, any Error>)
}

/// Completes a promise with what it receives: `next()` in terms of `next(to:)`.
package final class PromiseEventReceiver: TriggerEventReceiver {
    private let promise: EventLoopPromise<TriggerEvent?>

    package init(_ promise: EventLoopPromise<TriggerEvent?>) { self.promise = promise }

    package func receive(_ result: Result<TriggerEvent?, any Error>) { promise.completeWith(result) }
}

/// The bridge for runners that only have `runStreaming` (the in-process runner; the grpc and http transports have
/// loop-native sources of their own): each `next()` is one task pulling the stream's iterator, its outcome handed
/// back to the loop.
///
/// `@unchecked Sendable`: the iterator is only touched by the one pull task running at a time (the protocol's
/// rule), the rest only on the loop. Cancelling cancels the pull in flight (the run sees its task cancelled);
/// with none in flight, the run stops when the source is dropped, as an unfolding stream's producer does.
package final class AsyncStreamEventSource: TriggerEventSource, @unchecked Sendable {
    private var iterator: AsyncThrowingStream<TriggerEvent, any Error>.AsyncIterator
    private let eventLoop: any EventLoop
    private var pending: Task<Void, Never>?
    private var cancelled = false

    package init(_ events: AsyncThrowingStream<TriggerEvent, any Error>, on eventLoop: any EventLoop) {
        self.iterator = events.makeAsyncIterator()
        self.eventLoop = eventLoop
    }

    package func next() -> EventLoopFuture<TriggerEvent?> {
        guard !cancelled else { return eventLoop.makeSucceededFuture(nil) }
        let promise = eventLoop.makePromise(of: TriggerEvent?.self)
        pending = Task {
            do {
                promise.succeed(try await self.iterator.next())
            } catch {
                promise.fail(error)
            }
        }
        return promise.futureResult
    }

    package func cancel() {
        cancelled = true
        pending?.cancel()
        pending = nil
    }
}

extension TriggerRunner {
    /// The bridge: ``AsyncStreamEventSource`` over ``runStreaming(_:)``.
    package func openStream(_ request: TriggerRequest, on eventLoop: any EventLoop) -> any TriggerEventSource {
        AsyncStreamEventSource(runStreaming(request), on: eventLoop)
    }
}
