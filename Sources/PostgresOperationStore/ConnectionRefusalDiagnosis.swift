import Logging
import NIOCore
import Synchronization

/// Why the pool cannot open connections, said once: PostgresNIO's pool retries a refused connect behind its callers
/// and tells only its background logger, at `info` ("Connection creation failed", the error reflected), so a role's
/// `CONNECTION LIMIT` under the pool's size failed every async trigger with "waiting for a PostgreSQL connection was
/// cancelled" and SQLSTATE 53300 appeared nowhere (review 27 M1). On such a failure (``PoolEventsLogHandler``) or a
/// call that waited for a connection in vain, one connection of the store's own is opened, as `open`'s probe, while
/// the pool still holds what it has; if the server refuses it, one warning with the server's words and what to
/// change. At most once per ``interval``.
final class ConnectionRefusalDiagnosis: Sendable {
    /// The least time between two diagnoses: 30 s.
    static let interval = TimeAmount.seconds(30)

    private let probe: @Sendable () async throws -> Void
    private let poolSize: Int
    private let logger: Logger
    /// Uptime nanoseconds of the last diagnosis (0: none yet).
    private let last = Atomic<UInt64>(0)

    /// `probe`: opens and closes one connection, throwing `GatewayError` with the described reason.
    init(poolSize: Int, logger: Logger, probe: @escaping @Sendable () async throws -> Void) {
        self.poolSize = poolSize
        self.logger = logger
        self.probe = probe
    }

    /// Starts a diagnosis unless one ran within ``interval``.
    func run() {
        let now = NIODeadline.now().uptimeNanoseconds
        let previous = last.load(ordering: .relaxed)
        guard previous == 0 || now &- previous >= UInt64(Self.interval.nanoseconds),
            last.compareExchange(expected: previous, desired: now, ordering: .relaxed).exchanged
        else { return }
        Task { [probe, poolSize, logger] in
            do {
                try await probe()
            } catch {
                logger.warning(
                    Self.advice(for: "\(error)"),
                    metadata: [
                        "error": "\(error)",
                        "store.max_connections": .stringConvertible(poolSize),
                    ])
            }
        }
    }
}

extension ConnectionRefusalDiagnosis {
    /// What to do about a refusal, by the probe's error as `PostgresErrorDescription` words it (with the server's
    /// SQLSTATE last): a limit on connections (53300 `too_many_connections`, 53000) names the pool's size and the
    /// server's limits; `cannot_connect_now` (57P03) is a server starting up, shutting down or recovering, which
    /// every restart and failover passes through and no pool size changes (cluster review 59, L3: it told
    /// operators to resize their pools); anything else (a closed port, a lost network) is said as it is.
    static func advice(for error: String) -> Logger.Message {
        if error.hasSuffix("(SQLSTATE 53300)") || error.hasSuffix("(SQLSTATE 53000)") {
            return """
                PostgreSQL refuses the gateway's new connections: store calls wait for the connections the pool \
                has; lower store.max_connections (the pool's size; the gateway holds one session more) or raise \
                the server's max_connections or the role's CONNECTION LIMIT
                """
        }
        if error.hasSuffix("(SQLSTATE 57P03)") {
            return """
                PostgreSQL refuses new connections while it starts up, shuts down or recovers: store calls wait for \
                the connections the pool has, and the pool connects again once the server accepts connections
                """
        }
        return """
            PostgreSQL does not take the gateway's new connections: store calls wait for the connections the pool \
            has; check that the server is up and reachable at store.url
            """
    }
}

/// The pool's background logger: passes every line on to `base` (at `base`'s level), and tells `connectFailed`
/// of each "Connection creation failed" PostgresNIO logs (at `info`, which `base` may leave out).
struct PoolEventsLogHandler: LogHandler {
    var base: any LogHandler
    let connectFailed: @Sendable () -> Void

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    /// At least `info`, so that the pool's connect failures reach ``log(event:)`` whatever `base` writes.
    var logLevel: Logger.Level {
        get { min(base.logLevel, .info) }
        set { base.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level == .info, event.message.description == "Connection creation failed" { connectFailed() }
        if event.level >= base.logLevel { base.log(event: event) }
    }
}
