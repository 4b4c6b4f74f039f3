import Synchronization
package import TriggerModel

/// Ends a backend event stream that stays silent for longer than the idle timeout.
///
/// A stream has no total time limit (a long one that keeps producing is fine); what it must not do is hold a
/// client and a backend call while nothing happens. Each wait for the next event runs in its own small task
/// that a per-stream watchdog cancels once the wait has lasted the idle timeout; cancelling it cancels the
/// backend call, and the stream ends with `.deadlineExceeded`. Only the backend's silence counts: time spent
/// waiting for a slow client to take an event is not spent inside `next()`.
///
/// One watchdog per stream, not one timer per event: a cancelled `Task.sleep` keeps its timer until the
/// deadline it was given, so a timer per event would hold memory in proportion to events × idle timeout.
package enum IdleBoundedEvents {
    package static func wrap(
        _ events: AsyncThrowingStream<TriggerEvent, any Error>,
        idleTimeout: Duration
    ) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let source = Source(events.makeAsyncIterator(), idleTimeout: idleTimeout)
        return AsyncThrowingStream(unfolding: { try await source.next() })
    }

    /// Holds the wrapped iterator. `AsyncThrowingStream(unfolding:)` never calls `next()` concurrently, and
    /// the iterator is touched only by the one fetch task of the current `next()`, hence the unchecked
    /// conformance; the state the watchdog shares is behind a lock.
    private final class Source: @unchecked Sendable {
        private struct Shared {
            /// The fetch in flight and when it started.
            var waiting: (since: ContinuousClock.Instant, fetch: Task<TriggerEvent?, any Error>)?
            var expired = false
        }

        private var iterator: AsyncThrowingStream<TriggerEvent, any Error>.AsyncIterator
        private let idleTimeout: Duration
        private let shared = Mutex(Shared())
        private var watchdog: Task<Void, Never>?
        private var finished = false

        init(_ iterator: AsyncThrowingStream<TriggerEvent, any Error>.AsyncIterator, idleTimeout: Duration) {
            self.iterator = iterator
            self.idleTimeout = idleTimeout
        }

        deinit {
            watchdog?.cancel()
        }

        func next() async throws -> TriggerEvent? {
            if finished { return nil }
            if watchdog == nil { watchdog = startWatchdog() }
            let fetch = Task { try await self.advance() }
            shared.withLock { $0.waiting = (ContinuousClock.now, fetch) }
            let outcome = await withTaskCancellationHandler {
                await fetch.result
            } onCancel: {
                fetch.cancel()
            }
            let expired = shared.withLock { shared -> Bool in
                shared.waiting = nil
                return shared.expired
            }
            if expired {
                finish()
                throw GatewayError(.deadlineExceeded, "the backend sent no event for \(Self.describe(idleTimeout))")
            }
            switch outcome {
            case .success(let event?):
                return event
            case .success(nil):
                finish()
                return nil
            case .failure(let error):
                finish()
                throw error
            }
        }

        private func advance() async throws -> TriggerEvent? {
            try await iterator.next()
        }

        private func finish() {
            finished = true
            watchdog?.cancel()
            watchdog = nil
        }

        /// Wakes once per idle period (or when the current wait would reach it) and cancels a fetch that has
        /// waited the whole idle timeout.
        private func startWatchdog() -> Task<Void, Never> {
            let idleTimeout = self.idleTimeout
            return Task { [weak self] in
                var nap = idleTimeout
                while !Task.isCancelled {
                    try? await Task.sleep(for: nap)
                    guard !Task.isCancelled, let self else { return }
                    let now = ContinuousClock.now
                    let (overdue, remaining) = self.shared.withLock { shared -> (Task<TriggerEvent?, any Error>?, Duration) in
                        guard let waiting = shared.waiting else { return (nil, idleTimeout) }
                        let waited = now - waiting.since
                        guard waited >= idleTimeout else { return (nil, idleTimeout - waited) }
                        shared.expired = true
                        return (waiting.fetch, .zero)
                    }
                    if let overdue {
                        overdue.cancel()
                        return
                    }
                    nap = remaining
                }
            }
        }

        private static func describe(_ duration: Duration) -> String {
            let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
            return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
        }
    }
}
