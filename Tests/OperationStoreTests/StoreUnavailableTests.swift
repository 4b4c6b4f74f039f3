import Foundation
import GatewayTestSupport
import Logging
import OperationStore
import PostgresOperationStore
import SQLiteOperationStore
import Testing
import TriggerModel

@Suite("OperationStore unavailable")
struct StoreUnavailableTests {
    @Test("a failed call's `store.operation` is spelled as the store metrics' `operation` label (review 26, L6)")
    func operationLabelSpelling() {
        let cases: [(String, String)] = [
            ("queuedCount", "queued_count"), ("claimWebhooks", "claim_webhooks"), ("enqueue", "enqueue"),
            ("create schema", "create_schema"), ("complete+enqueue+claim", "complete+enqueue+claim"),
            ("recordScheduleTick", "record_schedule_tick"), ("blob files", "blob_files"), ("", ""),
        ]
        for (what, label) in cases { #expect(OperationStoreErrors.operationLabel(what) == label, "\(what)") }
        // The line's value for a call that failed, as logged.
        struct Refused: Error {}
        let recorded = RecordedLog()
        _ = OperationStoreErrors.unavailable("queuedCount", Refused(), logger: Logger(label: "t") { _ in recorded })
        #expect(recorded.lines.first?.metadata["store.operation"] == "queued_count", "\(recorded.lines)")
    }

    @Test(
        "a PostgreSQL store at a closed port fails as unavailable at its refused connect (never a hang)",
        .timeLimit(.minutes(2)))
    func postgresClosedPort() async throws {
        // A port held bound and never listening: connects are refused for the whole test.
        let reserved = try ReservedPort()
        defer { withExtendedLifetime(reserved) {} }
        let port = reserved.port
        let configuration = PostgresOperationStore.Configuration(
            host: "127.0.0.1",
            port: port,
            username: "postgres",
            // Far above what a refused connect takes, so only the refusal can end the wait: with 2 s and 1 s
            // the test failed when the whole test process stalled ~30 s under a saturated machine (the timeout
            // fired before the refusal was read). A pool that retried the refused connect forever would still
            // end at the operation timeout, with another message, and fail the check below.
            operationTimeout: .seconds(60),
            connectTimeout: .seconds(30)
        )
        let error = await gatewayError {
            // The pool logs every failed connection attempt at info: expected here, so kept out of the output.
            var quiet = Logger(label: "test.store.postgres")
            quiet.logLevel = .critical
            _ = try await PostgresOperationStore.open(configuration, logger: quiet)
        }
        #expect(error?.code == .unavailable)
        // What ended the wait: the start-up test connection's refused connect (a pool that keeps retrying it would
        // wait forever), said to the operator. Not a speed check: the test's time limit only catches a hang, and a
        // wall-clock window failed on a loaded CI machine.
        #expect(
            error?.message.hasPrefix("cannot connect to PostgreSQL: ") == true
                && error?.message.contains("Connection refused") == true,
            "\(String(describing: error))")
    }

    @Test("an SQLite store whose data directory cannot be created fails as unavailable")
    func sqliteBadDirectory() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-not-a-dir-\(UUID().uuidString)")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let error = await gatewayError {
            _ = try await SQLiteOperationStore.open(.init(dataDirectory: file.appendingPathComponent("data").path))
        }
        #expect(error?.code == .unavailable)
        // Said for the operator at start-up: the path and the OS's reason, not Foundation's error domain.
        #expect(
            error?.message.contains(file.appendingPathComponent("data").path) == true, "\(String(describing: error))")
        #expect(error?.message.contains("Not a directory") == true, "\(String(describing: error))")
        #expect(error?.message.contains("NSCocoaErrorDomain") == false)
    }

    @Test("an SQLite store used after close fails as unavailable and returns no id")
    func sqliteAfterClose() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await SQLiteOperationStore.open(.init(dataDirectory: dir.path))
        try await store.close()
        let error = await gatewayError { _ = try await store.enqueue(Fixtures.request(), idempotencyKey: nil) }
        #expect(error?.code == .unavailable)
        // What a client would read: no path, no driver type.
        #expect(error?.message == OperationStoreErrors.unavailableMessage)
    }

    @Test(
        "PostgreSQL URLs parse into host, port, user, password and database",
        arguments: [
            ("postgres://postgres@127.0.0.1:5433/postgres", "127.0.0.1", 5433, "postgres", nil, "postgres"),
            ("postgresql://u:p%40ss@db.example:6000/app?sslmode=disable", "db.example", 6000, "u", "p@ss", "app"),
            ("postgres://me@localhost", "localhost", 5432, "me", nil, nil),
            ("postgres://me@[::1]:7000/x", "::1", 7000, "me", nil, "x"),
        ] as [(String, String, Int, String, String?, String?)])
    func postgresURL(url: String, host: String, port: Int, user: String, password: String?, database: String?) throws {
        let configuration = try PostgresOperationStore.Configuration(url: url)
        #expect(configuration.host == host)
        #expect(configuration.port == port)
        #expect(configuration.username == user)
        #expect(configuration.password == password)
        #expect(configuration.database == database)
    }

    @Test(
        "malformed PostgreSQL URLs are rejected",
        arguments: [
            "mysql://u@h/db", "postgres://host-only/db", "postgres://u@h:99999/db", "postgres://u@/db",
            "postgres://@h/db",
        ])
    func badPostgresURL(url: String) {
        #expect(throws: PostgresOperationStore.Configuration.ConfigurationError.self) {
            _ = try PostgresOperationStore.Configuration(url: url)
        }
    }
}

/// Review 17, finding 3: a caller's cancellation (its client went away mid-call) is no store failure.
@Suite("OperationStore errors: a cancelled call")
struct StoreCancellationErrorTests {
    @Test(
        "in a cancelled task a CancellationError becomes .cancelled (499), unlogged; otherwise (a pool shut down) and a driver's failure stay .unavailable, logged"
    )
    func cancellationIsNotUnavailable() async {
        let log = RecordedLog()
        let logger = Logger(label: "test.store") { _ in log }
        let (cancelled, counted) = await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return (
                OperationStoreErrors.unavailable("get", CancellationError(), logger: logger),
                OperationStoreErrors.isCancellation(CancellationError())
            )
        }.value
        #expect(cancelled.code == .cancelled)
        #expect(OperationStoreErrors.isCancellation(cancelled))
        #expect(counted)
        #expect(log.lines.isEmpty, "\(log.lines)")
        // Not cancelled: NIO's thread pool throws CancellationError for work given after its shutdown.
        let closed = OperationStoreErrors.unavailable("get", CancellationError(), logger: logger)
        #expect(closed.code == .unavailable && closed.message == OperationStoreErrors.unavailableMessage)
        #expect(!OperationStoreErrors.isCancellation(CancellationError()))
        struct DriverFailure: Error {}
        let failed = OperationStoreErrors.unavailable("get", DriverFailure(), logger: logger)
        #expect(failed.code == .unavailable && failed.message == OperationStoreErrors.unavailableMessage)
        #expect(!OperationStoreErrors.isCancellation(failed))
        #expect(log.lines.map(\.level) == [.warning, .warning])
    }
}
