import DemoRunner
import Foundation
import NIOCore
import Testing
import TestScheduling

@Suite("blob-info SHA-256 (swift-crypto over ByteBuffer readable bytes)")
struct SHA256Tests {
    /// FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA256_2.pdf") and the long-message vector.
    @Test(
        "NIST vectors",
        arguments: [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
            (
                "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
            ),
        ]
    )
    func nistVectors(message: String, digest: String) {
        #expect(BufferSHA256.hexDigest(ByteBuffer(string: message)) == digest)
    }

    @Test("one million 'a' (the NIST long message)")
    func millionA() {
        let buffer = ByteBuffer(repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(BufferSHA256.hexDigest(buffer) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Lengths around the padding boundaries (55/56/63/64 bytes) are where off-by-one bugs live.
    @Test("padding edges agree with sha256sum", arguments: [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129])
    func paddingEdges(length: Int) throws {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        #expect(BufferSHA256.hexDigest(ByteBuffer(bytes: bytes)) == (try sha256sum(bytes)))
    }

    @Test("a random few-MiB buffer agrees with /usr/bin/sha256sum", .cpuBound)
    func randomBufferMatchesSystemTool() throws {
        let bytes = randomBytes(3 << 20 + Int.random(in: 0..<64))
        #expect(BufferSHA256.hexDigest(ByteBuffer(bytes: bytes)) == (try sha256sum(bytes)))
    }

    @Test("only the readable bytes count, and split updates equal one update")
    func readableBytesAndSplits() throws {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var buffer = ByteBuffer(bytes: [9, 9, 9] + bytes)
        buffer.moveReaderIndex(forwardBy: 3)
        let expected = try sha256sum(bytes)
        #expect(BufferSHA256.hexDigest(buffer) == expected)
        #expect(buffer.readerIndex == 3)

        for split in [1, 63, 64, 65, 500, 999] {
            var hasher = BufferSHA256()
            hasher.update(ByteBuffer(bytes: bytes[..<split]))
            hasher.update(ByteBuffer(bytes: bytes[split...].prefix(1)))
            hasher.update(ByteBuffer(bytes: bytes[(split + 1)...]))
            #expect(hasher.finalizeHex() == expected, "split at \(split)")
        }
    }
}

/// Random bytes, eight per generator call (per-byte `UInt8.random` is slow in debug builds).
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        var i = 0
        while i < count {
            var word = generator.next()
            for _ in 0..<min(8, count - i) {
                buffer[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        initialized = count
    }
}

/// The digest computed by the system's `sha256sum`: an implementation independent of ours.
func sha256sum(_ bytes: [UInt8]) throws -> String {
    let path = NSTemporaryDirectory() + "sha-\(UInt64.random(in: 0...UInt64.max)).bin"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}
