import SeededRandom
import NIOCore
import ProtoCodec
import Testing
import TriggerModel
import WireCodecs
import TestScheduling

@Suite("Runner messages")
struct RunnerCodecTests {
    static func megabyteBlob() -> Blob {
        var rng = SplitMix64(seed: 42)
        var bytes = ByteBufferAllocator().buffer(capacity: 1 << 20)
        for _ in 0..<(1 << 17) { bytes.writeInteger(rng.next()) }
        return Blob(contentType: "image/png", fileName: "big.png", bytes: bytes)
    }

    @Test(
        "a run request in pieces: the same bytes, the blobs shared not copied, headroom in front (issue 12)", .cpuBound)
    func requestPieces() throws {
        let blob = Self.megabyteBlob()
        let small = Blob(bytes: ByteBuffer(bytes: [1, 2, 3]))
        let request = TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "blob-info"),
            inputs: [
                TriggerInput(variables: ["a": .blob(blob), "s": .blob(small), "n": .list([.number(1), .blob(blob)])]),
                TriggerInput(variables: ["b": .blob(blob)], secrets: ["k": "v"]),
            ],
            requestID: "req-2"
        )
        let pieces = RunnerCodec.encodeRunRequestPieces(request, headroom: 5)
        var joined = ByteBuffer()
        for piece in pieces { joined.writeImmutableBuffer(piece) }
        #expect(joined == RunnerCodec.encodeRunRequest(request))
        #expect(pieces.first?.readerIndex == 5)
        // Each of the three occurrences of the large blob is the blob's own storage; the small one is copied.
        let blobAddress = blob.bytes.withUnsafeReadableBytes { $0.baseAddress }
        let shared = pieces.filter { piece in piece.withUnsafeReadableBytes { $0.baseAddress } == blobAddress }
        #expect(shared.count == 3)
        #expect(pieces.count == 7)  // text, blob, text, blob, text, blob, text
        // Without a large blob: one buffer.
        let plain = RunnerCodec.encodeRunRequestPieces(
            TriggerRequest(ref: request.ref, inputs: [TriggerInput(variables: ["s": .blob(small)])]), headroom: 5)
        #expect(plain.count == 1 && plain[0].readerIndex == 5)
    }

    @Test("a run request round-trips, including a 1 MiB blob byte for byte")
    func requestRoundTrip() throws {
        let blob = Self.megabyteBlob()
        let request = TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "blob-info", release: "v2"),
            inputs: [
                TriggerInput(
                    variables: [
                        "image": .blob(blob), "z": .number(-3.5), "a": .list([.null, .bool(true), .string("s")]),
                        "empty": .blob(Blob(bytes: ByteBuffer())),
                        "nested": .object(["x": .object([:]), "data:text": .string("data:;base64,AA==")]),
                    ],
                    secrets: ["token": "t", "other": "o"]
                ),
                TriggerInput(),
            ],
            requestID: "req-1",
            returnTraces: true
        )
        let bytes = RunnerCodec.encodeRunRequest(request)
        #expect(bytes.readableBytes > 1 << 20)
        let decoded = try RunnerCodec.decodeRunRequest(bytes)
        #expect(decoded == request)
        #expect(decoded.inputs[0].variables.keys == ["image", "z", "a", "empty", "nested"])
        let image = try #require(decoded.inputs[0].variables["image"]?.blobValue)
        #expect(image.bytes == blob.bytes)
        // On this hop a data-URI-looking string is just a string.
        #expect(decoded.inputs[0].variables["nested"]?.objectValue?["data:text"] == .string("data:;base64,AA=="))
    }

    @Test("a request without a release decodes to a ref without one", .enabled(if: Protoc.isAvailable))
    func requestFromProtoc() async throws {
        let bytes = try await Protoc.encode(
            "trigger.runner.v1.RunRequest",
            #"namespace: "demo" pipeline: "echo" request_id: "r" inputs { variables { entries { key: "b" value { blob_value { data: "\001\002" } } } } }"#
        )
        let decoded = try RunnerCodec.decodeRunRequest(bytes)
        #expect(decoded.ref == PipelineRef(namespace: "demo", pipeline: "echo"))
        #expect(decoded.requestID == "r")
        #expect(decoded.returnTraces == false)
        let blob = try #require(decoded.inputs.first?.variables["b"]?.blobValue)
        #expect(blob.contentType == Blob.defaultContentType)
        #expect(blob.fileName == nil)
        #expect(Array(blob.bytes.readableBytesView) == [1, 2])
    }

    @Test("a run response round-trips with traces")
    func responseRoundTrip() throws {
        let result = TriggerResult(
            outputs: [["out": .blob(Self.megabyteBlob())], ["n": .number(1)]],
            metadata: TriggerMetadata(traces: [
                "a": Trace(statuses: [.completed, .skipped], error: ["message": .string("x")]),
                "b": Trace(statuses: [.error], inputs: [["i": .null]], outputs: [], computeTimeInSeconds: 1.5),
            ])
        )
        #expect(try RunnerCodec.decodeRunResponse(RunnerCodec.encodeRunResponse(result)) == result)
    }

    @Test("a pipeline's error travels in RunResponse.error and decodes as an application error")
    func runErrorRoundTrip() throws {
        let error = GatewayError(.application(9), "not ready")
        #expect(try RunnerCodec.decodeRunOutcome(RunnerCodec.encodeRunError(error)) == .failure(error))
        // An ErrorEvent carries the pipeline's code unchanged, even one the gateway itself also uses.
        let event = TriggerEvent.error(GatewayError(.deadlineExceeded, "late"))
        let decoded = try RunnerCodec.decodeRunEvent(RunnerCodec.encodeRunEvent(event))
        #expect(decoded == .error(GatewayError(.application(4), "late")))
    }

    @Test(
        "every event kind round-trips",
        arguments: [
            TriggerEvent.status(name: "PIPELINE_STATUS_UPDATED", data: ["status": .string("RUNNING")]),
            .output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [["word": .string("hello")], [:]]),
            .end(TriggerResult(outputs: [["text": .string("hello world")]])),
            .error(GatewayError(.application(4), "too slow")),
        ]
    )
    func eventRoundTrip(event: TriggerEvent) throws {
        #expect(try RunnerCodec.decodeRunEvent(RunnerCodec.encodeRunEvent(event)) == event)
    }

    @Test("an event with nothing set, or nesting past the limit, is rejected")
    func badEvents() throws {
        #expect(throws: GatewayError(.invalidArgument, "RunEvent has no event set")) {
            try RunnerCodec.decodeRunEvent(ByteBuffer())
        }
        for (depth, ok) in [(64, true), (65, false)] {
            let event = TriggerEvent.output(
                name: "o",
                outputs: [StructConversionTests.nested(depth: depth, useLists: true)]
            )
            let bytes = RunnerCodec.encodeRunEvent(event)
            if ok {
                #expect(try RunnerCodec.decodeRunEvent(bytes) == event)
            } else {
                #expect(throws: GatewayError.self) { try RunnerCodec.decodeRunEvent(bytes) }
            }
        }
    }
}
