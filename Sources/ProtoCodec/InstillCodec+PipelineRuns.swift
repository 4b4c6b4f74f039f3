import CTriggerProtos
package import NIOCore
package import TriggerModel

/// Instill's `ListPipelineRuns` (`pipeline.pipeline.v1beta` only: the SDK's generation): the request's query and
/// a page of runs (``PipelineRunQuery``, ``PipelineRunPage``).
extension InstillCodec {
    /// The query of a `ListPipelineRunsRequest` (`namespace_id=1, pipeline_id=2, page=3, page_size=4, filter=6,
    /// order_by=7`).
    ///
    /// - Throws: `.invalidArgument` for an undecodable message and ``PipelineRunQuery``'s refusals.
    package static func decodeListPipelineRunsRequest(_ bytes: ByteBuffer) throws -> PipelineRunQuery {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "ListPipelineRunsRequest",
            unpack: pipeline__pipeline__v1beta__list_pipeline_runs_request__unpack,
            free: pipeline__pipeline__v1beta__list_pipeline_runs_request__free_unpacked
        ) { m in
            try PipelineRunQuery(
                ref: PipelineRef(
                    namespace: StructCodec.string(m.pointee.namespace_id),
                    pipeline: StructCodec.string(m.pointee.pipeline_id)),
                page: Int(m.pointee.page), pageSize: Int(m.pointee.page_size),
                filter: StructCodec.string(m.pointee.filter), orderBy: StructCodec.string(m.pointee.order_by))
        }
    }

    /// `ListPipelineRunsResponse{pipeline_runs=1, total_size=2, page=3, page_size=4}`; each `PipelineRun` with
    /// `pipeline_run_uid=2, pipeline_version=3, status=4, source=5 (RUN_SOURCE_API), total_duration=6 (ms, once
    /// finished), runner_id=7, inputs=10, outputs=12, start_time=14, complete_time=15, error=16, pipeline_id=19,
    /// requester_id=20, pipeline_namespace_id=21`.
    package static func encodeListPipelineRunsResponse(_ page: PipelineRunPage) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__ListPipelineRunsResponse> =
                arena.message(pipeline__pipeline__v1beta__list_pipeline_runs_response__init)
            (m.pointee.n_pipeline_runs, m.pointee.pipeline_runs) = arena.repeated(page.runs) {
                encodeRun($0, in: arena)
            }
            m.pointee.total_size = Int32(clamping: page.totalSize)
            m.pointee.page = Int32(clamping: page.page)
            m.pointee.page_size = Int32(clamping: page.pageSize)
            return ProtoMessage.pack(m)
        }
    }

    private static func encodeRun(
        _ run: PipelineRun, in arena: ProtoArena
    ) -> UnsafeMutablePointer<Pipeline__Pipeline__V1beta__PipelineRun> {
        let r: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__PipelineRun> =
            arena.message(pipeline__pipeline__v1beta__pipeline_run__init)
        r.pointee.pipeline_run_uid = arena.cString(run.uid)
        r.pointee.pipeline_version = arena.cString(run.pipelineVersion)
        r.pointee.status = Common__Run__V1alpha__RunStatus(rawValue: UInt32(run.status.rawValue))
        r.pointee.source = COMMON__RUN__V1ALPHA__RUN_SOURCE__RUN_SOURCE_API
        r.pointee.total_duration = Int32(clamping: run.totalDurationMilliseconds ?? 0)
        r.pointee.runner_id = arena.cString(run.runner)
        (r.pointee.n_inputs, r.pointee.inputs) = arena.repeated(run.inputs) { StructCodec.encode($0, in: arena) }
        (r.pointee.n_outputs, r.pointee.outputs) = arena.repeated(run.outputs) { StructCodec.encode($0, in: arena) }
        r.pointee.start_time = timestamp(run.startTime, in: arena)
        r.pointee.complete_time = run.completeTime.map { timestamp($0, in: arena) }
        r.pointee.error = arena.cString(run.error)
        r.pointee.pipeline_id = arena.cString(run.ref.pipeline)
        r.pointee.requester_id = arena.cString(run.requester)
        r.pointee.pipeline_namespace_id = arena.cString(run.ref.namespace)
        return r
    }

    /// A `google.protobuf.Timestamp` of `milliseconds` since 1970.
    private static func timestamp(
        _ milliseconds: Int64, in arena: ProtoArena
    ) -> UnsafeMutablePointer<Google__Protobuf__Timestamp> {
        let t: UnsafeMutablePointer<Google__Protobuf__Timestamp> = arena.message(google__protobuf__timestamp__init)
        let (seconds, remainder) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        // Timestamp's nanos are never negative (timestamp.proto): a date before 1970 borrows a second.
        (t.pointee.seconds, t.pointee.nanos) =
            remainder < 0 ? (seconds - 1, Int32(remainder + 1000) * 1_000_000) : (seconds, Int32(remainder) * 1_000_000)
        return t
    }
}
