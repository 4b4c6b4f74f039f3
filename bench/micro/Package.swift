// swift-tools-version:6.1
import Foundation
import PackageDescription

// Micro benchmarks of the gateway's codecs, side by side with the libraries they are compared with
// (bench/README.md "Micro benchmarks" and "Our code or a library").
//
// The gateway's rows come from its `GatewayBenchmarks` product (Sources/GatewayBenchmarks), which is built from
// the codec modules the gateway ships: nothing is copied or linked into this package. This package adds the
// harness, the libraries' rows (swift-extras-base64, multipart-kit, Foundation), and allocation counts from
// ordo-one's malloc-interposer, preloaded by bench/micro/run. ordo-one/benchmark itself is not used: on
// Swift 6.3/Linux it needs swift-runtime-interposer, which the package mirror does not carry.

// A path dependency's identity is its directory's name (`main`, a worktree's name, ...), not the manifest's
// `name`, so derive it from where this checkout lives.
let gatewayPackage = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent

let package = Package(
    name: "trigger-gateway-micro",
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
        // Compared with our own code only (each row beside ours): not dependencies of the gateway.
        .package(url: "https://github.com/swift-extras/swift-extras-base64", from: "1.2.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
    ],
    targets: [
        .executableTarget(
            name: "GatewayMicro",
            dependencies: [
                .product(name: "GatewayBenchmarks", package: gatewayPackage),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
                .product(name: "ExtrasBase64", package: "swift-extras-base64"),
                .product(name: "MultipartKit", package: "multipart-kit"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("InternalImportsByDefault"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        )
    ]
)
