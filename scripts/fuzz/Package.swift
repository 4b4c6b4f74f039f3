// swift-tools-version:6.1
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name (`main`, a worktree's name, ...), not the manifest's
// `name`, so derive it from where this checkout lives.
let gatewayPackage = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent

// The libFuzzer driver for the gateway (STYLE.md habit 14). A separate package so the fuzzer flags never touch
// the main build; build and run it with scripts/fuzz.sh, which passes `-sanitize=fuzzer,address`.
let package = Package(
    name: "trigger-gateway-fuzz",
    dependencies: [
        .package(path: "../..")
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver, which the sanitizer runtime provides.
        .target(name: "CFuzzDriver"),
        // protobuf-c 1.4.1 built from source with the fuzzer's instrumentation (see include/CProtobufC.h).
        .target(name: "CProtobufC", exclude: ["LICENSE"], cSettings: [.unsafeFlags(["-w"])]),
        .executableTarget(
            name: "FuzzGateway",
            dependencies: [
                "CFuzzDriver",
                "CProtobufC",
                .product(name: "GatewayFuzzing", package: gatewayPackage),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("InternalImportsByDefault"),
                .enableUpcomingFeature("MemberImportVisibility"),
                .unsafeFlags(["-parse-as-library"]),
            ]
        ),
    ]
)
