import CTriggerProtos
package import NIOCore
package import TriggerModel

/// The 2026 generation, `pipeline.v1beta`: a trigger names its pipeline or release by resource name.
/// `TriggerPipeline{,WithStream,Async}Request` and `Trigger{,Async}PipelineReleaseRequest` all are
/// `name=1, inputs=2, data=3` (instill-ai/protobufs pipeline/v1beta/pipeline.proto), so one unpack serves them.
extension InstillCodec {
    typealias NamedRequest = Pipeline__V1beta__TriggerPipelineRequest
    typealias NamedTriggerData = Pipeline__V1beta__TriggerData

    /// Decodes a `pipeline.v1beta` trigger request. `name` must be `namespaces/{ns}/pipelines/{p}`
    /// (`release: false`) or `namespaces/{ns}/pipelines/{p}/releases/{r}` (`release: true`), each id non-empty;
    /// anything else is `.invalidArgument` naming the expected form. The batch rules are `decodeTriggerRequest`'s.
    static func decodeNamedTriggerRequest(
        _ bytes: ByteBuffer,
        release: Bool,
        maxBatch: Int,
        maxMembers: Int = .max
    ) throws -> (ref: PipelineRef, inputs: [TriggerInput]) {
        let what = release ? "TriggerPipelineReleaseRequest" : "TriggerPipelineRequest"
        try WireDepthGuard.check(
            bytes, as: .namedTriggerRequest, what: what, maxMembers: maxMembers, checkingStrings: true)
        return try ProtoMessage.withUnpacked(
            bytes,
            as: what,
            unpack: pipeline__v1beta__trigger_pipeline_request__unpack,
            free: pipeline__v1beta__trigger_pipeline_request__free_unpacked
        ) { m in
            let ref = try pipelineRef(resourceName: StructCodec.string(m.pointee.name), release: release)
            let inputs = try batch(
                data: m.pointee.n_data, inputs: (m.pointee.n_inputs, m.pointee.inputs), maxBatch: maxBatch
            ) { i in try namedInput(m.pointee.data![i]) }
            return (ref, inputs)
        }
    }

    /// The ref a `pipeline.v1beta` resource name names (the google.api.http templates
    /// `namespaces/*/pipelines/*` and `namespaces/*/pipelines/*/releases/*`).
    /// `field` names the request field in the error (`name`, or a list's `parent`).
    package static func pipelineRef(resourceName name: String, release: Bool, field: String = "name") throws
        -> PipelineRef
    {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        let expected =
            release
            ? "namespaces/{namespace}/pipelines/{pipeline}/releases/{release}"
            : "namespaces/{namespace}/pipelines/{pipeline}"
        guard parts.count == (release ? 6 : 4), parts[0] == "namespaces", parts[2] == "pipelines",
            !release || parts[4] == "releases",
            parts.enumerated().allSatisfy({ $0.offset % 2 == 0 || !$0.element.isEmpty })
        else {
            throw GatewayError(.invalidArgument, "\(field) \"\(name)\" must be \(expected)")
        }
        return PipelineRef(
            namespace: String(parts[1]), pipeline: String(parts[3]), release: release ? String(parts[5]) : nil)
    }

    /// Encodes a `pipeline.v1beta` trigger request (`name` from `ref`, the `data` form), for test clients.
    package static func encodeNamedTriggerRequest(ref: PipelineRef, inputs: [TriggerInput]) -> ByteBuffer {
        withProtoArena { arena in
            let data = arena.repeated(inputs) { input -> UnsafeMutablePointer<NamedTriggerData>? in
                let item: UnsafeMutablePointer<NamedTriggerData> = arena.message(pipeline__v1beta__trigger_data__init)
                item.pointee.variable = StructCodec.encode(input.variables, in: arena)
                (item.pointee.n_secret, item.pointee.secret) = arena.stringMap(
                    input.secrets, pipeline__v1beta__trigger_data__secret_entry__init)
                return item
            }
            var name = "namespaces/\(ref.namespace)/pipelines/\(ref.pipeline)"
            if let release = ref.release { name += "/releases/\(release)" }
            let m: UnsafeMutablePointer<NamedRequest> = arena.message(pipeline__v1beta__trigger_pipeline_request__init)
            m.pointee.name = arena.cString(name)
            (m.pointee.n_data, m.pointee.data) = data
            return ProtoMessage.pack(m)
        }
    }

    /// One `pipeline.v1beta.TriggerData`: its variables and secrets.
    private static func namedInput(_ item: UnsafeMutablePointer<NamedTriggerData>?) throws -> TriggerInput {
        TriggerInput(
            variables: try StructCodec.object(item?.pointee.variable),
            secrets: Pipeline__V1beta__TriggerData__SecretEntry.decode(
                item?.pointee.n_secret ?? 0, item?.pointee.secret)
        )
    }
}

