import NIOCore
import ProtoCodec
import Testing
import TriggerModel

@Suite("Runner Describe messages")
struct RunnerDescribeCodecTests {
    @Test("a describe request round-trips, with and without a release")
    func request() throws {
        for ref in [
            PipelineRef(namespace: "demo", pipeline: "blob-info"),
            PipelineRef(namespace: "n", pipeline: "p", release: "v2"),
        ] {
            #expect(try RunnerCodec.decodeDescribeRequest(RunnerCodec.encodeDescribeRequest(ref)) == ref)
        }
        #expect(throws: GatewayError.self) { try RunnerCodec.decodeDescribeRequest(ByteBuffer()) }
    }

    @Test("a describe response round-trips in order; an empty one means any inputs")
    func response() throws {
        let description = PipelineDescription(
            inputs: [.init(name: "file", dataType: "file"), .init(name: "n", dataType: "number")],
            outputs: [.init(name: "out", dataType: "json")]
        )
        #expect(try RunnerCodec.decodeDescribeResponse(RunnerCodec.encodeDescribeResponse(description)) == description)
        #expect(
            try RunnerCodec.decodeDescribeResponse(RunnerCodec.encodeDescribeResponse(PipelineDescription()))
                == PipelineDescription())
        #expect(throws: (any Error).self) {
            try RunnerCodec.decodeDescribeResponse(ByteBuffer(bytes: [0x0A, 0x05, 0x01]))
        }
    }
}
