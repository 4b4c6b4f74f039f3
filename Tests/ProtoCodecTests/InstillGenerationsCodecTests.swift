import NIOCore
import ProtoCodec
import Testing
import TriggerModel

/// The three Instill wire generations (issue 17, item 5), with protoc as the independent encoder, and the
/// requester and pipeline metadata messages of items 3 and 4.
@Suite("Instill generations, mgmt lookups and pipeline metadata (codec)")
struct InstillGenerationsCodecTests {
    @Test("pipeline.v1beta: name=1, inputs=2, data=3 for a pipeline and a release", .enabled(if: Protoc.isAvailable))
    func namedRequests() async throws {
        let pipeline = try await Protoc.encode(
            "pipeline.v1beta.TriggerPipelineRequest",
            #"name: "namespaces/acme/pipelines/sum" data { variable { fields { key: "a" value { number_value: 1 } } } secret { key: "k" value: "v" } }"#
        )
        let (ref, inputs) = try InstillCodec.decodeTriggerRequest(
            pipeline, generation: .pipelineV1beta, release: false, maxBatch: 32)
        #expect(ref == PipelineRef(namespace: "acme", pipeline: "sum"))
        #expect(inputs == [TriggerInput(variables: ["a": .number(1)], secrets: ["k": "v"])])

        let release = try await Protoc.encode(
            "pipeline.v1beta.TriggerAsyncPipelineReleaseRequest",
            #"name: "namespaces/acme/pipelines/sum/releases/v2" inputs { fields { key: "b" value { bool_value: true } } }"#
        )
        let decoded = try InstillCodec.decodeTriggerRequest(
            release, generation: .pipelineV1beta, release: true, maxBatch: 32)
        #expect(decoded.ref == PipelineRef(namespace: "acme", pipeline: "sum", release: "v2"))
        #expect(decoded.inputs == [TriggerInput(variables: ["b": .bool(true)])], "legacy inputs when data is empty")

        // Our encoder is what protoc reads back.
        let ours = InstillCodec.encodeNamedTriggerRequest(
            ref: decoded.ref, inputs: [TriggerInput(variables: ["x": .string("y")])])
        let text = try await Protoc.decode("pipeline.v1beta.TriggerPipelineReleaseRequest", ours)
        #expect(text.contains(#"name: "namespaces/acme/pipelines/sum/releases/v2""#), "\(text)")
    }

