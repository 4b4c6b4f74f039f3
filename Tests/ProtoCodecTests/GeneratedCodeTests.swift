import Foundation
import Testing

@Suite("Generated protobuf-c code")
struct GeneratedCodeTests {
    static let script = Protoc.repositoryRoot.appendingPathComponent("scripts/check-generated.sh").path
    static let canRegenerate =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc-c")
        && FileManager.default.fileExists(atPath: "/usr/include/google/protobuf/struct.proto")

    @Test(
        "Sources/CTriggerProtos matches what scripts/regen-protos.sh generates from protos/",
        .enabled(if: canRegenerate)
    )
    func generatedCodeIsFresh() async throws {
        let (status, text) = try await Protoc.onOwnThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [Self.script]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }
        #expect(status == 0, "\(text)")
    }
}