/// `pipeline.v1beta`'s pipeline metadata methods, `GetPipeline` / `GetPipelineRelease`: by resource name, and
/// with 2026's field numbers (`name=1, id=2, display_name=3, data_specification=14, releases=19,
/// owner_name=25`; a release's `data_specification` is 13). There is no uid field: `id` is the last segment of
/// `name`, as the gateway names pipelines by their route ids.
extension InstillCodec {
    /// The ref of a `GetPipelineRequest` (`release: false`) or `GetPipelineReleaseRequest` (`release: true`):
    /// `name=1` as in `pipelineRef(resourceName:release:)`; `view` is read past.
    package static func decodeNamedGetPipelineRequest(_ bytes: ByteBuffer, release: Bool) throws -> PipelineRef {
        // Both requests are `name = 1, view = 2`.
        try ProtoMessage.withUnpacked(
            bytes,
            as: release ? "GetPipelineReleaseRequest" : "GetPipelineRequest",
            unpack: pipeline__v1beta__get_pipeline_request__unpack,
            free: pipeline__v1beta__get_pipeline_request__free_unpacked
        ) { m in try pipelineRef(resourceName: StructCodec.string(m.pointee.name), release: release) }
    }

    /// `GetPipelineResponse{pipeline = 1}`.
    package static func encodeNamedGetPipelineResponse(_ pipeline: PipelineResource) -> ByteBuffer {
        withProtoArena { arena in
            let p: UnsafeMutablePointer<Pipeline__V1beta__Pipeline> = arena.message(pipeline__v1beta__pipeline__init)
            p.pointee.name = arena.cString(pipeline.name)
            p.pointee.id = arena.cString(pipeline.id)
            p.pointee.display_name = arena.cString(pipeline.id)
            p.pointee.owner_name = arena.cString(pipeline.ownerName)
            (p.pointee.n_releases, p.pointee.releases) = arena.repeated(pipeline.releases) {
                encodeNamedRelease($0, in: arena)
            }
            p.pointee.data_specification = namedDataSpecification(pipeline, in: arena)
            let m: UnsafeMutablePointer<Pipeline__V1beta__GetPipelineResponse> =
                arena.message(pipeline__v1beta__get_pipeline_response__init)
            m.pointee.pipeline = p
            return ProtoMessage.pack(m)
        }
    }

    /// `GetPipelineReleaseResponse{release = 1}`.
    package static func encodeNamedGetPipelineReleaseResponse(_ release: PipelineResource) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__V1beta__GetPipelineReleaseResponse> =
                arena.message(pipeline__v1beta__get_pipeline_release_response__init)
            m.pointee.release = encodeNamedRelease(release, in: arena)
            return ProtoMessage.pack(m)
        }
    }

    /// The query of a `pipeline.v1beta` `ListPipelineReleasesRequest` (`parent=1` naming
    /// `namespaces/{ns}/pipelines/{p}`, `page_size=2, page_token=3, view=4, filter=5, show_deleted=6`).
    ///
    /// - Throws: `.invalidArgument` for a `parent` of another form and for ``PipelineReleaseQuery``'s refusals.
    package static func decodeNamedListPipelineReleasesRequest(_ bytes: ByteBuffer) throws -> PipelineReleaseQuery {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "ListPipelineReleasesRequest",
            unpack: pipeline__v1beta__list_pipeline_releases_request__unpack,
            free: pipeline__v1beta__list_pipeline_releases_request__free_unpacked
        ) { m in
            try PipelineReleaseQuery(
                ref: try pipelineRef(
                    resourceName: StructCodec.string(m.pointee.parent), release: false, field: "parent"),
                pageSize: Int(m.pointee.page_size), pageToken: StructCodec.string(m.pointee.page_token),
                filter: StructCodec.string(m.pointee.filter))
        }
    }

    /// `ListPipelineReleasesResponse{releases=1, next_page_token=2, total_size=3}`.
    package static func encodeNamedListPipelineReleasesResponse(_ page: PipelineReleasePage) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Pipeline__V1beta__ListPipelineReleasesResponse> =
                arena.message(pipeline__v1beta__list_pipeline_releases_response__init)
            (m.pointee.n_releases, m.pointee.releases) = arena.repeated(page.releases) {
                encodeNamedRelease($0, in: arena)
            }
            m.pointee.next_page_token = arena.cString(page.nextPageToken)
            m.pointee.total_size = Int32(clamping: page.totalSize)
            return ProtoMessage.pack(m)
        }
    }

    private static func encodeNamedRelease(
        _ release: PipelineResource, in arena: ProtoArena
    ) -> UnsafeMutablePointer<Pipeline__V1beta__PipelineRelease> {
        let r: UnsafeMutablePointer<Pipeline__V1beta__PipelineRelease> =
            arena.message(pipeline__v1beta__pipeline_release__init)
        r.pointee.name = arena.cString(release.name)
        r.pointee.id = arena.cString(release.id)
        r.pointee.display_name = arena.cString(release.id)
        r.pointee.data_specification = namedDataSpecification(release, in: arena)
        return r
    }

    /// Nil when the resource carries no schemas (a release in a pipeline's list).
    private static func namedDataSpecification(
        _ resource: PipelineResource, in arena: ProtoArena
    ) -> UnsafeMutablePointer<Pipeline__V1beta__DataSpecification>? {
        guard !resource.inputSchema.isEmpty || !resource.outputSchema.isEmpty else { return nil }
        let spec: UnsafeMutablePointer<Pipeline__V1beta__DataSpecification> =
            arena.message(pipeline__v1beta__data_specification__init)
        spec.pointee.input = StructCodec.encode(resource.inputSchema, in: arena)
        spec.pointee.output = StructCodec.encode(resource.outputSchema, in: arena)
        return spec
    }
}
