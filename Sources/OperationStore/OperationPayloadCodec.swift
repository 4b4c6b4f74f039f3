package import NIOCore
package import TriggerModel

/// Turns the parts of an operation a store keeps opaque (request, result, error) into bytes and back, and
/// computes request digests.
///
/// The format is the store's own (see `PayloadWriter`), versioned by a leading byte; it is never sent to
/// clients. Blobs above `inlineBlobLimit` are returned as `SpilledBlob`s for the store to keep outside the
/// row; the row's bytes only name them.
package struct OperationPayloadCodec: Sendable {
    /// 64 KiB: small enough that rows stay small, large enough that icons and short audio stay inline.
    package static let defaultInlineBlobLimit = 64 * 1024

    package var inlineBlobLimit: Int

    /// Whether integers past 2^53 (`Value.largeInteger`) are stored as their digits (`PayloadTag.largeInteger`),
    /// so an async operation's stored request and result keep them exactly. True from this version on: the
    /// previous one (54e6771) already reads the digits form and has shipped, so a rolling upgrade from it is safe
    /// (expand, then contract); a rollback to a version before 54e6771 cannot read such rows (README). False
    /// writes the nearest double, the form every earlier version wrote, and is kept to produce such rows in tests.
    package var largeIntegerDigits: Bool

    /// Whether a number written as a float (`NumberForm.float`: a client's `2.0`, an Abacus `FLOAT`) is stored
    /// in that form (`PayloadTag.floatNumber`), so an async operation's runner request and answers keep `2.0`
    /// rather than `2`. True from this version on (contract): the previous landed version (1e893806) reads the tag
    /// (the expand step, 43cf5865) and has shipped, so a rolling upgrade from it is safe; an instance of a version
    /// before 43cf5865 cannot read such rows (README, the http runner hop). False writes the plain number every
    /// earlier version wrote, and is kept to produce such rows in tests.
    package var numberForms: Bool

    package init(
        inlineBlobLimit: Int = OperationPayloadCodec.defaultInlineBlobLimit, largeIntegerDigits: Bool = true,
        numberForms: Bool = true
    ) {
        self.inlineBlobLimit = inlineBlobLimit
        self.largeIntegerDigits = largeIntegerDigits
        self.numberForms = numberForms
    }

    private static let formatVersion: UInt8 = 1

    /// Encoded bytes plus the blobs they refer to by name.
    package struct Encoded: Sendable {
        package var bytes: ByteBuffer
        package var blobs: [SpilledBlob]
    }

    /// Everything of the request except its deadline (a monotonic instant of the accepting process).
    /// Spilled blobs are named `<blobPrefix><n>`.
    package func encode(_ request: TriggerRequest, blobPrefix: String) -> Encoded {
        var w = PayloadWriter(
            sink: GatheringSink(ByteBuffer()), inlineLimit: inlineBlobLimit, spillPrefix: blobPrefix,
            largeIntegerDigits: largeIntegerDigits, numberForms: numberForms)
        w.byte(Self.formatVersion)
        Self.writeRef(request.ref, to: &w)
        w.string(request.mode.rawValue)
        Self.writeInputs(request.inputs, to: &w)
        w.optionalString(request.principal)
        w.string(request.requestID)
        w.optionalString(request.traceParent)
        w.optionalString(request.traceState)
        w.optionalString(request.idempotencyKey)
        w.bool(request.returnTraces)
        // Appended last, and only when there are any: rows written before labels existed end here and still
        // decode (an absent tail reads as no labels). The requester uid follows the labels (written, possibly
        // empty, whenever there is a requester), so older rows stay readable the same way; then the sensitive
        // fields' bits (one byte, only when there are any: the labels and the requester, empty when there is
        // none, are written before it). A version before it stops reading after the requester, so it reads such a
        // row too, sensitivity aside (an empty requester it reads as empty, which it forwards as none).
        let sensitive = request.sensitiveFields
        if !request.labels.isEmpty || request.requesterUID != nil || !sensitive.isEmpty {
            w.stringMap(request.labels)
        }
        if request.requesterUID != nil || !sensitive.isEmpty { w.string(request.requesterUID ?? "") }
        if !sensitive.isEmpty { w.byte(sensitive.rawValue) }
        return Encoded(bytes: w.sink.finish(), blobs: w.spilled)
    }

    package static func decodeRequest(
        _ bytes: ByteBuffer,
        resolveBlob: @escaping (String) throws -> ByteBuffer
    ) throws -> TriggerRequest {
        var lost: GatewayError?
        return try decodeRequest(bytes, resolveBlob: resolveBlob, toleratingLostBlobs: false, lost: &lost)
    }

    /// As ``decodeRequest(_:resolveBlob:)``, but with `toleratingLostBlobs` a spilled blob `resolveBlob` reports
    /// lost (a `GatewayError` with code `.dataLoss`) is read as empty and the first such error returned in `lost`.
    package static func decodeRequest(
        _ bytes: ByteBuffer,
        resolveBlob: @escaping (String) throws -> ByteBuffer,
        toleratingLostBlobs: Bool,
        lost: inout GatewayError?
    ) throws -> TriggerRequest {
        var r = PayloadReader(buffer: bytes, resolveBlob: resolveBlob)
        r.toleratesLostBlobs = toleratingLostBlobs
        defer { lost = r.lostBlob }
        try checkVersion(&r)
        let ref = PipelineRef(namespace: try r.string(), pipeline: try r.string(), release: try r.optionalString())
        guard let mode = TriggerMode(rawValue: try r.string()) else { throw PayloadReader.corrupt("mode") }
        let count = try r.count()
        var inputs: [TriggerInput] = []
        inputs.reserveCapacity(count)
        for _ in 0..<count {
            let variables = try r.object()
            inputs.append(TriggerInput(variables: variables, secrets: try r.stringMap()))
        }
        var request = TriggerRequest(
            ref: ref,
            mode: mode,
            inputs: inputs,
            principal: try r.optionalString(),
            requestID: try r.string(),
            traceParent: try r.optionalString(),
            traceState: try r.optionalString(),
            idempotencyKey: try r.optionalString(),
            returnTraces: try r.bool()
        )
        if r.buffer.readableBytes > 0 { request.labels = try r.stringMap() }
        if r.buffer.readableBytes > 0 {
            // Empty: written only to reach the sensitive fields' byte (no frontend keeps an empty requester).
            let requester = try r.string()
            request.requesterUID = requester.isEmpty ? nil : requester
        }
        if r.buffer.readableBytes > 0 {
            request.sensitiveFields = SensitiveFields(rawValue: try r.byte())
        }
        return request
    }

    package func encode(_ result: TriggerResult, blobPrefix: String) -> Encoded {
        var w = PayloadWriter(
            sink: GatheringSink(ByteBuffer()), inlineLimit: inlineBlobLimit, spillPrefix: blobPrefix,
            largeIntegerDigits: largeIntegerDigits, numberForms: numberForms)
        w.byte(Self.formatVersion)
        w.objects(result.outputs)
        let traces = result.metadata.traces
        w.count(traces.count)
        for key in traces.keys.sorted() {
            let trace = traces[key]!
            w.string(key)
            w.count(trace.statuses.count)
            for status in trace.statuses { w.varint(UInt64(status.rawValue)) }
            w.objects(trace.inputs)
            w.objects(trace.outputs)
            if let error = trace.error {
                w.byte(1)
                w.object(error)
            } else {
                w.byte(0)
            }
            w.varint(UInt64(trace.computeTimeInSeconds.bitPattern))
        }
        return Encoded(bytes: w.sink.finish(), blobs: w.spilled)
    }

    package static func decodeResult(
        _ bytes: ByteBuffer,
        resolveBlob: @escaping (String) throws -> ByteBuffer
    ) throws -> TriggerResult {
        var r = PayloadReader(buffer: bytes, resolveBlob: resolveBlob)
        try checkVersion(&r)
        let outputs = try r.objects()
        let traceCount = try r.count()
        var traces: [String: Trace] = [:]
        for _ in 0..<traceCount {
            let key = try r.string()
            let statusCount = try r.count()
            var statuses: [Trace.Status] = []
            for _ in 0..<statusCount {
                statuses.append(Trace.Status(rawValue: Int(try r.varint())) ?? .unspecified)
            }
            let inputs = try r.objects()
            let outputs = try r.objects()
            let error = try r.byte() == 0 ? nil : try r.object()
            guard let bits = UInt32(exactly: try r.varint()) else { throw PayloadReader.corrupt("trace time") }
            traces[key] = Trace(
                statuses: statuses,
                inputs: inputs,
                outputs: outputs,
                error: error,
                computeTimeInSeconds: Float(bitPattern: bits)
            )
        }
        return TriggerResult(outputs: outputs, metadata: TriggerMetadata(traces: traces))
    }

    /// Errors are small: everything stays inline. Integers past 2^53 in the details keep their digits, and numbers
    /// their form, as in requests and results.
    package static func encode(_ error: GatewayError) -> ByteBuffer {
        var w = PayloadWriter(
            sink: GatheringSink(ByteBuffer()), inlineLimit: nil, largeIntegerDigits: true, numberForms: true)
        w.byte(formatVersion)
        w.string(error.code.description)
        w.string(error.message)
        w.objects(error.details)
        return w.sink.finish()
    }

    package static func decodeError(_ bytes: ByteBuffer) throws -> GatewayError {
        var r = PayloadReader(buffer: bytes, resolveBlob: { throw PayloadReader.corrupt("blob \($0) in an error") })
        try checkVersion(&r)
        let code = GatewayError.Code.named(try r.string()) ?? .internalError
        let message = try r.string()
        return GatewayError(code, message, details: try r.objects())
    }

    /// Lowercase hex SHA-256 of the canonical form of `ref` and `inputs` (all blob bytes included, secrets
    /// and dictionaries in key order). Two requests with equal digests ask the same pipeline the same thing.
    ///
    /// It is the one every version computes: integers past 2^53 enter it as their nearest double, so instances of
    /// two versions sharing a store compare a key's requests alike. It cannot tell `9007199254740993` from
    /// `9007199254740992`: where it matches, ``NewOperation/idempotentAnswer(existing:)`` compares the two
    /// requests' large integers and their places too (SDK review 56, M1: the second got the first's operation).
    /// Numbers enter without their form: `2` and `2.0` are one JSON value.
    package static func digest(ref: PipelineRef, inputs: [TriggerInput]) -> String {
        var w = PayloadWriter(
            sink: GatheringSink(SHA256Sink()), inlineLimit: nil, largeIntegerDigits: false,
            numberForms: false)
        w.string("trigger-gateway request digest v1")
        writeRef(ref, to: &w)
        writeInputs(inputs, to: &w)
        return w.sink.finish().finalizeHex()
    }

    private static func writeRef<Sink>(_ ref: PipelineRef, to w: inout PayloadWriter<Sink>) {
        w.string(ref.namespace)
        w.string(ref.pipeline)
        w.optionalString(ref.release)
    }

    private static func writeInputs<Sink>(_ inputs: [TriggerInput], to w: inout PayloadWriter<Sink>) {
        w.count(inputs.count)
        for input in inputs {
            w.object(input.variables)
            w.stringMap(input.secrets)
        }
    }

    private static func checkVersion(_ r: inout PayloadReader) throws {
        let version = try r.byte()
        guard version == formatVersion else { throw PayloadReader.corrupt("unknown format version \(version)") }
    }
}
