import NIOCore
import Testing

@testable import WireCodecs

/// The http runner's request head written straight into bytes, and a small body written after it in the same
/// buffer with its `content-length` decided once the body is written (issue 11): read back by the frontend's own
/// strict HTTP/1.1 decoder (RFC 9112), as a runner's server would read it.
@Suite("HTTP/1.1 request head writer")
struct HTTP1RequestHeadWriterTests {
    /// The head and the bytes after it in the same buffer.
    static func decoded(_ message: ByteBuffer) throws -> (head: HTTP1RequestHead, rest: ByteBuffer) {
        var decoder = HTTP1RequestDecoder()
        var bytes = message
        guard case .head(let head) = try decoder.next(&bytes) else { throw DecodeFailure() }
        return (head, bytes)
    }

    struct DecodeFailure: Error {}

    @Test(
        "the body after its head: content-length counts it exactly, at each number of digits, the fields in order",
        // 0 and the lengths either side of each new digit; the room holds 19 digits.
        arguments: [0, 1, 9, 10, 99, 100, 999, 1_000, 9_999, 10_000, 70_000]
    )
    func bodyAfterHead(length: Int) throws {
        let body = String((0..<length).map { Character(UnicodeScalar(UInt8(ascii: "a") + UInt8($0 % 26))) })
        var writer = HTTP1RequestHeadWriter(method: "POST", target: "/run")
        writer.add("host", "127.0.0.1:9")
        writer.addContentLengthOfBody()
        writer.add("accept", "application/json")
        let message = writer.finish { $0.writeString(body) }
        let (head, rest) = try Self.decoded(message)
        #expect(head.methodIs("POST") && head.target == "/run" && head.minorVersion == 1)
        #expect(head.framing == .contentLength(length))
        #expect(head.fields.map(\.name) == ["host", "content-length", "accept"])
        #expect(head.first(name: "content-length") == String(length))
        #expect(head.first(name: "accept") == "application/json")
        #expect(String(buffer: rest) == body)
        // Nothing left of the room: the message is the head's lines and the body, no more.
        let text = String(buffer: message)
        #expect(
            text == "POST /run HTTP/1.1\r\nhost: 127.0.0.1:9\r\ncontent-length: \(length)\r\n"
                + "accept: application/json\r\n\r\n\(body)")
    }

    @Test("the same head as one written with the length known first")
    func sameAsKnownLength() throws {
        let body = #"{"data":[{"variable":{"prompt":"hi"},"secret":{}}]}"#
        var known = HTTP1RequestHeadWriter(method: "POST", target: "/base/run")
        known.add("host", "runner:8080")
        known.add("content-length", decimal: body.utf8.count)
        var expected = known.finish()
        expected.writeString(body)

        var later = HTTP1RequestHeadWriter(method: "POST", target: "/base/run")
        later.add("host", "runner:8080")
        later.addContentLengthOfBody()
        #expect(later.finish { $0.writeString(body) } == expected)
    }

    @Test("a body written past the buffer's first capacity (it grows while the body is written)")
    func bodyPastCapacity() throws {
        var writer = HTTP1RequestHeadWriter(method: "POST", target: "/run", extraCapacity: 0)
        writer.addContentLengthOfBody()
        let message = writer.finish { buffer in
            for _ in 0..<100 { buffer.writeString(String(repeating: "x", count: 100)) }
        }
        let (head, rest) = try Self.decoded(message)
        #expect(head.framing == .contentLength(10_000))
        #expect(rest.readableBytes == 10_000)
    }
}
