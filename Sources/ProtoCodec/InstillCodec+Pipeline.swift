import CTriggerProtos
package import NIOCore
package import TriggerModel

/// Instill's pipeline metadata methods, `GetNamespacePipeline` and `GetNamespacePipelineRelease`, of the
/// `pipeline.pipeline.v1beta` generation and the 2024 `vdp.pipeline.v1beta` one (their request and response
/// messages are field for field the same; see protos/vdp). Only the fields a `PipelineResource` has are set.
extension InstillCodec {
    /// The ref of a `GetNamespacePipelineRequest` (`release: false`: `namespace_id=1, pipeline_id=2`) or
    /// `GetNamespacePipelineReleaseRequest` (`release: true`: `…, release_id=3`). `view` is read past: the
    /// answer is the same for every view. A missing id is `.invalidArgument`.
    package static func decodeGetPipelineRequest(_ bytes: ByteBuffer, release: Bool) throws -> PipelineRef {
        if release {
            return try ProtoMessage.withUnpacked(
                bytes,
                as: "GetNamespacePipelineReleaseRequest",
                unpack: pipeline__pipeline__v1beta__get_namespace_pipeline_release_request__unpack,
                free: pipeline__pipeline__v1beta__get_namespace_pipeline_release_request__free_unpacked
            ) { m in
                let releaseID = StructCodec.string(m.pointee.release_id)
                guard !releaseID.isEmpty else { throw GatewayError(.invalidArgument, "release_id is required") }
                return try pipelineRef(m.pointee.namespace_id, m.pointee.pipeline_id, release: releaseID)
            }
        }
        return try ProtoMessage.withUnpacked(
            bytes,
            as: "GetNamespacePipelineRequest",
            unpack: pipeline__pipeline__v1beta__get_namespace_pipeline_request__unpack,
            free: pipeline__pipeline__v1beta__get_namespace_pipeline_request__free_unpacked
        ) { m in try pipelineRef(m.pointee.namespace_id, m.pointee.pipeline_id, release: nil) }
    }

