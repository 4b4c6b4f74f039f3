package import NIOCore
package import TriggerModel

/// One named pool of backend endpoints behind a concurrency limit: what a route points at.
///
/// The pool owns its transport (in-process runner, HTTP/1.1 client, or gRPC client) and applies what is
/// common to all of them: the concurrency limit with its bounded queue, and the effective deadline (the
/// earlier of the client's deadline and the pool's request timeout).
package final class BackendPool: TriggerRunner {
    package let configuration: BackendPoolConfiguration
    private let transport: any TriggerRunner
    private let limiter: ConcurrencyLimiter

    package init(configuration: BackendPoolConfiguration, transport: any TriggerRunner) {
        self.configuration = configuration
        self.transport = transport
        self.limiter = ConcurrencyLimiter(
            name: configuration.name,
            maxConcurrency: configuration.maxConcurrency,
            maxQueue: configuration.maxQueue
        )
    }

    package var name: String { configuration.name }

    /// A reload removed or replaced this pool: calls already in flight finish, then its connections close.
    /// New calls never reach it (the route table that named it is gone), except the few that picked it just
    /// before the swap; they run normally and their connections close after them.
    package func retire() {
        (transport as? any RetirableTransport)?.retire()
    }

    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        let request = withEffectiveDeadline(request)
        return try await limiter.withSlot {
            try await withDeadline(request.deadline) { try await self.transport.run(request) }
        }
    }

    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        // Streams are bounded by the idle timeout of the frontend, not by the request timeout: a long stream
        // that keeps producing is not cut (issue "stream mode" item 4). Only the client's own deadline applies.
        transport.runStreaming(request)
    }

    private func withEffectiveDeadline(_ request: TriggerRequest) -> TriggerRequest {
        var request = request
        let poolDeadline = NIODeadline.now() + configuration.requestTimeout
        if let clientDeadline = request.deadline {
            request.deadline = min(clientDeadline, poolDeadline)
        } else {
            request.deadline = poolDeadline
        }
        return request
    }

    /// Races `body` against the deadline; on expiry the body's task is cancelled and the caller gets
    /// `.deadlineExceeded` at once, whatever the transport does with the cancellation.
    private func withDeadline<T: Sendable>(
        _ deadline: NIODeadline?,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard let deadline else { return try await body() }
        let pool = configuration.name
        let timeout = configuration.requestTimeout
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                let remaining = deadline - NIODeadline.now()
                if remaining.nanoseconds > 0 {
                    try await Task.sleep(nanoseconds: UInt64(remaining.nanoseconds))
                }
                throw BackendErrors.deadline(pool: pool, after: describe(min(remaining, timeout)))
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            return first
        }
    }
}

/// `1.5s`, `250ms`: how durations appear in error messages.
package func describe(_ amount: TimeAmount) -> String {
    let ms = amount.nanoseconds / 1_000_000
    if ms >= 1000, ms % 1000 == 0 { return "\(ms / 1000)s" }
    if ms >= 1000 { return "\(Double(ms) / 1000)s" }
    return "\(max(ms, 0))ms"
}
