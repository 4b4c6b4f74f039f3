package import FoundationEssentials
package import OperationStore
import PostgresNIO
import TriggerModel

/// Schedule state in the shared database: one row per schedule name, which every instance reads and updates
/// with single-statement upserts (no read-modify-write races between instances).
extension PostgresOperationStore: ScheduleStateStore {
    /// `paused`: NULL follows the configuration, true/false is the API's override.
    var schedulesTableSQL: String {
        """
        CREATE TABLE IF NOT EXISTS \(scheduleTable) (
            name TEXT PRIMARY KEY,
            last_tick BIGINT NOT NULL,
            last_operation_id TEXT,
            paused BOOLEAN
        )
        """
    }

    package func scheduleState(name: String, firstTick: Date) async throws -> ScheduleState {
        let tickMS = firstTick.storeMilliseconds
        return try await bounded("scheduleState") { [self] in
            _ = try await client.query(
                """
                INSERT INTO \(unescaped: scheduleTable) (name, last_tick) VALUES (\(name), \(tickMS)) \
                ON CONFLICT (name) DO NOTHING
                """,
                logger: logger
            )
            let rows = try await client.query(
                """
                SELECT last_tick, last_operation_id, paused FROM \(unescaped: scheduleTable) WHERE name = \(name)
                """,
                logger: logger
            ).collect()
            return try Self.scheduleState(name, rows.first)
        }
    }

    @discardableResult
    package func recordScheduleTick(name: String, tick: Date, operationID: String?) async throws -> ScheduleState {
        let tickMS = tick.storeMilliseconds
        return try await bounded("recordScheduleTick") { [self] in
            // In ON CONFLICT's SET, the table's columns are the row before the update.
            let rows = try await client.query(
                """
                INSERT INTO \(unescaped: scheduleTable) AS s (name, last_tick, last_operation_id) \
                VALUES (\(name), \(tickMS), \(operationID)) \
                ON CONFLICT (name) DO UPDATE SET \
                last_operation_id = CASE WHEN EXCLUDED.last_operation_id IS NOT NULL \
                AND EXCLUDED.last_tick >= s.last_tick THEN EXCLUDED.last_operation_id ELSE s.last_operation_id END, \
                last_tick = GREATEST(s.last_tick, EXCLUDED.last_tick) \
                RETURNING last_tick, last_operation_id, paused
                """,
                logger: logger
            ).collect()
            return try Self.scheduleState(name, rows.first)
        }
    }

    package func recordScheduleRun(name: String, operationID: String) async throws {
        try await bounded("recordScheduleRun") { [self] in
            _ = try await client.query(
                "UPDATE \(unescaped: scheduleTable) SET last_operation_id = \(operationID) WHERE name = \(name)",
                logger: logger
            )
        }
    }

    package func setSchedulePaused(name: String, paused: Bool?) async throws {
        try await bounded("setSchedulePaused") { [self] in
            _ = try await client.query(
                "UPDATE \(unescaped: scheduleTable) SET paused = \(paused) WHERE name = \(name)",
                logger: logger
            )
        }
    }

    private static func scheduleState(_ name: String, _ row: PostgresRow?) throws -> ScheduleState {
        guard let row else { throw GatewayError(.internalError, "schedule \(name) has no state row") }
        let (lastTick, operationID, paused) = try row.decode((Int64, String?, Bool?).self)
        return ScheduleState(
            name: name,
            lastTick: Date(storeMilliseconds: lastTick),
            lastOperationID: operationID,
            pausedOverride: paused
        )
    }
}
