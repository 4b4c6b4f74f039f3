import Backends
import DemoRunner
import GatewayConfig
import GatewayServer
import Logging
import NIOCore
import Routing
import TriggerDispatch
import WireCodecs

/// The `FrontendServices` a fuzzed connection is served with: the gateway's own dispatcher, pool and
/// authenticator in front of the bundled demo runner, run in-process (`DemoPipelines`, as the embedded
/// default runs it), with limits and timeouts shrunk so short inputs reach them.
///
/// Only the demo pipelines that answer at once are routed (`echo`, `upper`, `fail`, `blob-info`, in any
/// namespace): `sleep`, `tokens` and `flood` wait or stream for as long as the input asks, which would make
/// an input's run time the input's choice. Any other pipeline is answered NOT_FOUND by the dispatcher. Async
/// mode, schedules and the Craft surface are off (their endpoints answer UNIMPLEMENTED or 404): they need a
/// store. Built afresh per input, so no state (health, pool slots) leaks from one input to the next.
enum FuzzServices {
    static let routedPipelines = ["echo", "upper", "fail", "blob-info"]

    /// Every timeout the frontends apply, in the order the drain phase of ``FuzzConnection`` outlasts them.
    static let prefaceTimeout = TimeAmount.seconds(2)
    static let requestHeaderTimeout = TimeAmount.seconds(2)
    static let bodyProgressTimeout = TimeAmount.seconds(2)
    static let writeProgressTimeout = TimeAmount.seconds(2)
    static let requestTimeout = TimeAmount.seconds(5)
    static let idleTimeout = TimeAmount.seconds(5)

    /// A bearer token the authenticator knows (auth is not required, so requests without one pass too).
    static let token = "fuzz-token"

    /// `clock`: what requests are timed on and their deadlines count from (`FrontendServices.clock`): the
    /// connection's testing loop's, so a sync deadline runs out when the harness advances that loop.
    static func make(clock: @escaping @Sendable () -> NIODeadline) -> CurrentFrontendServices {
        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let pool = BackendPool(
            configuration: BackendPoolConfiguration(
                name: "demo", transport: .inProcess, maxConcurrency: 8, maxQueue: 4),
            transport: DemoPipelines()
        )
        let routes = RouteTable(
            routes: routedPipelines.map {
                RouteConfiguration(namespace: RouteConfiguration.wildcard, pipeline: $0, pool: "demo")
            }
        )
        let health = HealthRegistry(gateway: .serving)
        var services = FrontendServices(
            dispatcher: TriggerDispatcher(routes: routes, pools: ["demo": pool]),
            authenticator: TokenAuthenticator(tokens: [(name: "fuzz", token: token)], authRequired: false),
            // The codec fuzzers' caps (``RESTFuzzing/limits``): short inputs reach the batch, depth and part limits.
            limits: RESTFuzzing.limits,
            maxHeaderBytes: 2048,
            maxConcurrentStreams: 8,
            requestTimeout: requestTimeout,
            idleTimeout: idleTimeout,
            logger: logger,
            slowClients: SlowClientLimits(
                prefaceTimeout: prefaceTimeout,
                requestHeaderTimeout: requestHeaderTimeout,
                bodyProgressTimeout: bodyProgressTimeout,
                writeProgressTimeout: writeProgressTimeout,
                streamBufferBytes: 4096,
                connectionBufferBytes: 16_384
            ),
            health: health
        )
        services.clock = clock
        return CurrentFrontendServices(services)
    }

    /// The longest any timeout can keep a connection open once the client has stopped sending: the drain
    /// phase advances the loop's clock in steps until the connection closes, and fails past this.
    static var longestQuietLife: TimeAmount {
        // An HTTP/2 connection idles out in two idle periods (GOAWAY, then close); a request may run for the
        // request timeout before that starts.
        requestTimeout + idleTimeout * 2 + writeProgressTimeout + .seconds(5)
    }
}
