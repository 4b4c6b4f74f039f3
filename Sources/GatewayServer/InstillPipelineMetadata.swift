import Routing
import TriggerDispatch
import TriggerModel

/// What Instill's `GetNamespacePipeline` / `GetNamespacePipelineRelease` / `ListNamespacePipelineReleases` /
/// `ListNamespacePipelines` answer
/// (gRPC and REST alike): a
/// pipeline the gateway routes, with its releases as routes name them and its input and output fields as
/// the runner describes them (the runner protocol's `Describe` call, which the Craft AI surface uses too).
///
/// NOT_FOUND when no route matches the ref, or when the runner says it has no such pipeline; a runner that
/// cannot describe pipelines (UNIMPLEMENTED) gives schemas that take any fields, as the Craft AI surface reads it.
enum InstillPipelineMetadata {
    static func resource(_ ref: PipelineRef, services: FrontendServices) async throws -> PipelineResource {
        let description = try await services.dispatcher.pipelineDescription(ref)
        var resource: PipelineResource
        if let id = ref.release {
            resource = release(id, of: ref, services: services)
        } else {
            resource = listed(ref, services: services)
        }
        resource.inputSchema = PipelineDescription.jsonSchema(of: description.inputs)
        resource.outputSchema = PipelineDescription.jsonSchema(of: description.outputs)
        return resource
    }

    /// What `ListNamespacePipelines` (and its REST binding) answers: the page `query` asks for of the pipelines
    /// routes serve in the namespace (`TriggerDispatcher.servedPipelines(in:)`, Craft AI's `list_pipelines`
    /// list), each with the name, uid, id, owner and releases `GetNamespacePipeline` gives it. Schemas are left
    /// unset: they are the runner's (`Describe`), asked per pipeline, and a list does not ask. Any principal the
    /// token check lets in may trigger every routed pipeline, so every one is listed. NOT_FOUND for a namespace
    /// the gateway does not know (``NamespaceDirectory``: declared, a principal, or named by a route); one known
    /// only through a `*` route lists the pipelines routes name there, maybe none.
    static func pipelines(_ query: PipelineListQuery, services: FrontendServices) throws -> PipelineListPage {
        guard services.namespaces.namespace(id: query.namespace) != nil else {
            throw GatewayError(.notFound, "namespace \"\(query.namespace)\" not found")
        }
        let ids = services.dispatcher.servedPipelines(in: query.namespace)
        return query.page(
            of: ids.map { listed(PipelineRef(namespace: query.namespace, pipeline: $0), services: services) })
    }

    /// A pipeline as routes know it, without schemas: name, uid, id, owner, and its releases (each without
    /// schemas).
    private static func listed(_ ref: PipelineRef, services: FrontendServices) -> PipelineResource {
        let name = "namespaces/\(ref.namespace)/pipelines/\(ref.pipeline)"
        return PipelineResource(
            name: name, uid: ResourceUID.v5(name), id: ref.pipeline, ownerName: owner(ref, services),
            releases: services.dispatcher.releases(of: ref).map { release($0, of: ref, services: services) },
            inputSchema: ValueObject(), outputSchema: ValueObject())
    }

    private static func release(_ id: String, of ref: PipelineRef, services: FrontendServices) -> PipelineResource {
        let name = "namespaces/\(ref.namespace)/pipelines/\(ref.pipeline)/releases/\(id)"
        return PipelineResource(
            name: name, uid: ResourceUID.v5(name), id: id, ownerName: owner(ref, services), inputSchema: ValueObject(),
            outputSchema: ValueObject())
    }

    private static func owner(_ ref: PipelineRef, _ services: FrontendServices) -> String {
        services.namespaces.namespace(id: ref.namespace)?.name ?? "organizations/\(ref.namespace)"
    }

    /// What `ListNamespacePipelineReleases` (`ListPipelineReleases`, and its REST binding) answers: the page
    /// `query` asks for of the releases the pipeline's ``resource(_:services:)`` lists (so the same NOT_FOUND
    /// for a pipeline the gateway does not serve), each with its name, uid and id as that list has them; a
    /// release's schemas are `GetNamespacePipelineRelease`'s.
    static func releases(_ query: PipelineReleaseQuery, services: FrontendServices) async throws
        -> PipelineReleasePage
    {
        query.page(of: try await resource(query.ref, services: services).releases)
    }
}
