@testable import Backends
import NIOCore
import NIOPosix
import Testing
import TriggerModel
import WireCodecs

/// The `/run` request head of the http transport: values a request brought from outside go out only when they
/// are valid field values (RFC 9110 §5.5), checked as the head is built (the channel has no outbound header
/// validator, issue 11), as the gRPC transport treats its metadata.
@Suite("http backend: the /run head carries only valid field values")
struct HTTPBackendRequestHeadTests {
    static func transport() -> HTTPBackendTransport {
        HTTPBackendTransport(
            configuration: BackendPoolConfiguration(
                name: "h", transport: .http, endpoints: [.init(host: "127.0.0.1", port: 9)]),
            group: MultiThreadedEventLoopGroup.singleton, codecLimits: .defaults)
    }

    /// The head as the frontend's own request decoder reads it (the strict HTTP/1.1 rules a runner's server
    /// would apply). The bytes after it in the same buffer are the body's (a small body travels with its head).
    static func decoded(_ message: ByteBuffer) throws -> HTTP1RequestHead {
        try Self.decodedWithBody(message).head
    }

    /// ``decoded(_:)`` and how many body bytes followed the head in its buffer.
    static func decodedWithBody(_ message: ByteBuffer) throws -> (head: HTTP1RequestHead, bodyBytes: Int) {
        var decoder = HTTP1RequestDecoder()
        var bytes = message
        guard case .head(let parsed) = try decoder.next(&bytes) else { throw DecodeFailure() }
        return (parsed, bytes.readableBytes)
    }

    struct DecodeFailure: Error {}

    @Test(
        "a rendered body of up to 4 KiB goes in the head's buffer (one channel write), a larger one after it",
        arguments: [(0, true), (1, false)]
    )
    func smallBodyWithItsHead(overLimit: Int, inline: Bool) throws {
        let http = Self.transport()
        defer { http.retire() }
        // The rendered body's size for a string variable of `n` bytes is the size for none plus `n`.
        func parts(_ n: Int) -> (message: ByteBuffer, body: StreamedJSONBody) {
            let request = makeRequest("echo", ["text": .string(String(repeating: "x", count: n))])
            let (message, body) = http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json")
            return (message, body)
        }
        let (emptyMessage, emptyBody) = parts(0)
        let overhead = try Self.decodedWithBody(emptyMessage).bodyBytes + emptyBody.count
        let (message, body) = parts(HTTPBackendTransport.inlineBodyBytes - overhead + overLimit)
        let (head, bodyBytes) = try Self.decodedWithBody(message)
        #expect(head.framing == .contentLength(HTTPBackendTransport.inlineBodyBytes + overLimit))
        #expect(bodyBytes == (inline ? HTTPBackendTransport.inlineBodyBytes : 0))
        #expect(body.count == (inline ? 0 : HTTPBackendTransport.inlineBodyBytes + overLimit))
        if inline {
            var rest = message
            var decoder = HTTP1RequestDecoder()
            _ = try decoder.next(&rest)  // the head; the body is what is left in `rest`
            // Byte for byte the body the transport renders for the same request.
            let request = makeRequest(
                "echo",
                ["text": .string(String(repeating: "x", count: HTTPBackendTransport.inlineBodyBytes - overhead))])
            var rendered = BackendHTTPBody.streamed(request: request)
            var expected = ByteBuffer()
            while var chunk = rendered.next(maxBytes: 1 << 16) { expected.writeBuffer(&chunk) }
            #expect(rest == expected)
        }
    }

