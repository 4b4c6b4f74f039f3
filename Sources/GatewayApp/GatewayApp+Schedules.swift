import AsyncDispatch
import GatewayConfig
import Logging
import OperationStore

extension GatewayApp {
    /// The scheduler runs wherever async mode does (even with no schedule configured, so a reload can add one).
    static func makeScheduler(
        _ config: GatewayConfiguration,
        operations: AsyncOperations?,
        logger: Logger
    ) -> Scheduler? {
        guard let operations, let stateStore = operations.store as? any ScheduleStateStore else { return nil }
        return Scheduler(operations: operations, stateStore: stateStore, schedules: config.schedules, logger: logger)
    }
}
