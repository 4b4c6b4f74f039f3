// swift-tools-version:6.1
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name (`main`, a worktree's name, ...), not the manifest's
// `name`, so derive it from where this checkout lives.
let gatewayPackage = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent

// The libFuzzer driver for the gateway (STYLE.md habit 14). A separate package so the fuzzer flags never touch
// the main build; build and run it with scripts/fuzz.sh, which sets `TG_FUZZ_INSTRUMENT=1` so the main package
// instruments its own targets (not its dependencies). This package's targets are always instrumented, and the
// executable links libFuzzer's and ASan's runtimes.
let instrumentSwift: [SwiftSetting] = [
    .unsafeFlags(["-sanitize=fuzzer,address", "-Xcc", "-fsanitize=fuzzer-no-link,address"])
]
let instrumentC: [CSetting] = [.unsafeFlags(["-fsanitize=fuzzer-no-link,address"])]
let package = Package(
    name: "trigger-gateway-fuzz",
    dependencies: [
        .package(path: "../..")
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver, which the sanitizer runtime provides.
        .target(name: "CFuzzDriver", cSettings: instrumentC),
        // protobuf-c 1.4.1 built from source with the fuzzer's instrumentation (see include/CProtobufC.h).
        .target(name: "CProtobufC", exclude: ["LICENSE"], cSettings: [.unsafeFlags(["-w"])] + instrumentC),
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
            ] + instrumentSwift,
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])]
        ),
    ]
)