    /// A sync request whose batch is carried as the client's text (`RESTRequestPassthrough`) of `dataBytes`
    /// bytes: one element, which the runner gets as `{"variable":{"t":"xx…"},"secret":{}}`.
    static func carriedRequest(dataBytes: Int) throws -> TriggerRequest {
        let element = #"{"variable":{"t":""},"secret":{}}"#
        let filler = String(repeating: "x", count: dataBytes - element.utf8.count)
        let batch = try RESTTriggerBody.decodeBatch(
            json: ByteBuffer(string: #"{"data":[{"variable":{"t":"\#(filler)"}}]}"#), limits: .defaults)
        var request = makeRequest("echo", deadline: .now() + .seconds(5))
        request.batch = batch
        return request
    }

    @Test(
        "a carried batch of up to 4 KiB is written after its head in the head's buffer, the same bytes as rendered",
        arguments: [(0, true), (1, false)]
    )
    func carriedBatchWithItsHead(overLimit: Int, inline: Bool) throws {
        let http = Self.transport()
        defer { http.retire() }
        let request = try Self.carriedRequest(dataBytes: HTTPBackendTransport.inlineBodyBytes + overLimit)
        #expect(request.batch.httpRunData?.readableBytes == HTTPBackendTransport.inlineBodyBytes + overLimit)
        let (message, body) = http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json")
        let (head, bodyBytes) = try Self.decodedWithBody(message)
        var rendered = ByteBuffer()
        BackendHTTPBody.encode(request: request, into: &rendered)
        #expect(head.framing == .contentLength(rendered.readableBytes))
        #expect(body.count == (inline ? 0 : rendered.readableBytes))
        #expect(bodyBytes == (inline ? rendered.readableBytes : 0))
        // The fields and their order are the rendered body's path's (`encodedHead`).
        #expect(
            head.fields.map(\.name) == [
                "host", "content-type", "content-length", "accept", "request-id", "x-trigger-deadline-ms",
            ])
        if inline {
            var rest = message
            var decoder = HTTP1RequestDecoder()
            _ = try decoder.next(&rest)
            #expect(rest == rendered)
        }
    }

    @Test("a CR, LF, NUL or DEL drops the value; HTAB, spaces and non-ASCII pass; an empty value is not sent")
    func fieldValues() throws {
        let http = Self.transport()
        defer { http.retire() }
        var request = makeRequest("echo")
        request.principal = "alice\r\nx-injected: 1"
        request.traceState = "k=v,\tw=x y"  // HTAB and space are field-value characters
        request.idempotencyKey = "key\u{0}"
        request.requesterUID = "é-\u{7F}"
        request.traceParent = ""
        let head = try Self.decoded(
            http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json").head)
        #expect(head.values(name: "x-trigger-principal").isEmpty)
        #expect(head.values(name: "idempotency-key").isEmpty)
        #expect(head.values(name: "instill-requester-uid").isEmpty)
        #expect(head.values(name: "traceparent").isEmpty)
        #expect(head.values(name: "tracestate") == ["k=v,\tw=x y"])
        #expect(head.values(name: "request-id") == ["req-echo"])

        // Just inside the edge: the same fields with only valid bytes all go out.
        request.principal = "alice"
        request.idempotencyKey = "key"
        request.requesterUID = "é-~"
        request.traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let valid = try Self.decoded(
            http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json").head)
        #expect(valid.values(name: "x-trigger-principal") == ["alice"])
        #expect(valid.values(name: "idempotency-key") == ["key"])
        #expect(valid.values(name: "instill-requester-uid") == ["é-~"])
        #expect(valid.values(name: "traceparent") == [request.traceParent!])
    }

    @Test("the encoded head has one line per field: nothing a client sent splits a field")
    func encodedHead() throws {
        let http = Self.transport()
        defer { http.retire() }
        var request = makeRequest("echo", deadline: .now() + .seconds(5))
        request.principal = "alice\r\nx-injected: 1"
        request.traceState = "a\nb"
        let (bytes, body) = http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json")
        let text = String(buffer: bytes)
        #expect(!text.contains("x-injected"))
        #expect(!text.contains("tracestate"))
        let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        #expect(lines.first == "POST /run HTTP/1.1")
        #expect(lines.dropFirst().prefix { !$0.isEmpty }.allSatisfy { $0.contains(": ") }, "\(text)")
        // Every field the transport sends, in order, as the frontend's decoder reads them.
        let (head, inline) = try Self.decodedWithBody(bytes)
        #expect(head.methodIs("POST") && head.target == "/run" && head.minorVersion == 1)
        #expect(head.framing == .contentLength(inline + body.count))
        #expect(
            head.fields.map(\.name) == [
                "host", "content-type", "content-length", "accept", "request-id", "x-trigger-deadline-ms",
            ], "\(text)")
        #expect(head.first(name: "host") == "127.0.0.1:9")
        #expect(head.first(name: "content-type") == "application/json")
        #expect(head.first(name: "accept") == "application/json")
        #expect(
            head.first(name: "x-trigger-deadline-ms").flatMap(Int.init).map { (4_000...5_000).contains($0) } == true)
    }
}
