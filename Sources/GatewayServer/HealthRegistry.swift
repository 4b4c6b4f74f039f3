import OperationStore
import Synchronization
package import TriggerModel

/// The serving status of each part of the gateway, what the readiness endpoints and the gRPC health
/// service answer from.
///
/// Two components: `gateway` (the whole server: NOT_SERVING while it starts and once it drains; sync and
/// stream triggers need nothing else) and `async` (async triggers and operations: follows the store's
/// probe, and the async dispatcher's claim loop: NOT_SERVING while it is stalled, review 26 H1). Overall
/// readiness is the gateway's alone, so a store outage or a stalled dispatcher never takes sync traffic off a
/// load balancer. Watchers (gRPC `Health/Watch`) get the current status at once and then every change; their
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

    fileprivate struct Watcher {
        var component: Component?
        var continuation: AsyncStream<Status>.Continuation
    }

    fileprivate struct State {
        var statuses: [Component: Status]
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        /// Set when the gateway drains: new watches end at once after their first status.
        var closed = false
        /// Async is NOT_SERVING because the store's disk is full (``asyncDiskFull``).
        var asyncDiskFull = false
        /// What the store's side says of async (``set(_:_:)``); `statuses[.async]` is it and the dispatcher's.
        var asyncStore: Status?
        /// How long the claim loop had gone without a step when it was declared stalled; nil while it claims
        /// (``dispatcherStalled(for:)``).
        var dispatcherStall: Duration?
    }

    private let state: Mutex<State>

    /// What an async trigger gets while the dispatcher is stalled (and the store is ready): another instance can
    /// take it (and with a shared store run it).
    static func dispatcherStalledMessage(_ bound: Duration) -> String {
        "async triggers are unavailable on this instance: its async dispatcher has claimed nothing for "
            + "\(bound.components.seconds) s; retry on another instance"
    }

    /// `asyncStatus` nil leaves the async component out (async mode off): it then reads as unknown.
    package init(gateway: Status = .notServing, async asyncStatus: Status? = nil) {
        var statuses: [Component: Status] = [.gateway: gateway]
        if let asyncStatus { statuses[.async] = asyncStatus }
        state = Mutex(State(statuses: statuses, asyncStore: asyncStatus))
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
        state.withLock { $0.asyncReason }.map { GatewayError(.unavailable, $0) } ?? Self.asyncUnavailable
    }

    /// Why a component is NOT_SERVING, when the registry knows more than the status (the `/readyz` body's
    /// `reasons`): for `async`, the full disk or the stalled dispatcher. Nil otherwise.
    package func reason(_ component: Component) -> String? {
        component == .async ? state.withLock { $0.asyncReason } : nil
    }

    /// The async dispatcher's claim loop was declared stalled after `bound` without a step (`ClaimLoopWatch`): async
    /// is NOT_SERVING, whatever the store says, until ``dispatcherClaiming()``.
    package func dispatcherStalled(for bound: Duration) {
        state.withLock { state in
            state.dispatcherStall = bound
            state.apply(.async, state.asyncStatus)
        }
    }

    /// The async dispatcher's claim loop made a step again: async follows the store again.
    package func dispatcherClaiming() {
        state.withLock { state in
            state.dispatcherStall = nil
            state.apply(.async, state.asyncStatus)
        }
    }

    /// Records a status; watchers of the component hear of it only when it changed. For `async`, the store's
    /// side of it: async is SERVING when the store is and the dispatcher is not stalled.
    package func set(_ component: Component, _ status: Status) {
        state.withLock { state in
            if component == .async {
                guard state.asyncStore != nil else { return }
                state.asyncStore = status
                state.apply(.async, state.asyncStatus)
            } else {
                state.apply(component, status)
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

extension HealthRegistry.State {
    /// Why async is NOT_SERVING beyond "the store is not ready": the store's full disk, else (the store ready) the
    /// stalled dispatcher; nil when neither.
    fileprivate var asyncReason: String? {
        if asyncDiskFull { return OperationStoreErrors.diskFullMessage }
        if asyncStore == .serving, let stall = dispatcherStall {
            return HealthRegistry.dispatcherStalledMessage(stall)
        }
        return nil
    }

    /// Async as the store's side and the dispatcher make it.
    fileprivate var asyncStatus: HealthRegistry.Status {
        asyncStore == .serving && dispatcherStall == nil ? .serving : .notServing
    }

    /// Records `status` for `component`; its watchers hear of it only when it changed.
    fileprivate mutating func apply(_ component: HealthRegistry.Component, _ status: HealthRegistry.Status) {
        guard statuses[component] != nil, statuses[component] != status else { return }
        statuses[component] = status
        for watcher in watchers.values where watcher.component == component {
            watcher.continuation.yield(status)
        }
    }
}
