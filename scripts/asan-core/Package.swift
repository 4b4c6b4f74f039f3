// swift-tools-version:6.1
import PackageDescription

// The wire-facing C interop and parsers under AddressSanitizer in CI (issue 19, item 6): the HTTP/2 engine
// (libnghttp2's callbacks), the protobuf-c codec, zlib (gRPC compression), the REST/gRPC decoders and the model,
// with their own test suites. A package of its own, its sources the main package's through symlinks (as
// scripts/release-engine), so only these modules and swift-nio are instrumented: the whole gateway under ASan
// takes longer to build than CI allows (scripts/sanitize.sh runs everything, by hand).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioEmbedded = Target.Dependency.product(name: "NIOEmbedded", package: "swift-nio")

let package = Package(
    name: "trigger-gateway-asan-core",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2")
    ],
    targets: [
        .systemLibrary(name: "CNghttp2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "CTriggerProtos",
            cSettings: [.unsafeFlags(["-Wno-unused-parameter"])],
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        .target(name: "CBase64"),
        .target(name: "TriggerModel", dependencies: ["CBase64", nioCore], swiftSettings: swiftSettings),
        .target(name: "ThreadLocals", swiftSettings: swiftSettings),
        .target(
            name: "HTTP2Engine", dependencies: ["CNghttp2", "ThreadLocals", nioCore], swiftSettings: swiftSettings),
        .target(
            name: "ProtoCodec", dependencies: ["CTriggerProtos", "TriggerModel", "WireCodecs", nioCore],
            swiftSettings: swiftSettings),
        .target(name: "WireCodecs", dependencies: ["TriggerModel", "CZlib", nioCore], swiftSettings: swiftSettings),
        .testTarget(
            name: "HTTP2EngineTests", dependencies: ["HTTP2Engine", nioCore, nioEmbedded], swiftSettings: swiftSettings),
        .target(name: "SeededRandom", path: "Tests/SeededRandom", swiftSettings: swiftSettings),
        .target(name: "TestScheduling", path: "Tests/TestScheduling", swiftSettings: swiftSettings),
        .testTarget(
            name: "ProtoCodecTests",
            dependencies: ["TestScheduling", "ProtoCodec", "TriggerModel", "WireCodecs", "SeededRandom", nioCore],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "TriggerModelTests", dependencies: ["TestScheduling", "TriggerModel", "SeededRandom", nioCore],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "WireCodecsTests",
            dependencies: ["TestScheduling", "WireCodecs", "TriggerModel", "SeededRandom", nioCore],
            swiftSettings: swiftSettings),
    ]
)
