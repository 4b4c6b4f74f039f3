import ServiceLifecycle

/// Services told to shut down at the same moment, so that they share one `timeouts.shutdown_grace` instead of
/// taking it one after another.
///
/// A `ServiceGroup` stops its services in reverse order, each only after the one before has returned. The
/// listener and the async dispatcher each let work in flight run for up to the grace period: one after the
/// other, a SIGTERM with a sync call and an async run both in flight took twice the grace to exit, past a
/// supervisor's stop timeout sized for one (systemd's `TimeoutStopSec`, Kubernetes'
/// `terminationGracePeriodSeconds`), which then kills the process. Run as one service, each member sees the
/// graceful shutdown as soon as this service does (the shutdown is a task-local its child tasks inherit): the
/// dispatcher stops claiming while the listener drains, and both grace periods start at the signal.
///
/// A member that returns or throws before the shutdown ends this service as it would end a `ServiceGroup`
/// (the others are cancelled; the error, if any, is thrown), so the group around it stops too.
struct SharedGraceServices: Service {
    let services: [any Service]

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { members in
            for service in services {
                members.addTask { try await service.run() }
            }
            while try await members.next() != nil {
                // An early return: nothing asked the members to stop, so this is a failure to stay up.
                if !Task.isShuttingDownGracefully {
                    members.cancelAll()
                    return
                }
            }
        }
    }
}
