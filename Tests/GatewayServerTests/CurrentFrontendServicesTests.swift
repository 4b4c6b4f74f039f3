@testable import GatewayServer
import Logging
import NIOCore
import Routing
import Testing
import TriggerDispatch
import WireCodecs

/// The services a connection holds (`SharedFrontendServices`, one reference): shared by every connection that
/// carries the principal the services already carry, a copy of their own for a client certificate's principal,
/// and replaced by a reload only when its generation moved.
@Suite struct CurrentFrontendServicesTests {
    static func services(maxHeaderBytes: Int = 16_384, certificatePrincipal: String? = nil) -> FrontendServices {
        var services = FrontendServices(
            dispatcher: TriggerDispatcher(routes: RouteTable(routes: []), pools: [:]),
            authenticator: TokenAuthenticator(tokens: [], authRequired: false),
            limits: .defaults,
            maxHeaderBytes: maxHeaderBytes,
            maxConcurrentStreams: 8,
            requestTimeout: .seconds(30),
            idleTimeout: .seconds(60),
            logger: Logger(label: "services-test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        services.authenticator.certificatePrincipal = certificatePrincipal
        return services
    }

    @Test func connectionsWithoutAPrincipalShareOneReference() {
        let current = CurrentFrontendServices(Self.services())
        let first = current.shared(clientPrincipal: nil)
        let second = current.shared(clientPrincipal: nil)
        #expect(first === second)
        #expect(first.value.authenticator.certificatePrincipal == nil)
        #expect(first.value.maxHeaderBytes == 16_384)
    }

    @Test func aClientCertificatesPrincipalGetsItsOwnCopy() {
        let current = CurrentFrontendServices(Self.services())
        let shared = current.shared(clientPrincipal: nil)
        let alice = current.shared(clientPrincipal: "alice")
        #expect(alice !== shared)
        #expect(alice.value.authenticator.certificatePrincipal == "alice")
        #expect(alice.value.maxHeaderBytes == 16_384)
        // The shared services are not changed by it.
        #expect(current.shared(clientPrincipal: nil).value.authenticator.certificatePrincipal == nil)
        #expect(current.value.authenticator.certificatePrincipal == nil)
    }

    /// The principal is always the connection's: services that carry one are shared only with a connection of
    /// the same principal, and a connection without one gets none (as the copy set it before the sharing).
    @Test func servicesCarryingAPrincipalAreSharedOnlyWithThatPrincipal() {
        let current = CurrentFrontendServices(Self.services(certificatePrincipal: "bob"))
        let bob = current.shared(clientPrincipal: "bob")
        #expect(bob === current.shared(clientPrincipal: "bob"))
        let none = current.shared(clientPrincipal: nil)
        #expect(none !== bob)
        #expect(none.value.authenticator.certificatePrincipal == nil)
    }

    @Test func refreshReplacesTheCachedServicesOnlyAfterAReload() {
        let current = CurrentFrontendServices(Self.services(maxHeaderBytes: 1_000))
        var generation = current.generation
        var cached = current.shared(clientPrincipal: "carol")
        let before = cached
        current.refresh(&cached, generation: &generation, clientPrincipal: "carol")
        #expect(cached === before, "no reload: the connection keeps its services")

        current.replace(with: Self.services(maxHeaderBytes: 2_000))
        #expect(current.value.maxHeaderBytes == 2_000)
        current.refresh(&cached, generation: &generation, clientPrincipal: "carol")
        #expect(cached !== before)
        #expect(cached.value.maxHeaderBytes == 2_000)
        #expect(cached.value.authenticator.certificatePrincipal == "carol")
        #expect(generation == current.generation)
        let after = cached
        current.refresh(&cached, generation: &generation, clientPrincipal: "carol")
        #expect(cached === after)
    }
}
