import NIOCore

/// Recognises a grpc runner's `RunResponse` (protos/trigger/runner/v1/runner.proto) that, with its value tags
/// renumbered, is byte for byte the `TriggerNamespacePipelineResponse` that decoding it (`RunnerCodec`) and
/// encoding the result again (`InstillCodec.encodeTriggerResponse`) would give an Instill gRPC client (issue 11:
/// that unpack and repack cost ~13 k instructions of a ~186 k gRPC call).
///
/// `RunResponse.outputs = 1` and `TriggerNamespacePipelineResponse.outputs = 1` are both repeated objects, so
/// the message is its outputs, each checked and renumbered by `ValueWireTranscoder` (which says what canonical
/// is). The response must hold only `outputs`: no `traces` (which would become `metadata`), no `error` (a
/// failure), no unknown field (the encoder writes none). Anything else gets "no", and the caller decodes as
/// before, with the same result or error.
enum InstillResponsePassthrough {
    /// The Instill response message for `runResponse`, or nil when `runResponse` is not in canonical form.
    static func instillResponse(fromRunResponse runResponse: ByteBuffer) -> ByteBuffer? {
        let count = runResponse.readableBytes
        var out = ByteBufferAllocator().buffer(capacity: max(count, 1))
        let accepted = runResponse.withUnsafeReadableBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return true }  // no outputs: the empty message
            return out.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                var transcoder = ValueWireTranscoder(
                    source: base.assumingMemoryBound(to: UInt8.self),
                    target: target.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    count: count,
                    tags: .runnerToInstill
                )
                return transcoder.runResponse() ? count : 0
            } == count
        }
        return accepted ? out : nil
    }
}

extension ValueWireTranscoder {
    /// The whole `RunResponse`: `outputs` (field 1, length-delimited) only.
    fileprivate mutating func runResponse() -> Bool {
        var pos = 0
        while pos < count {
            guard source[pos] == 0x0A, let end = length(after: pos, within: count) else { return false }
            guard object(from: end.start, to: end.end) else { return false }
            pos = end.end
        }
        copy(upTo: count)
        return true
    }
}
