import GatewayServer
import Testing

/// The readiness state the endpoints answer from, without sockets: what a watcher sees and when it ends.
@Suite("HealthRegistry")
struct HealthRegistryTests {
    @Test("a watch gets the current status at once, then each change once, and ends when the gateway drains")
    func watchSeesChangesUntilDrain() async {
        let health = HealthRegistry(gateway: .serving, async: .serving)
        let updates = health.watch(.async)
        health.set(.async, .serving)  // no change: not streamed
        health.set(.async, .notServing)
        health.set(.async, .serving)
        health.set(.gateway, .notServing)  // another component: not streamed to this watch
        health.draining()
        var seen: [HealthRegistry.Status] = []
        for await status in updates { seen.append(status) }
        #expect(seen == [.serving, .notServing, .serving])
        #expect(health.status(.gateway) == .notServing)
    }

    @Test("the gateway component starts NOT_SERVING and drains to NOT_SERVING; async is absent without a store")
    func componentsAndStartup() async {
        let health = HealthRegistry()
        #expect(health.status(.gateway) == .notServing)
        #expect(health.status(.async) == nil)
        #expect(health.components.map(\.component) == [.gateway])
        health.set(.gateway, .serving)
        health.set(.async, .serving)  // unknown component: ignored
        #expect(health.status(.async) == nil)
        #expect(HealthRegistry.Component(grpcService: "") == .gateway)
        #expect(HealthRegistry.Component(grpcService: "trigger.async") == .async)
        #expect(HealthRegistry.Component(grpcService: "other") == nil)
        health.draining()
        #expect(health.status(.gateway) == .notServing)
    }

    @Test("an unknown service is watched as SERVICE_UNKNOWN; after the drain a new watch ends after its first status")
    func unknownAndAfterDrain() async {
        let health = HealthRegistry(gateway: .serving)
        let unknown = health.watch(nil)
        let missingAsync = health.watch(.async)
        health.draining()
        var seen: [HealthRegistry.Status] = []
        for await status in unknown { seen.append(status) }
        for await status in missingAsync { seen.append(status) }
        for await status in health.watch(.gateway) { seen.append(status) }
        #expect(seen == [.serviceUnknown, .serviceUnknown, .notServing])
    }
}
