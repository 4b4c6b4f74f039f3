// swift-tools-version:6.1
import Foundation
import PackageDescription

/// Settings every Swift target shares (STYLE.md "Package-wide settings"): Swift 6 mode, no implicit
/// re-exports, no existential without `any`. `scripts/test` (CI) sets `TG_WARNINGS_AS_ERRORS=1`, so a warning in
/// our code fails CI; dependencies are not affected (the flag goes to our targets only).
let testSwiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
/// Release builds of our targets skip the dynamic exclusivity checks (`swift_beginAccess`/`swift_endAccess` around
/// every access to a class property or global whose exclusivity the compiler cannot prove statically, NIO's inlined
/// code included): they cost 16.7 k of 206 k instructions per gRPC call (−8.1 %) and 6.3 k of 240 k per REST call
/// (bench/callgrind, bench/README.md "Branch `buildopt`"). Debug builds — the test suites (`swift test`,
/// scripts/test's suites) and the ASan run — keep the checks, so an exclusivity violation still fails a test; the
/// release-engine stage (scripts/release-engine, a package of its own with the same flag on its targets) runs the
/// engine's and the backend deadline queue's tests optimised and unchecked, as they ship. Dependencies keep theirs
/// here (a package's flags reach its own targets only); `scripts/build-release`, which scripts/run and bench/run
/// build with, passes `-Xswiftc -enforce-exclusivity=unchecked` to every module, which takes swift-nio's own checks
/// out too (6 k of 92 k instructions per REST call; see that script). Whole-module cross-module optimisation of our
/// targets was not adopted: the generic-metadata lookups and dynamic casts left are NIO's own (`NIOAny` casts in the
/// channel pipeline, `BaseStreamSocketChannel`'s metadata in NIOPosix), which flags on our targets cannot reach.
let releaseSpeedSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]
/// The fuzz build (scripts/fuzz.sh sets `TG_FUZZ_INSTRUMENT=1`) instruments our targets only: libFuzzer's coverage
/// and AddressSanitizer for our Swift modules (with the C functions their clang importer compiles, e.g. CZlib's
/// `static inline` shims) and our C targets. Flags on swift build's command line (`-Xswiftc`, `-Xcc`) would
/// instrument every dependency too (swift-nio, two BoringSSLs, AsyncHTTPClient, ...): about 6 of a CI run's 30
/// minutes. The trade-off is in scripts/fuzz.sh's header. Unset (every other build), nothing changes.
let fuzzInstrumented = ProcessInfo.processInfo.environment["TG_FUZZ_INSTRUMENT"] == "1"
let fuzzSwiftSettings: [SwiftSetting] =
    fuzzInstrumented ? [.unsafeFlags(["-sanitize=fuzzer,address", "-Xcc", "-fsanitize=fuzzer-no-link,address"])] : []
let fuzzCSettings: [CSetting] = fuzzInstrumented ? [.unsafeFlags(["-fsanitize=fuzzer-no-link,address"])] : []
/// Test targets keep warnings as warnings: Swift Testing's macro expansions warn under Swift 6.3 (`@const`
/// values of `@Test`/`@Suite`), which is the toolchain's, not ours.
let swiftSettings: [SwiftSetting] =
    testSwiftSettings
    + releaseSpeedSettings
    + fuzzSwiftSettings
    + (ProcessInfo.processInfo.environment["TG_WARNINGS_AS_ERRORS"] == "1"
        ? [.unsafeFlags(["-warnings-as-errors"])] : [])

let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")

