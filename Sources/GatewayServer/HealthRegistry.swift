import OperationStore
import Synchronization
package import TriggerModel

/// The serving status of each part of the gateway, what the readiness endpoints and the gRPC health
/// service answer from.
///
/// Two components: `gateway` (the whole server: NOT_SERVING while it starts and once it drains; sync and
/// stream triggers need nothing else) and `async` (async triggers and operations: follows the store's
/// probe). Overall readiness is the gateway's alone, so a store outage never takes sync traffic off a load
/// balancer. Watchers (gRPC `Health/Watch`) get the current status at once and then every change; their
/// streams end when the gateway drains.
///
/// Owned by `GatewayApp`, shared by the frontends (through `FrontendServices`) and the services that
/// report (`GatewayServer`, `StoreHealthService`).
package final class HealthRegistry: Sendable {
    package enum Component: String, Sendable, CaseIterable {
        case gateway
        case async

        /// The gRPC health service name (grpc/grpc `doc/health-checking.md`: "" is the whole server).
        package var grpcService: String {
            switch self {
            case .gateway: ""
            case .async: "trigger.async"
            }
        }

        package init?(grpcService: String) {
            guard let component = Self.allCases.first(where: { $0.grpcService == grpcService }) else { return nil }
            self = component
        }
    }

    package enum Status: Sendable, Equatable {
        case serving
        case notServing
        /// Only ever streamed to a watcher of a service the registry does not know.
        case serviceUnknown

        package var name: String {
            switch self {
            case .serving: "SERVING"
            case .notServing: "NOT_SERVING"
            case .serviceUnknown: "SERVICE_UNKNOWN"
            }
        }
    }

    private struct Watcher {
        var component: Component?
        var continuation: AsyncStream<Status>.Continuation
    }

    private struct State {
        var statuses: [Component: Status]
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        /// Set when the gateway drains: new watches end at once after their first status.
        var closed = false
        /// Async is NOT_SERVING because the store's disk is full (``asyncDiskFull``).
        var asyncDiskFull = false
    }

    private let state: Mutex<State>

    /// `asyncStatus` nil leaves the async component out (async mode off): it then reads as unknown.
    package init(gateway: Status = .notServing, async asyncStatus: Status? = nil) {
        var statuses: [Component: Status] = [.gateway: gateway]
        if let asyncStatus { statuses[.async] = asyncStatus }
        state = Mutex(State(statuses: statuses))
    }

    /// nil for a component this gateway does not have.
    package func status(_ component: Component) -> Status? {
        state.withLock { $0.statuses[component] }
    }

    /// The components this gateway has, in declaration order.
    package var components: [(component: Component, status: Status)] {
        state.withLock { state in
            Component.allCases.compactMap { c in state.statuses[c].map { (component: c, status: $0) } }
        }
    }

    /// Whether async is NOT_SERVING because the operation store refused a write for lack of disk space
    /// (`StoreFullLatch`): async triggers refused for readiness then say so (``asyncRefusal``). Set with async's
    /// status, under the same lock, so the two never disagree.
    package func setAsync(_ status: Status, diskFull: Bool) {
        state.withLock { $0.asyncDiskFull = diskFull }
        set(.async, status)
    }

    /// What an async trigger gets while async is not SERVING: ``asyncUnavailable``, or the operation store's
    /// disk-full answer when that is why (review 21, M3: "retry later" hides a condition a retry here will not fix).
    package var asyncRefusal: GatewayError {
        state.withLock { $0.asyncDiskFull }
            ? GatewayError(.unavailable, OperationStoreErrors.diskFullMessage) : Self.asyncUnavailable
    }

    /// Records a status; watchers of the component hear of it only when it changed.
    package func set(_ component: Component, _ status: Status) {
        state.withLock { state in
            guard state.statuses[component] != nil, state.statuses[component] != status else { return }
            state.statuses[component] = status
            for watcher in state.watchers.values where watcher.component == component {
                watcher.continuation.yield(status)
            }
        }
    }

    /// The gateway began to drain: the whole server is NOT_SERVING from now on, and every watch stream
    /// ends (after that status) so no connection stays open for it.
    package func draining() {
        set(.gateway, .notServing)
        let watchers: [Watcher] = state.withLock { state in
            state.closed = true
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.continuation.finish() }
    }

    /// The current status at once, then each change, until the consumer stops iterating or the gateway
    /// drains. `component` nil (an unknown service) streams SERVICE_UNKNOWN once and stays open, as the
    /// gRPC health protocol asks, so a client watching a service that never appears keeps its call.
    package func watch(_ component: Component?) -> AsyncStream<Status> {
        let (stream, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(8))
        let id: Int? = state.withLock { state in
            let current = component.flatMap { state.statuses[$0] } ?? .serviceUnknown
            continuation.yield(current)
            if state.closed { return nil }
            let id = state.nextWatcher
            state.nextWatcher += 1
            let known = component.flatMap { state.statuses[$0] == nil ? nil : $0 }
            state.watchers[id] = Watcher(component: known, continuation: continuation)
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }
}
