@testable import Backends
import NIOCore
import NIOEmbedded
import NIOHTTP1
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
        let (head, _) = http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json")
        #expect(head.headers["x-trigger-principal"].isEmpty)
        #expect(head.headers["idempotency-key"].isEmpty)
        #expect(head.headers["instill-requester-uid"].isEmpty)
        #expect(head.headers["traceparent"].isEmpty)
        #expect(head.headers["tracestate"] == ["k=v,\tw=x y"])
        #expect(head.headers["request-id"] == ["req-echo"])

        // Just inside the edge: the same fields with only valid bytes all go out.
        request.principal = "alice"
        request.idempotencyKey = "key"
        request.requesterUID = "é-~"
        request.traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let (valid, _) = http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json")
        #expect(valid.headers["x-trigger-principal"] == ["alice"])
        #expect(valid.headers["idempotency-key"] == ["key"])
        #expect(valid.headers["instill-requester-uid"] == ["é-~"])
        #expect(valid.headers["traceparent"] == [request.traceParent!])
    }

    @Test("the encoded head has one line per field: nothing a client sent splits a field")
    func encodedHead() throws {
        let http = Self.transport()
        defer { http.retire() }
        var request = makeRequest("echo")
        request.principal = "alice\r\nx-injected: 1"
        request.traceState = "a\nb"
        let (head, _) = http.requestParts(request, endpoint: http.endpoint(at: 0), accept: "application/json")
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
        try channel.writeOutbound(HTTPClientRequestPart.head(head))
        var bytes = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        let text = String(buffer: bytes)
        #expect(!text.contains("x-injected"))
        #expect(!text.contains("tracestate"))
        let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        #expect(lines.first == "POST /run HTTP/1.1")
        #expect(lines.dropFirst().prefix { !$0.isEmpty }.allSatisfy { $0.contains(": ") }, "\(text)")
        _ = try channel.finish()
    }
}
