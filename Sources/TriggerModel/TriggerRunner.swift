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
        _ call: (TriggerCancellation) -> EventLoopFuture<Value>
    ) async throws -> Value {
        let cancellation = TriggerCancellation()
        return try await withTaskCancellationHandler {
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
