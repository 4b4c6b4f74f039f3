import NIOCore
import Testing
import TriggerModel
import WireCodecs

/// The http backend's request body sent in pieces (issue 12): the same bytes as the whole rendering, with the
/// base64 of large blobs produced one bounded chunk at a time.
@Suite("StreamedJSONBody")
struct StreamedJSONBodyTests {
    static func request(_ variables: ValueObject, secrets: [String: String] = [:]) -> TriggerRequest {
        TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "blob-info", release: "v1"),
            inputs: [TriggerInput(variables: variables, secrets: secrets), TriggerInput(variables: ["n": .number(1)])],
            requestID: "req-1"
        )
    }

    static func whole(_ request: TriggerRequest) -> ByteBuffer {
        var out = ByteBuffer()
        BackendHTTPBody.encode(request: request, into: &out)
        return out
    }

    @Test(
        "the pieces concatenate to the whole rendering; count is its length",
        arguments: [1, 2, 3, StreamedJSONBody.deferredBlobBytes - 1, StreamedJSONBody.deferredBlobBytes, 1 << 20]
    )
    func sameBytes(blobBytes: Int) {
        let large = Blob(
            contentType: "image/png", fileName: "a b.png", bytes: ByteBuffer(bytes: pseudoRandomBytes(blobBytes)))
        let small = Blob(bytes: ByteBuffer(bytes: [1, 2, 3]))
        let request = Self.request(
            ["file": .blob(large), "other": .list([.blob(small), .string("\"q\"")]), "again": .blob(large)],
            secrets: ["k": "v"]
        )
        let body = BackendHTTPBody.streamed(request: request)
        let expected = Self.whole(request)
        #expect(body.count == expected.readableBytes)
        #expect(body.joined() == expected)
    }

    @Test("base64 comes in chunks of at most maxBytes, each whole groups of 3 bytes, the text whole")
    func chunkSizes() {
        let blob = Blob(bytes: ByteBuffer(bytes: pseudoRandomBytes(1_000_001)))
        let request = Self.request(["file": .blob(blob)])
        var body = BackendHTTPBody.streamed(request: request)
        var chunks: [ByteBuffer] = []
        while let chunk = body.next(maxBytes: 64 << 10) { chunks.append(chunk) }
        #expect(body.isFinished && body.next(maxBytes: 1) == nil)
        // Text before the blob, ⌈1 000 001 / 49 152⌉ = 21 base64 chunks, text after it.
        #expect(chunks.count == 23)
        #expect(chunks.allSatisfy { $0.readableBytes <= 64 << 10 })
        for chunk in chunks[1..<21] { #expect(chunk.readableBytes == 64 << 10) }
        var joined = ByteBuffer()
        for chunk in chunks { joined.writeImmutableBuffer(chunk) }
        #expect(joined == Self.whole(request))
    }

    @Test("a body without large blobs is one text piece; an empty one has none")
    func textOnly() {
        var body = BackendHTTPBody.streamed(request: Self.request(["p": .string("hi")]))
        #expect(body.next(maxBytes: 1) == Self.whole(Self.request(["p": .string("hi")])))
        #expect(body.next(maxBytes: 1) == nil)
        var empty = StreamedJSONBody(ByteBuffer())
        #expect(empty.count == 0 && empty.isFinished && empty.next(maxBytes: 10) == nil)
    }

    @Test("a blob held as canonical base64 goes out as that very text: same bytes, no encoding, no copy")
    func canonicalBase64PassedThrough() throws {
        let bytes = pseudoRandomBytes(200_000)
        var encoded = ByteBuffer()
        bytes.withUnsafeBytes { Base64.encode($0, into: &encoded) }
        let held = Blob(contentType: "image/png", fileName: "a b.png", canonicalBase64: encoded)
        let plain = Blob(contentType: "image/png", fileName: "a b.png", bytes: ByteBuffer(bytes: bytes))
        let small = Value.blob(Blob(bytes: ByteBuffer(bytes: [1])))
        let request = Self.request(["file": .blob(held), "small": small])
        var body = BackendHTTPBody.streamed(request: request)
        #expect(body.count == Self.whole(Self.request(["file": .blob(plain), "small": small])).readableBytes)
        #expect(body.joined() == Self.whole(request))
        let textAddress = encoded.withUnsafeReadableBytes { $0.baseAddress }
        var chunks: [ByteBuffer] = []
        while let chunk = body.next(maxBytes: 64 << 10) { chunks.append(chunk) }
        // Text, the client's base64 whole (a slice of the same storage), text.
        #expect(chunks.count == 3)
        #expect(chunks[1].withUnsafeReadableBytes { $0.baseAddress } == textAddress)
        #expect(chunks[1].readableBytes == encoded.readableBytes)
    }
}
