import AsyncDispatch
import CraftSurface
package import GatewayConfig
package import Logging
import OperationStore

extension GatewayApp {
    /// The scheduler runs wherever async mode does (even with no schedule configured, so a reload can add one).
    static func makeScheduler(
        _ config: GatewayConfiguration,
        operations: AsyncOperations?,
        logger: Logger
    ) -> Scheduler? {
        guard let operations, let stateStore = operations.store as? any ScheduleStateStore else { return nil }
        return Scheduler(
            operations: operations,
            stateStore: stateStore,
            schedules: schedules(of: config, logger: logger),
            logger: logger
        )
    }

    /// Everything the scheduler runs: `schedules:`, then one schedule per periodic Craft AI deployment
    /// (`craft.<deployment>`, each tick an execution of it). `ConfigFile.load` checked these already (so
    /// `check-config`, a start and a reload refuse a deployment whose inputs cannot become an execution);
    /// a configuration that did not come through it drops such a schedule with an error logged.
    package static func schedules(of config: GatewayConfiguration, logger: Logger) -> [ScheduleConfiguration] {
        do {
            let periodic = try CraftExecution.schedules(of: config.craft, source: config.source)
            return config.schedules + periodic
        } catch {
            logger.error("periodic Craft AI deployments not scheduled", metadata: ["config.error": "\(error)"])
            return config.schedules
        }
    }
}