    /// `GetNamespacePipelineResponse{pipeline = 1}`: `name=1, uid=2, id=3, owner_name=17, releases=19,
    /// data_specification=24`.
    package static func encodeGetPipelineResponse(_ pipeline: PipelineResource) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__GetNamespacePipelineResponse> =
                arena.message(pipeline__pipeline__v1beta__get_namespace_pipeline_response__init)
            m.pointee.pipeline = encodePipeline(pipeline, in: arena)
            return ProtoMessage.pack(m)
        }
    }

    private static func encodePipeline(
        _ pipeline: PipelineResource, in arena: ProtoArena
    ) -> UnsafeMutablePointer<Pipeline__Pipeline__V1beta__Pipeline> {
        let p: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__Pipeline> =
            arena.message(pipeline__pipeline__v1beta__pipeline__init)
        p.pointee.name = arena.cString(pipeline.name)
        p.pointee.uid = arena.cString(pipeline.uid)
        p.pointee.id = arena.cString(pipeline.id)
        p.pointee.owner_name = arena.cString(pipeline.ownerName)
        (p.pointee.n_releases, p.pointee.releases) = arena.repeated(pipeline.releases) {
            encodeRelease($0, in: arena)
        }
        p.pointee.data_specification = dataSpecification(pipeline, in: arena)
        return p
    }

    /// `GetNamespacePipelineReleaseResponse{release = 1}`: `name=1, uid=2, id=3, data_specification=14`.
    package static func encodeGetPipelineReleaseResponse(_ release: PipelineResource) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__GetNamespacePipelineReleaseResponse> =
                arena.message(pipeline__pipeline__v1beta__get_namespace_pipeline_release_response__init)
            m.pointee.release = encodeRelease(release, in: arena)
            return ProtoMessage.pack(m)
        }
    }

    /// The query of a `ListNamespacePipelineReleasesRequest` (`namespace_id=1, pipeline_id=2, page_size=3,
    /// page_token=4, view=5, filter=6, show_deleted=7`; `view` and `show_deleted` read past).
    ///
    /// - Throws: `.invalidArgument` for a missing id and for ``PipelineReleaseQuery``'s refusals.
    package static func decodeListPipelineReleasesRequest(_ bytes: ByteBuffer) throws -> PipelineReleaseQuery {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "ListNamespacePipelineReleasesRequest",
            unpack: pipeline__pipeline__v1beta__list_namespace_pipeline_releases_request__unpack,
            free: pipeline__pipeline__v1beta__list_namespace_pipeline_releases_request__free_unpacked
        ) { m in
            try PipelineReleaseQuery(
                ref: try pipelineRef(m.pointee.namespace_id, m.pointee.pipeline_id, release: nil),
                pageSize: Int(m.pointee.page_size), pageToken: StructCodec.string(m.pointee.page_token),
                filter: StructCodec.string(m.pointee.filter))
        }
    }

    /// `ListNamespacePipelineReleasesResponse{releases=1, next_page_token=2, total_size=3}`, each release as
    /// `GetNamespacePipelineReleaseResponse` has it.
    package static func encodeListPipelineReleasesResponse(_ page: PipelineReleasePage) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__ListNamespacePipelineReleasesResponse> =
                arena.message(pipeline__pipeline__v1beta__list_namespace_pipeline_releases_response__init)
            (m.pointee.n_releases, m.pointee.releases) = arena.repeated(page.releases) { encodeRelease($0, in: arena) }
            m.pointee.next_page_token = arena.cString(page.nextPageToken)
            m.pointee.total_size = Int32(clamping: page.totalSize)
            return ProtoMessage.pack(m)
        }
    }

    /// The query of a `ListNamespacePipelinesRequest` (`namespace_id=1, page_size=2, page_token=3, view=4,
    /// filter=5, show_deleted=6, visibility=7, order_by=8`; `view`, `show_deleted`, `visibility` and
    /// `order_by` read past, ``PipelineListQuery``).
    ///
    /// - Throws: `.invalidArgument` for a missing namespace id and for ``PipelineListQuery``'s refusals.
    package static func decodeListPipelinesRequest(_ bytes: ByteBuffer) throws -> PipelineListQuery {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "ListNamespacePipelinesRequest",
            unpack: pipeline__pipeline__v1beta__list_namespace_pipelines_request__unpack,
            free: pipeline__pipeline__v1beta__list_namespace_pipelines_request__free_unpacked
        ) { m in
            try PipelineListQuery(
                namespace: StructCodec.string(m.pointee.namespace_id), pageSize: Int(m.pointee.page_size),
                pageToken: StructCodec.string(m.pointee.page_token), filter: StructCodec.string(m.pointee.filter))
        }
    }

    /// `ListNamespacePipelinesResponse{pipelines=1, next_page_token=2, total_size=3}`, each pipeline as
    /// `GetNamespacePipelineResponse` has it (without the schemas a list leaves unset).
    package static func encodeListPipelinesResponse(_ page: PipelineListPage) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__ListNamespacePipelinesResponse> =
                arena.message(pipeline__pipeline__v1beta__list_namespace_pipelines_response__init)
            (m.pointee.n_pipelines, m.pointee.pipelines) = arena.repeated(page.pipelines) {
                encodePipeline($0, in: arena)
            }
            m.pointee.next_page_token = arena.cString(page.nextPageToken)
            m.pointee.total_size = Int32(clamping: page.totalSize)
            return ProtoMessage.pack(m)
        }
    }

    private static func encodeRelease(
        _ release: PipelineResource, in arena: ProtoArena
    ) -> UnsafeMutablePointer<Pipeline__Pipeline__V1beta__PipelineRelease> {
        let r: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__PipelineRelease> =
            arena.message(pipeline__pipeline__v1beta__pipeline_release__init)
        r.pointee.name = arena.cString(release.name)
        r.pointee.uid = arena.cString(release.uid)
        r.pointee.id = arena.cString(release.id)
        r.pointee.data_specification = dataSpecification(release, in: arena)
        return r
    }

    /// Nil when the resource carries no schemas (a release in a pipeline's list).
    private static func dataSpecification(
        _ resource: PipelineResource, in arena: ProtoArena
    ) -> UnsafeMutablePointer<Pipeline__Pipeline__V1beta__DataSpecification>? {
        guard !resource.inputSchema.isEmpty || !resource.outputSchema.isEmpty else { return nil }
        let spec: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__DataSpecification> =
            arena.message(pipeline__pipeline__v1beta__data_specification__init)
        spec.pointee.input = StructCodec.encode(resource.inputSchema, in: arena)
        spec.pointee.output = StructCodec.encode(resource.outputSchema, in: arena)
        return spec
    }
}
