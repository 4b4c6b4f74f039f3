import NIOCore
import Synchronization

/// Sent through a connection's pipeline when the shutdown grace period ran out with work still in flight:
/// each frontend answers what is left in its own protocol (REST 503 + `Retry-After` + `Connection: close`,
/// an SSE error event and the last chunk, gRPC `UNAVAILABLE`, HTTP/2 GOAWAY with the last processed stream)
/// and closes.
struct ShutdownGraceExpiredEvent {
    /// Counts the requests the connections cut (``cut()``), for the drain's summary (review 26 L3).
    let cuts: Cuts

    /// The requests cut at the grace's end, counted by the connections that cut them (on their loops).
    final class Cuts: Sendable {
        private let count = Atomic(0)
        /// One request more was cut.
        func cut() { count.add(1, ordering: .relaxed) }
        var total: Int { count.load(ordering: .relaxed) }
    }
}

/// Knows every open frontend connection so shutdown can ask them to finish and wait for them.
///
/// Graceful: each connection gets a quiesce event (HTTP/1.1 finishes its current request and closes;
/// HTTP/2 sends GOAWAY); when the grace period runs out, a `ShutdownGraceExpiredEvent` (each frontend
/// answers in its protocol), and after `answerWindow` whatever is still open is closed. Waiting is event
/// driven: the last connection to close resumes the drain.
final class ConnectionTracker: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
        /// The drain has queued its quiesce event on every connection (``waitUntilQuiesceSent()``).
        var quiesceSent = false
        var quiesceWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// How long connections get to write their last answers after the grace period before they are cut.
    static let answerWindow: TimeAmount = .seconds(1)

    var count: Int { state.withLock { $0.channels.count } }

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        state.withLock { $0.channels[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            let waiters: [CheckedContinuation<Void, Never>] = state.withLock { s in
                s.channels.removeValue(forKey: id)
                guard s.channels.isEmpty else { return [] }
                defer { s.emptyWaiters = [] }
                return s.emptyWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Drains every connection (see the type); returns how many requests were cut at the grace's end (answered
    /// by the gateway: 503, gRPC UNAVAILABLE, an SSE error event), counted once the connections answered.
    @discardableResult
    func drain(grace: TimeAmount) async -> Int {
        for channel in state.withLock({ Array($0.channels.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let waiters = state.withLock { s in
            s.quiesceSent = true
            defer { s.quiesceWaiters = [] }
            return s.quiesceWaiters
        }
        for waiter in waiters { waiter.resume() }
        if await waitUntilEmpty(timeout: grace) { return 0 }
        let expired = ShutdownGraceExpiredEvent(cuts: .init())
        for channel in state.withLock({ Array($0.channels.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(expired)
        }
        if await waitUntilEmpty(timeout: Self.answerWindow) { return expired.cuts.total }
        for channel in state.withLock({ Array($0.channels.values) }) {
            channel.close(promise: nil)
        }
        return expired.cuts.total
    }

    /// Returns once the drain has queued its quiesce event on every open connection: an event fired from off
    /// the connection's loop runs there before anything queued on that loop afterwards, so a test that then
    /// runs a task on each loop knows every connection has seen it (and sends its request after the drain
    /// began, deterministically, rather than racing it).
    func waitUntilQuiesceSent() async {
        await withCheckedContinuation { continuation in
            let sent = state.withLock { s in
                if s.quiesceSent { return true }
                s.quiesceWaiters.append(continuation)
                return false
            }
            if sent { continuation.resume() }
        }
    }

    /// True when every connection closed within `timeout`.
    private func waitUntilEmpty(timeout: TimeAmount) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let empty = self.state.withLock { s in
                        if s.channels.isEmpty { return true }
                        s.emptyWaiters.append(continuation)
                        return false
                    }
                    if empty { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(timeout.nanoseconds, 0)))
                return false
            }
            let first = await group.next() ?? false
            if !first {
                // Time is up: release the empty-waiter so the group can finish.
                let waiters = state.withLock { s in
                    defer { s.emptyWaiters = [] }
                    return s.emptyWaiters
                }
                for waiter in waiters { waiter.resume() }
            }
            group.cancelAll()
            _ = await group.next()
            return first
        }
    }
}
