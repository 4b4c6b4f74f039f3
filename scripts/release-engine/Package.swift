// swift-tools-version:6.1
import PackageDescription

// The HTTP/2 engine and its tests alone, for a release (`-O`) run in CI (issue 10, item 3: a branch of the
// graceful shutdown was lost only in optimised builds, and the main package's tests run debug builds).
// A package of its own, its sources the main package's through symlinks, so the release build compiles
// libnghttp2's wrapper, the engine, NIOCore and NIOEmbedded, not the whole gateway.
// The backend pools' deadline queue (Backends/LoopDeadlineQueue.swift, a timeout structure: "engine and timeout
// tests also run against release") runs here too, as a one-file `Backends` module: it needs NIOCore alone, so its
// release run costs seconds, where the whole Backends module would pull in most of the gateway.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    // As the main package builds the engine for release (its Package.swift, `releaseSpeedSettings`), so this
    // stage tests the engine as it ships.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")

let package = Package(
    name: "trigger-gateway-release-engine",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2")
    ],
    targets: [
        .systemLibrary(name: "CNghttp2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .target(name: "ThreadLocals", swiftSettings: swiftSettings),
        .target(
            name: "HTTP2Engine", dependencies: ["CNghttp2", "ThreadLocals", nioCore], swiftSettings: swiftSettings),
        // `-enable-testing`: the queue is internal and its tests import it `@testable`; the code is still built -O.
        .target(
            name: "Backends", dependencies: [nioCore],
            swiftSettings: swiftSettings + [.unsafeFlags(["-enable-testing"], .when(configuration: .release))]
        ),
        .testTarget(
            name: "BackendsTests",
            dependencies: ["Backends", nioCore, .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HTTP2EngineTests",
            dependencies: ["HTTP2Engine", nioCore, .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
    ]
)
