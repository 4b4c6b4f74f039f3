import NIOCore
import ProtoCodec
import Testing
import TriggerModel

@Suite("Operations and health checks")
struct OperationAndHealthTests {
    static let result = TriggerResult(
        outputs: [["text": .string("HELLO")]],
        metadata: TriggerMetadata(traces: [
            "upper": Trace(
                statuses: [.completed],
                inputs: [["text": .string("hello")]],
                outputs: [["text": .string("HELLO")]],
                computeTimeInSeconds: 0.25
            )
        ])
    )

    @Test("a pending async trigger answer is read by protoc as an operation", .enabled(if: Protoc.isAvailable))
    func pendingOperation() async throws {
        let bytes = InstillCodec.encodeOperationResponse(
            operation: OperationSnapshot(name: "operations/abc", done: false)
        )
        let text = try await Protoc.decode("pipeline.pipeline.v1beta.TriggerAsyncNamespacePipelineResponse", bytes)
        #expect(text == "operation {\n  name: \"operations/abc\"\n}\n")
    }

    @Test("a finished operation's response is an Any holding the trigger response", .enabled(if: Protoc.isAvailable))
    func finishedOperation() async throws {
        let snapshot = OperationSnapshot(
            name: "operations/abc",
            done: true,
            result: Self.result,
            metadata: ["state": .string("STATE_COMPLETED"), "attempts": .number(1)]
        )
        let bytes = InstillCodec.encodeOperationResponse(operation: snapshot)
        let text = try await Protoc.decode("pipeline.pipeline.v1beta.GetOperationResponse", bytes)
        // protoc's CLI prints an Any's value as escaped bytes, so check the type URLs here, and that the
        // value is exactly the trigger-response encoding protoc reads in "the sync response …" below.
        #expect(text.contains("response {\n    type_url: \"\(InstillCodec.triggerResponseTypeURL)\""))
        #expect(text.contains("metadata {\n    type_url: \"type.googleapis.com/google.protobuf.Struct\""))
        #expect(text.contains("done: true"))
        let inner = Array(InstillCodec.encodeTriggerResponse(Self.result).readableBytesView)
        let outer = Array(bytes.readableBytesView)
        #expect((0...(outer.count - inner.count)).contains { outer[$0..<($0 + inner.count)].elementsEqual(inner) })
        #expect(try InstillCodec.decodeOperationResponse(bytes) == snapshot)
    }

    @Test("a failed operation carries a google.rpc.Status", .enabled(if: Protoc.isAvailable))
    func failedOperation() async throws {
        let snapshot = OperationSnapshot(
            name: "operations/x",
            done: true,
            error: GatewayError(.deadlineExceeded, "took too long", details: [["step": .string("llm")]])
        )
        let bytes = InstillCodec.encodeOperationResponse(operation: snapshot)
        let text = try await Protoc.decode("pipeline.pipeline.v1beta.TriggerAsyncNamespacePipelineResponse", bytes)
        #expect(text.contains("error {\n    code: 4\n    message: \"took too long\""))
        #expect(try InstillCodec.decodeOperationResponse(bytes) == snapshot)
    }

    @Test("GetOperationRequest yields the id, with or without the operations/ prefix", .enabled(if: Protoc.isAvailable))
    func getOperationRequest() async throws {
        for id in ["abc-123", "operations/abc-123"] {
            let bytes = try await Protoc.encode(
                "pipeline.pipeline.v1beta.GetOperationRequest",
                "operation_id: \"\(id)\""
            )
            #expect(try InstillCodec.decodeGetOperationRequest(bytes) == "abc-123")
        }
        #expect(throws: GatewayError(.invalidArgument, "operation_id is required")) {
            try InstillCodec.decodeGetOperationRequest(ByteBuffer())
        }
    }

    @Test(
        "Readiness answers decode as Instill and mgmt health responses",
        .enabled(if: Protoc.isAvailable),
        arguments: [true, false]
    )
    func instillHealth(serving: Bool) async throws {
        let bytes = InstillCodec.encodeHealthCheckResponse(serving: serving)
        let status = serving ? "SERVING_STATUS_SERVING" : "SERVING_STATUS_NOT_SERVING"
        for type in ["pipeline.pipeline.v1beta.ReadinessResponse", "core.mgmt.v1beta.ReadinessResponse"] {
            #expect(try await Protoc.decode(type, bytes) == "health_check_response {\n  status: \(status)\n}\n")
        }
    }

    @Test("grpc.health.v1 answers decode with protoc", .enabled(if: Protoc.isAvailable), arguments: [true, false])
    func grpcHealth(serving: Bool) async throws {
        let bytes = InstillCodec.encodeGRPCHealthResponse(serving: serving)
        let text = try await Protoc.decode("grpc.health.v1.HealthCheckResponse", bytes)
        #expect(text == "status: \(serving ? "SERVING" : "NOT_SERVING")\n")
    }

    @Test("health requests decode tolerantly", .enabled(if: Protoc.isAvailable))
    func healthRequests() async throws {
        let readiness = try await Protoc.encode(
            "pipeline.pipeline.v1beta.ReadinessRequest",
            #"health_check_request { service: "pipeline" }"#
        )
        #expect(InstillCodec.decodeHealthCheckRequest(readiness) == "pipeline")
        #expect(InstillCodec.decodeHealthCheckRequest(ByteBuffer()) == nil)
        #expect(InstillCodec.decodeHealthCheckRequest(ByteBuffer(hex: "ff")) == nil)
        let check = try await Protoc.encode("grpc.health.v1.HealthCheckRequest", #"service: "x""#)
        #expect(InstillCodec.decodeGRPCHealthRequest(check) == "x")
        #expect(InstillCodec.decodeGRPCHealthRequest(ByteBuffer(hex: "0a05")) == "")
    }

    @Test("the sync response carries outputs and traces as protoc reads them", .enabled(if: Protoc.isAvailable))
    func syncResponse() async throws {
        let bytes = InstillCodec.encodeTriggerResponse(Self.result)
        let text = try await Protoc.decode("pipeline.pipeline.v1beta.TriggerNamespacePipelineResponse", bytes)
        #expect(text.hasPrefix("outputs {\n  fields {\n    key: \"text\"\n    value {\n      string_value: \"HELLO\""))
        #expect(text.contains("metadata {\n  traces {\n    key: \"upper\""))
        #expect(try InstillCodec.decodeTriggerResponse(bytes) == Self.result)
        // Without traces the metadata message is left out.
        let plain = InstillCodec.encodeTriggerResponse(TriggerResult(outputs: [[:]]))
        #expect(plain.hex == "0a00")
    }
}
