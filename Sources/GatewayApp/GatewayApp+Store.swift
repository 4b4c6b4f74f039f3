import FoundationEssentials
package import GatewayConfig
package import Logging
package import OperationStore
import PostgresOperationStore
import SQLiteOperationStore
import TriggerModel

extension GatewayApp {
    /// Opens the configured operation store: SQLite under `dataDir` (created when missing), or PostgreSQL
    /// at `store.url`. Throws `ConfigError` for a bad URL or TLS file (path `store.url`), `.unavailable` when the store
    /// cannot be opened.
    package static func openStore(
        _ config: GatewayConfiguration,
        logger: Logger
    ) async throws -> any OperationStore {
        switch config.store.kind {
        case .sqlite:
            var storeLogger = logger
            storeLogger[metadataKey: "store"] = "sqlite"
            return try await SQLiteOperationStore.open(.init(dataDirectory: config.dataDir), logger: storeLogger)
        case .postgres:
            let configuration = try postgresConfiguration(config)
            var storeLogger = logger
            storeLogger[metadataKey: "store"] = "postgres"
            // PostgresNIO logs each failed connection attempt at info: while the server is down (reconnects
            // every few seconds) that would drown the one warning the gateway logs about it.
            storeLogger.logLevel = max(storeLogger.logLevel, .warning)
            return try await PostgresOperationStore.open(configuration, logger: storeLogger)
        }
    }

    /// The longest one store call takes while the store works, for the claim loop's stall bound
    /// (`AsyncDispatcher.stallBound`). PostgreSQL: its call timeout (10 s), then as long again for a call that ignores
    /// its cancellation (`PostgresOperationStore.withTimeout`). SQLite has no call timeout (a statement waits for the
    /// file's lock up to `busy_timeout`, 5 s, and for the store's one thread): twice its busy timeout.
    static func storeCallLimit(_ config: GatewayConfiguration) -> Duration {
        switch config.store.kind {
        case .sqlite: SQLiteOperationStore.Configuration(dataDirectory: config.dataDir).busyTimeout * 2
        case .postgres: PostgresOperationStoreConfiguration(host: "", username: "").operationTimeout * 2
        }
    }

    /// The store as log lines name it: kind and location, never a password.
    package static func storeName(_ config: GatewayConfiguration) -> String {
        switch config.store.kind {
        case .sqlite:
            return "sqlite \(SQLiteOperationStore.Configuration(dataDirectory: config.dataDir).databasePath)"
        case .postgres:
            guard let parsed = try? PostgresOperationStoreConfiguration(url: config.store.url ?? "") else {
                return "postgres"
            }
            return "postgres \(parsed.username)@\(parsed.host):\(parsed.port)/\(parsed.database ?? "") "
                + "sslmode=\(parsed.tls.mode.rawValue)"
        }
    }
}
