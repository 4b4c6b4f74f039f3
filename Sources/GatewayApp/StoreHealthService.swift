import FoundationEssentials
import Synchronization
package import Logging
package import OperationStore
package import GatewayServer
import ServiceLifecycle
import TriggerModel

/// Keeps the readiness of async mode true: probes the operation store with a real write every
/// `interval`, marks the `async` component NOT_SERVING when a probe fails or hangs, and SERVING again when
/// one succeeds.
///
/// For a server store (`reopen` given) a failed store is replaced by a freshly connected one rather than
/// left to its client's own reconnect back-off, which grows to a minute (PostgresNIO's pool); attempts are
/// spaced `interval`, doubling, capped at `maxBackoff`, so a store that is back is seen within
/// `maxBackoff` + one attempt. The same loop opens a store that was down at start-up.
package struct StoreHealthService: Service {
    package typealias Opener = @Sendable () async throws -> any OperationStore

    /// The longest wait between two reconnect attempts: below the 5 s within which readiness must follow
    /// the store's return (issue 9), with room for the attempt itself.
    package static let maxBackoff = Duration.seconds(3)
    /// A probe (or a reconnect) that takes longer counts as failed: a store that hangs is down too.
    package static let attemptTimeout = Duration.seconds(2)

    let store: any OperationStore
    let replaceable: ReplaceableOperationStore?
    let reopen: Opener?
    let health: HealthRegistry
    let interval: Duration
    let instance: String
    let logger: Logger
    /// Names the store in log lines (kind, host, port, database; never a password).
    let storeName: String

    /// `replaceable` and `reopen` go together: the store to install fresh connections into, and how to make
    /// one. Without them the one `store` is probed and never replaced (SQLite).
    package init(
        store: any OperationStore,
        replaceable: ReplaceableOperationStore? = nil,
        reopen: Opener? = nil,
        health: HealthRegistry,
        interval: Duration,
        instance: String,
        storeName: String,
        logger: Logger
    ) {
        self.store = store
        self.replaceable = replaceable
        self.reopen = reopen
        self.health = health
        self.interval = interval
        self.instance = instance
        self.storeName = storeName
        self.logger = logger
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.probeLoop()
        }
    }

    private func probeLoop() async {
        var failures = 0
        var startedWithoutStore = replaceable?.isOpen == false
        // The server's own word that it went away (``ConnectionLossSignalling``), watched while healthy.
        var watch: LossWatch?
        defer { watch?.cancel() }
        while !Task.isCancelled {
            let started = ContinuousClock.now
            let healthy: Bool
            // Why the store is not ready, when known (the log line says it: review 18, F3).
            var cause: String?
            if let lost = watch, let reason = lost.reason {
                // The server closed our session: the store is gone now. A probe would wait out its timeout
                // for a pool connection that cannot be made, so readiness follows at once instead.
                watch = nil
                healthy = false
                cause = reason
            } else {
                cause = await attempt(reconnect: failures > 0 || replaceable?.isOpen == false)
                healthy = cause == nil
            }
            if Task.isCancelled { return }
            if healthy {
                if failures > 0 {
                    logger.info("operation store ready again", metadata: ["store": "\(storeName)"])
                }
                startedWithoutStore = false
                failures = 0
                health.set(.async, .serving)
                if watch == nil, let signalling = (try? replaceable?.current()) as? any ConnectionLossSignalling {
                    watch = LossWatch.start(signalling)
                }
                // Probes start `interval` apart, however long each took; a lost session cuts the wait short.
                await sleep(until: started + interval, unless: watch)
            } else {
                watch?.cancel()
                watch = nil
                failures += 1
                health.set(.async, .notServing)
                // A server store that failed is dropped: calls fail at once (503) until a fresh connection
                // is installed, rather than each waiting out its timeout on the dead one.
                if reopen != nil, let old = replaceable?.uninstall() {
                    Task { try? await old.close() }
                }
                // Started without a store, the start-up line already said so.
                if failures == 1, !startedWithoutStore {
                    var metadata: Logger.Metadata = ["store": "\(storeName)"]
                    if let cause { metadata["error"] = .string(cause) }
                    logger.warning(
                        "operation store not ready: async triggers answer 503 until it is back", metadata: metadata)
                }
                try? await Task.sleep(for: backoff(afterFailures: failures))
            }
        }
    }

    /// Sleeps until `deadline`, or until `watch` fires (seen within ``lossCheck``), whichever is first. Slices
    /// rather than a race with the watch's task, which must outlive this wait (its session spans probes).
    private func sleep(until deadline: ContinuousClock.Instant, unless watch: LossWatch?) async {
        while !Task.isCancelled, watch?.reason == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(until: min(deadline, .now + Self.lossCheck), clock: .continuous)
        }
    }

    /// How often a sleep between probes looks at the store's connection-loss watch.
    static let lossCheck = Duration.milliseconds(50)

    func backoff(afterFailures failures: Int) -> Duration {
        var wait = interval
        for _ in 1..<max(failures, 1) where wait < Self.maxBackoff { wait *= 2 }
        return min(wait, Self.maxBackoff)
    }

    /// One probe; when `reconnect` and the store can be reopened, a fresh connection is made, probed, and
    /// installed in place of the failed one. Nil when the store is healthy, else why not, in operator words.
    private func attempt(reconnect: Bool) async -> String? {
        if reconnect, let reopen, let replaceable {
            let opened = await withTimeout({ try await reopen() })
            guard let fresh = opened.value else { return opened.failure }
            let instance = self.instance
            let probed = await withTimeout({ try await fresh.probe(instance: instance, now: Date()) })
            guard probed.value != nil else {
                try? await fresh.close()
                return probed.failure
            }
            if let old = replaceable.install(fresh) {
                // Calls still running on the old connection fail as unavailable; nothing is lost (the store's
                // contract: only committed results are ever acknowledged).
                Task { try? await old.close() }
            }
            return nil
        }
        let store = self.store
        let instance = self.instance
        let probed = await withTimeout({ try await store.probe(instance: instance, now: Date()) })
        return probed.value == nil ? probed.failure : nil
    }

    /// `body`'s value, or nil with why in operator words when it threw (the store's `GatewayError` message; the
    /// error itself logged at debug) or took longer than `attemptTimeout`.
    private func withTimeout<T: Sendable>(
        _ body: @escaping @Sendable () async throws -> T
    ) async -> (value: T?, failure: String) {
        switch await Self.withTimeout(Self.attemptTimeout, body) {
        case .success(let value)?: return (value, "")
        case .failure(let error)?:
            logger.debug("operation store probe failed", metadata: ["error": "\(String(reflecting: error))"])
            return (nil, (error as? GatewayError)?.message ?? "the store's probe failed")
        case nil: return (nil, "the store's probe had no answer within \(Self.attemptTimeout)")
        }
    }

    /// What `body` returned or threw, or nil when it took longer than `timeout`. A body that overruns is
    /// cancelled and not waited for (a hung disk or socket must not stall the caller); a store it opens
    /// after all is closed.
    package static func withTimeout<T: Sendable>(
        _ timeout: Duration,
        _ body: @escaping @Sendable () async throws -> T
    ) async -> Result<T, any Error>? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>?, Never>) in
            let pending = PendingResume(continuation)
            let work = Task {
                let outcome: Result<T, any Error>
                do {
                    outcome = .success(try await body())
                } catch {
                    outcome = .failure(error)
                }
                if let waiting = pending.take() {
                    waiting.resume(returning: outcome)
                } else if case .success(let value) = outcome, let store = value as? any OperationStore {
                    try? await store.close()
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                if let waiting = pending.take() {
                    work.cancel()
                    waiting.resume(returning: nil)
                }
            }
        }
    }
}

/// A store's ``ConnectionLossSignalling/connectionLost()`` watched in a task of its own, across probes.
private final class LossWatch: Sendable {
    private let lost = Mutex<String?>(nil)
    private let running = Mutex<Task<Void, Never>?>(nil)

    private init() {}

    static func start(_ store: any ConnectionLossSignalling) -> LossWatch {
        let watch = LossWatch()
        let task = Task {
            let reason = await store.connectionLost()
            if !Task.isCancelled { watch.lost.withLock { $0 = reason } }
        }
        watch.running.withLock { $0 = task }
        return watch
    }

    /// Why the watched session is gone (``ConnectionLossSignalling/connectionLost()``); nil while it is not.
    var reason: String? { lost.withLock { $0 } }

    func cancel() { running.withLock { $0 }?.cancel() }
}

/// A continuation resumed by whichever of two tasks comes first.
private final class PendingResume<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) {
        self.continuation = Mutex(continuation)
    }

    func take() -> CheckedContinuation<T, Never>? {
        continuation.withLock { $0.take() }
    }
}
