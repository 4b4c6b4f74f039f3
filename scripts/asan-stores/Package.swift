// swift-tools-version:6.1
import PackageDescription

// The SQLite store under AddressSanitizer (`scripts/sanitize.sh address --stores`): `SQLiteHandle`'s own sqlite3
// connection and prepared-statement cache through sqlite-nio's C module (raw `sqlite3*` and `sqlite3_stmt*`, text
// and blob pointers read from SQLite's memory), the store over it, and their suites: SQLiteHandleTests, the group
// commit's (GroupCommitTests, SQLiteGroupCommitTests), the SQLite half of the OperationStore contract, the schedule
// state store and the payload codec. A package of its own, its sources the main package's through symlinks (as
// scripts/asan-core), so that neither PostgreSQL's client (postgres-nio, swift-nio-ssl's BoringSSL) nor the rest of
// the gateway is instrumented; `StoreHarness` leaves its PostgreSQL half out when that module is missing. Every
// dependency is instrumented (`--sanitize=address`): SQLite's amalgamation included, which reads the buffers
// `bind` hands it, and swift-crypto's BoringSSL (OperationStore's SHA-256), the bulk of the first build.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let sqliteNIO = Target.Dependency.product(name: "SQLiteNIO", package: "sqlite-nio")

let package = Package(
    name: "trigger-gateway-asan-stores",
    dependencies: [
        // The main package's requirements (its Package.swift).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .target(name: "CBase64"),
        .target(name: "TriggerModel", dependencies: ["CBase64", nioCore], swiftSettings: swiftSettings),
        .target(
            name: "OperationStore",
            dependencies: ["TriggerModel", nioCore, logging, .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings),
        .target(
            name: "SQLiteOperationStore", dependencies: ["OperationStore", "TriggerModel", nioCore, logging, sqliteNIO],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "OperationStoreTests",
            dependencies: ["OperationStore", "SQLiteOperationStore", "TriggerModel", nioCore, logging, sqliteNIO],
            // The suites that need neither PostgreSQL nor GatewayTestSupport (the main package runs them all).
            sources: [
                "StoreHarness.swift",
                "SQLiteHandleTests.swift",
                "GroupCommitTests.swift",
                "SQLiteGroupCommitTests.swift",
                "OperationStoreContractTests.swift",
                "ScheduleStateStoreTests.swift",
                "OperationPayloadCodecTests.swift",
            ],
            swiftSettings: swiftSettings),
    ]
)
