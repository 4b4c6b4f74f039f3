import CTriggerProtos
package import NIOCore
package import TriggerModel
package import WireCodecs

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `trigger.runner.v1` (protos/trigger/runner/v1/runner.proto) ↔ the trigger model: the gateway encodes
/// requests and decodes responses and events; a runner (the demo runner) does the opposite.
///
/// Only the message-borne fields cross here: ref, inputs, request id and `returnTraces`. Deadline, trace
/// context, principal and idempotency key travel as gRPC metadata (see runner.proto) and are the
/// transport's business. Decoders are total and throw `.invalidArgument` for malformed bytes or
/// over-deep nesting; a caller decoding a backend's answer should report that as `.backendFailed`.
package enum RunnerCodec {
    typealias PBRequest = Trigger__Runner__V1__RunRequest
    typealias PBInput = Trigger__Runner__V1__Input
    typealias PBSecret = Trigger__Runner__V1__Input__SecretsEntry
    typealias PBResponse = Trigger__Runner__V1__RunResponse
    typealias PBTraceEntry = Trigger__Runner__V1__RunResponse__TracesEntry
    typealias PBTrace = Trigger__Runner__V1__Trace
    typealias PBEvent = Trigger__Runner__V1__RunEvent

    // MARK: RunRequest

    /// The `RunRequest` for `request`. A batch that carries its `RunRequest` form (`TriggerBatch.runRequestInputs`,
    /// from `InstillRequestPassthrough`) is not encoded again: its bytes follow the other fields as they are.
    package static func encodeRunRequest(_ request: TriggerRequest) -> ByteBuffer {
        if let inputs = request.batch.runRequestInputs {
            return runRequestCarrying(inputs, of: request, headroom: 0).joined()
        }
        return encodeRunRequestTree(request)
    }

    /// The same bytes as `encodeRunRequest`, as buffers to send one after the other: large blobs are their
    /// own `ByteBuffer`s, shared rather than copied (`ProtoMessage.packPieces`), and the first buffer has
    /// `headroom` bytes of room in front for a prefix (`GRPCMessageFramer.frame(pieces:)` needs 5).
    package static func encodeRunRequestPieces(_ request: TriggerRequest, headroom: Int = 0) -> BufferPieces {
        if let inputs = request.batch.runRequestInputs {
            return runRequestCarrying(inputs, of: request, headroom: headroom)
        }
        return withProtoArena { arena in
            BufferPieces(ProtoMessage.packPieces(runRequest(request, in: arena), arena: arena, headroom: headroom))
        }
    }

    /// `encodeRunRequest` through the model and protobuf-c, never from the batch's `RunRequest` bytes: the
    /// reference the request passthrough must agree with (the fuzzer and the tests compare the two).
    package static func encodeRunRequestTree(_ request: TriggerRequest) -> ByteBuffer {
        withProtoArena { arena in ProtoMessage.pack(runRequest(request, in: arena)) }
    }

    /// The `RunRequest` of `request` whose batch is already `inputs` (its field 6 elements): fields 1 to 5
    /// written here as protobuf-c packs them (in field order; proto3 scalars only when not empty or false;
    /// strings cut at an embedded NUL, as `ProtoArena.cString` hands them to `strlen`), then `inputs`, which
    /// protobuf-c would write last too. Inputs of `ProtoMessage.sharedBinaryBytes` or more are a piece of
    /// their own, not copied.
    private static func runRequestCarrying(
        _ inputs: ByteBuffer, of request: TriggerRequest, headroom: Int
    ) -> BufferPieces {
        let shared = inputs.readableBytes >= ProtoMessage.sharedBinaryBytes
        let ref = request.ref
        // Each string: its bytes, a one-byte tag and at most a 10-byte varint; then `return_traces`.
        let fieldBytes =
            ref.namespace.utf8.count + ref.pipeline.utf8.count + (ref.release?.utf8.count ?? 0)
            + request.requestID.utf8.count + 4 * 11 + 2
        var out = ByteBufferAllocator().buffer(capacity: headroom + fieldBytes + (shared ? 0 : inputs.readableBytes))
        out.moveWriterIndex(forwardBy: headroom)
        out.moveReaderIndex(forwardBy: headroom)
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: fieldBytes) { raw in
            let start = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var at = start
            writeString(ref.namespace, tag: 0x0A, at: &at)
            writeString(ref.pipeline, tag: 0x12, at: &at)
            if let release = ref.release { writeString(release, tag: 0x1A, at: &at) }
            writeString(request.requestID, tag: 0x22, at: &at)
            if request.returnTraces {
                at[0] = 0x28
                at[1] = 1
                at += 2
            }
            return start.distance(to: at)
        }
        if shared { return [out, inputs] }
        out.writeImmutableBuffer(inputs)
        return BufferPieces(out)
    }

    /// A proto3 `string` field with a one-byte tag at `at` (advanced past it): nothing for an empty string.
    private static func writeString(_ string: String, tag: UInt8, at: inout UnsafeMutablePointer<UInt8>) {
        string.withUTF8Bytes { utf8 in
            guard let base = utf8.baseAddress else { return }
            let count =
                memchr(base, 0, utf8.count).map { UnsafeRawPointer(base).distance(to: UnsafeRawPointer($0)) }
                ?? utf8.count
            guard count > 0 else { return }
            at[0] = tag
            at += 1
            var length = UInt64(count)
            while length >= 0x80 {
                at[0] = UInt8(truncatingIfNeeded: length) | 0x80
                at += 1
                length >>= 7
            }
            at[0] = UInt8(length)
            at += 1
            at.update(from: base, count: count)
            at += count
        }
    }

    private static func runRequest(_ request: TriggerRequest, in arena: ProtoArena) -> UnsafeMutablePointer<PBRequest> {
        let m: UnsafeMutablePointer<PBRequest> = arena.message(trigger__runner__v1__run_request__init)
        (m.pointee.namespace_, m.pointee.pipeline, m.pointee.release) = pipelineRef(request.ref, in: arena)
        m.pointee.request_id = arena.cString(request.requestID)
        m.pointee.return_traces = request.returnTraces ? 1 : 0
        (m.pointee.n_inputs, m.pointee.inputs) = arena.repeated(request.inputs) { encode($0, in: arena) }
        return m
    }

    /// A `TriggerRequest` with the message-borne fields set and the rest at their defaults (`mode` is
    /// `.sync`; the runner knows from the method whether it streams).
    package static func decodeRunRequest(_ bytes: ByteBuffer) throws -> TriggerRequest {
        try WireDepthGuard.check(bytes, as: .runRequest, what: "RunRequest")
        return try ProtoMessage.withUnpacked(
            bytes,
            as: "RunRequest",
            unpack: trigger__runner__v1__run_request__unpack,
            free: trigger__runner__v1__run_request__free_unpacked
        ) { m in
            let ref = try pipelineRef(m.pointee.namespace_, m.pointee.pipeline, m.pointee.release, in: "RunRequest")
            var inputs: [TriggerInput] = []
            inputs.reserveCapacity(m.pointee.n_inputs)
            for i in 0..<m.pointee.n_inputs { inputs.append(try decode(m.pointee.inputs[i])) }
            return TriggerRequest(
                ref: ref,
                inputs: inputs,
                requestID: StructCodec.string(m.pointee.request_id),
                returnTraces: m.pointee.return_traces != 0
            )
        }
    }

    // MARK: RunResponse

    package static func encodeRunResponse(_ result: TriggerResult) -> ByteBuffer {
        withProtoArena { arena in ProtoMessage.pack(encode(result, in: arena)) }
    }

    /// A `RunResponse` carrying only the pipeline's application error (`error`), no outputs.
    package static func encodeRunError(_ error: GatewayError) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<PBResponse> = arena.message(trigger__runner__v1__run_response__init)
            m.pointee.error = encodeError(error, in: arena)
            return ProtoMessage.pack(m)
        }
    }

    /// The outputs of a `RunResponse`; a response whose `error` is set decodes to its outputs all the same
    /// (use ``decodeRunOutcome(_:)`` to see the error).
    package static func decodeRunResponse(_ bytes: ByteBuffer) throws -> TriggerResult {
        switch try decodeRunOutcome(bytes) {
        case .success(let result): result
        case .failure(let error): throw error
        }
    }

    /// A `RunResponse` as what the pipeline did: its result, or (when `error` is set) its application error
    /// with `GatewayError.Code.application(code)`. Throws only for malformed bytes.
    ///
    /// A response whose Instill form is its own bytes renumbered (`InstillResponsePassthrough`) is kept as that
    /// message (`TriggerResult.instillProto`) and its outputs are decoded only if a consumer reads them
    /// (issue 11); any other response is decoded now, with the same checks and errors either way.
    package static func decodeRunOutcome(_ bytes: ByteBuffer) throws -> Result<TriggerResult, GatewayError> {
        if let result = passedThrough(runResponse: bytes) { return .success(result) }
        return try decodeRunOutcomeTree(bytes)
    }

    /// `runResponse` as the result that carries its Instill message, when it is in canonical form.
    private static func passedThrough(runResponse: ByteBuffer) -> TriggerResult? {
        guard let instill = InstillResponsePassthrough.instillResponse(fromRunResponse: runResponse) else {
            return nil
        }
        return TriggerResult(instillProto: instill, runResponse: runResponse) { bytes in
            do {
                return try decodeRunOutcomeTree(bytes).get().outputs
            } catch {
                // Unreachable: the scan accepts only what unpacks, within the depth limit, without `error`.
                assertionFailure("a canonical RunResponse failed to decode: \(error)")
                return []
            }
        }
    }

    /// `decodeRunOutcome` through protobuf-c and the model, never keeping the runner's bytes: the reference the
    /// passthrough must agree with (the fuzzer and the tests compare the two).
    package static func decodeRunOutcomeTree(_ bytes: ByteBuffer) throws -> Result<TriggerResult, GatewayError> {
        try WireDepthGuard.check(bytes, as: .runResponse, what: "RunResponse")
        return try ProtoMessage.withUnpacked(
            bytes,
            as: "RunResponse",
            unpack: trigger__runner__v1__run_response__unpack,
            free: trigger__runner__v1__run_response__free_unpacked
        ) { m in
            if let error = m.pointee.error { return .failure(decodeError(UnsafePointer(error))) }
            return .success(try decode(UnsafePointer(m)))
        }
    }

    // MARK: RunEvent

    /// `.error` becomes an `ErrorEvent` carrying the google.rpc code of the error.
    package static func encodeRunEvent(_ event: TriggerEvent) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<PBEvent> = arena.message(trigger__runner__v1__run_event__init)
            switch event {
            case .status(let name, let data):
                let status: UnsafeMutablePointer<Trigger__Runner__V1__StatusEvent> =
                    arena.message(trigger__runner__v1__status_event__init)
                status.pointee.name = arena.cString(name)
                status.pointee.data = RunnerValueCodec.encode(data, in: arena)
                m.pointee.event_case = TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_STATUS
                m.pointee.status = status
            case .output(let name, let result):
                let output: UnsafeMutablePointer<Trigger__Runner__V1__OutputEvent> =
                    arena.message(trigger__runner__v1__output_event__init)
                output.pointee.name = arena.cString(name)
                (output.pointee.n_outputs, output.pointee.outputs) = RunnerValueCodec.encode(
                    result.outputs, in: arena)
                m.pointee.event_case = TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_OUTPUT
                m.pointee.output = output
            case .end(let result):
                let end: UnsafeMutablePointer<Trigger__Runner__V1__EndEvent> =
                    arena.message(trigger__runner__v1__end_event__init)
                end.pointee.result = encode(result, in: arena)
                m.pointee.event_case = TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_END
                m.pointee.end = end
            case .error(let error):
                m.pointee.event_case = TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_ERROR
                m.pointee.error = encodeError(error, in: arena)
            }
            return ProtoMessage.pack(m)
        }
    }

    /// An `ErrorEvent` becomes `.error` with the pipeline's application code
    /// (`GatewayError.Code.application(code)`, passed to the client unchanged); an event with no case set is
    /// `.invalidArgument`.
    ///
    /// An output or end event whose Instill form is its own outputs renumbered
    /// (`InstillResponsePassthrough.instillStreamOutput`/`endEventResult`) keeps that message
    /// (`TriggerResult.instillProto`) and decodes its outputs only if a consumer reads them (issue 11: a relayed
    /// stream event cost ~43 k instructions, ~10 k of them this decode and the re-encode); every other event is
    /// decoded now. Either way the same event, or the same error.
    package static func decodeRunEvent(_ bytes: ByteBuffer) throws -> TriggerEvent {
        if let (name, instill) = InstillResponsePassthrough.instillStreamOutput(fromRunEvent: bytes) {
            let result = TriggerResult(instillProto: instill, runResponse: bytes) { bytes in
                do {
                    if case .output(_, let result) = try decodeRunEventTree(bytes) { return result.outputs }
                } catch {}
                // Unreachable: the scan accepts only an output event that unpacks within the depth limit.
                assertionFailure("a canonical OutputEvent failed to decode")
                return []
            }
            return .output(name: name, result: result)
        }
        if let runResponse = InstillResponsePassthrough.endEventResult(fromRunEvent: bytes),
            let result = passedThrough(runResponse: runResponse)
        {
            return .end(result)
        }
        return try decodeRunEventTree(bytes)
    }

    /// `decodeRunEvent` through protobuf-c and the model: the reference the passthrough must agree with.
    package static func decodeRunEventTree(_ bytes: ByteBuffer) throws -> TriggerEvent {
        try WireDepthGuard.check(bytes, as: .runEvent, what: "RunEvent")
        return try ProtoMessage.withUnpacked(
            bytes,
            as: "RunEvent",
            unpack: trigger__runner__v1__run_event__unpack,
            free: trigger__runner__v1__run_event__free_unpacked
        ) { m in
            switch m.pointee.event_case {
            case TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_STATUS:
                let status = m.pointee.status
                return .status(
                    name: StructCodec.string(status?.pointee.name),
                    data: try RunnerValueCodec.object(status?.pointee.data)
                )
            case TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_OUTPUT:
                let output = m.pointee.output
                return .output(
                    name: StructCodec.string(output?.pointee.name),
                    outputs: try RunnerValueCodec.objects(output?.pointee.n_outputs ?? 0, output?.pointee.outputs)
                )
            case TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_END:
                return .end(try decode(UnsafePointer(m.pointee.end?.pointee.result)))
            case TRIGGER__RUNNER__V1__RUN_EVENT__EVENT_ERROR:
                return .error(decodeError(m.pointee.error.map { UnsafePointer($0) }))
            default:
                throw GatewayError(.invalidArgument, "RunEvent has no event set")
            }
        }
    }

    // MARK: Pieces

    /// The ref fields `namespace = 1, pipeline = 2, release = 3` that `RunRequest` and `DescribeRequest` share;
    /// an empty release reads as none (proto3 has no presence for strings). Without a namespace and a pipeline
    /// the request (`message`, for the error) is `.invalidArgument`.
    static func pipelineRef(
        _ namespace: UnsafePointer<CChar>?,
        _ pipeline: UnsafePointer<CChar>?,
        _ release: UnsafePointer<CChar>?,
        in message: String
    ) throws -> PipelineRef {
        let release = StructCodec.string(release)
        let ref = PipelineRef(
            namespace: StructCodec.string(namespace),
            pipeline: StructCodec.string(pipeline),
            release: release.isEmpty ? nil : release
        )
        guard !ref.namespace.isEmpty, !ref.pipeline.isEmpty else {
            throw GatewayError(.invalidArgument, "\(message) needs a namespace and a pipeline")
        }
        return ref
    }

    /// `ref` as those three fields (release NULL, that is unset, when the ref has none).
    static func pipelineRef(
        _ ref: PipelineRef,
        in arena: ProtoArena
    ) -> (UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?) {
        (arena.cString(ref.namespace), arena.cString(ref.pipeline), ref.release.map { arena.cString($0) })
    }

    private static func encodeError(
        _ error: GatewayError,
        in arena: ProtoArena
    ) -> UnsafeMutablePointer<Trigger__Runner__V1__ErrorEvent> {
        let pb: UnsafeMutablePointer<Trigger__Runner__V1__ErrorEvent> =
            arena.message(trigger__runner__v1__error_event__init)
        pb.pointee.code = Int32(error.code.rpcCode)
        pb.pointee.message = arena.cString(error.message)
        return pb
    }

    private static func decodeError(_ m: UnsafePointer<Trigger__Runner__V1__ErrorEvent>?) -> GatewayError {
        GatewayError(.application(Int(m?.pointee.code ?? 2)), StructCodec.string(m?.pointee.message))
    }

    private static func encode(_ input: TriggerInput, in arena: ProtoArena) -> UnsafeMutablePointer<PBInput> {
        let m: UnsafeMutablePointer<PBInput> = arena.message(trigger__runner__v1__input__init)
        m.pointee.variables = RunnerValueCodec.encode(input.variables, in: arena)
        (m.pointee.n_secrets, m.pointee.secrets) = arena.stringMap(
            input.secrets, trigger__runner__v1__input__secrets_entry__init)
        return m
    }

    private static func decode(_ m: UnsafeMutablePointer<PBInput>?) throws -> TriggerInput {
        guard let m else { return TriggerInput() }
        return TriggerInput(
            variables: try RunnerValueCodec.object(m.pointee.variables),
            secrets: PBSecret.decode(m.pointee.n_secrets, m.pointee.secrets)
        )
    }

    private static func encode(_ result: TriggerResult, in arena: ProtoArena) -> UnsafeMutablePointer<PBResponse> {
        let m: UnsafeMutablePointer<PBResponse> = arena.message(trigger__runner__v1__run_response__init)
        (m.pointee.n_outputs, m.pointee.outputs) = RunnerValueCodec.encode(result.outputs, in: arena)
        (m.pointee.n_traces, m.pointee.traces) = arena.repeated(result.metadata.traces.sorted { $0.key < $1.key }) {
            key, trace in
            let entry: UnsafeMutablePointer<PBTraceEntry> =
                arena.message(trigger__runner__v1__run_response__traces_entry__init)
            entry.pointee.key = arena.cString(key)
            entry.pointee.value = encode(trace, in: arena)
            return entry
        }
        return m
    }

    private static func decode(_ m: UnsafePointer<PBResponse>?) throws -> TriggerResult {
        guard let m else { return TriggerResult(outputs: []) }
        let outputs = try RunnerValueCodec.objects(m.pointee.n_outputs, m.pointee.outputs)
        var traces: [String: Trace] = [:]
        for i in 0..<m.pointee.n_traces {
            guard let entry = m.pointee.traces[i] else { continue }
            traces[StructCodec.string(entry.pointee.key)] = try decode(entry.pointee.value)
        }
        return TriggerResult(outputs: outputs, metadata: TriggerMetadata(traces: traces))
    }

    private static func encode(_ trace: Trace, in arena: ProtoArena) -> UnsafeMutablePointer<PBTrace> {
        let m: UnsafeMutablePointer<PBTrace> = arena.message(trigger__runner__v1__trace__init)
        (m.pointee.n_statuses, m.pointee.statuses) = arena.repeated(trace.statuses) {
            Trigger__Runner__V1__Trace__Status(rawValue: numericCast($0.rawValue))
        }
        (m.pointee.n_inputs, m.pointee.inputs) = RunnerValueCodec.encode(trace.inputs, in: arena)
        (m.pointee.n_outputs, m.pointee.outputs) = RunnerValueCodec.encode(trace.outputs, in: arena)
        if let error = trace.error { m.pointee.error = RunnerValueCodec.encode(error, in: arena) }
        m.pointee.compute_time_in_seconds = trace.computeTimeInSeconds
        return m
    }

    private static func decode(_ m: UnsafeMutablePointer<PBTrace>?) throws -> Trace {
        guard let m else { return Trace() }
        var trace = Trace(computeTimeInSeconds: m.pointee.compute_time_in_seconds)
        for i in 0..<m.pointee.n_statuses {
            trace.statuses.append(Trace.Status(rawValue: Int(m.pointee.statuses[i].rawValue)) ?? .unspecified)
        }
        trace.inputs = try RunnerValueCodec.objects(m.pointee.n_inputs, m.pointee.inputs)
        trace.outputs = try RunnerValueCodec.objects(m.pointee.n_outputs, m.pointee.outputs)
        if let error = m.pointee.error { trace.error = try RunnerValueCodec.object(error) }
        return trace
    }
}