let package = Package(
    name: "trigger-gateway",
    products: [
        .executable(name: "trigger-gateway", targets: ["trigger-gateway"]),
        .executable(name: "demo-runner", targets: ["demo-runner"]),
        .library(name: "GatewayFuzzing", targets: ["GatewayFuzzing"]),
        // What bench/micro measures: the codecs' rows and their shared inputs, public (bench/micro is another package).
        .library(name: "GatewayBenchmarks", targets: ["GatewayBenchmarks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Already in the graph through postgres-nio: SHA-256 and HMAC (config and request digests, blob-info,
        // webhook signatures) instead of our own copies.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        // TLS on the listener (issue 17): NIOSSL is already in the graph through postgres-nio; swift-certificates
        // checks the configured certificate and key when they are loaded (a mismatched key, an expired certificate).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // Craft AI access tokens: HS256 JWTs issued by `/api/v1/auth/refresh` and verified on every call.
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        // `/metrics` (issue 16): the Prometheus registry and text exposition; its counters and gauges are atomics, each histogram series takes its own lock.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: a manual `Clock` (TestClock) for time logic that takes a clock, so tests move time instead
        // of sleeping.
        .package(url: "https://github.com/pointfreeco/swift-clocks", from: "1.1.1"),
        // Completion webhooks (issue 19): an HTTP/1.1 and HTTPS client with pooling, timeouts and certificate
        // verification, outside the core, instead of our own client.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // C libraries: each imported by exactly one Swift module (scripts/lint.sh checks).
        .systemLibrary(
            name: "CNghttp2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "CTriggerProtos",
            cSettings: [.unsafeFlags(["-Wno-unused-parameter"])] + fuzzCSettings,
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        // Vector kernels for base64 (SSSE3 encoding, SSE2 alphabet check), chosen at run time (issue 12).
        .target(name: "CBase64", cSettings: fuzzCSettings),

        // Per-thread objects (an event loop is a thread): the hot path's per-loop state, lock-free. No dependencies,
        // so the HTTP/2 engine may use it too.
        .target(name: "ThreadLocals", swiftSettings: swiftSettings),

        // The model: no I/O, no protocol types.
        .target(name: "TriggerModel", dependencies: ["CBase64", nioCore], swiftSettings: swiftSettings),

        // What the frontends report of each finished request, and who is told (access log, request metrics).
        .target(
            name: "Observability",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"), "ThreadLocals", "TriggerModel", nioCore,
                logging,
            ],
            swiftSettings: swiftSettings
        ),
        // `trigger_gateway_build_info{revision}` from git at build time (review 26 L8), stamped into the executable
        // only: see Sources/Observability/BuildInfo.swift.
        .plugin(name: "RevisionStamp", capability: .buildTool()),

        // Codecs and engines.
        .target(
            name: "HTTP2Engine", dependencies: ["CNghttp2", "ThreadLocals", nioCore], swiftSettings: swiftSettings),
        .target(
            name: "ProtoCodec", dependencies: ["CTriggerProtos", "TriggerModel", "WireCodecs", nioCore],
            swiftSettings: swiftSettings),
        .target(
            name: "WireCodecs",
            dependencies: [
                "TriggerModel", "CZlib", nioCore,
            ],
            swiftSettings: swiftSettings
        ),

        // Configuration, routing, backends, modes.
        .target(
            name: "GatewayConfig",
            dependencies: ["TriggerModel", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Routing", dependencies: ["TriggerModel", "GatewayConfig", crypto], swiftSettings: swiftSettings),
        .target(
            name: "Backends",
            dependencies: [
                "TriggerModel", "WireCodecs", "ProtoCodec", "HTTP2Engine", "Observability",
                nioCore, nioPosix, logging,
                // TLS to backends (issue 17, item 2).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TriggerDispatch",
            dependencies: ["TriggerModel", "Routing", "Backends", nioCore],
            swiftSettings: swiftSettings
        ),

        // Durable async operations: one protocol, two stores.
        .target(
            name: "OperationStore", dependencies: ["TriggerModel", nioCore, logging, crypto],
            swiftSettings: swiftSettings),
        .target(
            name: "SQLiteOperationStore",
            dependencies: [
                "OperationStore", "TriggerModel", nioCore, logging, .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresOperationStore",
            dependencies: [
                "OperationStore", "TriggerModel", nioCore, logging,
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // TLS to PostgreSQL (`sslmode`, review 9 #1): already in the graph through postgres-nio.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),

        // The async dispatcher: runs stored operations, and what the frontends do with them.
        .target(
            name: "AsyncDispatch",
            dependencies: [
                "OperationStore", "TriggerDispatch", "TriggerModel", "GatewayConfig", "WireCodecs", "Routing",
                "Observability", "Backends", nioCore, nioHTTP1, logging, lifecycle, crypto,
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),

        // The Abacus.AI surface (runPipeline and its companions): envelope, variable mappings, PipelineVersion.
        .target(
            name: "AbacusSurface",
            dependencies: ["AsyncDispatch", "OperationStore", "Routing", "TriggerModel", "WireCodecs", nioCore],
            swiftSettings: swiftSettings
        ),

        // The Craft AI surface's protocol-free parts: access tokens, deployments, mappings, the I/O cap.
        .target(
            name: "CraftSurface",
            dependencies: [
                "TriggerModel", "GatewayConfig", "WireCodecs", "Routing", nioCore, crypto,
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: swiftSettings
        ),

        // The listener and its frontends.
        .target(
            name: "GatewayServer",
            dependencies: [
                "ThreadLocals", "TriggerModel", "WireCodecs", "ProtoCodec", "HTTP2Engine", "TriggerDispatch", "Routing",
                "GatewayConfig",
                "AsyncDispatch", "OperationStore", "AbacusSurface", "CraftSurface", "Observability", nioCore, nioPosix,
                nioHTTP1, logging, lifecycle,
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),

        // Assembly: config → pools, dispatcher, server. Shared by the executable and the test harness.
        .target(
            name: "GatewayApp",
            dependencies: [
                "GatewayServer", "GatewayConfig", "Routing", "Backends", "TriggerDispatch", "TriggerModel",
                "WireCodecs",
                "AsyncDispatch", "OperationStore", "SQLiteOperationStore", "PostgresOperationStore", "CraftSurface",
                "Observability", nioCore, logging, lifecycle, crypto,
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),

        // The bundled demo pipelines, in-process and as a separate runner process.
        .target(
            name: "DemoRunner",
            dependencies: [
                "TriggerModel", "WireCodecs", "ProtoCodec", "HTTP2Engine",
                nioCore, nioPosix, nioHTTP1, logging, crypto,
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "demo-runner",
            dependencies: ["DemoRunner", "HTTP2Engine", argumentParser, nioCore, nioPosix],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "trigger-gateway",
            dependencies: [
                "GatewayApp", "GatewayServer", "GatewayConfig", "DemoRunner", "TriggerModel", "OperationStore",
                "Observability", argumentParser, nioCore, nioPosix, logging, lifecycle,
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["RevisionStamp"]
        ),

        // The libFuzzer entry points (driven by scripts/fuzz, a separate package).
        .target(
            name: "GatewayFuzzing",
            dependencies: [
                "HTTP2Engine", "WireCodecs", "ProtoCodec", "TriggerModel", "GatewayServer", "DemoRunner", "Backends",
                "Routing", "GatewayConfig", "TriggerDispatch", nioCore, nioHTTP1, logging,
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // The micro benchmarks' rows over our codecs (bench/micro times them). Codec modules only, so bench/micro
        // builds no more of the graph than it measures.
        .target(
            name: "GatewayBenchmarks",
            dependencies: [
                "TriggerModel", "ProtoCodec", "WireCodecs", "Observability", "HTTP2Engine", nioCore,
                // swift-prometheus' histogram, the row our sharded one is measured against.
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),

        // Test support and tests.
        // The seeded generator random-case tests replay from; no dependencies, so the ASan core package
        // (scripts/asan-core) builds it with the codec suites.
        .target(name: "SeededRandom", path: "Tests/SeededRandom", swiftSettings: testSwiftSettings),
        .target(name: "TestScheduling", path: "Tests/TestScheduling", swiftSettings: testSwiftSettings),
        .target(
            name: "GatewayTestSupport",
            dependencies: [
                "GatewayApp", "GatewayServer", "GatewayConfig", "DemoRunner", "TriggerModel", "OperationStore",
                "HTTP2Engine", "Observability", "Backends",
                nioCore, nioPosix, nioHTTP1, logging, lifecycle, .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            path: "Tests/GatewayTestSupport",
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "OperationStoreTests",
            dependencies: [
                "OperationStore", "SQLiteOperationStore", "PostgresOperationStore", "TriggerModel",
                "GatewayTestSupport", "GatewayApp", "Observability",
                nioCore, logging, .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "BackendsTests",
            dependencies: [
                "TestScheduling",
                "Backends", "DemoRunner", "TriggerModel", "WireCodecs", "GatewayTestSupport", "HTTP2Engine",
                "Observability", nioCore, nioPosix, nioHTTP1,
                .product(name: "Clocks", package: "swift-clocks"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "GatewayServerTests",
            dependencies: [
                "TestScheduling",
                "GatewayServer", "WireCodecs", "ProtoCodec", "AbacusSurface", "TriggerModel", "Observability",
                "Backends", "HTTP2Engine",
                "TriggerDispatch", "Routing", "GatewayConfig", "GatewayTestSupport", nioCore, nioPosix, logging,
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "ObservabilityTests",
            dependencies: [
                "TestScheduling",
                "Observability", "GatewayTestSupport", "TriggerModel", "SeededRandom", nioCore, logging,
                // The sharded histograms' exposition is compared with swift-prometheus' own.
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "AsyncDispatchTests",
            dependencies: [
                "AsyncDispatch", "OperationStore", "SQLiteOperationStore", "PostgresOperationStore", "TriggerDispatch",
                "Backends", "GatewayConfig", "Observability",
                "Routing", "TriggerModel", "GatewayTestSupport", nioCore, nioPosix, logging,
                .product(name: "Clocks", package: "swift-clocks"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(name: "ThreadLocalsTests", dependencies: ["ThreadLocals"], swiftSettings: testSwiftSettings),
        .testTarget(
            name: "TriggerModelTests", dependencies: ["TestScheduling", "TriggerModel", "SeededRandom", nioCore],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "CraftSurfaceTests",
            dependencies: ["CraftSurface", "GatewayConfig", "TriggerModel", "WireCodecs", nioCore],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "WireCodecsTests",
            dependencies: ["TestScheduling", "WireCodecs", "TriggerModel", "SeededRandom", nioCore],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "GatewayConfigTests", dependencies: ["GatewayConfig", "TriggerModel"],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "RoutingTests", dependencies: ["Routing", "GatewayConfig", "TriggerModel"],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "DemoRunnerTests",
            dependencies: [
                "TestScheduling",
                "DemoRunner", "HTTP2Engine", "TriggerModel", nioCore,
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "HTTP2EngineTests",
            dependencies: ["HTTP2Engine", nioCore, .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "AbacusSurfaceTests",
            dependencies: ["AbacusSurface", "OperationStore", "TriggerModel", "WireCodecs", nioCore],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "GatewayFuzzingTests", dependencies: ["TestScheduling", "GatewayFuzzing"],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "ProtoCodecTests",
            dependencies: ["TestScheduling", "ProtoCodec", "TriggerModel", "WireCodecs", "SeededRandom", nioCore],
            swiftSettings: testSwiftSettings),
        .testTarget(
            name: "GatewayE2ETests",
            dependencies: [
                "GatewayTestSupport", "GatewayServer", "GatewayConfig", "DemoRunner", "TriggerModel", "Backends",
                "WireCodecs", "ProtoCodec",
                "OperationStore", "AsyncDispatch", "GatewayApp", "Observability", nioCore, nioPosix, nioHTTP1, logging,
                .product(name: "Clocks", package: "swift-clocks"),
            ],
            swiftSettings: testSwiftSettings
        ),
    ]
)
