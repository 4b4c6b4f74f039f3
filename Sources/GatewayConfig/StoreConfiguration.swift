/// The async operation store and its dispatcher (`store:` in the config file).
///
/// The embedded default is SQLite under `data_dir`; `kind: postgres` with a `url` lets several gateway
/// instances share work. The dispatcher settings (lease, attempts, backoff, retention, workers) apply to
/// both kinds.
package struct StoreConfiguration: Sendable, Equatable {
    package enum Kind: String, Sendable, Equatable, CaseIterable {
        /// One file under `data_dir`, for a single gateway instance.
        case sqlite
        /// A PostgreSQL server several instances share.
        case postgres
    }

    package var kind: Kind
    /// `postgres://user[:password]@host[:port][/database]`; required exactly when `kind` is `postgres`.
    package var url: String?
    /// Prefix of the PostgreSQL table names, so several gateways (or tests) can share one database.
    package var tablePrefix: String
    /// How long a claimed operation stays with its dispatcher without a renewal (the dispatcher renews every
    /// third of it while the run lasts, so it can be short); after that another instance claims it again. A
    /// restart of the same instance takes its earlier leases back at once, without waiting.
    package var lease: Duration
    /// Attempts an operation gets (a claim is an attempt) before it fails for good.
    package var maxAttempts: Int
    /// Wait before the second attempt; doubled for each further one, capped at `maxRetryBackoff`.
    package var retryBackoff: Duration
    package var maxRetryBackoff: Duration
    /// Finished operations (and their blobs) are purged this long after they finished.
    package var retention: Duration
    /// Operations this instance runs at once.
    package var workers: Int
    /// `max_connections` (PostgreSQL only): the connection pool's size; nil: ``postgresPoolSize``'s formula of
    /// `workers`. The gateway also holds one idle session of its own (``postgresSessions``), so an instance uses
    /// up to this plus one of the server's `max_connections` and of its role's `CONNECTION LIMIT` (review 27 M1:
    /// the size was neither stated nor settable, and a role limit under it failed every async trigger at start).
    package var maxConnections: Int?
    /// `password_file` (PostgreSQL only): the file ``password`` was read from; the URL then has no password.
    package var passwordFile: String?
    /// The PostgreSQL password read from `password_file` (nil: the URL's own, if any). Never printed.
    package var password: String?
    /// The pool sizes `max_connections` takes: two at least, one for the claim loop and one for accepts.
    package static let maxConnectionsRange = 2...1000

    /// The PostgreSQL pool's size: `max_connections`, or `max(4, min(64, workers / 2))`.
    package var postgresPoolSize: Int { maxConnections ?? max(4, min(64, workers / 2)) }
    /// How often an idle dispatcher looks for new work (local enqueues wake it at once), and how often a
    /// long-poll re-reads an operation another instance may finish.
    package var pollInterval: Duration
    /// The longest `?wait=` a client may ask for on `GET /v1beta/operations/{id}`.
    package var maxWait: Duration
    /// How often the store is probed with a write (the readiness of async mode follows it), and the first
    /// reconnect back-off after it fails. At most 2 s, so an outage shows within 5 s.
    package var healthInterval: Duration

    package init(
        kind: Kind = .sqlite,
        url: String? = nil,
        tablePrefix: String = "trigger_",
        lease: Duration = .seconds(10),
        maxAttempts: Int = 3,
        retryBackoff: Duration = .seconds(1),
        maxRetryBackoff: Duration = .seconds(60),
        retention: Duration = .seconds(7 * 24 * 3600),
        workers: Int = 64,
        pollInterval: Duration = .milliseconds(500),
        maxWait: Duration = .seconds(60),
        healthInterval: Duration = .seconds(2)
    ) {
        self.kind = kind
        self.url = url
        self.tablePrefix = tablePrefix
        self.lease = lease
        self.maxAttempts = maxAttempts
        self.retryBackoff = retryBackoff
        self.maxRetryBackoff = maxRetryBackoff
        self.retention = retention
        self.workers = workers
        self.pollInterval = pollInterval
        self.maxWait = maxWait
        self.healthInterval = healthInterval
    }

    /// SQLite under `data_dir`, 10 s leases, 3 attempts from 1 s backoff, 7 days' retention, 64 workers.
    package static var defaults: StoreConfiguration { StoreConfiguration() }

    package static let maxAttemptsRange = 1...100
    package static let workersRange = 1...10_000
    package static let minimumLease = Duration.milliseconds(100)
    package static let healthIntervalRange = Duration.milliseconds(50)...Duration.seconds(2)

    /// How long a run whose call reached no runner (every connection refused, no endpoint to take it) waits
    /// in the queue before it is claimed again, `waited` after its first claim: half of that, within
    /// ``notSentBackoffRange`` (1 s to 30 s). Such a run spends no attempt (the pipeline did not run), so a
    /// runner that is down for a while loses nothing; the wait grows with the outage (by about half each time)
    /// so a long one costs a few claims a minute per operation, not a spinning queue.
    package static func notSentBackoff(waited: Duration) -> Duration {
        min(max(waited / 2, notSentBackoffRange.lowerBound), notSentBackoffRange.upperBound)
    }

    package static let notSentBackoffRange = Duration.seconds(1)...Duration.seconds(30)

    /// The wait before attempt `attempt + 1`, after `attempt` failed ones.
    package func backoff(afterAttempt attempt: Int) -> Duration {
        var wait = retryBackoff
        for _ in 1..<max(attempt, 1) {
            wait *= 2
            if wait >= maxRetryBackoff { return maxRetryBackoff }
        }
        return min(wait, maxRetryBackoff)
    }
}
