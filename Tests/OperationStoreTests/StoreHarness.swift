import Foundation
import Logging
import NIOCore
import OperationStore
// Absent from scripts/asan-stores (the SQLite store under AddressSanitizer, without PostgreSQL's client): there
// the PostgreSQL half of the harness is left out and every suite runs against SQLite only.
#if canImport(PostgresOperationStore)
    import PostgresOperationStore
#endif
import SQLiteOperationStore
import Testing
import TriggerModel

/// The two store implementations the contract suite runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    #if canImport(PostgresOperationStore)
        case postgres
    #endif

    var testDescription: String { rawValue }
}

/// One isolated store for one test: a temp directory (SQLite) or a unique table prefix (PostgreSQL), and a way
/// to open more handles to it (a restart, or a second gateway instance).
struct StoreHarness: Sendable {
    let kind: StoreKind
    let sqliteConfiguration: SQLiteOperationStore.Configuration?
    #if canImport(PostgresOperationStore)
        let postgresConfiguration: PostgresOperationStore.Configuration?
    #else
        let postgresConfiguration: Never?
    #endif

    func open() async throws -> any OperationStore {
        if let sqliteConfiguration { return try await SQLiteOperationStore.open(sqliteConfiguration) }
        #if canImport(PostgresOperationStore)
            // PostgresNIO logs pool connections torn down by close() at info; tests close stores all the time.
            var logger = Logger(label: "test.store.postgres")
            logger.logLevel = .warning
            return try await PostgresOperationStore.open(postgresConfiguration!, logger: logger)
        #else
            preconditionFailure("a harness of this build is always SQLite's")
        #endif
    }

    /// Opens a second handle (another gateway instance on the same storage) for `body`, and always closes it.
    func withPeer<T>(_ body: (any OperationStore) async throws -> T) async throws -> T {
        let peer = try await open()
        do {
            let value = try await body(peer)
            try await peer.close()
            return value
        } catch {
            try? await peer.close()
            throw error
        }
    }

    func blobNames(_ store: any OperationStore, operationID: String) async throws -> [String] {
        switch store {
        case let store as SQLiteOperationStore: try await store.storedBlobNames(operationID: operationID)
        #if canImport(PostgresOperationStore)
            case let store as PostgresOperationStore: try await store.storedBlobNames(operationID: operationID)
        #endif
        default: []
        }
    }

    /// The transactions `store` ran for enqueues and for completions (group commits share them).
    func transactionCounts(_ store: any OperationStore) -> (enqueues: Int, completions: Int)? {
        switch store {
        case let store as SQLiteOperationStore: (store.enqueueTransactionCount, store.completionTransactionCount)
        #if canImport(PostgresOperationStore)
            case let store as PostgresOperationStore: (store.enqueueTransactionCount, store.completionTransactionCount)
        #endif
        default: nil
        }
    }

    static let postgresMissing = """
        TG_POSTGRES_URL is not set, so the PostgreSQL store was not tested. Run the tests under \
        scripts/with-postgres.sh (it starts a throwaway cluster), or set TG_ALLOW_NO_POSTGRES=1 to skip them.
        """

