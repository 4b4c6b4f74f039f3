package import FoundationEssentials
package import OperationStore
import TriggerModel

/// Schedule state goes to the store installed now, like every operation call.
extension ReplaceableOperationStore: ScheduleStateStore {
    private func scheduleStore() throws(GatewayError) -> any ScheduleStateStore {
        guard let store = try current() as? any ScheduleStateStore else {
            throw GatewayError(.unimplemented, "this operation store keeps no schedule state")
        }
        return store
    }

    package func scheduleState(name: String, firstTick: Date) async throws -> ScheduleState {
        try await scheduleStore().scheduleState(name: name, firstTick: firstTick)
    }

    @discardableResult
    package func recordScheduleTick(name: String, tick: Date, operationID: String?) async throws -> ScheduleState {
        try await scheduleStore().recordScheduleTick(name: name, tick: tick, operationID: operationID)
    }

    package func recordScheduleRun(name: String, operationID: String) async throws {
        try await scheduleStore().recordScheduleRun(name: name, operationID: operationID)
    }

    package func setSchedulePaused(name: String, paused: Bool?) async throws {
        try await scheduleStore().setSchedulePaused(name: name, paused: paused)
    }
}
