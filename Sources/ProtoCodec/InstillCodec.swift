import CTriggerProtos
package import NIOCore
package import TriggerModel

/// The Instill gRPC messages the gateway serves (`pipeline.pipeline.v1beta.PipelinePublicService`, the
/// health methods, `grpc.health.v1.Health`) ↔ the trigger model.
///
/// Every decoder is total: any input either decodes or throws a `GatewayError` (`.invalidArgument` for
/// malformed bytes, nesting deeper than `ProtoLimits.maxNestingDepth`, a missing id or a batch over the
/// limit). The sync, stream and async request messages of one kind share their field numbers, so one
/// decoder serves all three; likewise the sync and stream responses.
package enum InstillCodec {
    typealias PipelineRequest = Pipeline__Pipeline__V1beta__TriggerNamespacePipelineRequest
    typealias ReleaseRequest = Pipeline__Pipeline__V1beta__TriggerNamespacePipelineReleaseRequest
    typealias TriggerData = Pipeline__Pipeline__V1beta__TriggerData
    typealias PipelineResponse = Pipeline__Pipeline__V1beta__TriggerNamespacePipelineResponse

    /// The `google.protobuf.Any` type URL of a finished operation's response (the SDK's generation).
    package static let triggerResponseTypeURL = InstillGeneration.pipelinePipelineV1beta.triggerResponseTypeURL

    // MARK: Trigger requests

    /// Decodes a trigger request of `generation` (one decoder per generation, all into the same model):
    /// a pipeline's (`release: false`) or a release's (`release: true`), sync, stream and async alike.
    ///
    /// The batch is `data` when it has elements, else the legacy `inputs`; neither having an element, or more
    /// than `maxBatch` elements, is `.invalidArgument` (REST's rules, `RESTTriggerBody`); so is a message with more
    /// than `maxMembers` `Struct` fields and `ListValue` values in all (`CodecLimits.maxJSONMembers`, checked on
    /// the wire before unpacking: `WireDepthGuard`). `connection_references` are not part of the model and dropped.
    package static func decodeTriggerRequest(
        _ bytes: ByteBuffer,
        generation: InstillGeneration,
        release: Bool,
        maxBatch: Int,
        maxMembers: Int = .max
    ) throws -> (ref: PipelineRef, inputs: [TriggerInput]) {
        switch generation {
        // Field for field the same messages (protos/vdp/pipeline/v1beta/pipeline.proto says where checked).
        case .vdpPipelineV1beta, .pipelinePipelineV1beta:
            try decodeTriggerRequest(bytes, release: release, maxBatch: maxBatch, maxMembers: maxMembers)
        case .pipelineV1beta:
            try decodeNamedTriggerRequest(bytes, release: release, maxBatch: maxBatch, maxMembers: maxMembers)
        }
    }

    /// As `decodeTriggerRequest(_:generation:release:maxBatch:)`, for a call that may go to a grpc runner: a
    /// request in canonical form (`InstillRequestPassthrough`) keeps its batch as the runner's `RunRequest.inputs`
    /// bytes, and its inputs are decoded (by `decodeTriggerRequest`, from `bytes`) only if something reads them
    /// (issue 11). Any other request is decoded now, with the same model or error either way.
    package static func decodeTriggerBatch(
        _ bytes: ByteBuffer,
        generation: InstillGeneration,
        release: Bool,
        maxBatch: Int,
        maxMembers: Int = .max
    ) throws -> (ref: PipelineRef, batch: TriggerBatch) {
        if generation != .pipelineV1beta,
            let carried = InstillRequestPassthrough.batch(
                fromTriggerRequest: bytes, release: release, maxBatch: maxBatch, maxMembers: maxMembers)
        {
            let batch = TriggerBatch(
                runRequestInputs: carried.runRequestInputs, source: bytes,
                decode: release ? decodeCarriedReleaseBatch : decodeCarriedBatch)
            return (carried.ref, batch)
        }
        let decoded = try decodeTriggerRequest(
            bytes, generation: generation, release: release, maxBatch: maxBatch, maxMembers: maxMembers)
        return (decoded.ref, TriggerBatch(decoded.inputs))
    }

    /// The inputs of a request `InstillRequestPassthrough` accepted (so within the batch limit, which is not
    /// checked again): closures without captures, so a batch allocates no context for them.
    private static let decodeCarriedBatch: @Sendable (ByteBuffer) -> [TriggerInput] = {
        decodeCarried($0, release: false)
    }
    private static let decodeCarriedReleaseBatch: @Sendable (ByteBuffer) -> [TriggerInput] = {
        decodeCarried($0, release: true)
    }

    private static func decodeCarried(_ bytes: ByteBuffer, release: Bool) -> [TriggerInput] {
        do {
            return try decodeTriggerRequest(bytes, release: release, maxBatch: .max).inputs
        } catch {
            // Unreachable: the scan accepts only what decodes, within the depth, batch and member limits.
            assertionFailure("a canonical trigger request failed to decode: \(error)")
            return []
        }
    }

    /// Decodes `TriggerNamespacePipeline{,WithStream,Async}Request` (`release: false`) or
    /// `Trigger{,Async}NamespacePipelineReleaseRequest` (`release: true`) of `pipeline.pipeline.v1beta`.
    package static func decodeTriggerRequest(
        _ bytes: ByteBuffer,
        release: Bool,
        maxBatch: Int,
        maxMembers: Int = .max
    ) throws -> (ref: PipelineRef, inputs: [TriggerInput]) {
        let what = release ? "TriggerNamespacePipelineReleaseRequest" : "TriggerNamespacePipelineRequest"
        try WireDepthGuard.check(
            bytes, as: .triggerRequest(release: release), what: what, maxMembers: maxMembers, checkingStrings: true)
        if release {
            return try ProtoMessage.withUnpacked(
                bytes,
                as: what,
                unpack: pipeline__pipeline__v1beta__trigger_namespace_pipeline_release_request__unpack,
                free: pipeline__pipeline__v1beta__trigger_namespace_pipeline_release_request__free_unpacked
            ) { m in
                let releaseID = StructCodec.string(m.pointee.release_id)
                guard !releaseID.isEmpty else { throw GatewayError(.invalidArgument, "release_id is required") }
                let ref = try pipelineRef(m.pointee.namespace_id, m.pointee.pipeline_id, release: releaseID)
                let inputs = try batch(
                    data: m.pointee.n_data, inputs: (m.pointee.n_inputs, m.pointee.inputs), maxBatch: maxBatch
                ) { i in try input(m.pointee.data![i]) }
                return (ref, inputs)
            }
        }
        return try ProtoMessage.withUnpacked(
            bytes,
            as: what,
            unpack: pipeline__pipeline__v1beta__trigger_namespace_pipeline_request__unpack,
            free: pipeline__pipeline__v1beta__trigger_namespace_pipeline_request__free_unpacked
        ) { m in
            let ref = try pipelineRef(m.pointee.namespace_id, m.pointee.pipeline_id, release: nil)
            let inputs = try batch(
                data: m.pointee.n_data, inputs: (m.pointee.n_inputs, m.pointee.inputs), maxBatch: maxBatch
            ) { i in try input(m.pointee.data![i]) }
            return (ref, inputs)
        }
    }

    /// Encodes the request a client sends (the `data` form); the release form when `ref.release` is set.
    /// For test clients and tools: the gateway itself only decodes these.
    package static func encodeTriggerRequest(ref: PipelineRef, inputs: [TriggerInput]) -> ByteBuffer {
        withProtoArena { arena in
            let data = arena.repeated(inputs) { input -> UnsafeMutablePointer<TriggerData>? in encode(input, in: arena)
            }
            if let release = ref.release {
                let m: UnsafeMutablePointer<ReleaseRequest> = arena.message(
                    pipeline__pipeline__v1beta__trigger_namespace_pipeline_release_request__init
                )
                m.pointee.namespace_id = arena.cString(ref.namespace)
                m.pointee.pipeline_id = arena.cString(ref.pipeline)
                m.pointee.release_id = arena.cString(release)
                (m.pointee.n_data, m.pointee.data) = data
                return ProtoMessage.pack(m)
            }
            let m: UnsafeMutablePointer<PipelineRequest> = arena.message(
                pipeline__pipeline__v1beta__trigger_namespace_pipeline_request__init
            )
            m.pointee.namespace_id = arena.cString(ref.namespace)
            m.pointee.pipeline_id = arena.cString(ref.pipeline)
            (m.pointee.n_data, m.pointee.data) = data
            return ProtoMessage.pack(m)
        }
    }

    // MARK: Trigger responses

    /// `TriggerNamespacePipeline{,WithStream,Release}Response`: one output per batch item, and the traces
    /// in `metadata` (omitted when there are none). A result that carries this message already
    /// (`TriggerResult.instillProto`, from a grpc runner's answer) is not encoded again.
    package static func encodeTriggerResponse(_ result: TriggerResult) -> ByteBuffer {
        if let message = result.instillProto { return message }
        return encodeTriggerResponseTree(result)
    }

    /// `encodeTriggerResponse` from the result's outputs and metadata, never from `instillProto`: the reference
    /// the passthrough must agree with.
    package static func encodeTriggerResponseTree(_ result: TriggerResult) -> ByteBuffer {
        withProtoArena { arena in ProtoMessage.pack(encode(result, in: arena)) }
    }

    /// The inverse of `encodeTriggerResponse`, for test clients and tools.
    package static func decodeTriggerResponse(_ bytes: ByteBuffer) throws -> TriggerResult {
        try bytes.withUnsafeReadableBytes { try decodeTriggerResponse(raw: $0) }
    }

    static func decodeTriggerResponse(raw bytes: UnsafeRawBufferPointer) throws -> TriggerResult {
        let what = "TriggerNamespacePipelineResponse"
        try WireDepthGuard.check(bytes, as: .triggerResponse, what: what)
        return try ProtoMessage.withUnpacked(
            raw: bytes,
            as: what,
            unpack: pipeline__pipeline__v1beta__trigger_namespace_pipeline_response__unpack,
            free: pipeline__pipeline__v1beta__trigger_namespace_pipeline_response__free_unpacked
        ) { m in
            var outputs: [ValueObject] = []
            outputs.reserveCapacity(m.pointee.n_outputs)
            for i in 0..<m.pointee.n_outputs { outputs.append(try StructCodec.object(m.pointee.outputs[i])) }
            return TriggerResult(outputs: outputs, metadata: try InstillTraceCodec.metadata(m.pointee.metadata))
        }
    }

    static func encode(_ result: TriggerResult, in arena: ProtoArena) -> UnsafeMutablePointer<PipelineResponse> {
        let m: UnsafeMutablePointer<PipelineResponse> = arena.message(
            pipeline__pipeline__v1beta__trigger_namespace_pipeline_response__init
        )
        (m.pointee.n_outputs, m.pointee.outputs) = StructCodec.encode(result.outputs, in: arena)
        if !result.metadata.traces.isEmpty {
            m.pointee.metadata = InstillTraceCodec.encode(result.metadata, in: arena)
        }
        return m
    }

    // MARK: Helpers

    static func pipelineRef(
        _ namespace: UnsafePointer<CChar>?,
        _ pipeline: UnsafePointer<CChar>?,
        release: String?
    ) throws -> PipelineRef {
        let namespace = StructCodec.string(namespace)
        let pipeline = StructCodec.string(pipeline)
        guard !namespace.isEmpty else { throw GatewayError(.invalidArgument, "namespace_id is required") }
        guard !pipeline.isEmpty else { throw GatewayError(.invalidArgument, "pipeline_id is required") }
        return PipelineRef(namespace: namespace, pipeline: pipeline, release: release)
    }

    /// The batch: `data` when it has elements (`item(i)` reads element `i`), else the legacy `inputs`.
    static func batch(
        data count: Int,
        inputs: (Int, UnsafeMutablePointer<UnsafeMutablePointer<Google__Protobuf__Struct>?>?),
        maxBatch: Int,
        item: (Int) throws -> TriggerInput
    ) throws -> [TriggerInput] {
        let useData = count > 0
        let total = useData ? count : inputs.0
        // As REST answers `{"data": []}` (RESTTriggerBody): nothing to run is the caller's mistake, not an empty
        // run (a sync answer with no outputs, or an async operation stored with no inputs).
        guard total > 0 else {
            throw GatewayError(.invalidArgument, "data is empty: a trigger needs at least one batch element")
        }
        guard total <= maxBatch else {
            throw GatewayError(.invalidArgument, "batch of \(total) inputs exceeds the limit of \(maxBatch)")
        }
        var batch: [TriggerInput] = []
        batch.reserveCapacity(total)
        for i in 0..<total {
            batch.append(useData ? try item(i) : TriggerInput(variables: try StructCodec.object(inputs.1![i])))
        }
        return batch
    }

    /// One `pipeline.pipeline.v1beta.TriggerData`: its variables and secrets.
    private static func input(_ item: UnsafeMutablePointer<TriggerData>?) throws -> TriggerInput {
        TriggerInput(
            variables: try StructCodec.object(item?.pointee.variable),
            secrets: Pipeline__Pipeline__V1beta__TriggerData__SecretEntry.decode(
                item?.pointee.n_secret ?? 0, item?.pointee.secret)
        )
    }

    private static func encode(_ input: TriggerInput, in arena: ProtoArena) -> UnsafeMutablePointer<TriggerData> {
        let m: UnsafeMutablePointer<TriggerData> = arena.message(pipeline__pipeline__v1beta__trigger_data__init)
        m.pointee.variable = StructCodec.encode(input.variables, in: arena)
        (m.pointee.n_secret, m.pointee.secret) = arena.stringMap(
            input.secrets, pipeline__pipeline__v1beta__trigger_data__secret_entry__init)
        return m
    }
}
