import CTriggerProtos
package import NIOCore
package import TriggerModel

/// `Runner/Describe` (protos/trigger/runner/v1/runner.proto) ↔ `PipelineRef` and `PipelineDescription`.
extension RunnerCodec {
    typealias PBDescribeRequest = Trigger__Runner__V1__DescribeRequest
    typealias PBDescribeResponse = Trigger__Runner__V1__DescribeResponse
    typealias PBParameter = Trigger__Runner__V1__Parameter

    package static func encodeDescribeRequest(_ ref: PipelineRef) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<PBDescribeRequest> = arena.message(trigger__runner__v1__describe_request__init)
            (m.pointee.namespace_, m.pointee.pipeline, m.pointee.release) = pipelineRef(ref, in: arena)
            return ProtoMessage.pack(m)
        }
    }

    /// Throws `.invalidArgument` for malformed bytes or a request without namespace and pipeline.
    package static func decodeDescribeRequest(_ bytes: ByteBuffer) throws -> PipelineRef {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "DescribeRequest",
            unpack: trigger__runner__v1__describe_request__unpack,
            free: trigger__runner__v1__describe_request__free_unpacked
        ) { m in
            try pipelineRef(m.pointee.namespace_, m.pointee.pipeline, m.pointee.release, in: "DescribeRequest")
        }
    }

    package static func encodeDescribeResponse(_ description: PipelineDescription) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<PBDescribeResponse> = arena.message(
                trigger__runner__v1__describe_response__init)
            func parameters(
                _ list: [PipelineDescription.Parameter]
            ) -> (count: Int, items: UnsafeMutablePointer<UnsafeMutablePointer<PBParameter>?>?) {
                arena.repeated(list) { parameter in
                    let p: UnsafeMutablePointer<PBParameter> = arena.message(trigger__runner__v1__parameter__init)
                    p.pointee.name = arena.cString(parameter.name)
                    p.pointee.data_type = arena.cString(parameter.dataType)
                    return p
                }
            }
            (m.pointee.n_inputs, m.pointee.inputs) = parameters(description.inputs)
            (m.pointee.n_outputs, m.pointee.outputs) = parameters(description.outputs)
            return ProtoMessage.pack(m)
        }
    }

    /// Throws `.invalidArgument` for malformed bytes or a parameter without a name.
    package static func decodeDescribeResponse(_ bytes: ByteBuffer) throws -> PipelineDescription {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "DescribeResponse",
            unpack: trigger__runner__v1__describe_response__unpack,
            free: trigger__runner__v1__describe_response__free_unpacked
        ) { m in
            func parameters(_ list: UnsafeMutablePointer<UnsafeMutablePointer<PBParameter>?>?, _ count: Int) throws
                -> [PipelineDescription.Parameter]
            {
                try (0..<count).map { i in
                    guard let p = list?[i] else {
                        throw GatewayError(.invalidArgument, "DescribeResponse: empty parameter")
                    }
                    let name = StructCodec.string(p.pointee.name)
                    guard !name.isEmpty else {
                        throw GatewayError(.invalidArgument, "DescribeResponse: a parameter has no name")
                    }
                    return PipelineDescription.Parameter(name: name, dataType: StructCodec.string(p.pointee.data_type))
                }
            }
            return PipelineDescription(
                inputs: try parameters(m.pointee.inputs, m.pointee.n_inputs),
                outputs: try parameters(m.pointee.outputs, m.pointee.n_outputs)
            )
        }
    }
}