    @Test("pipeline.v1beta names: exactly namespaces/{ns}/pipelines/{p}[/releases/{r}], ids non-empty")
    func resourceNames() async throws {
        #expect(
            try InstillCodec.pipelineRef(resourceName: "namespaces/a/pipelines/b", release: false)
                == PipelineRef(namespace: "a", pipeline: "b"))
        for (bad, release) in [
            ("namespaces/a/pipelines/b/releases/c", false), ("namespaces/a/pipelines/b", true), ("", false),
            ("users/a/pipelines/b", false), ("namespaces/a/pipeline/b", false), ("namespaces//pipelines/b", false),
            ("namespaces/a/pipelines/", false), ("namespaces/a/pipelines/b/versions/c", true),
            ("namespaces/a/pipelines/b/releases/", true),
        ] {
            #expect(throws: GatewayError.self, "\(bad)") {
                _ = try InstillCodec.pipelineRef(resourceName: bad, release: release)
            }
        }
    }

    @Test(
        "vdp.pipeline.v1beta bytes decode as the SDK generation's (same field numbers)",
        .enabled(if: Protoc.isAvailable))
    func vdpRequests() async throws {
        let bytes = try await Protoc.encode(
            "vdp.pipeline.v1beta.TriggerNamespacePipelineReleaseRequest",
            #"namespace_id: "n" pipeline_id: "p" release_id: "r" data { variable { fields { key: "k" value { string_value: "v" } } } }"#
        )
        let (ref, inputs) = try InstillCodec.decodeTriggerRequest(
            bytes, generation: .vdpPipelineV1beta, release: true, maxBatch: 32)
        #expect(ref == PipelineRef(namespace: "n", pipeline: "p", release: "r"))
        #expect(inputs == [TriggerInput(variables: ["k": .string("v")])])
    }

    @Test("batch limit: at the limit decodes, one past it is INVALID_ARGUMENT (pipeline.v1beta)")
    func batchLimit() async throws {
        let ref = PipelineRef(namespace: "a", pipeline: "b")
        let two = InstillCodec.encodeNamedTriggerRequest(ref: ref, inputs: [TriggerInput(), TriggerInput()])
        #expect(
            try InstillCodec.decodeTriggerRequest(two, generation: .pipelineV1beta, release: false, maxBatch: 2).inputs
                .count == 2)
        #expect(throws: GatewayError.self) {
            _ = try InstillCodec.decodeTriggerRequest(two, generation: .pipelineV1beta, release: false, maxBatch: 1)
        }
    }

    @Test("an empty batch (neither data nor inputs) is INVALID_ARGUMENT in every generation, as over REST")
    func emptyBatch() async throws {
        let ref = PipelineRef(namespace: "a", pipeline: "b")
        let one = [TriggerInput(variables: ["k": .string("v")])]
        let cases: [(InstillGeneration, ByteBuffer, ByteBuffer)] = [
            (
                .pipelinePipelineV1beta, InstillCodec.encodeTriggerRequest(ref: ref, inputs: []),
                InstillCodec.encodeTriggerRequest(ref: ref, inputs: one)
            ),
            (
                .vdpPipelineV1beta, InstillCodec.encodeTriggerRequest(ref: ref, inputs: []),
                InstillCodec.encodeTriggerRequest(ref: ref, inputs: one)
            ),
            (
                .pipelineV1beta, InstillCodec.encodeNamedTriggerRequest(ref: ref, inputs: []),
                InstillCodec.encodeNamedTriggerRequest(ref: ref, inputs: one)
            ),
        ]
        for (generation, empty, single) in cases {
            let error = #expect(throws: GatewayError.self, "\(generation)") {
                _ = try InstillCodec.decodeTriggerRequest(empty, generation: generation, release: false, maxBatch: 32)
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == "data is empty: a trigger needs at least one batch element")
            #expect(
                try InstillCodec.decodeTriggerRequest(single, generation: generation, release: false, maxBatch: 32)
                    .inputs == one)
        }
    }

    @Test("a finished operation's Any carries the generation's response type", .enabled(if: Protoc.isAvailable))
    func operationTypeURL() async throws {
        let snapshot = OperationSnapshot(
            name: "operations/x", done: true, result: TriggerResult(outputs: [["a": .string("b")]]))
        for generation in InstillGeneration.allCases {
            let bytes = InstillCodec.encodeOperationResponse(operation: snapshot, generation: generation)
            let text = try await Protoc.decode("\(generation.package).GetOperationResponse", bytes)
            #expect(text.contains(generation.triggerResponseTypeURL), "\(text)")
            #expect(try InstillCodec.decodeOperationResponse(bytes).result == snapshot.result)
        }
    }

    @Test("mgmt: CheckNamespace, GetUser, GetOrganization against protoc", .enabled(if: Protoc.isAvailable))
    func mgmt() async throws {
        let checkRequest = try await Protoc.encode("core.mgmt.v1beta.CheckNamespaceRequest", #"id: "acme""#)
        #expect(try MgmtCodec.decodeCheckNamespaceRequest(checkRequest) == "acme")
        let userRequest = try await Protoc.encode("core.mgmt.v1beta.GetUserRequest", #"view: VIEW_FULL user_id: "bo""#)
        #expect(try MgmtCodec.decodeGetUserRequest(userRequest) == "bo")
        let organizationRequest = try await Protoc.encode(
            "core.mgmt.v1beta.GetOrganizationRequest", #"view: VIEW_FULL organization_id: "o""#)
        #expect(try MgmtCodec.decodeGetOrganizationRequest(organizationRequest) == "o")
        let noUser = try await Protoc.encode("core.mgmt.v1beta.GetUserRequest", "view: VIEW_FULL")
        #expect(throws: GatewayError.self) {
            _ = try MgmtCodec.decodeGetUserRequest(noUser)
        }
        let check = try await Protoc.decode(
            "core.mgmt.v1beta.CheckNamespaceResponse", MgmtCodec.encodeCheckNamespaceResponse(.organization))
        #expect(check.contains("type: NAMESPACE_ORGANIZATION"), "\(check)")
        let user = try await Protoc.decode(
            "core.mgmt.v1beta.GetUserResponse",
            MgmtCodec.encodeGetUserResponse(.init(name: "users/bo", uid: "u-1", id: "bo")))
        #expect(user.contains(#"name: "users/bo""#) && user.contains(#"uid: "u-1""#) && user.contains(#"id: "bo""#))
        let organization = try await Protoc.decode(
            "core.mgmt.v1beta.GetOrganizationResponse",
            MgmtCodec.encodeGetOrganizationResponse(.init(name: "organizations/o", uid: "u-2", id: "o")))
        #expect(organization.contains(#"name: "organizations/o""#), "\(organization)")
    }

    @Test(
        "pipeline.v1beta GetPipeline[Release]: names, and 2026's field numbers as protoc reads them",
        .enabled(if: Protoc.isAvailable))
    func namedPipelineMetadata() async throws {
        let request = try await Protoc.encode(
            "pipeline.v1beta.GetPipelineReleaseRequest", #"name: "namespaces/n/pipelines/p/releases/r" view: VIEW_FULL"#
        )
        #expect(
            try InstillCodec.decodeNamedGetPipelineRequest(request, release: true)
                == PipelineRef(namespace: "n", pipeline: "p", release: "r"))
        #expect(throws: GatewayError.self) {
            _ = try InstillCodec.decodeNamedGetPipelineRequest(request, release: false)
        }
        let pipeline = PipelineResource(
            name: "namespaces/n/pipelines/p", uid: "u-p", id: "p", ownerName: "users/n",
            inputSchema: PipelineDescription.jsonSchema(of: [.init(name: "f", dataType: "file")]),
            outputSchema: PipelineDescription.jsonSchema(of: []))
        let bytes = InstillCodec.encodeNamedGetPipelineResponse(pipeline)
        let text = try await Protoc.decode("pipeline.v1beta.GetPipelineResponse", bytes)
        #expect(text.contains(#"owner_name: "users/n""#) && text.contains(#"display_name: "p""#), "\(text)")
        // owner_name is field 25 in 2026 (17 in 2025): its tag is 25 << 3 | 2 = 0xca 0x01.
        let raw = Array(bytes.readableBytesView)
        #expect(zip(raw, raw.dropFirst()).contains { $0 == 0xca && $1 == 0x01 })
    }

    @Test(
        "GetNamespacePipeline[Release]: request ids, and the response fields protoc reads",
        .enabled(if: Protoc.isAvailable))
    func pipelineMetadata() async throws {
        let request = try await Protoc.encode(
            "pipeline.pipeline.v1beta.GetNamespacePipelineReleaseRequest",
            #"namespace_id: "n" pipeline_id: "p" release_id: "r" view: VIEW_RECIPE"#)
        #expect(
            try InstillCodec.decodeGetPipelineRequest(request, release: true)
                == PipelineRef(namespace: "n", pipeline: "p", release: "r"))
        let noPipeline = try await Protoc.encode(
            "pipeline.pipeline.v1beta.GetNamespacePipelineRequest", #"namespace_id: "n""#)
        #expect(throws: GatewayError.self) {
            _ = try InstillCodec.decodeGetPipelineRequest(noPipeline, release: false)
        }
        let release = PipelineResource(
            name: "namespaces/n/pipelines/p/releases/r", uid: "u-r", id: "r", ownerName: "organizations/n",
            inputSchema: ValueObject(), outputSchema: ValueObject())
        let pipeline = PipelineResource(
            name: "namespaces/n/pipelines/p", uid: "u-p", id: "p", ownerName: "organizations/n", releases: [release],
            inputSchema: PipelineDescription.jsonSchema(of: [.init(name: "f", dataType: "file")]),
            outputSchema: PipelineDescription.jsonSchema(of: []))
        let text = try await Protoc.decode(
            "pipeline.pipeline.v1beta.GetNamespacePipelineResponse", InstillCodec.encodeGetPipelineResponse(pipeline))
        for expected in [
            #"name: "namespaces/n/pipelines/p""#, #"owner_name: "organizations/n""#,
            #"name: "namespaces/n/pipelines/p/releases/r""#, "data_specification", #"string_value: "file""#,
        ] {
            #expect(text.contains(expected), "\(expected) in \(text)")
        }
    }

    @Test(
        "ListNamespacePipelineReleases / ListPipelineReleases: the request's ids and page fields, the response's",
        .enabled(if: Protoc.isAvailable))
    func listReleases() async throws {
        let token = PipelineReleaseQuery.token(after: "v1")
        let query = try await InstillCodec.decodeListPipelineReleasesRequest(
            Protoc.encode(
                "pipeline.pipeline.v1beta.ListNamespacePipelineReleasesRequest",
                #"namespace_id: "n" pipeline_id: "p" page_size: 101 page_token: "\#(token)" view: VIEW_RECIPE"#
                    + " show_deleted: true"))
        #expect(query.ref == PipelineRef(namespace: "n", pipeline: "p"))
        #expect(query.pageSize == 100 && query.after == "v1")
        // The 2024 generation's request is field for field the same.
        let vdp = try await InstillCodec.decodeListPipelineReleasesRequest(
            Protoc.encode(
                "vdp.pipeline.v1beta.ListNamespacePipelineReleasesRequest",
                #"namespace_id: "n" pipeline_id: "p" page_size: 2"#))
        #expect(vdp.ref == query.ref && vdp.pageSize == 2 && vdp.after == nil)
        for (text, message) in [
            (#"pipeline_id: "p""#, "namespace_id is required"),
            (#"namespace_id: "n" pipeline_id: "p" page_size: -1"#, "page_size must not be negative (it is -1)"),
            (#"namespace_id: "n" pipeline_id: "p" filter: "x""#, "filter expressions are not supported"),
            (#"namespace_id: "n" pipeline_id: "p" page_token: "nope""#, "invalid page_token"),
        ] {
            let bytes = try await Protoc.encode("pipeline.pipeline.v1beta.ListNamespacePipelineReleasesRequest", text)
            #expect("\(text)") {
                try InstillCodec.decodeListPipelineReleasesRequest(bytes)
            } throws: { ($0 as? GatewayError)?.code == .invalidArgument && "\($0)".contains(message) }
        }

        let named = try await InstillCodec.decodeNamedListPipelineReleasesRequest(
            Protoc.encode(
                "pipeline.v1beta.ListPipelineReleasesRequest",
                #"parent: "namespaces/n/pipelines/p" page_size: 3 page_token: "\#(token)""#))
        #expect(named.ref == query.ref && named.pageSize == 3 && named.after == "v1")
        let unnamed = try await Protoc.encode(
            "pipeline.v1beta.ListPipelineReleasesRequest", #"parent: "namespaces/n/pipelines""#)
        #expect {
            try InstillCodec.decodeNamedListPipelineReleasesRequest(unnamed)
        } throws: { "\($0)".contains(#"parent "namespaces/n/pipelines" must be namespaces/{namespace}/pipelines/"#) }

        let release = PipelineResource(
            name: "namespaces/n/pipelines/p/releases/v2", uid: "u-v2", id: "v2", ownerName: "users/n",
            inputSchema: ValueObject(), outputSchema: ValueObject())
        let page = PipelineReleasePage(releases: [release], nextPageToken: "rtok", totalSize: 7)
        for (message, bytes) in [
            (
                "pipeline.pipeline.v1beta.ListNamespacePipelineReleasesResponse",
                InstillCodec.encodeListPipelineReleasesResponse(page)
            ),
            (
                "pipeline.v1beta.ListPipelineReleasesResponse",
                InstillCodec.encodeNamedListPipelineReleasesResponse(page)
            ),
        ] {
            let text = try await Protoc.decode(message, bytes)
            for expected in [
                #"name: "namespaces/n/pipelines/p/releases/v2""#, #"id: "v2""#, #"next_page_token: "rtok""#,
                "total_size: 7",
            ] {
                #expect(text.contains(expected), "\(expected) in \(message): \(text)")
            }
        }
        // The last page: no token on the wire (proto3 leaves the empty string out), total still there.
        let last = try await Protoc.decode(
            "pipeline.pipeline.v1beta.ListNamespacePipelineReleasesResponse",
            InstillCodec.encodeListPipelineReleasesResponse(
                PipelineReleasePage(releases: [], nextPageToken: "", totalSize: 0)))
        #expect(!last.contains("next_page_token") && !last.contains("releases"), "\(last)")
    }

    @Test(
        "ListNamespacePipelines: the request's namespace and page fields (SDK field numbers), the response's",
        .enabled(if: Protoc.isAvailable))
    func listPipelines() async throws {
        let token = PipelineListQuery.token(after: "a")
        let query = try await InstillCodec.decodeListPipelinesRequest(
            Protoc.encode(
                "pipeline.pipeline.v1beta.ListNamespacePipelinesRequest",
                #"namespace_id: "n" page_size: 101 page_token: "\#(token)" view: VIEW_RECIPE show_deleted: true"#
                    + #" visibility: VISIBILITY_PUBLIC order_by: "id""#))
        #expect(query.namespace == "n" && query.pageSize == 100 && query.after == "a")
        for (text, message) in [
            (#"page_size: 2"#, "namespace_id is required"),
            (#"namespace_id: "n" page_size: -1"#, "page_size must not be negative (it is -1)"),
            (#"namespace_id: "n" filter: "x""#, "filter expressions are not supported"),
            (#"namespace_id: "n" page_token: "r61""#, "invalid page_token"),
        ] {
            let bytes = try await Protoc.encode("pipeline.pipeline.v1beta.ListNamespacePipelinesRequest", text)
            #expect("\(text)") {
                try InstillCodec.decodeListPipelinesRequest(bytes)
            } throws: { ($0 as? GatewayError)?.code == .invalidArgument && "\($0)".contains(message) }
        }
        let release = PipelineResource(
            name: "namespaces/n/pipelines/p/releases/v1", uid: "u-v1", id: "v1", ownerName: "users/n",
            inputSchema: ValueObject(), outputSchema: ValueObject())
        let pipeline = PipelineResource(
            name: "namespaces/n/pipelines/p", uid: "u-p", id: "p", ownerName: "users/n", releases: [release],
            inputSchema: ValueObject(), outputSchema: ValueObject())
        let text = try await Protoc.decode(
            "pipeline.pipeline.v1beta.ListNamespacePipelinesResponse",
            InstillCodec.encodeListPipelinesResponse(
                PipelineListPage(pipelines: [pipeline], nextPageToken: "ptok", totalSize: 4)))
        for expected in [
            #"name: "namespaces/n/pipelines/p""#, #"owner_name: "users/n""#,
            #"name: "namespaces/n/pipelines/p/releases/v1""#, #"next_page_token: "ptok""#, "total_size: 4",
        ] {
            #expect(text.contains(expected), "\(expected) in \(text)")
        }
        #expect(!text.contains("data_specification"), "\(text)")
    }
}
