import Routing
import Synchronization

/// The frontend services of the configuration in force, swapped whole by a reload (SIGHUP).
///
/// Connections take a snapshot when a request (HTTP/1.1) or stream (HTTP/2) starts, and keep it for that
/// request: a reload changes what new requests see, never a request in progress. The snapshot is
/// re-read only when ``generation`` moved, so the common case costs one relaxed atomic load per request,
/// not a lock.
package final class CurrentFrontendServices: Sendable {
    private let services: Mutex<SharedFrontendServices>
    private let counter = Atomic<Int>(0)

    package init(_ services: FrontendServices) {
        self.services = Mutex(SharedFrontendServices(services))
    }

    /// Bumped by every ``replace(with:)``.
    var generation: Int { counter.load(ordering: .acquiring) }

    /// The services in force now.
    package var value: FrontendServices { current.value }

    /// `limits.max_connections_per_peer` in force now (0: none), read at each accept without copying the
    /// services.
    var maxConnectionsPerPeer: Int { current.value.maxConnectionsPerPeer }

    /// The services in force now, behind their one shared reference.
    private var current: SharedFrontendServices { services.withLock { $0 } }

    /// Makes `new` the services of every request that starts from now on.
    package func replace(with new: FrontendServices) {
        let shared = SharedFrontendServices(new)
        services.withLock { $0 = shared }
        counter.add(1, ordering: .releasing)
    }

    /// The services in force now, for a connection whose verified client certificate names `clientPrincipal`:
    /// the authenticator answers with it where no token decides (see `TokenAuthenticator`). A connection with
    /// the principal the services already carry (none, without client certificates) shares their reference;
    /// another gets its own copy.
    func shared(clientPrincipal: String?) -> SharedFrontendServices {
        let shared = current
        if shared.value.authenticator.certificatePrincipal == clientPrincipal { return shared }
        var services = shared.value
        services.authenticator.certificatePrincipal = clientPrincipal
        return SharedFrontendServices(services)
    }

    /// `cached` when it is still current, else the current services (for `clientPrincipal`'s connection) with
    /// their generation.
    func refresh(
        _ cached: inout SharedFrontendServices, generation cachedGeneration: inout Int, clientPrincipal: String?
    ) {
        let now = generation
        guard now != cachedGeneration else { return }
        cachedGeneration = now
        cached = shared(clientPrincipal: clientPrincipal)
    }
}

/// One generation's ``FrontendServices`` behind one reference, as the connections hold them.
///
/// The services are a struct of some 30 fields (about 20 references); a connection that kept them in a stored
/// `var` copied them whole (retaining every reference, ~530 instructions, and ~420 to destroy the copy) each time
/// it passed them to a function it does not inline, since the callee might reach the connection and replace
/// them meanwhile (bench/README.md, "Branch hotpath10"). Here they are a `let` of a final class: a function that
/// holds the reference in a local (`let shared = sharedServices`) lends `shared.value` without a copy (read through
/// the connection's stored property, even its `_read`, they were still copied), and replacing or sharing them is
/// one reference.
package final class SharedFrontendServices: Sendable {
    package let value: FrontendServices

    package init(_ value: FrontendServices) {
        self.value = value
    }
}
