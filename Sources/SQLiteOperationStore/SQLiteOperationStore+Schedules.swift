package import FoundationEssentials
package import OperationStore
import SQLiteNIO
import TriggerModel

/// Schedule state in the same file as the operations: one row per schedule name.
extension SQLiteOperationStore: ScheduleStateStore {
    /// `paused`: NULL follows the configuration, 0/1 is the API's override.
    static let schedulesTable = """
        CREATE TABLE IF NOT EXISTS schedules (
            name TEXT PRIMARY KEY,
            last_tick INTEGER NOT NULL,
            last_operation_id TEXT,
            paused INTEGER
        )
        """

    package func scheduleState(name: String, firstTick: Date) async throws -> ScheduleState {
        try await serialized {
            try await query(
                "INSERT INTO schedules (name, last_tick) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                [.text(name), .integer(Int(firstTick.storeMilliseconds))]
            )
            return try await readSchedule(name)
        }
    }

    @discardableResult
    package func recordScheduleTick(name: String, tick: Date, operationID: String?) async throws -> ScheduleState {
        let tickMS = Int(tick.storeMilliseconds)
        return try await serialized {
            // One statement under SQLite's write lock; the CASE reads the row as it was before the update.
            try await query(
                """
                INSERT INTO schedules (name, last_tick, last_operation_id) VALUES (?1, ?2, ?3) \
                ON CONFLICT (name) DO UPDATE SET \
                last_operation_id = CASE WHEN ?3 IS NOT NULL AND ?2 >= last_tick THEN ?3 ELSE last_operation_id END, \
                last_tick = MAX(last_tick, ?2)
                """,
                [.text(name), .integer(tickMS), operationID.map { .text($0) } ?? .null]
            )
            return try await readSchedule(name)
        }
    }

    package func recordScheduleRun(name: String, operationID: String) async throws {
        try await serialized {
            _ = try await query(
                "UPDATE schedules SET last_operation_id = ? WHERE name = ?",
                [.text(operationID), .text(name)]
            )
        }
    }

    package func setSchedulePaused(name: String, paused: Bool?) async throws {
        try await serialized {
            _ = try await query(
                "UPDATE schedules SET paused = ? WHERE name = ?",
                [paused.map { .integer($0 ? 1 : 0) } ?? .null, .text(name)]
            )
        }
    }

    private func readSchedule(_ name: String) async throws -> ScheduleState {
        let rows = try await query(
            "SELECT last_tick, last_operation_id, paused FROM schedules WHERE name = ?",
            [.text(name)]
        )
        guard let row = rows.first, let lastTick = row.column("last_tick")?.integer else {
            throw GatewayError(.internalError, "schedule \(name) has no state row")
        }
        return ScheduleState(
            name: name,
            lastTick: Date(storeMilliseconds: Int64(lastTick)),
            lastOperationID: row.column("last_operation_id")?.string,
            pausedOverride: row.column("paused")?.integer.map { $0 != 0 }
        )
    }
}
