import Foundation
import NIOCore

/// Test-side JSON, through Foundation: an independent decoder, so a bug in our codec cannot hide itself.
func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    let data = Data(buffer.readableBytesView)
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw JSONError.notAnObject(String(buffer: buffer))
    }
    return object
}

func jsonBody(_ object: Any) throws -> ByteBuffer {
    ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
}

enum JSONError: Error { case notAnObject(String) }

/// `outputs[i]` of a sync trigger response.
func outputs(_ buffer: ByteBuffer) throws -> [[String: Any]] {
    try json(buffer)["outputs"] as? [[String: Any]] ?? []
}

let jsonHeaders = [("content-type", "application/json")]

/// sha256 via the system tool: an independent peer for the blob-info checks.
func sha256Hex(_ bytes: [UInt8]) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tg-sha-\(UUID().uuidString)")
    try Data(bytes).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [url.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(String(decoding: out, as: UTF8.self).prefix(64))
}

func randomBytes(_ count: Int, seed: UInt64 = 42) -> [UInt8] {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in 0..<words.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            words[i] = state ^ (state >> 29)
        }
    }
    for i in (count / 8 * 8)..<count { bytes[i] = UInt8(truncatingIfNeeded: i) }
    return bytes
}

/// A multipart/form-data body built by hand (the boundary is chosen to not occur in the parts).
struct MultipartBody {
    let boundary = "----tg-boundary-7d93b1"
    private(set) var buffer = ByteBuffer()

    mutating func field(_ name: String, _ value: String) {
        buffer.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
    }

    mutating func file(_ name: String, filename: String, contentType: String, bytes: [UInt8]) {
        buffer.writeString(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\n"
                + "Content-Type: \(contentType)\r\n\r\n"
        )
        buffer.writeBytes(bytes)
        buffer.writeString("\r\n")
    }

    func finished() -> ByteBuffer {
        var copy = buffer
        copy.writeString("--\(boundary)--\r\n")
        return copy
    }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }
}