    /// Makes the harness, runs `body` with a first open store, closes it and removes the storage. Returns
    /// without running `body` only for PostgreSQL when no server is configured, and then the test fails
    /// unless `TG_ALLOW_NO_POSTGRES=1`.
    static func with(
        _ kind: StoreKind,
        inlineBlobLimit: Int = OperationPayloadCodec.defaultInlineBlobLimit,
        _ body: (StoreHarness, any OperationStore) async throws -> Void
    ) async throws {
        let harness: StoreHarness
        var directory: URL?
        switch kind {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-store-\(UUID().uuidString)")
            directory = dir
            harness = StoreHarness(
                kind: kind,
                sqliteConfiguration: .init(dataDirectory: dir.path, inlineBlobLimit: inlineBlobLimit),
                postgresConfiguration: nil
            )
        #if canImport(PostgresOperationStore)
            case .postgres:
                let environment = ProcessInfo.processInfo.environment
                guard let url = environment["TG_POSTGRES_URL"], !url.isEmpty else {
                    if environment["TG_ALLOW_NO_POSTGRES"] != "1" { Issue.record(Comment(rawValue: postgresMissing)) }
                    return
                }
                var configuration = try PostgresOperationStore.Configuration(url: url)
                configuration.tablePrefix = "t\(Operation.makeID().prefix(12))_"
                configuration.inlineBlobLimit = inlineBlobLimit
                configuration.maximumConnections = 4
                // Generous: schema creation and queries share two cores with every other suite running at once.
                configuration.operationTimeout = .seconds(60)
                harness = StoreHarness(kind: kind, sqliteConfiguration: nil, postgresConfiguration: configuration)
        #endif
        }
        defer { if let directory { try? FileManager.default.removeItem(at: directory) } }
        let store = try await harness.open()
        do {
            try await body(harness, store)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }
}

/// Requests and blobs the tests use; blob bytes follow a pattern so any shifted or lost byte shows.
enum Fixtures {
    static func bytes(_ count: Int, seed: UInt8 = 7) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeBytes(
            (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) &+ seed &+ UInt8(truncatingIfNeeded: $0 >> 12) })
        return buffer
    }

    static func request(
        namespace: String = "acme",
        pipeline: String = "echo",
        release: String? = nil,
        text: String = "hello",
        principal: String? = "alice",
        blobs: [Int] = []
    ) -> TriggerRequest {
        var variables: ValueObject = ["text": .string(text)]
        for (i, size) in blobs.enumerated() {
            variables["file\(i)"] = .blob(Blob(contentType: "image/png", fileName: "f\(i).png", bytes: bytes(size)))
        }
        return TriggerRequest(
            ref: PipelineRef(namespace: namespace, pipeline: pipeline, release: release),
            mode: .async,
            inputs: [TriggerInput(variables: variables)],
            principal: principal,
            requestID: "req-\(text)"
        )
    }

    /// Every kind of value, in a non-alphabetical key order that must survive.
    static func richRequest() -> TriggerRequest {
        let nested: ValueObject = ["z": .number(1), "a": .list([.null, .bool(true), .bool(false)])]
        let first: ValueObject = [
            "zeta": .string("ünïcödé ✓ \u{0}"),
            "alpha": .number(-1.25e-300),
            "integer": .number(42),
            "negativeZero": .number(-0.0),
            "twoTo53Plus1": .integer(Int64(1) << 53 + 1),
            "uint64Max": .integer(UInt64.max),
            "int64Min": .integer(Int64.min),
            "past64Bits": .largeInteger(LargeInteger("-18446744073709551616")!),
            "infinite": .number(.infinity),
            "empty": .string(""),
            "nested": .object(nested),
            "list": .list([.number(1), .string("two"), .object(["k": .null])]),
            "small": .blob(Blob(contentType: "text/plain", fileName: nil, bytes: bytes(10))),
            "big": .blob(Blob(contentType: "application/octet-stream", fileName: "big.bin", bytes: bytes(1 << 20))),
            "emptyBlob": .blob(Blob(contentType: "application/x-empty", bytes: ByteBuffer())),
        ]
        return TriggerRequest(
            ref: PipelineRef(namespace: "acme", pipeline: "inspect", release: "v2"),
            mode: .async,
            inputs: [
                TriggerInput(variables: first, secrets: ["token": "s3cret", "a": "b"]),
                TriggerInput(variables: ["second": .string("item")]),
            ],
            principal: "alice",
            deadline: .now() + .seconds(30),
            requestID: "req-rich",
            traceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            traceState: "vendor=1",
            idempotencyKey: nil,
            returnTraces: true
        )
    }

    static func result(text: String = "done", blobSize: Int = 0) -> TriggerResult {
        var output: ValueObject = ["text": .string(text)]
        if blobSize > 0 {
            output["image"] = .blob(
                Blob(contentType: "image/jpeg", fileName: "out.jpg", bytes: bytes(blobSize, seed: 99)))
        }
        let trace = Trace(
            statuses: [.completed, .skipped],
            inputs: [["in": .number(1)]],
            outputs: [["out": .string("x")]],
            error: ["msg": .string("none")],
            computeTimeInSeconds: 0.125
        )
        return TriggerResult(
            outputs: [output], metadata: TriggerMetadata(traces: ["step-1": trace, "step-0": Trace()]))
    }

    /// A start time on the store's millisecond grid, so dates compare exactly after a round trip.
    static func now() -> Date {
        Date(storeMilliseconds: Date().storeMilliseconds)
    }
}

/// Runs `body` and returns the `GatewayError` it threw (failing the test when it threw nothing or another error).
func gatewayError(_ body: () async throws -> Void) async -> GatewayError? {
    do {
        try await body()
        Issue.record("expected a GatewayError, nothing was thrown")
        return nil
    } catch let error as GatewayError {
        return error
    } catch {
        Issue.record("expected a GatewayError, got \(error)")
        return nil
    }
}
