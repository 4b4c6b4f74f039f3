import NIOCore
import Synchronization

/// A store call that did not end within `timeout` after it was cancelled, and was left running: its caller got
/// this error instead of waiting for it (see `PostgresOperationStore.withTimeout`).
struct StoreCallAbandoned: Error, CustomStringConvertible {
    /// How long the call was given to end after its cancellation.
    let after: Duration

    var description: String {
        "the call did not end \(after) after it was cancelled; left running in the background (PostgresNIO did not "
            + "honour the cancellation)"
    }
}

extension PostgresOperationStore {
    /// Runs `body` in a task of its own, which is cancelled once `timeout` has passed on `eventLoop` (and when the
    /// caller is cancelled), and waits for it to end: `body`'s value, even one that came after the timeout (a
    /// commit that made it is reported as made); nil when the timeout cancelled it and it then failed; else
    /// `body`'s error (`CancellationError` when the caller was cancelled).
    ///
    /// The wait after a cancellation is bounded too, by `timeout` again: a body still running then is left to end
    /// in the background and the caller gets `StoreCallAbandoned`. A query written on a connection is awaited
    /// through an `EventLoopFuture` in PostgresNIO, which a task's cancellation does not reach; such a call held
    /// its caller for good (review 26 H1: after a PostgreSQL outage an instance's claim loop stopped in one, and
    /// its SIGTERM never ended). A body that ends late may still commit: the same uncertainty as a timeout's.
    ///
    /// Why not a task group racing `body` against `Task.sleep`, as before: that was three tasks (two children and
    /// the sleep's), a group and a runtime timer per store call, a few per accepted operation. This is one task and
    /// one event-loop timer, which `body`'s end cancels (bench/README.md, branch asynccost); a second timer only
    /// once the call was cancelled.
    static func withTimeout<T: Sendable>(
        _ timeout: Duration,
        on eventLoop: any EventLoop,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        let call = BoundedCall<T>(grace: timeout, eventLoop: eventLoop)
        // The timer first, so that it is running by the time `body` starts.
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) { call.expire() }
        let task = Task {
            do { call.finish(.ended(.success(try await body()))) } catch { call.finish(.ended(.failure(error))) }
        }
        call.attach(task)
        let outcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { call.wait($0) }
        } onCancel: {
            call.cancel()
        }
        timer.cancel()
        switch outcome {
        case .ended(.success(let value)):
            return value
        case .ended(.failure(let error)):
            if call.expired { return nil }
            throw error
        case .abandoned:
            throw StoreCallAbandoned(after: timeout)
        }
    }
}

/// One `withTimeout` call's state: its task (attached after the timer was scheduled, so a timer that fires first
/// cancels the task as it is attached), whether the timeout fired, the caller's continuation and the outcome,
/// delivered once: the body's end or, `grace` after a cancellation, the abandonment.
private final class BoundedCall<T: Sendable>: Sendable {
    enum Outcome: Sendable {
        case ended(Result<T, any Error>)
        case abandoned
    }

    private struct State {
        var expired = false
        var cancelled = false
        var task: Task<Void, Never>?
        var waiter: UnsafeContinuation<Outcome, Never>?
        var outcome: Outcome?
        var abandonTimer: Scheduled<Void>?
    }

    private let state = Mutex(State())
    private let grace: Duration
    private let eventLoop: any EventLoop

    init(grace: Duration, eventLoop: any EventLoop) {
        self.grace = grace
        self.eventLoop = eventLoop
    }

    var expired: Bool { state.withLock { $0.expired } }

    func attach(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { state in
            state.task = task
            return state.cancelled
        }
        if cancelNow { task.cancel() }
    }

    /// The timeout: the body is cancelled.
    func expire() {
        state.withLock { $0.expired = true }
        cancel()
    }

    /// Cancels the body (once) and starts the wait for its end, after which it is abandoned.
    func cancel() {
        let (first, task): (Bool, Task<Void, Never>?) = state.withLock { state in
            guard !state.cancelled else { return (false, nil) }
            state.cancelled = true
            return (true, state.task)
        }
        guard first else { return }
        task?.cancel()
        let timer = eventLoop.scheduleTask(in: TimeAmount(grace)) { [self] in finish(.abandoned) }
        let finished = state.withLock { state in
            if state.outcome == nil { state.abandonTimer = timer }
            return state.outcome != nil
        }
        if finished { timer.cancel() }
    }

    func finish(_ outcome: Outcome) {
        let (waiter, timer): (UnsafeContinuation<Outcome, Never>?, Scheduled<Void>?) = state.withLock { state in
            guard state.outcome == nil else { return (nil, nil) }
            state.outcome = outcome
            defer {
                state.waiter = nil
                state.abandonTimer = nil
            }
            return (state.waiter, state.abandonTimer)
        }
        timer?.cancel()
        waiter?.resume(returning: outcome)
    }

    func wait(_ continuation: UnsafeContinuation<Outcome, Never>) {
        let outcome: Outcome? = state.withLock { state in
            if let outcome = state.outcome { return outcome }
            state.waiter = continuation
            return nil
        }
        if let outcome { continuation.resume(returning: outcome) }
    }
}
