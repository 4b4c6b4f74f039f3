import Routing
import Synchronization

/// The frontend services of the configuration in force, swapped whole by a reload (SIGHUP).
///
/// Connections take a snapshot when a request (HTTP/1.1) or stream (HTTP/2) starts, and keep it for that
/// request: a reload changes what new requests see, never a request in progress. The snapshot is
/// re-read only when ``generation`` moved, so the common case costs one relaxed atomic load per request,
/// not a lock.
package final class CurrentFrontendServices: Sendable {
    private let services: Mutex<FrontendServices>
    private let counter = Atomic<Int>(0)

    package init(_ services: FrontendServices) {
        self.services = Mutex(services)
    }

    /// Bumped by every ``replace(with:)``.
    var generation: Int { counter.load(ordering: .acquiring) }

    /// The services in force now.
    package var value: FrontendServices { services.withLock { $0 } }

    /// Makes `new` the services of every request that starts from now on.
    package func replace(with new: FrontendServices) {
        services.withLock { $0 = new }
        counter.add(1, ordering: .releasing)
    }

    /// The services in force now, for a connection whose verified client certificate names `clientPrincipal`:
    /// the authenticator answers with it where no token decides (see `TokenAuthenticator`).
    func value(clientPrincipal: String?) -> FrontendServices {
        var services = value
        services.authenticator.certificatePrincipal = clientPrincipal
        return services
    }

    /// `cached` when it is still current, else the current services (for `clientPrincipal`'s connection) with
    /// their generation.
    func refresh(_ cached: inout FrontendServices, generation cachedGeneration: inout Int, clientPrincipal: String?) {
        let now = generation
        guard now != cachedGeneration else { return }
        cachedGeneration = now
        cached = value(clientPrincipal: clientPrincipal)
    }
}
