import Foundation
import NIOCore

/// Runs the system `protoc` as an independent peer: `--encode` turns text format into the bytes a
/// conforming implementation sends, `--decode` shows what a conforming implementation reads from ours.
enum Protoc {
    /// Symlinks resolved: scripts/asan-core compiles this file through a linked directory.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static let executable: String? = ["/usr/bin/protoc", "/usr/local/bin/protoc"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    static var isAvailable: Bool { executable != nil }

    private static let protoFiles = [
        "pipeline/pipeline/v1beta/pipeline.proto", "pipeline/v1beta/pipeline.proto",
        "vdp/pipeline/v1beta/pipeline.proto", "grpc/health/v1/health.proto",
        "trigger/runner/v1/runner.proto", "core/mgmt/v1beta/mgmt.proto",
        "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto",
        "google/protobuf/descriptor.proto",
    ]

    static func encode(_ type: String, _ text: String) async throws -> ByteBuffer {
        ByteBuffer(bytes: try await run(["--encode=\(type)"], input: Data(text.utf8)))
    }

    static func decode(_ type: String, _ bytes: ByteBuffer) async throws -> String {
        let input = Data(bytes.readableBytesView)
        return String(decoding: try await run(["--decode=\(type)"], input: input), as: UTF8.self)
    }

    private static func run(_ mode: [String], input: Data) async throws -> Data {
        try await onOwnThread { try runBlocking(mode, input: input) }
    }

    /// Runs a subprocess's blocking work (pipe reads, `waitUntilExit`) on a thread of its own, never on the
    /// cooperative pool: a protoc run takes 0.1-1 s (it parses nine proto files), and this target's ~40 runs, in
    /// parallel tests, held both of the pool's threads on this 2-core machine for seconds at a time, stalling every
    /// other test in the process (the parallel unit run once left the grpcio interop test's demo runner no thread
    /// within its client's 10 s deadline). GatewayTestSupport's `blocking` does the same; it is not used here
    /// because scripts/asan-core builds this target without GatewayTestSupport.
    static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private static func runBlocking(_ mode: [String], input: Data) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable!)
        process.arguments =
            mode + ["-I", repositoryRoot.appendingPathComponent("protos").path, "-I", "/usr/include"] + protoFiles
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Write and read concurrently enough for test-sized messages: the pipe buffers are 64 KiB, so write
        // from another thread.
        let writer = Thread {
            stdin.fileHandleForWriting.write(input)
            try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ProtocError(message: String(decoding: errors, as: UTF8.self))
        }
        return output
    }

    struct ProtocError: Error, CustomStringConvertible {
        var message: String
        var description: String { "protoc failed: \(message)" }
    }
}

extension ByteBuffer {
    init(hex: String) {
        var bytes: [UInt8] = []
        var chars = hex.makeIterator()
        while let hi = chars.next(), let lo = chars.next() {
            bytes.append(UInt8(String([hi, lo]), radix: 16)!)
        }
        self.init(bytes: bytes)
    }

    var hex: String { readableBytesView.map { String(format: "%02x", $0) }.joined() }
}
