package import NIOCore
import Synchronization

/// Something that runs pipelines: the in-process demo runner, or (behind `Backends`) a remote pool.
///
/// Kept in the model so an in-process runner and the transports share one seam without either importing
/// the other.
///
/// Two ways to run a sync call: `run(_:)` for Swift concurrency callers (the async dispatcher, control work),
/// and `run(_:on:cancellation:)` for frontends, which call it on their connection's event loop and get the
/// answer back on that loop, with no `Task` and no executor hop when the runner is loop-native (DESIGN.md
/// "Threading model (the hot path)"). A runner that is not loop-native gets the bridging default.
package protocol TriggerRunner: Sendable {
    /// Runs the trigger to completion and returns its outputs.
    func run(_ request: TriggerRequest) async throws -> TriggerResult

    /// Runs the trigger and completes the returned future on `eventLoop` with its outputs or its error.
    /// `cancellation.cancel()` (the client went away) stops the call: its future then fails soon, with
    /// whatever error the runner reports for a cancelled call.
    func run(
        _ request: TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult>

    /// Runs the trigger and yields its events as they happen; the last one is `.end` or `.error`.
    /// Cancelling the consuming task cancels the run.
    func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error>

    /// Runs the trigger and hands its events to a frontend on `eventLoop`, one pulled at a time (the run
    /// starts with the first pull); ``TriggerEventSource/cancel()`` or dropping the source stops the run.
    func openStream(_ request: TriggerRequest, on eventLoop: any EventLoop) -> any TriggerEventSource
}

extension TriggerRunner {
    /// The bridge for runners that only have the `async` form: ``runInTask(_:on:cancellation:)``.
    package func run(
        _ request: TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        runInTask(request, on: eventLoop, cancellation: cancellation)
    }

    /// `run(_:)` in one task of its own, its outcome handed back to `eventLoop`; cancelling cancels the task.
    /// What a runner that is loop-native for some calls only uses for the others (the demo pipelines' waits).
    package func runInTask(
        _ request: TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        let promise = eventLoop.makePromise(of: TriggerResult.self)
        let task = Task { [self] in
            do {
                promise.succeed(try await self.run(request))
            } catch {
                promise.fail(error)
            }
        }
        cancellation.whenCancelled { task.cancel() }
        return promise.futureResult
    }
}

/// The caller's "stop this call" for a call made with ``TriggerRunner/run(_:on:cancellation:)``: what task
/// cancellation is to the `async` form.
///
/// The runner registers what stopping means (reset a backend stream, close a connection) with
/// ``whenCancelled(_:)``, possibly several times as the call moves on (a retry replaces the handler); the
/// caller calls ``cancel()`` at most once it matters. A handler registered after `cancel()` runs at once.
/// Handlers run on the thread that cancels or registers, so they hop to their own loop when they need one.
/// One per call: the lock is never shared with another call.
package final class TriggerCancellation: Sendable {
    private struct State {
        var cancelled = false
        var handler: (@Sendable () -> Void)?
        var endpoint: String?
        var upstream = UpstreamDetail()
        var timedOut = false
    }

    private let state = Mutex(State())

    package init() {}

    package var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// The endpoint (as configured) the call's latest try went to: set by the balanced transports when they
    /// pick one, read by the frontend for the request's record (`RequestRecord.endpoint`). Nil for runners
    /// without endpoints (the in-process runner) and before a pick.
    package var endpoint: String? {
        get { state.withLock { $0.endpoint } }
        set { state.withLock { $0.endpoint = newValue } }
    }

    /// What the call's tries have told so far (``UpstreamDetail``), for the request's record.
    package var upstream: UpstreamDetail { state.withLock { $0.upstream } }

    /// ``endpoint`` and ``upstream`` under one lock: what a frontend copies into the request's record when the
    /// call ends.
    package var endpointAndUpstream: (endpoint: String?, upstream: UpstreamDetail) {
        state.withLock { ($0.endpoint, $0.upstream) }
    }

    /// A try begins on `endpoint` (the balanced transports' pick): ``endpoint`` names it, the try is counted,
    /// and the previous try's answer and duration are forgotten (the record describes the last try). One lock,
    /// as setting ``endpoint`` alone took.
    package func tryStarted(endpoint: String?) {
        state.withLock { state in
            state.endpoint = endpoint
            state.upstream.attempts += 1
            state.upstream.status = nil
            state.upstream.lastTryNanoseconds = nil
        }
    }

    /// The current try ended after `nanoseconds` (from its start to its answer's end, or its failure);
    /// `forgettingEndpoint`: the try reached no endpoint after all (the gateway's own refusal, `UO`), so
    /// ``endpoint`` is cleared.
    package func tryEnded(nanoseconds: Int64, forgettingEndpoint: Bool = false) {
        state.withLock { state in
            state.upstream.lastTryNanoseconds = nanoseconds
            if forgettingEndpoint { state.endpoint = nil }
        }
    }

    /// The runner answered the current try with `status`: its HTTP status, or its `grpc-status`. With
    /// `clearingHandler`, also ``clearHandler()`` (one lock for both, on the HTTP transport's answer).
    package func answered(status: Int, clearingHandler: Bool = false) {
        state.withLock { state in
            state.upstream.status = status
            if clearingHandler { state.handler = nil }
        }
    }

    /// The call waited `nanoseconds` for a slot of its pool before its first try.
    package func waitedForSlot(nanoseconds: Int64) {
        state.withLock { $0.upstream.queueNanoseconds = nanoseconds }
    }

    /// The call is being cut because the gateway's own deadline for it passed (a pool's `request_timeout`, counted
    /// as that endpoint's `UT`), not by its client: set by the pool before ``cancel()``, read by the balanced
    /// transports when they time the cut try (`outcome="UT"` rather than `cancelled`).
    package var timedOut: Bool {
        get { state.withLock { $0.timedOut } }
        set { state.withLock { $0.timedOut = newValue } }
    }

    /// Sets what `cancel()` does, replacing the previous handler; runs it at once if already cancelled.
    package func whenCancelled(_ handler: @escaping @Sendable () -> Void) {
        let runNow: Bool = state.withLock { state in
            if state.cancelled { return true }
            state.handler = handler
            return false
        }
        if runNow { handler() }
    }

    /// Forgets the handler (the call's current step is over and there is nothing left to stop).
    package func clearHandler() {
        state.withLock { $0.handler = nil }
    }

    /// The `async` form of a loop-native call: starts `call` with a fresh cancellation and awaits its future;
    /// cancelling the awaiting task cancels the call (``cancel()``). The transports' `run(_:)` is this over
    /// their ``TriggerRunner/run(_:on:cancellation:)``.
    package static func awaiting<Value: Sendable>(
        using cancellation: TriggerCancellation = TriggerCancellation(),
        _ call: (TriggerCancellation) -> EventLoopFuture<Value>
    ) async throws -> Value {
        try await withTaskCancellationHandler {
            try await call(cancellation).get()
        } onCancel: {
            cancellation.cancel()
        }
    }

    /// Stops the call: runs the handler once; later calls do nothing.
    package func cancel() {
        let handler: (@Sendable () -> Void)? = state.withLock { state in
            guard !state.cancelled else { return nil }
            state.cancelled = true
            defer { state.handler = nil }
            return state.handler
        }
        handler?()
    }
}

/// What a call's tries to its runner told the gateway, for the access log's upstream fields (`attempts`,
/// `upstream_status`, `upstream_duration_us`, `queue_duration_us`; README, Logging) and the async dispatcher's
/// `operation run` line: kept on the call's ``TriggerCancellation`` by the pool and the balanced transports, read
/// once when the call ends. Plain integers, so a copy retains nothing (log only: never a metric label).
package struct UpstreamDetail: Sendable, Equatable {
    /// Tries made: each endpoint picked counts one (a retry after a refused connect is a second try). 0 when no
    /// try was made (the in-process runner, a call refused or timed out before a pick).
    package var attempts = 0
    /// The last try's answer: the runner's HTTP status (HTTP transport) or its `grpc-status` (gRPC transport);
    /// nil when that try got no answer (refused, cut, timed out, garbage before a status).
    package var status: Int?
    /// The last try's duration in nanoseconds: from its start (the endpoint picked, a new connection's connect
    /// included) to its answer's end or its failure; nil when no try ended (the deadline cut it first).
    package var lastTryNanoseconds: Int64?
    /// How long the call waited for a slot of its pool (`max_concurrency`), in nanoseconds; nil when it found one
    /// free.
    package var queueNanoseconds: Int64?

    package init() {}
}
