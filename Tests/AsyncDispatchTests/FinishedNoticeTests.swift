@testable import AsyncDispatch
import FoundationEssentials
import GatewayConfig
import GatewayTestSupport
import Logging
import NIOPosix
import OperationStore
import Routing
import Testing
import TriggerModel

/// `AsyncOperations.finished`: what happens once an operation is final here. The operation is read back from
/// the store only to send a route's webhook; a read for every finished operation was the most frequent statement
/// of a PostgreSQL accept-and-run (bench/README.md, branch pgaccept).
@Suite("Finished notices read the store back only for a route with a webhook")
struct FinishedNoticeTests {
    @Test("a route without a webhook: nothing is read back; a route with one: the operation is read once")
    func readsBackOnlyForWebhooks() async throws {
        try await withRecordingStore { store in
            // Nothing listens on the webhook's port: its one attempt is refused at once.
            let reserved = try ReservedPort()
            defer { withExtendedLifetime(reserved) {} }
            let closedPort = reserved.port
            let webhook = WebhookConfiguration(
                url: "http://127.0.0.1:\(closedPort)/hook",
                endpoint: BackendEndpoint(host: "127.0.0.1", port: closedPort),
                path: "/hook",
                maxAttempts: 1,
                timeout: .seconds(2)
            )
            let routes = RouteTable(routes: [
                RouteConfiguration(namespace: "test", pipeline: "hooked", pool: "local", webhook: webhook),
                RouteConfiguration(namespace: "test", pool: "local"),
            ])
            let sender = WebhookSender(group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
            let operations = AsyncOperations(
                store: store, settings: StoreConfiguration(), routes: routes, webhooks: sender)
            var finished: [String: Operation] = [:]
            for pipeline in ["plain", "hooked"] {
                let (operation, _) = try await store.enqueue(asyncRequest(pipeline), idempotencyKey: nil)
                let owner = "owner-\(pipeline)"
                let now = Date()
                let claimed = try await store.claim(owner: owner, leaseDuration: .seconds(60), limit: 1, now: now)
                #expect(claimed.map(\.id) == [operation.id])
                let webhook = operations.hasWebhook(operation.ref)
                #expect(webhook == (pipeline == "hooked"))
                #expect(
                    try await store.complete(
                        id: operation.id, owner: owner, result: TriggerResult(outputs: []), now: now, webhook: webhook))
                finished[pipeline] = operation
            }

            let plain = try #require(finished["plain"])
            await operations.finished(plain.id, ref: plain.ref)
            #expect(store.getCount == 0, "read back for a route without a webhook")

            let hooked = try #require(finished["hooked"])
            await operations.finished(hooked.id, ref: hooked.ref, webhookOwner: "owner-hooked")
            #expect(store.getCount == 1, "the webhook's route must read its operation once")
            await sender.shutdown()
        }
    }
}
