package import Logging
package import OperationStore
import ServiceLifecycle

/// Keeps the operation store open for the life of the service group and closes it last (it is the first
/// service, so the group stops it after the listener and the dispatcher are done with it).
package struct OperationStoreService: Service {
    let store: any OperationStore
    let logger: Logger

    package init(store: any OperationStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    package func run() async throws {
        try? await gracefulShutdown()
        // Closed outside the group's cancellation: when a sibling service fails (say the port is taken) the group
        // cancels this task, and a cancelled close would leave the database open.
        let store = self.store
        do {
            try await Task { try await store.close() }.value
        } catch {
            logger.warning("closing the operation store failed", metadata: ["error": "\(error)"])
        }
    }
}
