import NIOCore
import WireCodecs

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
    ///
    /// The answer carries its gRPC prefix in the 5 bytes before it (`GRPCMessageFramer.writePrefix`), so the
    /// gRPC frontend frames it without a copy.
    static func instillResponse(fromRunResponse runResponse: ByteBuffer) -> ByteBuffer? {
        let count = runResponse.readableBytes
        var out = ByteBufferAllocator().buffer(capacity: Self.prefixBytes + count)
        out.moveWriterIndex(forwardBy: Self.prefixBytes)
        out.moveReaderIndex(forwardBy: Self.prefixBytes)
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
        guard accepted else { return nil }
        GRPCMessageFramer.writePrefix(intoHeadroomOf: &out)
        return out
    }

    /// The room left before an answer for its gRPC message prefix.
    static let prefixBytes = 5
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

// MARK: Stream events

extension InstillResponsePassthrough {
    /// For a runner's `RunEvent` holding an `OutputEvent` whose outputs are in canonical form: the event's name
    /// and Instill's stream message for it (`TriggerNamespacePipelineWithStreamResponse`, whose `outputs = 1`
    /// and `metadata = 2` are the unary response's, so `TriggerResult.instillProto` serves both), else nil.
    ///
    /// `RunEvent { output = 2 { name = 1, outputs = 2 … } }` becomes `{ outputs = 1 … }`: the wrapper and the
    /// name are dropped and each `outputs` tag is rewritten, every `Object` checked and renumbered as in
    /// `instillResponse(fromRunResponse:)` (one byte per tag, so the lengths stay). A name that is not
    /// canonical (NUL, ill-formed UTF-8), fields out of order or repeated, or any other field gets nil.
    static func instillStreamOutput(fromRunEvent event: ByteBuffer) -> (name: String, message: ByteBuffer)? {
        let count = event.readableBytes
        guard count > 0 else { return nil }
        var out = ByteBufferAllocator().buffer(capacity: count)
        var found: (name: String, outputsStart: Int)?
        event.withUnsafeReadableBytes { raw in
            let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                var transcoder = ValueWireTranscoder(
                    source: base, target: target.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count,
                    tags: .runnerToInstill)
                found = transcoder.outputEvent()
                return found == nil ? 0 : count
            }
        }
        guard let found else { return nil }
        // The copied wrapper and name precede the outputs in `out`; the message starts after them. Their last
        // 5 bytes, when there are that many (a named event), become the message's gRPC prefix.
        out.moveReaderIndex(forwardBy: found.outputsStart)
        GRPCMessageFramer.writePrefix(intoHeadroomOf: &out)
        return (found.name, out)
    }

    /// The `RunResponse` of a `RunEvent { end = 3 { result = 1 { … } } }` (a slice of `event`), when that is
    /// all the event holds; nil otherwise (another case, no result, other fields).
    static func endEventResult(fromRunEvent event: ByteBuffer) -> ByteBuffer? {
        let count = event.readableBytes
        let range = event.withUnsafeReadableBytes { raw -> (start: Int, end: Int)? in
            guard count > 0 else { return nil }
            let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            guard base[0] == 0x1A, let end = ValueWireTranscoder.length(in: base, after: 0, within: count),
                end.end == count, end.start < count, base[end.start] == 0x0A,
                let result = ValueWireTranscoder.length(in: base, after: end.start, within: count), result.end == count
            else { return nil }
            return result
        }
        guard let range else { return nil }
        return event.getSlice(at: event.readerIndex + range.start, length: range.end - range.start)
    }
}

extension ValueWireTranscoder {
    /// `RunEvent { output = 2 { name = 1, outputs = 2 … } }`, copied with each `outputs` tag (2) written as
    /// Instill's (1) and every value renumbered; the name and where the outputs start in the copy.
    fileprivate mutating func outputEvent() -> (name: String, outputsStart: Int)? {
        guard source[0] == 0x12, let output = length(after: 0, within: count), output.end == count else { return nil }
        var pos = output.start
        var name = ""
        if pos < count, source[pos] == 0x0A {
            guard let range = length(after: pos, within: count), isCanonicalString(from: range.start, to: range.end)
            else { return nil }
            name = String(
                decoding: UnsafeBufferPointer(start: source + range.start, count: range.end - range.start),
                as: UTF8.self)
            pos = range.end
        }
        let outputsStart = pos
        while pos < count {
            guard source[pos] == 0x12, let field = length(after: pos, within: count), retag(pos, 0x0A),
                object(from: field.start, to: field.end)
            else { return nil }
            pos = field.end
        }
        copy(upTo: count)
        return (name, outputsStart)
    }
}
