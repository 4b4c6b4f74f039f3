import CTriggerProtos
package import NIOCore
import TriggerModel

extension InstillCodec {
    typealias PBOperation = Google__Longrunning__Operation
    typealias PBAny = Google__Protobuf__Any
    typealias PBStatus = Google__Rpc__Status

    /// The `google.protobuf.Any` type URL of operation metadata and error details.
    package static let structTypeURL = "type.googleapis.com/google.protobuf.Struct"

    /// The answer of every operation method: `GetOperationResponse` and each generation's
    /// `TriggerAsync{NamespacePipeline,NamespacePipelineRelease}Response` / `TriggerAsyncPipeline[Release]Response`
    /// are all `operation = 1` and nothing else (protos/), so one encoding serves them all. A finished
    /// operation's response is an `Any` of `generation`'s trigger response.
    package static func encodeOperationResponse(
        operation: OperationSnapshot, generation: InstillGeneration = .pipelinePipelineV1beta
    ) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__GetOperationResponse> =
                arena.message(pipeline__pipeline__v1beta__get_operation_response__init)
            m.pointee.operation = encode(operation, generation: generation, in: arena)
            return ProtoMessage.pack(m)
        }
    }

    /// The operation id of a `GetOperationRequest` (`operation_id = 1` in every generation). A full `operations/<id>` name is accepted too.
    package static func decodeGetOperationRequest(_ bytes: ByteBuffer) throws -> String {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "GetOperationRequest",
            unpack: pipeline__pipeline__v1beta__get_operation_request__unpack,
            free: pipeline__pipeline__v1beta__get_operation_request__free_unpacked
        ) { m in
            var id = Substring(StructCodec.string(m.pointee.operation_id))
            if id.hasPrefix("operations/") { id = id.dropFirst("operations/".count) }
            guard !id.isEmpty else { throw GatewayError(.invalidArgument, "operation_id is required") }
            return String(id)
        }
    }

    /// Decodes the `operation` of an async trigger or GetOperation response (same field number), for test
    /// clients and tools. The error code maps back through `GatewayError.Code.fromRPCCode`, so it is lossy.
    package static func decodeOperationResponse(_ bytes: ByteBuffer) throws -> OperationSnapshot {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "GetOperationResponse",
            unpack: pipeline__pipeline__v1beta__get_operation_response__unpack,
            free: pipeline__pipeline__v1beta__get_operation_response__free_unpacked
        ) { m in
            guard let op = m.pointee.operation else {
                throw GatewayError(.invalidArgument, "the response has no operation")
            }
            var snapshot = OperationSnapshot(name: StructCodec.string(op.pointee.name), done: op.pointee.done != 0)
            if let metadata = op.pointee.metadata {
                snapshot.metadata = try unpackStruct(metadata)
            }
            switch op.pointee.result_case {
            case GOOGLE__LONGRUNNING__OPERATION__RESULT_ERROR:
                if let status = op.pointee.error {
                    snapshot.error = GatewayError(
                        .fromRPCCode(Int(status.pointee.code)),
                        StructCodec.string(status.pointee.message),
                        details: try (0..<status.pointee.n_details).compactMap { i in
                            try status.pointee.details[i].map(unpackStruct)
                        }
                    )
                }
            case GOOGLE__LONGRUNNING__OPERATION__RESULT_RESPONSE:
                if let response = op.pointee.response {
                    let typeURL = StructCodec.string(response.pointee.type_url)
                    guard InstillGeneration.allCases.contains(where: { $0.triggerResponseTypeURL == typeURL }) else {
                        throw GatewayError(.invalidArgument, "unexpected operation response type")
                    }
                    snapshot.result = try decodeTriggerResponse(raw: rawBytes(response.pointee.value))
                }
            default:
                break
            }
            return snapshot
        }
    }

    static func encode(
        _ operation: OperationSnapshot, generation: InstillGeneration, in arena: ProtoArena
    ) -> UnsafeMutablePointer<PBOperation> {
        let m: UnsafeMutablePointer<PBOperation> = arena.message(google__longrunning__operation__init)
        m.pointee.name = arena.cString(operation.name)
        m.pointee.done = operation.done ? 1 : 0
        if let metadata = operation.metadata {
            m.pointee.metadata = packAny(structTypeURL, StructCodec.encode(metadata, in: arena), in: arena)
        }
        if let error = operation.error {
            let status: UnsafeMutablePointer<PBStatus> = arena.message(google__rpc__status__init)
            status.pointee.code = Int32(error.code.rpcCode)
            status.pointee.message = arena.cString(error.message)
            (status.pointee.n_details, status.pointee.details) = arena.repeated(error.details) {
                packAny(structTypeURL, StructCodec.encode($0, in: arena), in: arena)
            }
            m.pointee.result_case = GOOGLE__LONGRUNNING__OPERATION__RESULT_ERROR
            m.pointee.error = status
        } else if let result = operation.result {
            m.pointee.result_case = GOOGLE__LONGRUNNING__OPERATION__RESULT_RESPONSE
            // Every generation's trigger response is `outputs = 1, metadata = 2`: one encoding, its own type URL.
            m.pointee.response = packAny(generation.triggerResponseTypeURL, encode(result, in: arena), in: arena)
        }
        return m
    }

    /// An `Any` holding `message` packed. The packed bytes live in a `ByteBuffer` the arena keeps alive.
    private static func packAny<M>(
        _ typeURL: String,
        _ message: UnsafeMutablePointer<M>,
        in arena: ProtoArena
    ) -> UnsafeMutablePointer<PBAny> {
        let any: UnsafeMutablePointer<PBAny> = arena.message(google__protobuf__any__init)
        any.pointee.type_url = arena.cString(typeURL)
        any.pointee.value = arena.binary(ProtoMessage.pack(message))
        return any
    }

    private static func unpackStruct(_ any: UnsafeMutablePointer<PBAny>) throws -> ValueObject {
        guard StructCodec.string(any.pointee.type_url) == structTypeURL else { return ValueObject() }
        let bytes = rawBytes(any.pointee.value)
        try WireDepthGuard.check(bytes, as: .pbStruct, what: "google.protobuf.Struct")
        return try ProtoMessage.withUnpacked(
            raw: bytes,
            as: "google.protobuf.Struct",
            unpack: google__protobuf__struct__unpack,
            free: google__protobuf__struct__free_unpacked
        ) { try StructCodec.object($0) }
    }

    static func rawBytes(_ data: ProtobufCBinaryData) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: data.data, count: data.data == nil ? 0 : data.len)
    }
}
