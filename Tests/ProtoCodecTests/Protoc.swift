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

    static func encode(_ type: String, _ text: String) throws -> ByteBuffer {
        ByteBuffer(bytes: try run(["--encode=\(type)"], input: Data(text.utf8)))
    }

    static func decode(_ type: String, _ bytes: ByteBuffer) throws -> String {
        String(decoding: try run(["--decode=\(type)"], input: Data(bytes.readableBytesView)), as: UTF8.self)
    }

    private static func run(_ mode: [String], input: Data) throws -> Data {
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
