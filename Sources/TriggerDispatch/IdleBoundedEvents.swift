package import TriggerModel

/// Ends a backend event stream that stays silent for longer than the idle timeout.
///
/// A stream has no total time limit (a long one that keeps producing is fine); what it must not do is hold a
/// client and a backend call while nothing happens. Each wait for the next event races a timer; when the
/// timer wins, the wait is cancelled (which cancels the backend call) and the stream ends with
/// `.deadlineExceeded`. Only the backend's silence counts: time spent waiting for a slow client to take an
/// event is not spent inside `next()`.
package enum IdleBoundedEvents {
    package static func wrap(
        _ events: AsyncThrowingStream<TriggerEvent, any Error>,
        idleTimeout: Duration
    ) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let source = Source(events.makeAsyncIterator(), idleTimeout: idleTimeout)
        return AsyncThrowingStream(unfolding: { try await source.next() })
    }

    private struct IdleTimeout: Error {}

    /// Holds the wrapped iterator. `AsyncThrowingStream(unfolding:)` never calls `next()` concurrently, and
    /// within one call the iterator is touched by one child task only, hence the unchecked conformance.
    private final class Source: @unchecked Sendable {
        private var iterator: AsyncThrowingStream<TriggerEvent, any Error>.AsyncIterator
        private let idleTimeout: Duration
        private var finished = false

        init(_ iterator: AsyncThrowingStream<TriggerEvent, any Error>.AsyncIterator, idleTimeout: Duration) {
            self.iterator = iterator
            self.idleTimeout = idleTimeout
        }

        func next() async throws -> TriggerEvent? {
            if finished { return nil }
            let timeout = idleTimeout
            do {
                let event = try await withThrowingTaskGroup(of: TriggerEvent?.self) { group in
                    group.addTask { try await self.advance() }
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        throw IdleTimeout()
                    }
                    defer { group.cancelAll() }
                    return try await group.next() ?? nil
                }
                if event == nil { finished = true }
                return event
            } catch is IdleTimeout {
                finished = true
                throw GatewayError(.deadlineExceeded, "the backend sent no event for \(Self.describe(timeout))")
            } catch {
                finished = true
                throw error
            }
        }

        private func advance() async throws -> TriggerEvent? {
            try await iterator.next()
        }

        private static func describe(_ duration: Duration) -> String {
            let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
            return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
        }
    }
}
