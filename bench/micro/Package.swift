// swift-tools-version:6.1
import PackageDescription

// Micro benchmarks of the gateway's codecs (bench/README.md "Micro benchmarks").
//
// The codecs' API is `package`-level, which no other package can see, and the root package exports only its
// executables and GatewayFuzzing. So this package does not depend on the root package: its codec targets are
// symbolic links to the root's own source directories (Sources/TriggerModel, ProtoCodec, WireCodecs,
// CTriggerProtos, CZlib, Observability) and to Sources/GatewayServer/ProtocolSniffer.swift. The code measured is the code that
// ships, compiled with the same settings; nothing is copied. Allocation counts come from ordo-one's
// malloc-interposer, preloaded by bench/micro/run (ordo-one/benchmark itself needs swift-runtime-interposer
// on Swift 6.3/Linux, which this machine's package mirror does not carry).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")

let package = Package(
    name: "trigger-gateway-micro",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "CTriggerProtos",
            cSettings: [.unsafeFlags(["-Wno-unused-parameter"])],
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        .target(name: "TriggerModel", dependencies: [nioCore], swiftSettings: swiftSettings),
        .target(name: "ProtoCodec", dependencies: ["CTriggerProtos", "TriggerModel", nioCore], swiftSettings: swiftSettings),
        .target(
            name: "WireCodecs",
            dependencies: [
                "TriggerModel", "CZlib", nioCore,
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Observability",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "GatewayMicro",
            dependencies: [
                "TriggerModel", "ProtoCodec", "WireCodecs", "Observability", nioCore,
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
