import NIOCore
import TriggerModel

/// Recognises an Instill trigger request (`TriggerNamespacePipeline{,WithStream,Async}Request`, or with
/// `release` `Trigger{,Async}NamespacePipelineReleaseRequest`, of `pipeline.pipeline.v1beta` and the field for
/// field equal `vdp.pipeline.v1beta`) whose batch, with its value tags renumbered, is byte for byte the
/// `inputs` of the `RunRequest` that decoding it (`InstillCodec.decodeTriggerRequest`) and encoding the model
/// again (`RunnerCodec.encodeRunRequest`) would send a grpc runner (issue 11: that unpack and pack cost ~17 k
/// instructions of a ~173 k gRPC call).
///
/// `TriggerData { variable = 1 (Struct) }` has the wire form of the runner's `Input { variables = 1 (Object) }`
/// (`ValueWireTranscoder` says when a `Struct` is canonical and renumbers it), so each `data` element becomes a
/// `RunRequest.inputs` (field 6) element by its tag alone. The request must also be what the decoder accepts
/// without a question, else the decoder answers (with today's error, or today's model):
/// - `namespace_id`, `pipeline_id` (and `release_id` for a release) once each, not empty, well-formed UTF-8
///   without NUL (`String(cString:)` keeps such strings as they are);
/// - 1 to `maxBatch` `data` elements, one after the other (copied as one run), each exactly its `variable`:
///   no `secret` (decoded into a dictionary, whose order the encoder does not keep), no
///   `connection_references` (dropped), no missing `variable` (encoded as an empty object);
/// - no legacy `inputs` and no unknown field;
/// - at most `maxMembers` struct fields and list values (`WireDepthGuard`'s count).
enum InstillRequestPassthrough {
    /// What a canonical request carries: its ref, and its batch as the `RunRequest.inputs` elements (`count`
    /// of them, tags and lengths included).
    struct Batch {
        var ref: PipelineRef
        var runRequestInputs: ByteBuffer
        var count: Int
    }

    /// `request`'s ref and batch, or nil when the request is not in canonical form (or would be refused).
    static func batch(
        fromTriggerRequest request: ByteBuffer, release: Bool, maxBatch: Int, maxMembers: Int = .max
    ) -> Batch? {
        let count = request.readableBytes
        guard count > 0 else { return nil }
        var out = ByteBufferAllocator().buffer(capacity: count)
        let scan = request.withUnsafeReadableBytes { raw -> Scan? in
            var scan: Scan?
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                var transcoder = ValueWireTranscoder(
                    source: raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    target: target.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    count: count,
                    tags: .instillToRunner,
                    maxMembers: maxMembers
                )
                scan = transcoder.triggerRequest(release: release, maxBatch: maxBatch)
                return scan == nil ? 0 : count
            }
            return scan
        }
        guard let scan else { return nil }
        return request.withUnsafeReadableBytes { raw in
            func string(_ range: Range<Int>) -> String {
                String(decoding: UnsafeRawBufferPointer(rebasing: raw[range]), as: UTF8.self)
            }
            return Batch(
                ref: PipelineRef(
                    namespace: string(scan.namespace), pipeline: string(scan.pipeline),
                    release: scan.release.map(string)),
                runRequestInputs: out.getSlice(at: scan.data.lowerBound, length: scan.data.count)!,
                count: scan.count
            )
        }
    }

    /// Where a canonical request's ids and batch are (byte offsets into it).
    fileprivate struct Scan: Equatable {
        var namespace: Range<Int>
        var pipeline: Range<Int>
        var release: Range<Int>?
        var data: Range<Int>
        var count: Int
    }
}

extension ValueWireTranscoder {
    /// The `RunRequest.inputs` tag (field 6, length-delimited).
    private static let runRequestInputsTag: UInt8 = 0x32

    /// The whole request: its ids, then (or before them) the `data` elements in one run.
    fileprivate mutating func triggerRequest(release: Bool, maxBatch: Int) -> InstillRequestPassthrough.Scan? {
        // pipeline.proto: namespace_id 1, pipeline_id 2, then release_id 3, inputs 4, data 5 for a release, or
        // inputs 3, data 4 for a pipeline.
        let dataTag: UInt8 = release ? 0x2A : 0x22
        var namespace: Range<Int>?
        var pipeline: Range<Int>?
        var releaseID: Range<Int>?
        var data: Range<Int>?
        var elements = 0
        var pos = 0
        while pos < count {
            let tag = source[pos]
            guard let field = length(after: pos, within: count) else { return nil }
            switch tag {
            case 0x0A, 0x12, 0x1A:
                // An id (release_id only in a release request: else 0x1A is the legacy `inputs`): once, not
                // empty, kept by the decoder as it is.
                guard tag != 0x1A || release, field.end > field.start,
                    isCanonicalString(from: field.start, to: field.end)
                else { return nil }
                let range = field.start..<field.end
                switch tag {
                case 0x0A where namespace == nil: namespace = range
                case 0x12 where pipeline == nil: pipeline = range
                case 0x1A where releaseID == nil: releaseID = range
                default: return nil
                }
            case dataTag:
                // Elements in one run: this one starts where the last ended, or it is the first.
                if let run = data, run.upperBound != pos { return nil }
                elements += 1
                // The tag first: `retag` copies what precedes it, and the element's own tags come after.
                guard elements <= maxBatch, retag(pos, Self.runRequestInputsTag),
                    triggerData(from: field.start, to: field.end)
                else { return nil }
                data = (data?.lowerBound ?? pos)..<field.end
            default:
                return nil  // legacy `inputs`, an unknown field, a wrong wire type
            }
            pos = field.end
        }
        guard let namespace, let pipeline, let data, release == (releaseID != nil) else { return nil }
        copy(upTo: count)
        return .init(namespace: namespace, pipeline: pipeline, release: releaseID, data: data, count: elements)
    }

    /// `TriggerData`: exactly its `variable` (field 1), a `Struct` at nesting level 1.
    private mutating func triggerData(from start: Int, to end: Int) -> Bool {
        guard start < end, source[start] == 0x0A, let variable = length(after: start, within: end),
            variable.end == end
        else { return false }
        return object(from: variable.start, to: variable.end)
    }
}
