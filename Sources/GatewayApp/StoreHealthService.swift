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
    /// Writes refused for lack of disk space, which fail readiness between probes (review 21, M3).
    let full: StoreFullLatch

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
        full: StoreFullLatch? = nil,
        logger: Logger
    ) {
        self.full = full ?? StoreFullLatch(health: health, storeName: storeName, logger: logger)
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
            // Refusals counted before the probe: one during it keeps async NOT_SERVING (`serve(unlessTrippedSince:)`).
            let refusals = full.refusals
            var healthy: Bool
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
            // The store answered, but a refusal for space holds readiness (``StoreFullLatch``): no reconnect.
            let storeFailed = !healthy
            if healthy, let stillFull = full.stillFull() {
                healthy = false
                cause = stillFull
            }
            if Task.isCancelled { return }
            let wasFull = healthy ? full.serve(unlessTrippedSince: refusals) : nil
            if let wasFull {
                if failures > 0 || wasFull {
                    logger.info("operation store ready again", metadata: ["store": "\(storeName)"])
                }
                startedWithoutStore = false
                failures = 0
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
                if storeFailed, reopen != nil, let old = replaceable?.uninstall() {
                    Task { try? await old.close() }
                }
                // Started without a store, the start-up line already said so; a full disk, the latch's line.
                if failures == 1, !startedWithoutStore, !full.isTripped {
                    var metadata: Logger.Metadata = ["store": "\(storeName)"]
                    if let cause { metadata["error"] = .string(cause) }
                    logger.warning(
                        "operation store not ready: async triggers answer 503 until it is back", metadata: metadata)
                }
                // Backing off spares a failing store (and a server's reconnects); a store whose only trouble is a
                // full disk (its probe refused for space too, once the WAL has grown into the last pages, or
                // answered but short of room) is looked at again each `interval` (a small write and a statvfs),
                // so async is back within one interval of the space being freed.
                try? await Task.sleep(for: storeFailed && !full.isTripped ? backoff(afterFailures: failures) : interval)
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

/// Async readiness after a store write refused for lack of disk space (review 21, M3): `SQLITE_FULL`, `ENOSPC` or
/// `EDQUOT` on a blob file, PostgreSQL's `disk_full`. The probe alone missed it: its one small heartbeat row still
/// fits in the pages a full disk has left, so a load balancer kept sending async triggers that all failed.
///
/// A refusal (``trip()``, from `MeasuredOperationStore`, so any call: an enqueue, a completion, the probe) marks
/// async NOT_SERVING at once and logs the readiness warning. The next probes keep it so until the store can take
/// the calls that failed again, by one rule:
/// - SQLite (`space` given): the probe's write succeeds *and* the data directory has `space.needed` bytes free,
///   the room the largest trigger the gateway accepts takes (`limits.max_body_bytes`: an operation's row and
///   blob files hold at most its decoded body) plus 1 MiB for SQLite's WAL and the directory's own blocks.
///   The probe's write alone would flap: SERVING after each probe, NOT_SERVING at the next big enqueue, while
///   the disk stays full. A probe writing enqueue-sized rows would cost a large fsync'd write per probe while
///   full; statvfs is free, and the next enqueue's write is then the real write (a refusal trips again).
/// - PostgreSQL (`space` nil): the probe's write succeeds. The server's disk is not ours to measure; a disk
///   that stays nearly full can then alternate at most once per `store.health_interval`.
package final class StoreFullLatch: Sendable {
    /// Free space of the store's disk, and how much readiness needs back after a refusal.
    package struct Space: Sendable {
        /// Bytes free now (`DataDirectorySpace.availableBytes`); nil when unknown (counted as none).
        package var availableBytes: @Sendable () -> UInt64?
        package var needed: UInt64

        package init(availableBytes: @escaping @Sendable () -> UInt64?, needed: UInt64) {
            self.availableBytes = availableBytes
            self.needed = needed
        }
    }

    private struct State {
        var tripped = false
        /// Refusals so far: a probe that saw one begin after it started does not mark SERVING.
        var refusals = 0
    }

    private let state = Mutex(State())
    private let health: HealthRegistry
    private let storeName: String
    private let logger: Logger
    let space: Space?

    package init(health: HealthRegistry, space: Space? = nil, storeName: String, logger: Logger) {
        self.health = health
        self.space = space
        self.storeName = storeName
        self.logger = logger
    }

    /// A store call was refused for lack of disk space: async is NOT_SERVING from now until a probe clears it. The
    /// first refusal logs the readiness warning (the store's own line names the disk and the call).
    package func trip() {
        let first = state.withLock { state in
            state.refusals += 1
            defer { state.tripped = true }
            if !state.tripped { health.setAsync(.notServing, diskFull: true) }
            return !state.tripped
        }
        guard first else { return }
        logger.warning(
            "operation store not ready: async triggers answer 503 until it is back",
            metadata: ["store": "\(storeName)", "error": "\(OperationStoreErrors.diskFullMessage)"])
    }

    /// Whether a refusal has marked async NOT_SERVING and no probe has cleared it yet.
    package var isTripped: Bool { state.withLock { $0.tripped } }

    package var refusals: Int { state.withLock { $0.refusals } }

    /// After a probe whose write succeeded: why async must stay NOT_SERVING (the data directory has less than
    /// `space.needed` bytes free since a refusal), or nil.
    package func stillFull() -> String? {
        guard isTripped, let space else { return nil }
        let free = space.availableBytes() ?? 0
        guard free < space.needed else { return nil }
        return "the operation store's disk is full: \(free) bytes free, async triggers need \(space.needed) back "
            + "(limits.max_body_bytes and 1 MiB)"
    }

    /// Marks async SERVING after a healthy probe, unless a refusal came after `refusals` was read (then nil:
    /// still NOT_SERVING). Whether a refusal had tripped the latch, which this clears.
    package func serve(unlessTrippedSince refusals: Int) -> Bool? {
        state.withLock { state in
            guard state.refusals == refusals else { return nil }
            defer { state.tripped = false }
            health.setAsync(.serving, diskFull: false)
            return state.tripped
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
